"""Issue 18, points 2, 3 and 7, against `python wsgi.py`, and for 3 and 7
through the nginx the compose files put in front (deploy/nginx.conf, run by a
local nginx with only its port, the app's address and /tmp/ paths replaced).

- 18.2: hostile uploads cost nothing before they are refused, and a burst of
  them at the documented limits leaves /health answering;
- 18.3: slow headers take waitress's own port offline, not the proxy's;
- 18.7: through the proxy a client can't choose its address.
"""

from __future__ import annotations

import http.client
import select
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.reliability.support import (
    http_json,
    load_script,
    multipart,
    post_raw,
    report,
    server_process,
)
from tests.support.services import require_service
from tests.wsgi_server import ROOT, free_port

corpus = load_script("make_hostile_corpus")

DEADLINE_S = 90  # GENAI_DEADLINE_S: every request is answered within it
# The goal (p99 under 100 ms) is a figure of bench/hostile_uploads.py and
# docs/reliability.md; here a ceiling that a loaded CI runner meets, far
# below what starvation looked like (seconds, and probes timing out).
HEALTH_P99_CEILING_MS = 1000
ATTACKERS = 8  # the issue's eight parallel composes
# More than waitress's connection_limit (18 request threads × 8 + 256 event
# streams = 400, app/web/server.py).
SLOW_CONNECTIONS = 450
NGINX_HEADER_TIMEOUT_S = 10  # client_header_timeout in deploy/nginx.conf


# The Docker image's allocator settings (see the Dockerfile): memory figures
# here are the deployment's.
DOCKER_MALLOC = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "1048576"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with server_process(tmp_path_factory.mktemp("uploads"), **DOCKER_MALLOC) as server:
        yield server


def server_cpu(server) -> float:
    times = psutil.Process(server.process.pid).cpu_times()
    return times.user + times.system


def upload(server, path: str, files: list[tuple[str, bytes]], timeout: float = DEADLINE_S):
    body, content_type = multipart({"prompt": "tile them"}, [("files", n, d) for n, d in files])
    return post_raw(server.url(path), body, content_type, timeout=timeout)


# ---- 18.2: hostile uploads --------------------------------------------------------


def test_the_issues_scan_bomb_is_refused_before_it_costs_anything(server):
    """7000², its last scan repeated to 2,000 scans: a minute of libjpeg's time."""
    bomb = corpus.scan_bomb_jpeg((7000, 7000), 2000)
    spent = server_cpu(server)
    status, body, _ = upload(server, "/v1/edit", [("bomb.jpg", bomb)])
    assert (status, body["error"]) == (413, "image_too_complex")
    assert server_cpu(server) - spent < 1.0


def test_fourteen_pictures_at_the_pixel_limit_cost_nothing(server):
    """Each within MAX_IMAGE_PIXELS; decoding them all took 38 s of CPU."""
    files = [(f"{n}.png", corpus.flat_png()) for n in range(corpus.MAX_COMPOSE_IMAGES)]
    spent = server_cpu(server)
    status, body, _ = upload(server, "/v1/compose", files)
    assert (status, body["error"]) == (413, "request_too_large")
    assert server_cpu(server) - spent < 1.0


