"""Soak (`make soak`, NB_SOAK=1): 200 concurrent clients for 5 minutes of
mixed traffic (browse, history, images, generate, edit) against
`python wsgi.py` on the real SDK and a fake Gemini subprocess answering at a
realistic latency with realistic payloads.

Passes when no answer is a 5xx other than the gate's designed 503 (`busy`),
the log holds no error and no traceback, and the server's resident memory
grows by less than 10 % from minute 1 to the end.

NB_SOAK_SECONDS and NB_SOAK_CLIENTS shorten it for a trial run.
"""

from __future__ import annotations

import collections
import io
import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest
import requests
from PIL import Image

from tests.reliability.support import ROOT, SOAK, report, server_process
from tests.wsgi_server import free_port

pytestmark = pytest.mark.skipif(not SOAK, reason="make soak (NB_SOAK=1) only")

SECONDS = float(os.environ.get("NB_SOAK_SECONDS", 300))
CLIENTS = int(os.environ.get("NB_SOAK_CLIENTS", 200))
ACCOUNTS = 20
UPSTREAM_LATENCY_S = 2.0  # an image model takes seconds, not milliseconds
UPSTREAM_IMAGE_KB = 300
MAX_RSS_GROWTH = 0.10
PASSWORD = "soak-pass-123"
# (weight, kind) of what a client does next.
MIX = [(30, "browse"), (25, "history"), (15, "images"), (18, "generate"), (12, "edit")]


def _upload() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 160, 40)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class Client(threading.Thread):
    def __init__(self, n: int, url: str, auth: dict, stop: threading.Event, tally) -> None:
        super().__init__(daemon=True, name=f"soak-{n}")
        self.url, self.stop, self.tally = url, stop, tally
        self.rng = random.Random(n)
        self.http = requests.Session()
        self.http.headers.update(auth.get("headers", {}))
        for name, value in auth.get("cookies", {}).items():
            self.http.cookies.set(name, value)
        self.logged_in = bool(auth)
        self.conv_id: int | None = None
        self.image_ids: list[int] = []
        self.upload = _upload()

    def run(self) -> None:
        kinds = [kind for weight, kind in MIX for _ in range(weight)]
        while not self.stop.is_set():
            kind = self.rng.choice(kinds)
            try:
                getattr(self, kind)()
            except requests.RequestException as error:
                self.tally.record(kind, f"transport:{type(error).__name__}")
            self.stop.wait(self.rng.uniform(0.2, 1.5))  # think time

    def _send(self, kind: str, method: str, path: str, **kwargs):
        response = self.http.request(method, self.url + path, timeout=120, **kwargs)
        code = None
        if response.status_code >= 400:
            try:
                code = response.json().get("error")
            except ValueError:
                code = "not-json"
        self.tally.record(kind, response.status_code, code)
        if response.status_code in (429, 503):
            # As a well-behaved client: come back when told to (at most 5 s).
            self.stop.wait(min(5.0, float(response.headers.get("Retry-After", 1))))
        return response

    def browse(self) -> None:
        path = self.rng.choice(["/", "/health", "/v1/models", "/me", "/ready"])
        self._send("browse", "GET", path)

    def history(self) -> None:
        if not self.logged_in:
            return self.browse()
        listing = self._send("history", "GET", "/conversations?limit=20")
        if listing.ok and listing.json()["items"]:
            conv = self.rng.choice(listing.json()["items"])
            self._send("history", "GET", f"/conversations/{conv['id']}/messages?limit=20")

    def images(self) -> None:
        if not self.image_ids:
            return self.history()
        image_id = self.rng.choice(self.image_ids)
        suffix = self.rng.choice(["", "/thumb"])
        self._send("images", "GET", f"/images/{image_id}{suffix}")

    def _remember(self, response) -> None:
        if response.ok:
            self.image_ids = (self.image_ids + response.json().get("image_ids", []))[-20:]

    def _conversation(self) -> int | None:
        if self.logged_in and self.conv_id is None:
            created = self._send("history", "POST", "/conversations", json={})
            if created.ok:
                self.conv_id = created.json()["id"]
        return self.conv_id

    def generate(self) -> None:
        body = {"prompt": f"a banana no. {self.rng.randrange(10**6)}"}
        if (conv_id := self._conversation()) is not None:
            body["conv_id"] = conv_id
        self._remember(self._send("generate", "POST", "/v1/generate", json=body))

    def edit(self) -> None:
        data = {"prompt": "make it purple"}
        if (conv_id := self._conversation()) is not None:
            data["conv_id"] = str(conv_id)
        files = {"files": ("photo.jpg", self.upload, "image/jpeg")}
        self._remember(self._send("edit", "POST", "/v1/edit", data=data, files=files))


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()

    def record(self, kind: str, status, code=None) -> None:
        with self.lock:
            self.counts[(kind, status, code)] += 1

    def total(self) -> int:
        return sum(self.counts.values())


