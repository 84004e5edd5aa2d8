"""Upstream faults through the real google-genai SDK against the fake Gemini
server: each fault gives its documented error (never a 500) on every imaging
endpoint, is recorded in the caller's conversation, and afterwards every gate
slot is free and no thread is left behind. Then a storm: many callers at once
against a random mix of faults."""

from __future__ import annotations

import base64
import io
import random
import threading
import time

import pytest

from tests import fake_gemini as fg
from tests.reliability.support import NO_LIMITS, report
from tests.support.app import GEMINI_TEST_KEY
from tests.support.images import png_bytes

API_KEY = GEMINI_TEST_KEY


def truncated_base64() -> fg.Fault:
    """Base64 cut mid-quantum: not even decodable as bytes."""
    data = base64.b64encode(fg.render_png(64, 64, seed=3, image_kb=None)).decode()
    cut = data[: len(data) // 2 + 1]
    return fg.Fault(
        "truncated_base64",
        body=fg.answer([{"inlineData": {"mimeType": "image/png", "data": cut}}]),
    )


# (fault, HTTP status, error code): the documented mapping.
FAULTS = [
    (fg.rate_limited(retry_delay="0.01s"), 429, "upstream_rate_limited"),
    (fg.quota_per_day(), 429, "upstream_quota_exhausted"),
    (fg.server_error(500), 502, "upstream_error"),
    (fg.overloaded(retry_delay="0.01s"), 503, "upstream_overloaded"),
    (fg.hang(3), 504, "upstream_timeout"),
    (fg.connection_reset(), 502, "upstream_unreachable"),
    (fg.malformed_json(), 502, "upstream_bad_response"),
    (truncated_base64(), 502, "upstream_bad_response"),
    (fg.truncated_image(), 502, "upstream_bad_response"),
    (fg.invalid_base64(), 502, "upstream_bad_response"),
    (fg.not_an_image(), 502, "upstream_bad_response"),
]
ENDPOINTS = ("/v1/generate", "/v1/edit", "/v1/compose")


def app_threads() -> set[threading.Thread]:
    """Live threads other than the fake server's own (its handler threads
    may sit in a hang() or on a kept-alive connection; they are not ours)."""
    return {
        thread
        for thread in threading.enumerate()
        if "process_request_thread" not in thread.name and thread.name != "fake-gemini"
    }


def call(client, endpoint: str, headers: dict, conv_id: int | None = None):
    fields: dict = {"prompt": "a banana"}
    if conv_id is not None:
        fields["conv_id"] = conv_id
    if endpoint == "/v1/generate":
        return client.post(endpoint, json=fields, headers=headers)
    count = 1 if endpoint == "/v1/edit" else 2
    fields["files"] = [(io.BytesIO(png_bytes((n * 90, 40, 40))), f"{n}.png") for n in range(count)]
    if conv_id is not None:
        fields["conv_id"] = str(conv_id)
    return client.post(endpoint, data=fields, headers=headers, content_type="multipart/form-data")


def assert_documented(response, status: int, code: str) -> None:
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"] == code
    assert body["message"] == body["detail"]
    assert API_KEY not in response.get_data(as_text=True)
    if status in (429, 503):
        # Every one, a spent daily quota included (until midnight Pacific).
        assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture
def faulty(gemini_app, fake_gemini):
    app = gemini_app(GENAI_TIMEOUT_S=0.5, GENAI_MAX_RETRIES=1, **NO_LIMITS)
    client = app.test_client()
    body = client.post(
        "/auth/signup", json={"username": "alice", "password": "correct-horse-1"}
    ).get_json()
    headers = {"X-CSRF-Token": body["csrf_token"]}
    conv_id = client.post("/conversations", json={}, headers=headers).get_json()["id"]
    assert call(client, "/v1/generate", headers).status_code == 200  # warm: SDK client, pool
    return app, client, headers, conv_id


@pytest.mark.parametrize(
    ("fault", "status", "code"), FAULTS, ids=[fault.name for fault, _, _ in FAULTS]
)
def test_each_fault_on_each_endpoint(faulty, fake_gemini, fault, status, code):
    app, client, headers, conv_id = faulty
    baseline = app_threads()
    gate = app.extensions["genai"].gate
    for endpoint in ENDPOINTS:
        fake_gemini.script([fault] * 4)  # every attempt, retries included
        response = call(client, endpoint, headers, conv_id)
        assert_documented(response, status, code)
        assert gate.active == 0 and gate.waiting == 0
    # Each failed turn is in the history, with its error: nothing lost.
    messages = client.get(f"/conversations/{conv_id}/messages").get_json()["items"]
    failed = [m for m in messages if m["role"] == "assistant" and m["error"]]
    assert [m["error"]["code"] for m in failed] == [code] * len(ENDPOINTS)
    fake_gemini.script([])
    assert call(client, "/v1/generate", headers).status_code == 200  # and it recovers
    deadline = time.monotonic() + 5
    while app_threads() - baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app_threads() - baseline == set(), "threads left behind"


STORM_CALLERS = 12
STORM_CALLS = 8  # each


@pytest.mark.slow
def test_fault_storm_leaves_the_gate_free_and_no_thread_behind(gemini_app, fake_gemini):
    """12 callers x 8 calls, every upstream answer drawn at random from the
    faults above and successes, with the gate at 3 slots and a queue of 6
    (a shed caller waits 0.1 s, as a client honouring Retry-After would):
    every answer is a success, a documented fault, or the designed 503 of a
    full gate; nothing is a 500; afterwards the gate is empty."""
    app = gemini_app(
        GENAI_TIMEOUT_S=0.5,
        GENAI_MAX_RETRIES=1,
        GENAI_MAX_CONCURRENT=3,
        GENAI_MAX_QUEUE=6,
        GENAI_QUEUE_TIMEOUT_S=5,
        **NO_LIMITS,
    )
    fake_gemini.latency = 0.05
    rng = random.Random(8)
    mix = [fault for fault, _, _ in FAULTS if fault.name != "hang"] + [fg.hang(0.8)]
    fake_gemini.script([rng.choice([*mix, fg.ok(), fg.ok()]) for _ in range(400)])
    allowed = {(status, code) for _, status, code in FAULTS} | {(503, "busy")}
    baseline = app_threads()
    seen: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        client = app.test_client()
        for i in range(STORM_CALLS):
            response = call(client, ENDPOINTS[(n + i) % 3], {})
            body = response.get_json()
            with lock:
                seen.append((response.status_code, body.get("error")))
            if response.status_code == 503:
                time.sleep(0.1)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(STORM_CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a caller is stuck"
    gate = app.extensions["genai"].gate
    assert gate.active == 0 and gate.waiting == 0
    assert len(seen) == STORM_CALLERS * STORM_CALLS
    unexpected = [s for s in seen if s[0] != 200 and s not in allowed]
    assert unexpected == []
    deadline = time.monotonic() + 5
    while app_threads() - baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app_threads() - baseline == set()
    report(
        "upstream_storm",
        requests=len(seen),
        upstream_calls=fake_gemini.calls,
        ok=sum(1 for s in seen if s[0] == 200),
        faults_answered=sum(1 for s in seen if s[0] != 200 and s[1] != "busy"),
        shed_503=sum(1 for s in seen if s[1] == "busy"),
        server_errors=sum(1 for s in seen if s[0] == 500),
    )
