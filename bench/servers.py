"""The processes a benchmark runs against: the fake Gemini server, the app
served exactly as ``python wsgi.py`` serves it (fresh DATA_DIR and LOG_DIR in
a temporary folder), and a bare waitress app for the request-path ceiling.

Every process is started here and stopped here, by its own pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import Client

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
START_TIMEOUT_S = 60
# Set by run.py's --app-env: added to every app's environment, last.
EXTRA_ENV: dict[str, str] = {}
# Set by run.py's --app-root: the checkout whose wsgi.py is served (a copy
# with a change to try, say); the fake and this bench stay the same.
APP_ROOT = ROOT
STOP_TIMEOUT_S = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _wait_http(port: int, path: str, process: subprocess.Popen, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        client = Client(HOST, port, timeout=2)
        try:
            if client.request("GET", path).status == 200:
                return
        except OSError:
            pass
        finally:
            client.close()
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {path} in {START_TIMEOUT_S} s")


class FakeGemini:
    """``python -m tests.fake_gemini`` as a subprocess, controlled over HTTP."""

    def __init__(self, latency: float = 0.0, image_kb: int | None = None) -> None:
        self.port = free_port()
        args = [PYTHON, "-m", "tests.fake_gemini", "--port", str(self.port)]
        args += ["--latency", str(latency)]
        if image_kb:
            args += ["--image-kb", str(image_kb)]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        line = self.process.stdout.readline()  # {"url": ...} once bound
        if not line:
            raise RuntimeError("fake Gemini server did not start")
        self.url = json.loads(line)["url"]
        self.client = Client(HOST, self.port)

    def stats(self) -> dict:
        return self.client.request("GET", "/_fake/stats").json()

    def reset(self) -> None:
        self.client.request("POST", "/_fake/reset", body={})

    def configure(self, **settings) -> None:
        self.client.request("POST", "/_fake/config", body=settings)

    def stop(self) -> None:
        self.client.close()
        _stop(self.process)


@dataclass
class App:
    """The app under waitress, as ``python wsgi.py``; one fresh temp dir each."""

    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    workdir: Path | None = None
    process: subprocess.Popen | None = None
    # What is run in place of wsgi.py (bench/page_weight_app.py: the app
    # with its page-weight features off).
    script: str = "wsgi.py"

    def start(self) -> App:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="nb-bench-"))
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GENAI_", "GOOGLE_", "GEMINI_", "DATABASE_", "REDIS_"))
        }
        env.update(
            {
                "APP_ENV": "production",
                "HOST": HOST,
                "PORT": str(self.port),
                "DATA_DIR": str(self.workdir / "data"),
                "LOG_DIR": str(self.workdir / "logs"),
                "LOG_LEVEL": "INFO",
                "SECRET_KEY": "bench-secret-key",
                "LOGIN_RATE_LIMIT": "100000/minute",
                "LOGIN_USER_RATE_LIMIT": "100000/minute",
                "SIGNUP_RATE_LIMIT": "100000/minute",
                "GENERATION_RATE_LIMIT": "1000000/minute",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        env.update(EXTRA_ENV)
        self.stderr_path = self.workdir / "stderr.log"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [PYTHON, self.script],
                cwd=APP_ROOT,
                env=env,
                stdout=stderr,
                stderr=stderr,
            )
        _wait_http(self.port, "/health", self.process, self.stderr_path)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self, timeout: float = 60.0) -> Client:
        return Client(HOST, self.port, timeout=timeout)

    def stop(self, keep: bool = False) -> None:
        if self.process is not None:
            _stop(self.process)
        if self.workdir is not None and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class BareApp:
    """``bench/bare_app.py``: waitress answering a constant."""

    def __init__(self, threads: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "bare_app.py"), str(self.port), str(threads)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_http(self.port, "/health", self.process, None)

    def client(self, timeout: float = 60.0) -> Client:
        return Client(HOST, self.port, timeout=timeout)

    def stop(self) -> None:
        _stop(self.process)

    def __enter__(self) -> BareApp:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------ memory


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds. On a
    shared machine this moves far less with other people's load than wall
    time does."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")