class HealthProbe(threading.Thread):
    """GET /health every 50 ms on a keep-alive connection until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stopped.wait(0.05):
            started = time.monotonic()
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(str(response.status))
            except OSError as error:
                self.failures.append(type(error).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.latencies.append((time.monotonic() - started) * 1000)
        conn.close()

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.slow
def test_a_burst_of_hostile_uploads_leaves_health_answering(server):
    """Eight attackers at once, each sending the scan bomb, fourteen pictures
    at the pixel limit, and two (100 MP, the most a request may carry) that
    are decoded for real."""
    big = corpus.flat_png()
    kinds = {
        "scan_bomb": ("/v1/edit", [("b.jpg", corpus.scan_bomb_jpeg((7000, 7000), 2000))]),
        "compose_14": ("/v1/compose", [(f"{n}.png", big) for n in range(14)]),
        "compose_2": ("/v1/compose", [("a.png", big), ("b.png", big)]),
    }
    expected = {
        "scan_bomb": {(413, "image_too_complex")},
        # Pillow reads their headers in a decode slot: refused, or told to wait.
        "compose_14": {(413, "request_too_large"), (503, "busy")},
        "compose_2": {(200, None), (503, "busy")},
    }
    answers: list[tuple[str, int, str | None, float, str | None]] = []
    lock = threading.Lock()

    def attack(offset: int) -> None:
        names = list(kinds)
        for name in names[offset % 3 :] + names[: offset % 3]:
            path, files = kinds[name]
            started = time.monotonic()
            status, body, headers = upload(server, path, files)
            code = body.get("error") if status != 200 else None
            with lock:
                answers.append(
                    (name, status, code, time.monotonic() - started, headers.get("Retry-After"))
                )

    rss = psutil.Process(server.process.pid)
    rss_start = rss.memory_info().rss
    probe = HealthProbe(server.port)
    probe.start()
    attackers = [threading.Thread(target=attack, args=(n,)) for n in range(ATTACKERS)]
    rss_peak = rss_start
    for thread in attackers:
        thread.start()
    while any(thread.is_alive() for thread in attackers):
        rss_peak = max(rss_peak, rss.memory_info().rss)
        time.sleep(0.05)
    probe.stopped.set()
    probe.join(15)

    assert len(answers) == ATTACKERS * len(kinds)
    for name, status, code, seconds, retry_after in answers:
        assert (status, code) in expected[name], (name, status, code)
        assert seconds < DEADLINE_S, (name, seconds)
        if status == 503:
            assert int(retry_after) >= 1
    assert any(status == 200 for _, status, *_ in answers), "nothing was decoded at all"
    report(
        "hostile_upload_burst",
        attackers=ATTACKERS,
        health_probes=len(probe.latencies),
        health_p99_ms=round(probe.p99(), 1),
        health_max_ms=round(max(probe.latencies), 1),
        slowest_answer_s=round(max(seconds for *_, seconds, _ in answers), 1),
        decoded=sum(1 for _, status, *_ in answers if status == 200),
        busy=sum(1 for _, status, *_ in answers if status == 503),
        rss_growth_mb=round((rss_peak - rss_start) / 2**20),
    )
    assert probe.failures == []
    assert probe.p99() < HEALTH_P99_CEILING_MS
    # Two decode slots at about 370 MB each (a 50 MP picture, its resized
    # copy) and two offline composes of two 4096² pictures at about 290 MB
    # each: not the 4 GB of eight requests decoding at once.
    assert rss_peak - rss_start < 1600 * 2**20


# ---- 18.3 and 18.7: the proxy in front ----------------------------------------------


@contextmanager
def local_nginx(workdir: Path, app_port: int):
    """deploy/nginx.conf, unchanged but for the listen port, the app's address
    and the /tmp/ paths, under a local nginx."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        require_service("nginx")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    for old, new in {
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "http://api:8000": f"http://127.0.0.1:{app_port}",
        "/tmp/": f"{workdir}/",
    }.items():
        assert old in conf, f"{old!r} is gone from deploy/nginx.conf"
        conf = conf.replace(old, new)
    (workdir / "nginx.conf").write_text(conf, encoding="utf-8")
    with (workdir / "console.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-c", str(workdir / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 10
        while not health_answers(port, timeout=1):
            assert process.poll() is None, (workdir / "console.log").read_text()
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def health_answers(port: int, timeout: float) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextmanager
def slow_connections(port: int, count: int):
    """`count` clients that send a request line and one header line, and
    never finish the header. Yields a function that says how many of them
    the server has closed."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")
        socks.append(sock)

    def closed_by_server() -> int:
        closed = 0
        for sock in socks:
            if select.select([sock], [], [], 0)[0]:
                try:
                    sock.setblocking(False)
                    while sock.recv(65536):
                        pass
                    closed += 1
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
        return closed

    try:
        yield closed_by_server
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.slow
def test_slow_headers_take_waitress_offline_but_not_the_proxy(tmp_path):
    with server_process(tmp_path / "app", TRUSTED_PROXY_COUNT="1") as server:
        with slow_connections(server.port, SLOW_CONNECTIONS):
            time.sleep(0.5)
            # The attack works on waitress's own port: every socket is taken.
            assert not health_answers(server.port, timeout=3)
        server.wait_healthy()

        proxy = local_nginx(tmp_path / "nginx", server.port)
        with proxy as port, slow_connections(port, SLOW_CONNECTIONS) as closed_by_server:
            latencies = []
            ends = time.monotonic() + NGINX_HEADER_TIMEOUT_S + 3
            while time.monotonic() < ends:
                started = time.monotonic()
                assert health_answers(port, timeout=3)
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)
            # Waitress only ever saw the probes' whole requests.
            app_connections = [
                c
                for c in psutil.Process(server.process.pid).net_connections("tcp")
                if c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED
            ]
            assert len(app_connections) < 10
            closed = closed_by_server()
        report(
            "slowloris_through_proxy",
            connections=SLOW_CONNECTIONS,
            probes=len(latencies),
            probe_max_ms=round(max(latencies) * 1000, 1),
            closed_by_nginx=closed,
        )
        # nginx dropped the slow clients once their header was overdue.
        assert closed >= SLOW_CONNECTIONS * 0.9


def signups(port: int, forwarded_for: list[str]) -> list[int]:
    return [
        http_json(
            "POST",
            f"http://127.0.0.1:{port}/auth/signup",
            {"username": f"user{n}-{port}", "password": "pw-123456789"},
            headers={"X-Forwarded-For": value},
        )[0]
        for n, value in enumerate(forwarded_for)
    ]


ROTATING = [f"203.0.113.{n}" for n in range(5)]


@pytest.mark.slow
def test_behind_the_proxy_a_client_cannot_choose_its_address(tmp_path):
    with server_process(
        tmp_path / "app", TRUSTED_PROXY_COUNT="1", SIGNUP_RATE_LIMIT="3/minute"
    ) as server:
        # The old NAS file: one trusted proxy, yet the app's port published.
        assert signups(server.port, ROTATING) == [201] * 5
        with local_nginx(tmp_path / "nginx", server.port) as port:
            assert signups(port, ROTATING) == [201, 201, 201, 429, 429]


@pytest.mark.slow
def test_behind_a_tunnel_and_the_proxy_a_client_cannot_choose_its_address(tmp_path):
    """The ngrok file: the tunnel appends the visitor's address, nginx the
    tunnel's, the app trusts both. A second local nginx stands in for ngrok,
    which appends to X-Forwarded-For the same way."""
    with (
        server_process(
            tmp_path / "app", TRUSTED_PROXY_COUNT="2", SIGNUP_RATE_LIMIT="3/minute"
        ) as server,
        local_nginx(tmp_path / "proxy", server.port) as proxy_port,
        local_nginx(tmp_path / "tunnel", proxy_port) as tunnel_port,
    ):
        assert signups(tunnel_port, ROTATING) == [201, 201, 201, 429, 429]
