"""Background jobs across restarts: one `python wsgi.py` on SQLite, stopped
with SIGKILL (a power cut of the process) or SIGTERM (`docker stop`) and
started again on the same DATA_DIR, against the fake Gemini (which lives in
this process, so it outlives the server and counts every call it got).

The durability rule (app/services/job_runner.py, recover): a job whose
worker died is run again only if no upstream call of it got an answer;
one the upstream did answer fails with `interrupted_after_answer` and is
never paid for twice. The per-prompt call counts are printed (`pytest -s`).

The helpers at the top are shared with tests/test_jobs_multiprocess.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.fake_gemini import FakeGemini
from tests.wsgi_server import NO_LIMITS, WsgiServer, isolated_environment

pytestmark = pytest.mark.slow

FINISHED = ("succeeded", "failed", "canceled")
ACTIVE = ("queued", "running", "retrying")
# Short, so a dead worker's job is recovered soon after the restart.
LEASE_S = 2.0
# Long enough for a kill (or a SIGTERM) to land while the call is in flight.
SLOW_S = 3.0


# ---- helpers (also used by tests/test_jobs_multiprocess.py) ----------------------


def client() -> requests.Session:
    """A client for 127.0.0.1 that ignores any HTTP(S)_PROXY around the tests."""
    session = requests.Session()
    session.trust_env = False
    return session


def submit(http: requests.Session, server: WsgiServer, prompt: str, **headers: str) -> dict:
    """POST /v1/generate with `Prefer: respond-async`: the accepted job."""
    response = http.post(
        server.url("/v1/generate"),
        json={"prompt": prompt, "seed": 1},
        headers={"Prefer": "respond-async", **headers},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()


def get_job(http: requests.Session, server: WsgiServer, job_id: str) -> dict:
    response = http.get(server.url(f"/v1/jobs/{job_id}"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(
    http: requests.Session,
    server: WsgiServer,
    job_id: str,
    statuses: tuple[str, ...] = FINISHED,
    timeout: float = 60,
) -> dict:
    """Poll GET /v1/jobs/{id} until the job's status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(http, server, job_id)
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['status']} after {timeout}s:\n{server.console()}")
        time.sleep(0.1)