def _fake_gemini(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_gemini",
            "--port",
            str(port),
            "--latency",
            str(UPSTREAM_LATENCY_S),
            "--image-kb",
            str(UPSTREAM_IMAGE_KB),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    json.loads(process.stdout.readline())  # {"url": ...} once bound
    return process


def _accounts(url: str) -> list[dict]:
    """ACCOUNTS users; each gives a session (cookie + CSRF) and API tokens."""
    made = []
    for n in range(ACCOUNTS):
        http = requests.Session()
        body = http.post(
            url + "/auth/signup", json={"username": f"soak{n}", "password": PASSWORD}, timeout=60
        ).json()
        csrf = {"X-CSRF-Token": body["csrf_token"]}
        token = http.post(url + "/auth/tokens", json={"name": "soak"}, headers=csrf, timeout=60)
        made.append(
            {
                "session": {"headers": csrf, "cookies": http.cookies.get_dict()},
                "bearer": {"headers": {"Authorization": f"Bearer {token.json()['token']}"}},
            }
        )
    return made


def test_soak(tmp_path):
    fake_port = free_port()
    fake = _fake_gemini(fake_port)
    server = server_process(
        tmp_path / "server",
        GENAI_PROVIDER="gemini",
        GOOGLE_API_KEY="soak-key",
        GENAI_BASE_URL=f"http://127.0.0.1:{fake_port}",
        GENAI_MAX_CONCURRENT="6",
        GENAI_MIN_INTERVAL_MS="50",
        GENAI_MAX_QUEUE="24",
        GENAI_QUEUE_TIMEOUT_S="20",
        GENAI_TIMEOUT_S="30",
    )
    try:
        server.start()
        accounts = _accounts(server.url())
        stop = threading.Event()
        tally = Tally()
        clients = []
        for n in range(CLIENTS):
            account = accounts[n % ACCOUNTS]
            auth = [account["session"], account["bearer"], {}][n % 3]
            clients.append(Client(n, server.url(), auth, stop, tally))
        started = time.monotonic()
        for client in clients:
            client.start()
        rss: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - started) < SECONDS:
            rss.append((elapsed, server.rss))
            time.sleep(5)
        stop.set()
        for client in clients:
            client.join(timeout=150)
        stuck = [client.name for client in clients if client.is_alive()]
        rss.append((time.monotonic() - started, server.rss))
        log = server.app_log()
    finally:
        server.stop()
        fake.terminate()
        fake.wait(timeout=10)

    minute_one = next(value for at, value in rss if at >= min(60, SECONDS / 5))
    final = rss[-1][1]
    growth = (final - minute_one) / minute_one
    statuses = collections.Counter()
    for (_, status, code), count in tally.counts.items():
        statuses[(status, code)] += count
    server_errors = {
        key: count
        for key, count in statuses.items()
        if isinstance(key[0], int) and key[0] >= 500 and key != (503, "busy")
    }
    transport = {key: count for key, count in statuses.items() if isinstance(key[0], str)}
    error_lines = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    report(
        "soak",
        seconds=round(SECONDS),
        clients=CLIENTS,
        requests=tally.total(),
        ok_2xx_3xx=sum(c for (s, _), c in statuses.items() if isinstance(s, int) and s < 400),
        shed_503=statuses[(503, "busy")],
        other_5xx=sum(server_errors.values()),
        transport_errors=sum(transport.values()),
        rss_minute_1_mb=round(minute_one / 2**20),
        rss_end_mb=round(final / 2**20),
        rss_growth_pct=round(growth * 100, 1),
        log_errors=len(error_lines),
    )
    print({f"{s} {c}": n for (s, c), n in sorted(statuses.items(), key=str)})
    assert stuck == []
    assert server_errors == {}
    assert transport == {}
    assert error_lines == [], error_lines[:5]
    assert growth < MAX_RSS_GROWTH
