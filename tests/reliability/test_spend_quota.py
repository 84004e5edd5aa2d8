"""At the edge of a quota (issue 12): a user with 5 images a day left sends 12
single-image requests at once. Exactly 5 answer 200, 7 answer 429
quota_exceeded with Retry-After, and the upstream sees exactly 5 calls:

- on SQLite, one `python wsgi.py` serving the 12 on its threads;
- on PostgreSQL and Redis, two processes sharing the database, the 12 split
  between them.

And 3 left, 4 asked: refused whole, before the upstream, saying 3 are left.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fake_gemini import FakeGemini
from tests.support.services import connect_redis, scratch_postgres_database
from tests.wsgi_server import NO_LIMITS, WsgiServer, isolated_environment

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/11"  # this module's own database, flushed
DAILY = 5
REQUESTS = 12
LATENCY_S = 0.3


def server_settings(fake: FakeGemini, **extra) -> dict[str, str]:
    return dict(
        NO_LIMITS,
        GOOGLE_API_KEY="test",
        GENAI_PROVIDER="gemini",
        GENAI_BASE_URL=fake.url,
        GENAI_MAX_CONCURRENT="4",
        GENAI_MIN_INTERVAL_MS="0",
        GENAI_MAX_QUEUE="32",
        GENAI_QUEUE_TIMEOUT_S="30",
        GENAI_MAX_RETRIES="0",
        THREADS="16",
        QUOTA_DAILY_IMAGES=str(DAILY),
        **extra,
    )


def token_for(server: WsgiServer, username: str) -> dict[str, str]:
    """Sign up through the server and mint an API token: the burst comes
    from a script, and the token counts against its owner."""
    session = requests.Session()
    signup = session.post(
        server.url("/auth/signup"), json={"username": username, "password": "correct-horse-1"}
    )
    assert signup.status_code == 201, signup.text
    csrf = {"X-CSRF-Token": signup.json()["csrf_token"]}
    minted = session.post(server.url("/auth/tokens"), json={"name": "burst"}, headers=csrf)
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}"}


def burst(targets: list[WsgiServer], headers: dict, count: int) -> list[requests.Response]:
    """`count` single-image requests released together."""
    gate = threading.Barrier(count)

    def one(index: int) -> requests.Response:
        gate.wait()
        return requests.post(
            targets[index % len(targets)].url("/v1/generate"),
            json={"prompt": f"banana {index}"},
            headers=headers,
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def assert_exactly_the_quota_passed(responses, fake: FakeGemini) -> None:
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * DAILY + [429] * (REQUESTS - DAILY), [
        response.text[:200] for response in responses if response.status_code not in (200, 429)
    ]
    refused = [response for response in responses if response.status_code == 429]
    assert {response.json()["error"] for response in refused} == {"quota_exceeded"}
    assert all(int(response.headers["Retry-After"]) >= 1 for response in refused)
    assert fake.calls == DAILY


# ---- SQLite, one process ------------------------------------------------------


@pytest.fixture
def fake():
    with FakeGemini(latency=LATENCY_S) as server:
        yield server


@pytest.fixture
def sqlite_server(fake, tmp_path):
    env = isolated_environment(tmp_path, **server_settings(fake))
    with WsgiServer(env, tmp_path / "console.txt") as server:
        yield server


def test_twelve_at_once_with_five_left_on_sqlite(sqlite_server, fake):
    headers = token_for(sqlite_server, "edge")

    responses = burst([sqlite_server], headers, REQUESTS)

    assert_exactly_the_quota_passed(responses, fake)


def test_three_left_four_asked_is_refused_whole_before_the_upstream(sqlite_server, fake):
    headers = token_for(sqlite_server, "whole")
    url = sqlite_server.url("/v1/generate")
    assert requests.post(url, json={"prompt": "x", "candidate_count": 2}, headers=headers).ok
    calls = fake.calls

    refused = requests.post(url, json={"prompt": "x", "candidate_count": 4}, headers=headers)
    in_chinese = requests.post(
        url,
        json={"prompt": "x", "candidate_count": 4},
        headers={**headers, "Accept-Language": "zh-CN"},
    )

    assert refused.status_code == 429
    assert refused.json()["left"] == 3
    assert "3 of 5 left" in refused.json()["message"]
    assert "还剩 3 张" in in_chinese.json()["message"]
    assert fake.calls == calls
    # What is left still works: nothing of the refused request was held.
    assert requests.post(url, json={"prompt": "x", "candidate_count": 3}, headers=headers).ok
    assert fake.calls == calls + 3


# ---- PostgreSQL and Redis, two processes --------------------------------------


@pytest.fixture
def database():
    """A fresh PostgreSQL database for this module, dropped afterwards."""
    with scratch_postgres_database("nb_quota") as url:
        yield url


@pytest.fixture
def redis_db():
    client = connect_redis(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_twelve_at_once_with_five_left_on_two_processes(database, redis_db, fake, tmp_path):
    env = isolated_environment(
        tmp_path, **server_settings(fake, DATABASE_URL=database, REDIS_URL=REDIS_URL)
    )
    servers = [
        WsgiServer(env, tmp_path / f"console-{name}.txt", name=name).launch() for name in "AB"
    ]
    try:
        for server in servers:
            server.wait_healthy()
        headers = token_for(servers[0], "edge")

        responses = burst(servers, headers, REQUESTS)

        assert_exactly_the_quota_passed(responses, fake)
    finally:
        for server in servers:
            server.stop()
