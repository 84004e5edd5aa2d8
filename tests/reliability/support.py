"""Helpers of the reliability suite (see docs/reliability.md).

Long runs are opt-in: `make fuzz` sets HYPOTHESIS_PROFILE=fuzz, `make soak`
sets NB_SOAK=1. Without them every test here is sized for `make test`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
from hypothesis import HealthCheck, settings

from tests.wsgi_server import NO_LIMITS, ROOT, WsgiServer, isolated_environment

FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SOAK = bool(os.environ.get("NB_SOAK"))

# Derandomized: the same inputs on every run, so a figure in the docs is the
# figure a rerun gives. No example database for the same reason.
RELIABILITY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def report(name: str, **figures) -> None:
    """One greppable line per figure (`pytest -s ... | grep FIGURE`)."""
    values = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\nFIGURE {name}: {values}", flush=True)


def server_process(workdir: Path, **env: str) -> WsgiServer:
    """`python wsgi.py` (waitress, migrations at start) with its data, logs
    and console output in `workdir`, the offline engine and no rate limits
    unless `env` says otherwise."""
    settings = dict(
        SECRET_KEY="reliability-secret",
        GENAI_PROVIDER="offline",
        RATELIMIT_STORAGE_URI="memory://",
        **NO_LIMITS,
    )
    environment = isolated_environment(workdir, **{**settings, **env})
    return WsgiServer(environment, Path(workdir) / "console.log")


def http_json(method: str, url: str, body=None, headers=None, timeout: float = 30):
    """(status, parsed JSON or None, headers) over plain urllib."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status, answer_headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        raw = error.read()
        status, answer_headers = error.code, error.headers
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed, answer_headers


def load_script(name: str):
    """A module of scripts/ (not a package) by file name, e.g. make_hostile_corpus."""
    import importlib.util

    module_name = f"nb_scripts_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request: `files` are
    (field, filename, data)."""
    boundary = "nb-reliability-7f3a9c"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for field, filename, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_raw(url: str, body: bytes, content_type: str, headers=None, timeout: float = 60):
    """POST bytes; (status, parsed JSON or None, headers)."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, answer_headers = response.read(), response.status, response.headers
    except urllib.error.HTTPError as error:
        raw, status, answer_headers = error.read(), error.code, error.headers
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed, answer_headers


class RssSampler:
    """Peak resident memory of a process, sampled every `interval` seconds
    in a background thread while the `with` block runs."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = None

    def __enter__(self) -> RssSampler:
        import threading

        self._stop = threading.Event()
        self.start = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.process.memory_info().rss
            self.peak = max(self.peak, rss)
            self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.end = self.process.memory_info().rss
        self.peak = max(self.peak, self.end)


# Schemathesis' WSGI transport asks for gzip and checks the body as sent:
# ask for it plain (compression has its own tests, tests/test_page_weight.py).
PLAIN = {"Accept-Encoding": "identity"}