def wait_until(condition, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met in {timeout}s")
        time.sleep(0.02)


def calls_for(fake: FakeGemini, prompt: str) -> int:
    """generateContent calls whose request carried `prompt` (answered or not)."""
    return sum(1 for call in fake.requests if prompt in json.dumps(call.body))


def read_events(
    http: requests.Session,
    server: WsgiServer,
    job_id: str,
    last_event_id: str | None = None,
    timeout: float = 60,
) -> tuple[requests.Response, list[dict]]:
    """GET /v1/jobs/{id}/events read to the end the server gives it: the
    response and its events as {"id", "event", "data"} (data parsed)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    response = http.get(
        server.url(f"/v1/jobs/{job_id}/events"), headers=headers, stream=True, timeout=timeout
    )
    events: list[dict] = []
    if response.status_code != 200:
        response.close()
        return response, events
    assert response.headers["Content-Type"].startswith("text/event-stream")
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with response:
        for line in response.iter_lines(decode_unicode=True):
            if time.monotonic() > deadline:
                pytest.fail(f"the stream of {job_id} did not end in {timeout}s: {events}")
            if line == "":
                if "event" in fields:
                    events.append(
                        {
                            "id": fields.get("id"),
                            "event": fields["event"],
                            "data": json.loads(fields["data"]),
                        }
                    )
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
    return response, events


def assert_ends_with_one_final(events: list[dict], job_id: str, final: str) -> None:
    """What the contract promises of a stream: progress events, then exactly
    one final event (the last one), each carrying the job; revisions only grow."""
    assert events, f"no events for {job_id}"
    names = [event["event"] for event in events]
    assert names[-1] == final, names
    assert all(name in ACTIVE for name in names[:-1]), names
    assert all(event["data"]["id"] == job_id for event in events)
    assert events[-1]["data"]["status"] == final
    revisions = [int(event["id"].split(".")[0]) for event in events]
    assert revisions == sorted(set(revisions)), revisions


def fetch_image(http: requests.Session, server: WsgiServer, url: str) -> bytes:
    response = http.get(server.url(url), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    return response.content


# ---- one server on SQLite ---------------------------------------------------------


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture
def single(tmp_path, fake):
    """single(**env) → a WsgiServer (not started) on tmp_path's DATA_DIR, with
    one job worker; every server made here is killed at the end."""
    made: list[WsgiServer] = []

    def make(**settings: str) -> WsgiServer:
        defaults = dict(
            SECRET_KEY="test",
            GENAI_PROVIDER="gemini",
            GOOGLE_API_KEY="test-key",
            GENAI_BASE_URL=fake.url,
            GENAI_MAX_RETRIES="0",
            GENAI_MIN_INTERVAL_MS="0",
            JOB_WORKERS="1",
            JOB_LEASE_S=str(LEASE_S),
            JOB_POLL_S="0.1",
            **NO_LIMITS,
        )
        env = isolated_environment(tmp_path, **{**defaults, **settings})
        server = WsgiServer(env, tmp_path / f"console-{len(made)}.txt", name=f"run-{len(made)}")
        made.append(server)
        return server

    yield make
    for server in made:
        server.kill()


def database_file(server: WsgiServer) -> str:
    return str(Path(server.env["DATA_DIR"]) / "app.db")


def rows(server: WsgiServer, job_ids: list[str]) -> dict[str, dict]:
    """The jobs' rows read straight from the SQLite file (the server stopped)."""
    connection = sqlite3.connect(database_file(server))
    connection.row_factory = sqlite3.Row
    try:
        marks = ",".join("?" * len(job_ids))
        found = connection.execute(f"SELECT * FROM jobs WHERE id IN ({marks})", job_ids).fetchall()
    finally:
        connection.close()
    return {row["id"]: dict(row) for row in found}


def test_a_killed_server_runs_its_queued_jobs_and_the_unanswered_running_one_again(single, fake):
    """Must-show: SIGKILL with one job in an upstream call and three queued.
    After the restart all four succeed; the queued ones reach the upstream
    once each, the interrupted one twice (the call lost with the process,
    and the run after the restart)."""
    http = client()
    first = single().start()
    fake.latency = SLOW_S
    prompts = ["kill-running", "kill-queued-a", "kill-queued-b", "kill-queued-c"]
    jobs = [submit(http, first, prompt) for prompt in prompts]
    ids = [job["id"] for job in jobs]
    wait_until(lambda: calls_for(fake, "kill-running") == 1, what="the first job's call")
    states = [get_job(http, first, job_id) for job_id in ids]
    assert [job["status"] for job in states] == ["running", "queued", "queued", "queued"]
    assert [job["position"] for job in states] == [None, 1, 2, 3]
    assert fake.in_flight == 1

    first.kill()  # mid-call: the upstream's answer will find no one
    assert fake.in_flight == 1
    at_kill = rows(first, ids)
    assert [at_kill[job_id]["status"] for job_id in ids] == [
        "running",
        "queued",
        "queued",
        "queued",
    ]
    assert not at_kill[ids[0]]["answered"]

    fake.latency = 0.2
    second = single().start()
    finished = [wait_for(http, second, job_id) for job_id in ids]

    counts = {prompt: calls_for(fake, prompt) for prompt in prompts}
    print(f"\nupstream calls per prompt after SIGKILL and restart: {counts}")
    assert [job["status"] for job in finished] == ["succeeded"] * 4, finished
    assert counts == {"kill-running": 2, "kill-queued-a": 1, "kill-queued-b": 1, "kill-queued-c": 1}
    assert [job["attempts"] for job in finished] == [2, 1, 1, 1]
    for job in finished:
        assert job["error"] is None
        (url,) = job["result"]["images"]
        fetch_image(http, second, url)
    assert f"recovered job {ids[0]} from a stopped worker: queued" in second.app_log()


def test_a_job_the_upstream_answered_before_the_crash_fails_and_is_not_called_again(single, fake):
    """The other branch: a running job whose upstream answered (the worker
    wrote `answered` down) when its process died. Getting a kill between
    "answered" and "succeeded" from outside is a matter of luck, so the row
    is put in that state in the SQLite file while no server runs."""
    http = client()
    # No workers: the job stays queued with everything the request held.
    first = single(JOB_WORKERS="-1").start()
    stranded = submit(http, first, "answered-then-crash")
    assert first.stop() == 0
    assert rows(first, [stranded["id"]])[stranded["id"]]["status"] == "queued"

    long_ago = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    connection = sqlite3.connect(database_file(first))
    with connection:
        changed = connection.execute(
            "UPDATE jobs SET status = 'running', answered = 1, worker = 'dead:1:0', "
            "attempts = 1, started_at = ?, lease_until = ?, revision = revision + 1 "
            "WHERE id = ?",
            (long_ago, long_ago, stranded["id"]),
        ).rowcount
    connection.close()
    assert changed == 1

    second = single().start()
    # A job submitted now shows the worker is up and calls the upstream.
    control = submit(http, second, "control-after-restart")
    failed = wait_for(http, second, stranded["id"])
    done = wait_for(http, second, control["id"])

    counts = {
        "answered-then-crash": calls_for(fake, "answered-then-crash"),
        "control-after-restart": calls_for(fake, "control-after-restart"),
    }
    print(f"\nupstream calls per prompt, answered-before-crash case: {counts}")
    assert failed["status"] == "failed"
    assert failed["error"]["error"] == "interrupted_after_answer"
    assert failed["error"]["message"]
    assert failed["result"] is None
    assert failed["attempts"] == 1  # recovered, not started again
    assert failed["finished_at"] is not None
    assert done["status"] == "succeeded"
    assert counts == {"answered-then-crash": 0, "control-after-restart": 1}
    # A later look still says the same: it is finished for good.
    time.sleep(LEASE_S)
    assert get_job(http, second, stranded["id"])["status"] == "failed"
    assert calls_for(fake, "answered-then-crash") == 0


def test_a_graceful_stop_finishes_the_call_in_flight_and_the_queued_jobs_run_after(single, fake):
    """SIGTERM with one job in an upstream call and two queued: the call in
    flight is finished and saved before the process exits, no new job is
    started, and after the restart the queued two run once each."""
    http = client()
    first = single().start()
    fake.latency = 1.5
    prompts = ["term-running", "term-queued-a", "term-queued-b"]
    ids = [submit(http, first, prompt)["id"] for prompt in prompts]
    wait_until(lambda: fake.in_flight == 1, what="the first job's call")
    assert [get_job(http, first, job_id)["status"] for job_id in ids] == [
        "running",
        "queued",
        "queued",
    ]

    assert first.stop() == 0
    at_stop = rows(first, ids)
    assert [at_stop[job_id]["status"] for job_id in ids] == ["succeeded", "queued", "queued"]
    assert [at_stop[job_id]["attempts"] for job_id in ids] == [1, 0, 0]
    assert calls_for(fake, "term-queued-a") == calls_for(fake, "term-queued-b") == 0

    fake.latency = 0.2
    second = single().start()
    finished = [wait_for(http, second, job_id) for job_id in ids]
    counts = {prompt: calls_for(fake, prompt) for prompt in prompts}
    print(f"\nupstream calls per prompt after SIGTERM and restart: {counts}")
    assert [job["status"] for job in finished] == ["succeeded"] * 3
    assert counts == {"term-running": 1, "term-queued-a": 1, "term-queued-b": 1}
    for job in finished:
        (url,) = job["result"]["images"]
        fetch_image(http, second, url)


def test_the_event_stream_after_a_restart_delivers_the_final_event(single, fake):
    """Jobs submitted to a server that was killed before any client watched
    them: the new process's event stream follows the interrupted one through
    its recovery to `succeeded`, gives the queued one's final event, and
    ends; reconnecting after the final event is a 204."""
    http = client()
    first = single().start()
    fake.latency = SLOW_S
    interrupted = submit(http, first, "stream-interrupted")["id"]
    waiting = submit(http, first, "stream-waiting")["id"]
    wait_until(lambda: fake.in_flight == 1, what="the first job's call")
    first.kill()

    fake.latency = 0.5
    second = single().start()
    response, events = read_events(http, second, interrupted)
    print(f"\nevents after restart: {[event['event'] for event in events]}")
    assert response.status_code == 200
    assert_ends_with_one_final(events, interrupted, "succeeded")
    final = events[-1]["data"]
    assert final["attempts"] == 2
    (url,) = final["result"]["images"]
    fetch_image(http, second, url)

    response, events = read_events(http, second, waiting)
    assert response.status_code == 200
    assert_ends_with_one_final(events, waiting, "succeeded")
    last_id = events[-1]["id"]
    assert events[-1]["data"]["result"]["images"]

    again, more = read_events(http, second, waiting, last_event_id=last_id)
    assert again.status_code == 204
    assert more == []
    assert calls_for(fake, "stream-interrupted") == 2
    assert calls_for(fake, "stream-waiting") == 1


def test_a_cancel_asked_while_the_jobs_worker_is_dead_holds_after_recovery(single, fake):
    """Killed mid-call, then canceled on the restarted server before its
    dead worker's lease ran out (the job still says `running`): the cancel
    is taken (202), and the recovered job ends `canceled` without another
    upstream call."""
    http = client()
    # A lease long enough that the restarted server still sees the dead one.
    lease = dict(JOB_LEASE_S="10")
    first = single(**lease).start()
    fake.latency = SLOW_S
    job_id = submit(http, first, "cancel-while-dead")["id"]
    wait_until(lambda: fake.in_flight == 1, what="the job's call")
    first.kill()

    fake.latency = 0.2
    second = single(**lease).start()
    stale = get_job(http, second, job_id)
    assert stale["status"] == "running"
    asked = http.delete(second.url(f"/v1/jobs/{job_id}"), timeout=10)
    assert asked.status_code == 202, asked.text
    assert asked.json()["cancel_requested"] is True

    ended = wait_for(http, second, job_id, timeout=30)
    print(
        f"\nupstream calls, canceled while its worker was dead: {calls_for(fake, 'cancel-while-dead')}"
    )
    assert ended["status"] == "canceled"
    assert ended["result"] is None
    assert calls_for(fake, "cancel-while-dead") == 1  # the call lost with the process
