"""CPU per request on the app's own request path, in process (Flask's test
client: no sockets, no waitress), for the routes whose query or form is read
through flask-openapi3: /health (the floor every request pays), the conversation list, the history page, and an edit
(its multipart form) on the offline engine with a tiny image.

    .venv/bin/python bench/request_path.py
    .venv/bin/python bench/request_path.py --rounds 2000

Prints the median of five batches of `--rounds` requests per route, in µs of
process CPU time per request (time.process_time, so neighbours on a shared
machine move it less than wall time).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.app import make_app
from tests.support.auth import AuthActions
from tests.support.images import png_bytes


def per_request_us(call, rounds: int) -> float:
    batches = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            call()
        batches.append((time.process_time() - started) / rounds * 1e6)
    return statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500)
    options = parser.parse_args()

    limits = {name: "1000000/minute" for name in ("SIGNUP_RATE_LIMIT", "GENERATION_RATE_LIMIT")}
    app = make_app(Path(tempfile.mkdtemp(prefix="nb-bench-")), **limits)
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup("bench").status_code == 201
    csrf = auth.headers()
    conversation = client.post("/conversations", json={"title": "bench"}, headers=csrf)
    conv_id = conversation.get_json()["id"]
    png = png_bytes("yellow", size=(8, 8))

    def edit():
        response = client.post(
            "/v1/edit",
            data={"prompt": "grayscale", "files": (io.BytesIO(png), "a.png")},
            content_type="multipart/form-data",
            headers=csrf,
        )
        assert response.status_code == 200, response.get_data(as_text=True)

    routes = {
        "GET /health": lambda: client.get("/health"),
        "GET /conversations?limit=20": lambda: client.get("/conversations?limit=20"),
        f"GET /conversations/{conv_id}/messages": lambda: client.get(
            f"/conversations/{conv_id}/messages?limit=20"
        ),
        "POST /v1/edit (8×8 PNG, offline)": edit,
    }
    for call in routes.values():  # warm caches and the first-request paths
        for _ in range(20):
            call()
    print(f"{'route':44} CPU per request")
    for name, call in routes.items():
        rounds = options.rounds if "edit" not in name else max(1, options.rounds // 5)
        print(f"{name:44} {per_request_us(call, rounds):8.0f} µs")


if __name__ == "__main__":
    main()
