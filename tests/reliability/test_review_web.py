"""Review of the web layer (issue 11 point 4, issue 18 points 6, 8, 9, 13),
each point through `python wsgi.py`:

- a full gate sheds a generation before the session store is touched, with
  the JSON error shape, Retry-After and the caller's language, and logs it;
- a JSON body that is not an object is a 400 before any limiter counts it;
- a JSON body nested past the stack is a 400, not a RecursionError;
- a path with %0a can't forge a log line, and a client's X-Request-ID is kept
  only from a trusted proxy and only in a safe form;
- authenticated JSON is not stored by caches; private images are revalidated.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.cookies import SimpleCookie

import pytest

from tests.fake_gemini import FakeGemini
from tests.reliability.support import http_json, post_raw, server_process
from tests.support.services import connect_redis

PASSWORD = "correct-horse-1"
USER_LOGIN_LIMIT = 3
# A log line of ours starts with its time; a continuation line with CONTINUATION.
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")
FORGED_STAMP = "2030-01-01 00:00:00,000"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """No trusted proxy; a small per-username login limit for the bucket test."""
    with server_process(
        tmp_path_factory.mktemp("review-web"), LOGIN_USER_RATE_LIMIT=f"{USER_LOGIN_LIMIT}/minute"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """As behind one reverse proxy."""
    with server_process(
        tmp_path_factory.mktemp("review-web-proxied"), TRUSTED_PROXY_COUNT="1"
    ) as running:
        yield running


def signup(server, username: str) -> tuple[dict, str]:
    """(cookie header, CSRF token) of a new user's session."""
    status, body, headers = http_json(
        "POST", server.url("/auth/signup"), {"username": username, "password": PASSWORD}
    )
    assert status == 201, body
    cookie = SimpleCookie(headers["Set-Cookie"])
    jar = "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())
    return {"Cookie": jar}, body["csrf_token"]


