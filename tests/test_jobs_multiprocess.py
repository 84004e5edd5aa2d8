"""Background jobs on two `python wsgi.py` processes sharing one PostgreSQL
database, one Redis and one DATA_DIR (as behind a reverse proxy): a job is
one row any process can serve, watch, cancel and run.

- a job submitted through A is watched (its event stream) through B to the
  end, including the one A's worker ran: B's streams see A's changes;
- a running job submitted through A is canceled through B and ends
  `canceled` after its one upstream call; a queued one never reaches it;
- a login made on one process owns its job on both; another user gets a
  404 for it through either;
- one queue: six jobs submitted through A are run by both processes'
  workers (JOB_WORKERS=1 each), each exactly once (the `worker` column).

The database and Redis fixtures are tests/test_multiprocess.py's (a scratch
database; Redis database 9, whose lock makes the two modules take turns).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import bindparam, create_engine, text

from tests.fake_gemini import FakeGemini
from tests.test_jobs_durability import (
    assert_ends_with_one_final,
    calls_for,
    client,
    fetch_image,
    get_job,
    read_events,
    submit,
    wait_for,
    wait_until,
)
from tests.test_multiprocess import REDIS_URL, database, redis_db  # noqa: F401 (fixtures)
from tests.wsgi_server import NO_LIMITS, WsgiServer, isolated_environment

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# Long enough that the second job is taken by the other process's idle
# worker (it looks for work at least every second) before the first is done.
SLOW_S = 3.0
CANCEL_SLOW_S = 5.0
PASSWORD = "correct-horse-1"


@pytest.fixture(scope="module")
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(database, redis_db, fake, tmp_path_factory):  # noqa: F811 (fixtures)
    """Processes A and B, one job worker each."""
    folder = tmp_path_factory.mktemp("jobs-multiprocess")
    env = isolated_environment(
        DATABASE_URL=database,
        REDIS_URL=REDIS_URL,
        GOOGLE_API_KEY="test",
        GENAI_PROVIDER="gemini",
        GENAI_BASE_URL=fake.url,
        GENAI_MAX_CONCURRENT="2",
        GENAI_MIN_INTERVAL_MS="0",
        GENAI_MAX_RETRIES="0",
        JOB_WORKERS="1",
        JOB_LEASE_S="5",
        JOB_POLL_S="0.1",
        JOB_MAX_ACTIVE_PER_CALLER="20",
        # Shared: the job folders (inputs, result images) and the secret key.
        DATA_DIR=str(folder / "data"),
        LOG_DIR=str(folder / "logs"),
        **NO_LIMITS,
    )
    processes = {
        name: WsgiServer(env, folder / f"console-{name}.txt", name=name).launch()
        for name in ("A", "B")
    }
    try:
        for process in processes.values():
            process.wait_healthy()
        yield processes["A"], processes["B"]
    finally:
        for process in processes.values():
            process.kill()


@pytest.fixture
def upstream(fake):
    fake.reset()
    fake.latency = 0.0
    yield fake
    fake.latency = 0.0


def ran_by(cluster, job_ids: list[str]) -> dict[str, str]:
    """Which process ("A" or "B") ran each job, in `job_ids`' order, from
    its `worker` column ("host:pid:random", app/services/job_runner.py)."""
    by_pid = {str(process.process.pid): process.name for process in cluster}
    engine = create_engine(cluster[0].env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT id, worker FROM jobs WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": job_ids},
            ).all()
    finally:
        engine.dispose()
    workers = dict(found)
    return {job_id: by_pid.get(workers[job_id].rsplit(":", 2)[1], "?") for job_id in job_ids}


def signup(http, process: WsgiServer, username: str) -> str:
    response = http.post(
        process.url("/auth/signup"), json={"username": username, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["csrf_token"]


def test_a_job_submitted_through_one_process_is_watched_to_the_end_through_the_other(
    cluster, upstream
):
    a, b = cluster
    http = client()
    upstream.latency = SLOW_S
    ids = [submit(http, a, f"watch-{n}")["id"] for n in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        watched = list(pool.map(lambda job_id: read_events(client(), b, job_id), ids))

    runners = ran_by(cluster, ids)
    print(f"\nwatched through B; ran by: {runners}")
    for job_id, (response, events) in zip(ids, watched, strict=True):
        assert response.status_code == 200
        assert_ends_with_one_final(events, job_id, "succeeded")
        (url,) = events[-1]["data"]["result"]["images"]
        fetch_image(http, b, url)  # A's worker wrote it, B serves it
    # One ran on each process, so B's streams followed A's worker to the end.
    assert sorted(runners.values()) == ["A", "B"]
    assert [calls_for(upstream, f"watch-{n}") for n in range(2)] == [1, 1]


def test_a_login_on_one_process_owns_its_job_on_both_and_cancels_it_through_the_other(
    cluster, upstream
):
    a, b = cluster
    owner, stranger, anonymous = client(), client(), client()
    # Each signs up on one process; the cookie (one host, any port) then
    # goes to both, and the session behind it is in Redis.
    owner_token = signup(owner, a, "job-owner")
    stranger_token = signup(stranger, b, "job-stranger")
    # Room for the checks below while the owned job is still in its call.
    upstream.latency = CANCEL_SLOW_S

    owned = submit(owner, a, "owned-running", **{"X-CSRF-Token": owner_token})["id"]
    other = submit(anonymous, a, "anonymous-running")["id"]
    wait_until(lambda: upstream.in_flight == 2, what="both workers in an upstream call")
    queued = submit(anonymous, a, "anonymous-queued")
    assert queued["status"] == "queued"

    # The session made on A is good on B (Redis): the owner sees the job there.
    seen = get_job(owner, b, owned)
    assert seen["status"] == "running"
    listed = owner.get(b.url("/v1/jobs?status=active"), timeout=10)
    assert listed.status_code == 200, listed.text
    assert [job["id"] for job in listed.json()["jobs"]] == [owned]
    # Anyone else: as if it did not exist, through either process.
    for process in (a, b):
        for who in (stranger, anonymous):
            for path in (f"/v1/jobs/{owned}", f"/v1/jobs/{owned}/events"):
                assert who.get(process.url(path), timeout=10).status_code == 404, path
    refused = stranger.delete(
        b.url(f"/v1/jobs/{owned}"), headers={"X-CSRF-Token": stranger_token}, timeout=10
    )
    assert refused.status_code == 404

    # A queued job canceled through B: at once, and it never reaches the upstream.
    dequeued = anonymous.delete(b.url(f"/v1/jobs/{queued['id']}"), timeout=10)
    assert dequeued.status_code == 200, dequeued.text
    assert dequeued.json()["status"] == "canceled"

    # The running one: the cookie alone is not enough (CSRF), the token is.
    no_token = owner.delete(b.url(f"/v1/jobs/{owned}"), timeout=10)
    assert no_token.status_code in (400, 403), no_token.text
    assert get_job(owner, b, owned)["cancel_requested"] is False
    asked = owner.delete(
        b.url(f"/v1/jobs/{owned}"), headers={"X-CSRF-Token": owner_token}, timeout=10
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["cancel_requested"] is True

    ended = wait_for(owner, b, owned)
    assert ended["status"] == "canceled"
    # The call in flight was finished (and billed): what it made is kept.
    (url,) = ended["result"]["images"]
    fetch_image(owner, b, url)
    assert stranger.get(b.url(url), timeout=10).status_code == 404
    assert wait_for(anonymous, b, other)["status"] == "succeeded"
    assert get_job(anonymous, a, queued["id"])["status"] == "canceled"
    counts = {
        prompt: calls_for(upstream, prompt)
        for prompt in ("owned-running", "anonymous-running", "anonymous-queued")
    }
    print(f"\nupstream calls per prompt, cancel through B: {counts}")
    assert counts == {"owned-running": 1, "anonymous-running": 1, "anonymous-queued": 0}
    finished = owner.delete(
        b.url(f"/v1/jobs/{owned}"), headers={"X-CSRF-Token": owner_token}, timeout=10
    )
    assert finished.status_code == 409
    assert finished.json()["error"] == "job_finished"


def test_both_processes_take_jobs_from_the_one_queue(cluster, upstream):
    a, _ = cluster
    http = client()
    upstream.latency = 1.0
    prompts = [f"shared-queue-{n}" for n in range(6)]
    ids = [submit(http, a, prompt)["id"] for prompt in prompts]
    finished = [wait_for(http, a, job_id) for job_id in ids]

    runners = ran_by(cluster, ids)
    share = Counter(runners.values())
    print(f"\nsix jobs submitted through A, run by: {dict(share)}")
    assert [job["status"] for job in finished] == ["succeeded"] * 6
    assert [job["attempts"] for job in finished] == [1] * 6
    assert set(share) == {"A", "B"}  # each ran at least one, and nobody else did
    # One queue, no job taken twice.
    assert [calls_for(upstream, prompt) for prompt in prompts] == [1] * 6
    assert upstream.max_in_flight <= 2
