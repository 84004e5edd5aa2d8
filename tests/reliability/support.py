"""Helpers of the reliability suite (see docs/reliability.md).

Long runs are opt-in: `make fuzz` sets HYPOTHESIS_PROFILE=fuzz, `make soak`
sets NB_SOAK=1. Without them every test here is sized for `make test`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
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

NO_LIMITS = {
    "LOGIN_RATE_LIMIT": "1000000/minute",
    "LOGIN_USER_RATE_LIMIT": "1000000/minute",
    "SIGNUP_RATE_LIMIT": "1000000/minute",
    "GENERATION_RATE_LIMIT": "1000000/minute",
}


def report(name: str, **figures) -> None:
    """One greppable line per figure (`pytest -s ... | grep FIGURE`)."""
    values = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\nFIGURE {name}: {values}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python wsgi.py` (waitress, migrations at start) in a subprocess on a
    loopback port, with its data, logs and configuration in `workdir`."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = self.workdir / "logs"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GOOGLE_", "GEMINI_", "GENAI_", "DATABASE_URL", "REDIS_URL"))
        }
        self.env.update(
            APP_ENV="production",
            HOST="127.0.0.1",
            PORT=str(self.port),
            DATA_DIR=str(self.workdir / "data"),
            LOG_DIR=str(self.log_dir),
            SECRET_KEY="reliability-secret",
            GENAI_PROVIDER="offline",
            RATELIMIT_STORAGE_URI="memory://",
            **{key: value for key, value in NO_LIMITS.items()},
        )
        self.env.update(env)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stderr = open(self.workdir / "stderr.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "wsgi.py"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.stderr_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not answer /health in time")

    @property
    def rss(self) -> int:
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "stderr", None) is not None:
            self.stderr.close()

    def stderr_text(self) -> str:
        path = self.workdir / "stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_text(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.log_dir.glob("app.log*"))
        )

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "app.db"


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
