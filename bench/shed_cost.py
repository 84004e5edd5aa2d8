"""CPU per load-shedding refusal, in process: the WSGI app called directly
(no server, no sockets) with the gate forced full, for an anonymous script
and for a logged-in browser (session cookie), median of 5 batches.

    .venv/bin/python bench/shed_cost.py [--app-root DIR] [--requests N]

--app-root imports the app from another checkout (a copy with a change to
try); the figures of docs/benchmarks.md, change 9, compare two such copies.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-root", type=Path, default=ROOT)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    sys.path.insert(0, str(args.app_root.resolve()))
    os.chdir(args.app_root)

    from app import create_app
    from app.extensions import db
    from config import ProductionConfig

    folder = Path(tempfile.mkdtemp(prefix="nb-shed-"))

    class Bench(ProductionConfig):
        SECRET_KEY = "bench-secret-key"
        DATA_DIR = str(folder / "data")
        LOG_DIR = str(folder / "logs")  # the access log is written, as in production
        SQLALCHEMY_DATABASE_URI = None
        REDIS_URL = None
        RATELIMIT_STORAGE_URI = "memory://"
        GENAI_PROVIDER = "offline"
        GOOGLE_API_KEY = None
        SIGNUP_RATE_LIMIT = "1000/minute"

    app = create_app(Bench)
    with app.app_context():
        db.create_all()
    for handler in logging.getLogger("nano_banana").handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the run)
    browser = app.test_client()
    signup = browser.post("/auth/signup", json={"username": "bench", "password": "bench-pass-1"})
    cookie = browser.get_cookie(app.config["SESSION_COOKIE_NAME"])
    csrf = signup.get_json()["csrf_token"]
    app.extensions["genai"].gate.is_full = lambda: True

    body = b'{"prompt": "a ripe banana on a blue table"}'

    def environ(extra: dict) -> dict:
        return {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/v1/generate",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            **extra,
        }

    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    callers = {
        "anonymous": {},
        "session cookie": {
            "HTTP_COOKIE": f"{cookie.key}={cookie.value}",
            "HTTP_X_CSRF_TOKEN": csrf,
        },
    }
    for name, extra in callers.items():
        batches = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(args.requests):
                b"".join(app.wsgi_app(environ(extra), start_response))
            batches.append((time.process_time() - start) / args.requests * 1e6)
        assert all(status.startswith("503") for status in statuses), set(statuses)
        print(f"{name}: {statistics.median(batches):.0f} µs CPU per refusal")


if __name__ == "__main__":
    main()