def raw_request(server, head: bytes) -> tuple[int, dict[str, str]]:
    """Send a request as bytes (what http clients refuse to send); the status
    and headers of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, *lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---- 18.9: JSON nested past the stack -----------------------------------------


@pytest.mark.parametrize("path", ["/auth/login", "/auth/signup", "/v1/generate"])
def test_100_kb_of_brackets_is_a_400_not_a_recursion_error(server, path):
    status, body, _ = post_raw(server.url(path), b"[" * 100_000, "application/json")
    assert status == 400 and body["error"] == "invalid_json", body
    assert body["message"] == body["detail"]
    log = server.app_log()
    assert "RecursionError" not in log and "Traceback" not in log


def test_a_form_field_of_brackets_is_a_400(server):
    boundary = "nb-review"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'
        + "[" * 100_000
        + f"\r\n--{boundary}--\r\n"
    ).encode()
    status, answer, _ = post_raw(
        server.url("/v1/edit"), body, f"multipart/form-data; boundary={boundary}"
    )
    assert status == 400 and answer["error"] == "invalid_json", answer
    assert "RecursionError" not in server.app_log()


# ---- 18.6: a non-object body is refused before any limiter ---------------------


def test_a_login_sent_as_a_json_string_is_refused_while_the_users_bucket_is_empty(server):
    signup(server, "carol")
    wrong = {"username": "carol", "password": "wrong-pass-1"}
    answers = [http_json("POST", server.url("/auth/login"), wrong) for _ in range(4)]
    status, _, headers = answers[-1]
    assert status == 429, [answer[0] for answer in answers]  # the username's bucket is empty
    assert int(headers["Retry-After"]) >= 1
    right = {"username": "carol", "password": PASSWORD}
    assert http_json("POST", server.url("/auth/login"), right)[0] == 429

    for body in (json.dumps(right), [right], 3, None, True):
        data = json.dumps(body).encode()
        status, answer, _ = post_raw(server.url("/auth/login"), data, "application/json")
        assert status == 400 and answer["error"] == "invalid_json", (body, answer)


# ---- 18.8: log lines and request ids ---------------------------------------------


def test_a_newline_in_the_path_cannot_forge_a_log_line(server):
    forged = f"{FORGED_STAMP} INFO nano_banana.access: - GET /admin 200 0.1ms user=1"
    path = "/nope%0a" + forged.replace(" ", "%20") + "%0d%1b[2J"
    status, _, headers = http_json("GET", server.url(path))
    assert status == 404
    request_id = headers["X-Request-ID"]
    wait_for(lambda: request_id in server.app_log())

    lines = server.app_log().splitlines()
    assert all(RECORD_START.match(line) or line.startswith("    | ") for line in lines), lines
    assert not any(line.startswith(FORGED_STAMP) for line in lines)
    assert not any(line.startswith(FORGED_STAMP) for line in server.console().splitlines())
    (line,) = [line for line in lines if request_id in line]
    assert "/nope\\n2030-01-01" in line and "\\r\\x1b[2J 404 " in line


def test_a_client_request_id_is_ignored_without_a_trusted_proxy(server):
    status, _, headers = http_json("GET", server.url("/health"), headers={"X-Request-ID": "mine"})
    assert status == 200
    assert headers["X-Request-ID"] != "mine" and len(headers["X-Request-ID"]) == 16


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"edge-7f3a.42_b", True),
        (b"a" * 64, True),
        (b"a" * 65, False),
        (b"<script>alert(1)</script>", False),
        (b"id%0aforged", False),
        (b"caf\xc3\xa9", False),
    ],
)
def test_a_proxied_request_id_is_kept_only_in_a_safe_form(proxied, sent, kept):
    status, headers = raw_request(
        proxied,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"X-Request-ID: " + sent + b"\r\n\r\n",
    )
    assert status == 200
    echoed = headers["x-request-id"]
    assert (echoed == sent.decode("latin-1")) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{16}", echoed)
    wait_for(lambda: f"{echoed} GET /health 200" in proxied.app_log())


def test_a_request_id_with_control_characters_never_reaches_the_app(proxied):
    status, _ = raw_request(
        proxied,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"X-Request-ID: id\x1b[31mred\r\n\r\n",
    )
    assert status == 400  # waitress refuses the header itself
    assert "\x1b" not in proxied.app_log()


# ---- 18.13: what caches may keep ----------------------------------------------


def test_authenticated_json_is_no_store_and_private_images_are_revalidated(server):
    cookie, csrf = signup(server, "dave")
    headers = {**cookie, "X-CSRF-Token": csrf}
    _, conversation, _ = http_json("POST", server.url("/conversations"), {}, headers)
    status, turn, _ = http_json(
        "POST",
        server.url("/v1/generate"),
        {"prompt": "a banana", "conv_id": conversation["id"]},
        headers,
    )
    assert status == 200, turn
    for path in ("/me", "/auth/tokens", "/conversations"):
        status, _, answer = http_json("GET", server.url(path), headers=cookie)
        assert status == 200 and answer["Cache-Control"] == "no-store", path

    image = server.url(f"/images/{turn['image_ids'][0]}")
    status, _, answer = http_json("GET", image, headers=cookie)
    assert status == 200
    assert answer["Cache-Control"] == "private, no-cache"
    again = http_json("GET", image, headers={**cookie, "If-None-Match": answer["ETag"]})
    assert again[0] == 304


# ---- 11.4: shedding before the session store ------------------------------------

REDIS_DB = 11  # this test's own database number, flushed before and after
LATENCY_S = 4.0


@pytest.fixture(scope="module")
def redis_db():
    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = connect_redis(url)
    client.flushdb()
    yield url, client
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def gated(tmp_path_factory, redis_db):
    """Sessions and the gate in Redis; one upstream slot, one queue place, and
    an upstream that takes LATENCY_S to answer."""
    url, _ = redis_db
    with FakeGemini(latency=LATENCY_S) as fake:
        server = server_process(
            tmp_path_factory.mktemp("review-web-gated"),
            REDIS_URL=url,
            GENAI_PROVIDER="gemini",
            GOOGLE_API_KEY="test-key",
            GENAI_BASE_URL=fake.url,
            GENAI_MAX_CONCURRENT="1",
            GENAI_MAX_QUEUE="1",
            GENAI_MIN_INTERVAL_MS="0",
            GENAI_MAX_RETRIES="0",
        )
        with server:
            yield server, fake


class RedisCommands:
    """Every command Redis receives for one database while the block runs."""

    def __init__(self, client, db: int) -> None:
        self.client, self.db = client, db
        self.commands: list[str] = []

    def __enter__(self) -> RedisCommands:
        self._stop = threading.Event()
        ready = threading.Event()

        def listen():
            with self.client.monitor() as monitor:
                ready.set()
                for command in monitor.listen():
                    if self._stop.is_set():
                        return
                    if int(command.get("db", -1)) == self.db:
                        self.commands.append(command["command"])

        self._thread = threading.Thread(target=listen, daemon=True)
        self._thread.start()
        assert ready.wait(5)
        time.sleep(0.2)  # MONITOR is on before the first command we count
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.2)
        self._stop.set()
        self.client.ping()  # wakes the listener so it sees the stop
        self._thread.join(5)


@pytest.mark.redis
def test_a_full_gate_sheds_a_cookie_request_before_the_session_store(gated, redis_db):
    server, fake = gated
    _, client = redis_db
    cookie, csrf = signup(server, "erin")
    background = [
        threading.Thread(
            target=http_json,
            args=("POST", server.url("/v1/generate"), {"prompt": f"busy {n}"}),
            kwargs={"timeout": 60},
        )
        for n in range(2)
    ]
    for thread in background:
        thread.start()
    try:
        wait_for(lambda: fake.in_flight == 1)
        time.sleep(0.5)  # the second one takes the queue place

        headers = {**cookie, "X-CSRF-Token": csrf, "Accept-Language": "zh-CN"}
        with RedisCommands(client, REDIS_DB) as shed_window:
            shed = [
                http_json("POST", server.url("/v1/generate"), {"prompt": "one more"}, headers)
                for _ in range(5)
            ]
        with RedisCommands(client, REDIS_DB) as control_window:
            assert http_json("GET", server.url("/me"), headers=cookie)[0] == 200
    finally:
        fake.latency = 0.01
        for thread in background:
            thread.join(60)

    for status, body, answer in shed:
        assert status == 503 and body["error"] == "busy", body
        assert body["message"] == body["detail"] and "请稍后重试" in body["message"]
        assert int(answer["Retry-After"]) >= 1
        assert answer["Cache-Control"] == "no-store"
    # The store is read by any other request with the cookie: the window sees it.
    assert any("session" in command for command in control_window.commands)
    assert not any("session" in command for command in shed_window.commands)

    log = server.app_log()
    for _, _, answer in shed:
        request_id = answer["X-Request-ID"]
        assert re.search(rf"{request_id} POST /v1/generate 503 \d+\.\dms user=-", log)
