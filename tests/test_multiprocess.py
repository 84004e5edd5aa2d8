"""Two waitress processes on one PostgreSQL database and one Redis (issue 6).

Both run `python wsgi.py` exactly as a deployment behind a reverse proxy
would, against a fake Gemini at 0.5 s latency, and share:
- the upstream gate: 20 concurrent generations split across both never put
  more than GENAI_MAX_CONCURRENT calls in flight, and starts are spaced by
  GENAI_MIN_INTERVAL_MS;
- sessions: a login made on A works on B, CSRF token included;
- rate limits: attempts through A and B count against one limit;
- leases: a process killed with SIGKILL mid-generation gives its slot back
  within GENAI_LEASE_S, and then the other process holds both slots at once.

The figures (peak in flight, start spacing, slot return time) are printed
(`pytest -s`) and written to `multiprocess-figures.json` in the test's
temporary folder; docs/scaling.md quotes them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fake_gemini import FakeGemini
from tests.support.services import connect_redis, scratch_postgres_database
from tests.wsgi_server import WsgiServer, isolated_environment

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_DB = 9  # this test's own database number, flushed before and after
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"

LATENCY_S = 0.5
MAX_CONCURRENT = 2
INTERVAL_MS = 300
LEASE_S = 3.0
GENERATIONS = 20
# The gate reserves each start on Redis' clock as the request goes on the
# wire (the provider's send hook), so what the fake sees differs from the
# reserved starts only by the socket write and the fake's own accept.
WIRE_TOLERANCE_MS = 10
# The gates add this to a non-zero interval (app/services/genai/gate.py).
WIRE_MARGIN_MS = 10
# Mapping the fake's monotonic stamps onto Redis' wall clock.
CLOCK_SLACK_MS = 5
LOGIN_LIMIT = 3


# ---- services ------------------------------------------------------------------


@pytest.fixture(scope="module")
def database():
    """A fresh PostgreSQL database for this module, dropped afterwards."""
    with scratch_postgres_database("nb_mp") as url:
        yield url


@pytest.fixture(scope="module")
def redis_db():
    from redis import Redis

    client = connect_redis(REDIS_URL)
    # Two runs of this module at once (two checkouts, one Redis) would share
    # the database; they take turns on a lock kept outside it (flushdb).
    lock_client = Redis.from_url(REDIS_URL.rsplit("/", 1)[0] + "/0")
    turn = lock_client.lock("nb:test:multiprocess", timeout=300, blocking_timeout=300)
    assert turn.acquire(), f"another run of this module holds Redis database {REDIS_DB}"
    try:
        client.flushdb()
        yield client
    finally:
        client.flushdb()
        turn.release()
        client.close()
        lock_client.close()


@pytest.fixture(scope="module")
def fake():
    with FakeGemini(latency=LATENCY_S) as server:
        yield server


# ---- the two app processes -----------------------------------------------------


@pytest.fixture(scope="module")
def cluster(database, redis_db, fake, tmp_path_factory):
    """Processes A and B, started at the same moment: both migrate the one
    database at start, which the advisory lock in upgrade_database serialises."""
    folder = tmp_path_factory.mktemp("multiprocess")
    env = isolated_environment(
        DATABASE_URL=database,
        REDIS_URL=REDIS_URL,
        GOOGLE_API_KEY="test",
        GENAI_PROVIDER="gemini",
        GENAI_BASE_URL=fake.url,
        GENAI_MAX_CONCURRENT=str(MAX_CONCURRENT),
        GENAI_MIN_INTERVAL_MS=str(INTERVAL_MS),
        GENAI_MAX_QUEUE="32",
        GENAI_QUEUE_TIMEOUT_S="60",
        GENAI_MAX_RETRIES="0",
        GENAI_LEASE_S=str(LEASE_S),
        GENERATION_RATE_LIMIT="1000/minute",
        LOGIN_RATE_LIMIT=f"{LOGIN_LIMIT}/minute",
        LOGIN_USER_RATE_LIMIT="1000/minute",
        # Shared by both: images and the generated secret key, so a cookie
        # signed by one is good on the other.
        DATA_DIR=str(folder / "data"),
        LOG_DIR=str(folder / "logs"),
    )
    processes = {
        name: WsgiServer(env, folder / f"console-{name}.txt", name=name).launch()
        for name in ("A", "B")
    }
    figures: dict = {}
    try:
        for process in processes.values():
            process.wait_healthy()
        yield processes, figures
    finally:
        for process in processes.values():
            process.kill()
        if figures:
            report = folder / "multiprocess-figures.json"
            report.write_text(json.dumps(figures, indent=2))
            print(f"\nmultiprocess figures ({report}):\n{json.dumps(figures, indent=2)}")


class GateGrants:
    """Every start the shared gate reserves, read off Redis MONITOR: the START
    script's `SET <next> <start + interval> PX ...`. Times are Redis' own
    clock, in ms, the one the gate decides on."""

    STOP = "nb-mp-monitor-stop"

    def __init__(self, client) -> None:
        self.client = client
        self.starts_ms: list[int] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> GateGrants:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc_info) -> None:
        self.client.echo(self.STOP)
        self._thread.join(5)

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                words = event["command"].split()
                if self.STOP in words:
                    return
                reserved = words[:2] == ["SET", "nb:gate:next"]
                # MONITOR shows every database; another app may use the same keys.
                if event["db"] == REDIS_DB and event["client_type"] == "lua" and reserved:
                    self.starts_ms.append(int(words[2]) - INTERVAL_MS - WIRE_MARGIN_MS)


def generate(process: WsgiServer, prompt: str, timeout: float = 60) -> requests.Response:
    return requests.post(
        process.url("/v1/generate"), json={"prompt": prompt, "seed": 1}, timeout=timeout
    )


def calls_with(fake: FakeGemini, marker: str):
    return [call for call in fake.requests if marker in json.dumps(call.body)]


# ---- the tests (in file order; the last one kills A) ----------------------------


def test_both_processes_migrated_one_database(cluster, database):
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert len(versions) == 1


def test_generations_across_both_processes_share_one_gate(cluster, fake, redis_db):
    processes, figures = cluster
    a, b = processes["A"], processes["B"]
    # Warm each process's SDK client and connection, so the burst measures
    # the gate rather than first-call set-up.
    for process in (a, b):
        assert generate(process, "warm up").status_code == 200
    fake.reset()

    targets = [a if n % 2 == 0 else b for n in range(GENERATIONS)]
    started = time.monotonic()
    wall_minus_monotonic = time.time() - started
    with GateGrants(redis_db) as grants, ThreadPoolExecutor(max_workers=GENERATIONS) as pool:
        responses = list(
            pool.map(lambda job: generate(job[1], f"banana {job[0]}"), enumerate(targets))
        )
    elapsed = time.monotonic() - started

    assert [r.status_code for r in responses] == [200] * GENERATIONS, [
        r.text[:200] for r in responses if r.status_code != 200
    ]
    assert all(response.json()["images"] for response in responses)
    assert fake.calls == GENERATIONS
    granted = sorted(grants.starts_ms)
    # The fake's clock is this process's monotonic one; Redis' is wall time.
    arrived_ms = sorted((at + wall_minus_monotonic) * 1000 for at in fake.start_times)
    assert len(granted) == GENERATIONS
    grant_gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    wire_gaps = [later - earlier for earlier, later in itertools.pairwise(arrived_ms)]
    # The k-th call to reach the fake came no sooner than the k-th grant: had
    # any call gone out before its own grant, some k would break this.
    after_grant = [at - grant for grant, at in zip(granted, arrived_ms, strict=True)]
    figures["generations"] = {
        "requests": GENERATIONS,
        "processes": 2,
        "fake_latency_s": LATENCY_S,
        "max_concurrent": MAX_CONCURRENT,
        "min_interval_ms": INTERVAL_MS,
        "max_in_flight_seen": fake.max_in_flight,
        "min_grant_gap_ms": min(grant_gaps),
        "median_start_gap_at_fake_ms": round(statistics.median(wire_gaps), 1),
        "min_start_gap_at_fake_ms": round(min(wire_gaps), 1),
        "grant_to_fake_ms": {
            "min": round(min(after_grant), 1),
            "median": round(statistics.median(after_grant), 1),
            "max": round(max(after_grant), 1),
        },
        "wall_time_s": round(elapsed, 2),
    }
    assert fake.max_in_flight == MAX_CONCURRENT  # never more, and the bound is used
    # The gate's decisions, across both processes: never closer than the
    # interval, to the millisecond of Redis' clock.
    assert min(grant_gaps) >= INTERVAL_MS, grant_gaps
    assert min(after_grant) >= -CLOCK_SLACK_MS, after_grant
    # On the wire: the reserved start plus a socket write, nothing more.
    assert min(wire_gaps) >= INTERVAL_MS - WIRE_TOLERANCE_MS, wire_gaps


def test_a_session_made_on_one_process_works_on_the_other(cluster):
    processes, _ = cluster
    a, b = processes["A"], processes["B"]
    on_a = requests.Session()
    signup = on_a.post(
        a.url("/auth/signup"),
        json={"username": "roaming", "password": "correct-horse-1"},
        timeout=10,
    )
    assert signup.status_code == 201, signup.text
    csrf_token = signup.json()["csrf_token"]

    on_b = requests.Session()
    on_b.cookies.set("nb_session", on_a.cookies["nb_session"])
    me = on_b.get(b.url("/me"), timeout=10).json()
    assert me["authenticated"] is True
    assert me["user"]["username"] == "roaming"

    created = on_b.post(
        b.url("/conversations"),
        json={"title": "made on B"},
        headers={"X-CSRF-Token": csrf_token},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    # Without the token the same cookie is refused: CSRF is really checked on B.
    refused = on_b.post(b.url("/conversations"), json={"title": "no token"}, timeout=10)
    assert refused.status_code in (400, 403), refused.text
    # ...and A sees what B wrote: one database.
    titles = [c["title"] for c in on_a.get(a.url("/conversations"), timeout=10).json()["items"]]
    assert titles == ["made on B"]


def test_a_rate_limit_reached_through_one_process_holds_on_the_other(cluster):
    processes, figures = cluster
    a, b = processes["A"], processes["B"]
    statuses = []
    for attempt in range(LOGIN_LIMIT + 2):
        process = a if attempt % 2 == 0 else b
        response = requests.post(
            process.url("/auth/login"),
            json={"username": "roaming", "password": "wrong-password-1"},
            timeout=10,
        )
        statuses.append((process.name, response.status_code))
        if response.status_code == 429:
            assert response.headers.get("Retry-After")
    figures["login_limit"] = {"limit": f"{LOGIN_LIMIT}/minute", "attempts": statuses}
    assert [status for _, status in statuses] == [401] * LOGIN_LIMIT + [429, 429]


def test_a_killed_process_gives_its_slot_back_within_the_lease(cluster, fake, redis_db):
    processes, figures = cluster
    a, b = processes["A"], processes["B"]
    fake.reset()
    # Per call, in arrival order: the doomed call on A outlives the kill but
    # ends before the dead lease can expire; B's first call then holds its
    # slot past the expiry, so B's second call can only start on the slot
    # the dead process held.
    fake.script(
        [
            {"fault": "hang", "seconds": 1.0},
            {"fault": "hang", "seconds": LEASE_S + 0.5},
        ]
    )
    doomed = threading.Thread(target=_ignore_errors, args=(generate, a, "doomed"), daemon=True)
    doomed.start()
    _wait_until(lambda: fake.in_flight == 1, timeout=10)
    a.kill()
    killed_at = time.monotonic()
    # The dead process's lease, as the gate sees it: it is never renewed again.
    seconds, micros = redis_db.time()
    held = redis_db.zrange("nb:gate:slots", 0, -1, withscores=True)
    assert len(held) == 1
    lease_left_s = (held[0][1] - (seconds * 1000 + micros // 1000)) / 1000
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(generate, b, "after kill 1")
        _wait_until(lambda: len(calls_with(fake, "after kill 1")) == 1, timeout=10)
        second = pool.submit(generate, b, "after kill 2")
        responses = [first.result(), second.result()]
    doomed.join(timeout=10)

    assert [response.status_code for response in responses] == [200, 200]
    (b_first,) = calls_with(fake, "after kill 1")
    (b_second,) = calls_with(fake, "after kill 2")
    slot_back_s = b_second.started - killed_at
    overlap_s = min(b_first.ended, b_second.ended) - b_second.started
    figures["killed_process"] = {
        "lease_s": LEASE_S,
        "renew_every_s": LEASE_S / 3,
        "lease_left_at_kill_s": round(lease_left_s, 2),
        "slot_back_after_kill_s": round(slot_back_s, 2),
        "b_both_slots_overlap_s": round(overlap_s, 2),
        "max_in_flight_seen": fake.max_in_flight,
    }
    # Within the lease, and only once the dead holder's last renewal ran out.
    assert 0 < lease_left_s <= LEASE_S
    assert lease_left_s - 0.05 <= slot_back_s <= LEASE_S + 0.3, (slot_back_s, lease_left_s)
    # Both of B's calls in flight together: B holds both slots.
    assert overlap_s > 0
    assert fake.max_in_flight == MAX_CONCURRENT

    # And from then on B alone uses both slots at once.
    fake.reset()
    with ThreadPoolExecutor(max_workers=2) as pool:
        pair = list(pool.map(lambda n: generate(b, f"pair {n}"), range(2)))
    assert [response.status_code for response in pair] == [200, 200]
    assert fake.max_in_flight == MAX_CONCURRENT


def _ignore_errors(function, *args) -> None:
    # The process serving it is killed: the connection drops.
    with contextlib.suppress(requests.RequestException):
        function(*args)


def _wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.005)
