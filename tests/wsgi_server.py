"""`python wsgi.py` in a subprocess, the way every deployment runs it.

The one helper the deployment, multi-process, reliability and browser suites
start their servers with: a free loopback port; an environment that says only
what the test says (every variable the app reads is blanked first, so neither
a developer's .env nor CI's own settings leak in); /health polled until it
answers; SIGTERM to stop, SIGKILL to crash.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The Dockerfile's CMD; servers here run the same arguments with this venv's python.
COMMAND = ["python", "wsgi.py"]
# Rate limits a test server can't reach: many sign-ups and generations come
# from one loopback address in a minute.
NO_LIMITS = {
    "LOGIN_RATE_LIMIT": "1000000/minute",
    "LOGIN_USER_RATE_LIMIT": "1000000/minute",
    "LOGIN_USER_CEILING": "1000000/minute",
    "SIGNUP_RATE_LIMIT": "1000000/minute",
    "GENERATION_RATE_LIMIT": "1000000/minute",
}
# Loopback needs no proxy, whatever HTTP(S)_PROXY the tests run under.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def app_variables() -> set[str]:
    """Every environment variable the app reads: config.py's env_* calls,
    plus os.environ lookups anywhere in the code."""
    source = (ROOT / "config.py").read_text(encoding="utf-8")
    names = set(re.findall(r'env_(?:str|int|float|bool|list)\(\s*"(\w+)"', source))
    for path in [ROOT / "wsgi.py", *sorted((ROOT / "app").rglob("*.py"))]:
        code = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'os\.environ\.get\(\s*"(\w+)"', code))
        names |= set(re.findall(r'os\.getenv\(\s*"(\w+)"', code))
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_environment(workdir: Path | None = None, **settings: str) -> dict[str, str]:
    """This process's environment with every app variable set to "" (set but
    empty reads as unset, and wins over .env), then `settings`; with
    `workdir`, the data and logs go in it."""
    env = dict(os.environ)
    for name in app_variables() | {"TEST_DATABASE_URL"}:
        env[name] = ""
    env.update(APP_ENV="production", HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    if workdir is not None:
        env.update(DATA_DIR=str(Path(workdir) / "data"), LOG_DIR=str(Path(workdir) / "logs"))
    env.update(settings)
    return env


class WsgiServer:
    """One `python wsgi.py`. Its output (stdout and stderr) goes to `console`."""

    def __init__(self, env: dict[str, str], console: Path, *, name: str = "server") -> None:
        self.name = name
        self.env = env
        self.console_path = Path(console)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def launch(self) -> WsgiServer:
        """Start the process and return at once (several can then start
        together); wait_healthy() waits for it."""
        self.console_path.parent.mkdir(parents=True, exist_ok=True)
        with self.console_path.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, *COMMAND[1:]],
                cwd=ROOT,
                env={**self.env, "PORT": str(self.port)},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_healthy(self, timeout: float = 30) -> WsgiServer:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.console()}")
            try:
                with _DIRECT.open(self.url("/health"), timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"{self.name} did not answer /health in {timeout}s:\n{self.console()}")

    def start(self, timeout: float = 30) -> WsgiServer:
        return self.launch().wait_healthy(timeout)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, as `docker stop` sends; the exit status. A server that
        ignores it is killed and fails the test."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} ignored SIGTERM for {timeout}s:\n{self.console()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(getattr(signal, "SIGKILL", signal.SIGTERM))
            self.process.wait(timeout=10)

    def console(self, lines: int | None = None) -> str:
        try:
            text = self.console_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:]) if lines else text

    def app_log(self) -> str:
        """Everything in LOG_DIR's app.log and its rotated files."""
        log_dir = Path(self.env["LOG_DIR"])
        return "".join(
            path.read_text(encoding="utf-8", errors="replace")
            for path in sorted(log_dir.glob("app.log*"))
        )

    @property
    def rss(self) -> int:
        import psutil

        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss

    def __enter__(self) -> WsgiServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
