"""Background jobs below HTTP: the queue's order, cancel, the durability
rule (app/services/job_upkeep.py, recover), results saved before success,
retention, quotas and the ledger, the busy gate.

Workers are threads of the test app. With JOB_WORKERS=-1 none runs, and a
test plays the worker itself (claim, then run_claimed) where it needs to
decide when a job runs; jobs written straight into the table start no
thread until something calls the runner."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Job, UsageRecord, User, utcnow
from app.services import job_runner, job_upkeep, jobs
from tests.fake_gemini import hang
from tests.support.auth import AuthActions
from tests.support.images import png_bytes
from tests.support.jobs import (
    accepted,
    job_count,
    job_row,
    job_url,
    set_job,
    submit,
    wait_for_status,
    wait_until,
)

NO_WORKERS = {"JOB_WORKERS": -1}
WORKER = "test-worker"


def user_client(app, name="alice"):
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup(name).status_code == 201
    return client, auth


def claim(app, worker=WORKER) -> str | None:
    with app.app_context():
        return job_runner.claim(worker)


def run_next(app, worker=WORKER) -> tuple[str | None, float]:
    """Be a worker once: claim the oldest queued job and run it. The job's
    id (None when the queue was empty) and the backoff run_claimed asked for."""
    with app.app_context():
        job_id = job_runner.claim(worker)
        if job_id is None:
            return None, 0.0
        return job_id, job_runner.run_claimed(job_id, worker)


def recover(app) -> None:
    with app.app_context():
        job_upkeep.recover()


def prune(app) -> None:
    with app.app_context():
        job_upkeep.prune()


def folder(app, job_id: str):
    with app.app_context():
        return jobs.job_dir(job_id)


def insert_job(app, **values) -> str:
    """A job row written straight into the table (as a dead worker or an
    old run left it): nothing is told, no worker starts."""
    job_id = values.pop("id", None) or secrets.token_urlsafe(16)
    row = dict(
        id=job_id,
        kind="generate",
        status="queued",
        prompt="a banana",
        model="gemini-3.1-flash-image",
        payload={"options": {}, "language": "en", "inputs": [], "warnings": []},
        revision=1,
        attempts=0,
        answered=False,
        cancel_requested=False,
        created_at=utcnow(),
    )
    row.update(values)
    with app.app_context():
        db.session.add(Job(**row))
        db.session.commit()
    return job_id


def ledger_rows(app) -> list[UsageRecord]:
    with app.app_context():
        rows = db.session.execute(select(UsageRecord).order_by(UsageRecord.id)).scalars().all()
        db.session.expunge_all()
        return rows


# ---- the queue ----------------------------------------------------------------


def test_queued_jobs_are_claimed_first_in_first_out(app_factory):
    app = app_factory(**NO_WORKERS)
    client = app.test_client()
    made = [accepted(submit(client, prompt=f"job {n}")) for n in range(3)]
    assert [job["position"] for job in made] == [1, 2, 3]

    def positions():
        return [client.get(job_url(job)).get_json()["position"] for job in made]

    assert positions() == [1, 2, 3]
    assert claim(app) == made[0]["id"]
    assert positions() == [None, 1, 2]
    assert client.get(job_url(made[0])).get_json()["status"] == "running"
    assert claim(app, "another-worker") == made[1]["id"]
    assert positions() == [None, None, 1]
    assert claim(app) == made[2]["id"]
    assert claim(app) is None


def test_a_canceled_queued_job_never_reaches_the_upstream(gemini_app, fake_gemini):
    app = gemini_app(**NO_WORKERS)
    client = app.test_client()
    canceled = accepted(submit(client, prompt="never drawn"))
    kept = accepted(submit(client, prompt="drawn"))

    assert client.delete(job_url(canceled)).status_code == 200

    assert run_next(app)[0] == kept["id"]
    assert run_next(app) == (None, 0.0)
    assert fake_gemini.calls == 1
    assert "drawn" in str(fake_gemini.requests[0].body) and "never" not in str(
        fake_gemini.requests[0].body
    )
    row = job_row(app, canceled["id"])
    assert (row.status, row.attempts, row.started_at) == ("canceled", 0, None)
    assert ledger_rows(app)[0].outcome == "ok" and len(ledger_rows(app)) == 1


def test_a_canceled_running_job_stops_after_its_current_upstream_call(gemini_app, fake_gemini):
    app = gemini_app()
    fake_gemini.script([hang(1.5)])  # the first of two images answers late
    client = app.test_client()
    job = accepted(submit(client, candidate_count=2))
    wait_until(lambda: fake_gemini.in_flight == 1, what="the first upstream call")

    asked = client.delete(job_url(job))

    assert asked.status_code == 202
    assert asked.get_json()["cancel_requested"] is True
    done = wait_for_status(client, job_url(job), ("succeeded", "failed", "canceled"))
    assert done["status"] == "canceled"
    assert fake_gemini.calls == 1  # the second image was never asked for
    # What the call in flight made is kept (and was paid for).
    assert done["result"]["images"] == [f"/v1/jobs/{job['id']}/images/0"]
    assert client.get(done["result"]["images"][0]).data.startswith(b"\x89PNG")
    rows = ledger_rows(app)
    assert [(row.outcome, row.images, row.attempt) for row in rows] == [("ok", 1, 1)]
    assert done["attempts"] == 1


def test_a_canceled_queued_job_loses_its_inputs(app_factory):
    app = app_factory(**NO_WORKERS)
    client = app.test_client()
    job = accepted(submit(client, "/v1/edit", prompt="invert", files=[png_bytes()]))
    assert (folder(app, job["id"]) / "in-0.png").is_file()

    assert client.delete(job_url(job)).status_code == 200

    assert not list(folder(app, job["id"]).glob("in-*"))


# ---- the durability rule (recover) ---------------------------------------------------


def stale_lease():
    return utcnow() - timedelta(seconds=30)


def test_an_unanswered_job_of_a_dead_worker_runs_again(gemini_app, fake_gemini):
    app = gemini_app()
    job_id = insert_job(
        app,
        status="running",
        worker="dead-host:1:abcd",
        lease_until=stale_lease(),
        started_at=utcnow() - timedelta(minutes=1),
        attempts=1,
        answered=False,
        revision=2,
    )

    recover(app)  # tells this process's workers, which start and run it

    client = app.test_client()
    done = wait_for_status(client, f"/v1/jobs/{job_id}", ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    assert fake_gemini.calls == 1
    row = job_row(app, job_id)
    assert row.worker != "dead-host:1:abcd" and row.answered is True


def test_a_recovered_unanswered_job_goes_back_in_line_at_its_old_place(gemini_app, fake_gemini):
    app = gemini_app(**NO_WORKERS)
    job_id = insert_job(
        app,
        status="running",
        worker="dead",
        lease_until=stale_lease(),
        attempts=1,
        created_at=utcnow() - timedelta(minutes=2),
    )
    later = insert_job(app, status="queued", created_at=utcnow() - timedelta(minutes=1))

    recover(app)

    row = job_row(app, job_id)
    assert (row.status, row.worker, row.lease_until, row.started_at) == ("queued", None, None, None)
    assert row.error is None and row.attempts == 1
    client = app.test_client()
    assert client.get(f"/v1/jobs/{job_id}").get_json()["position"] == 1
    assert client.get(f"/v1/jobs/{later}").get_json()["position"] == 2
    assert run_next(app)[0] == job_id
    assert job_row(app, job_id).status == "succeeded"
    assert fake_gemini.calls == 1


def test_an_answered_job_of_a_dead_worker_is_failed_and_never_run_again(gemini_app, fake_gemini):
    app = gemini_app(**NO_WORKERS)
    job_id = insert_job(
        app, status="running", worker="dead", lease_until=stale_lease(), attempts=1, answered=True
    )

    recover(app)

    row = job_row(app, job_id)
    assert row.status == "failed" and row.finished_at is not None and row.worker is None
    assert row.error["code"] == "interrupted_after_answer"
    assert run_next(app) == (None, 0.0)
    assert fake_gemini.calls == 0
    shown = app.test_client().get(f"/v1/jobs/{job_id}").get_json()
    assert shown["status"] == "failed"
    assert shown["error"]["error"] == "interrupted_after_answer"
    assert shown["error"]["message"] and shown["error"]["detail"] == shown["error"]["message"]


def test_a_job_started_too_often_is_given_up(gemini_app, fake_gemini):
    app = gemini_app(JOB_MAX_RUNS=3, **NO_WORKERS)
    given_up = insert_job(
        app, status="running", worker="dead", lease_until=stale_lease(), attempts=3
    )
    once_more = insert_job(
        app, status="running", worker="dead", lease_until=stale_lease(), attempts=2
    )

    recover(app)

    row = job_row(app, given_up)
    assert row.status == "failed" and row.error["code"] == "interrupted"
    assert job_row(app, once_more).status == "queued"
    assert run_next(app)[0] == once_more
    assert run_next(app) == (None, 0.0)
    assert fake_gemini.calls == 1


def test_a_live_workers_job_is_left_alone(gemini_app, fake_gemini):
    app = gemini_app(**NO_WORKERS)
    lease = utcnow() + timedelta(seconds=30)
    job_id = insert_job(
        app, status="running", worker="alive", lease_until=lease, attempts=1, revision=2
    )

    recover(app)

    row = job_row(app, job_id)
    assert (row.status, row.worker, row.attempts, row.revision) == ("running", "alive", 1, 2)
    assert row.error is None
    assert run_next(app) == (None, 0.0)
    assert fake_gemini.calls == 0


def test_a_job_running_longer_than_its_lease_keeps_it(gemini_app, fake_gemini):
    """The process renews the lease of what it runs: a slow upstream call
    is not mistaken for a dead worker and sent a second time."""
    app = gemini_app(JOB_WORKERS=1, JOB_LEASE_S=1, GENAI_TIMEOUT_S=10)
    fake_gemini.script([hang(3.0)])
    client = app.test_client()
    job = accepted(submit(client))

    done = wait_for_status(client, job_url(job), ("succeeded", "failed", "canceled"))

    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert fake_gemini.calls == 1


# ---- results and inputs on disk -----------------------------------------------------


def test_the_result_is_on_disk_before_the_job_is_marked_succeeded(app_factory, monkeypatch):
    app = app_factory(**NO_WORKERS)
    client = app.test_client()
    job = accepted(submit(client, "/v1/edit", prompt="make it grayscale", files=[png_bytes()]))
    job_folder = folder(app, job["id"])
    assert [path.name for path in job_folder.iterdir()] == ["in-0.png"]
    seen_at_finish = []
    real_finish = job_runner._finish

    def finish(job_id, worker, status, **values):
        seen_at_finish.append(
            (status, (job_folder / "out-0.png").is_file(), values.get("result", {}))
        )
        return real_finish(job_id, worker, status, **values)

    monkeypatch.setattr(job_runner, "_finish", finish)

    run_next(app)

    [(status, image_on_disk, result)] = seen_at_finish
    assert status == "succeeded" and image_on_disk
    assert result["image_files"] == ["out-0.png"]
    assert job_row(app, job["id"]).status == "succeeded"
    # The inputs go once the job is finished; the result stays.
    assert sorted(path.name for path in job_folder.iterdir()) == ["out-0.png"]
    image = client.get(f"/v1/jobs/{job['id']}/images/0")
    assert image.data == (job_folder / "out-0.png").read_bytes()


def test_a_failed_job_keeps_no_inputs(gemini_app, fake_gemini):
    app = gemini_app(GENAI_MAX_RETRIES=0, **NO_WORKERS)
    fake_gemini.script(["key_invalid"])
    client = app.test_client()
    job = accepted(submit(client, "/v1/edit", prompt="invert", files=[png_bytes()]))

    run_next(app)

    shown = client.get(job_url(job)).get_json()
    assert shown["status"] == "failed" and shown["result"] is None
    assert shown["error"]["error"] == "upstream_key_invalid"
    assert not list(folder(app, job["id"]).glob("*.png"))


# ---- retention (prune) ------------------------------------------------------------


def make_folder(app, job_id: str, *names: str, age_s: float = 0):
    path = folder(app, job_id)
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_bytes(png_bytes())
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def test_old_finished_jobs_are_pruned_with_their_folders(app_factory):
    app = app_factory(JOB_RETENTION_DAYS=7, JOB_ANONYMOUS_RETENTION_S=3600, **NO_WORKERS)
    _client, auth = user_client(app)
    user_id = auth.user["id"]
    now = utcnow()
    old_user = insert_job(
        app, user_id=user_id, status="succeeded", finished_at=now - timedelta(days=8)
    )
    recent_user = insert_job(
        app, user_id=user_id, status="failed", finished_at=now - timedelta(days=6)
    )
    old_anonymous = insert_job(app, status="canceled", finished_at=now - timedelta(hours=2))
    recent_anonymous = insert_job(app, status="succeeded", finished_at=now - timedelta(minutes=5))
    # Unfinished jobs are never pruned, however old.
    ancient = now - timedelta(days=30)
    queued = insert_job(app, status="queued", created_at=ancient)
    running = insert_job(
        app, user_id=user_id, status="running", created_at=ancient, worker="w", lease_until=now
    )
    for job_id in (old_user, recent_user, old_anonymous, recent_anonymous, queued, running):
        make_folder(app, job_id, "out-0.png", age_s=2 * 3600)

    prune(app)

    with app.app_context():
        left = set(db.session.execute(select(Job.id)).scalars())
    assert left == {recent_user, recent_anonymous, queued, running}
    for job_id in (old_user, old_anonymous):
        assert not folder(app, job_id).exists()
    for job_id in left:
        assert (folder(app, job_id) / "out-0.png").is_file()


def test_orphan_folders_go_once_an_hour_old(app_factory):
    app = app_factory(**NO_WORKERS)
    old_orphan = make_folder(app, "orphan-old-xxxxxxxxxxx", "in-0.png", age_s=2 * 3600)
    young_orphan = make_folder(app, "orphan-young-xxxxxxxxx", "in-0.png")
    queued = insert_job(app, status="queued")
    with_row = make_folder(app, queued, "in-0.png", age_s=2 * 3600)

    prune(app)

    assert not old_orphan.exists()
    assert young_orphan.is_dir() and with_row.is_dir()


def test_images_saved_in_a_conversation_outlive_their_job(app):
    client, auth = user_client(app)
    conversation = client.post("/conversations", json={}, headers=auth.headers()).get_json()["id"]
    job = accepted(submit(client, headers=auth.headers(), conv_id=conversation))
    done = wait_for_status(client, job_url(job), "succeeded")
    [image_id] = done["result"]["image_ids"]
    set_job(app, job["id"], finished_at=utcnow() - timedelta(days=30))

    prune(app)

    assert job_row(app, job["id"]) is None
    assert not folder(app, job["id"]).exists()
    assert client.get(job_url(job)).status_code == 404
    assert client.get(f"/images/{image_id}").status_code == 200
    messages = client.get(f"/conversations/{conversation}/messages").get_json()["items"]
    assert [image["id"] for image in messages[-1]["images"]] == [image_id]


# ---- quotas and the ledger ------------------------------------------------------------


def test_quota_and_ledger_apply_to_jobs(gemini_app, fake_gemini):
    app = gemini_app(QUOTA_DAILY_IMAGES=1)
    client, auth = user_client(app)
    response = submit(client, headers=auth.headers())
    job = accepted(response)
    request_id = response.headers["X-Request-ID"]
    assert request_id
    wait_for_status(client, job_url(job), "succeeded")

    refused = submit(client, headers=auth.headers())

    assert refused.status_code == 429
    assert refused.get_json()["error"] == "quota_exceeded"
    assert job_count(app) == 1
    assert fake_gemini.calls == 1
    [row] = ledger_rows(app)
    assert (row.request_id, row.user_id, row.outcome, row.images) == (
        request_id,
        auth.user["id"],
        "ok",
        1,
    )
    assert job_row(app, job["id"]).request_id == request_id


def test_a_job_that_no_longer_fits_the_quota_when_it_runs_fails_before_the_upstream(
    gemini_app, fake_gemini
):
    app = gemini_app(QUOTA_DAILY_IMAGES=1, **NO_WORKERS)
    client, auth = user_client(app)
    # Both fit when they are queued: a queued job holds no images.
    first = accepted(submit(client, headers=auth.headers()))
    second = accepted(submit(client, headers=auth.headers()))

    run_next(app)
    run_next(app)

    assert client.get(job_url(first)).get_json()["status"] == "succeeded"
    refused = client.get(job_url(second)).get_json()
    assert refused["status"] == "failed"
    assert refused["error"]["error"] == "quota_exceeded"
    assert fake_gemini.calls == 1
    assert len(ledger_rows(app)) == 1


# ---- the busy gate ------------------------------------------------------------


def test_a_worker_meeting_a_full_gate_puts_the_job_back_in_line(app_factory):
    app = app_factory(GENAI_MAX_CONCURRENT=1, GENAI_MAX_QUEUE=0, **NO_WORKERS)
    client, auth = user_client(app)
    conversation = client.post("/conversations", json={}, headers=auth.headers()).get_json()["id"]
    job = accepted(submit(client, headers=auth.headers(), conv_id=conversation))
    behind = accepted(submit(client, headers=auth.headers()))
    gate = app.extensions["genai"].gate

    with gate.slot():  # someone else's call holds the only slot
        job_id, backoff = run_next(app)

    assert job_id == job["id"] and backoff > 0
    shown = client.get(job_url(job)).get_json()
    assert (shown["status"], shown["position"], shown["attempts"]) == ("queued", 1, 0)
    assert shown["error"] is None and shown["started_at"] is None
    assert client.get(job_url(behind)).get_json()["position"] == 2
    row = job_row(app, job["id"])
    assert row.worker is None and row.lease_until is None
    # Not a failure: nothing about it is written in the conversation.
    assert client.get(f"/conversations/{conversation}/messages").get_json()["items"] == []

    assert run_next(app)[0] == job["id"]
    done = client.get(job_url(job)).get_json()
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    messages = client.get(f"/conversations/{conversation}/messages").get_json()["items"]
    assert [message["role"] for message in messages] == ["user", "assistant"]
    assert messages[-1]["error"] is None


# ---- a worker's own failures ----------------------------------------------------------


def test_the_answer_is_written_down_before_the_result_is_saved(
    gemini_app, fake_gemini, monkeypatch
):
    app = gemini_app(**NO_WORKERS)
    job = accepted(submit(app.test_client()))
    answered_when_saving = []
    real_save = job_runner._save_outputs

    def save(job_id, images):
        answered_when_saving.append(job_row(app, job_id).answered)
        return real_save(job_id, images)

    monkeypatch.setattr(job_runner, "_save_outputs", save)

    run_next(app)

    assert answered_when_saving == [True]
    assert job_row(app, job["id"]).status == "succeeded"


def test_a_worker_that_dies_between_the_answer_and_the_result_is_not_paid_twice(
    gemini_app, fake_gemini, monkeypatch
):
    """The process stops (here: the saving step never returns) after the
    upstream answered; once its lease runs out the job fails, and is never
    sent again."""
    app = gemini_app(**NO_WORKERS)
    client = app.test_client()
    job = accepted(submit(client))

    class ProcessDied(BaseException): ...

    def die(job_id, images):
        raise ProcessDied

    monkeypatch.setattr(job_runner, "_save_outputs", die)
    with contextlib.suppress(ProcessDied):
        run_next(app, worker="doomed-worker")
    row = job_row(app, job["id"])
    assert (row.status, row.worker, row.answered) == ("running", "doomed-worker", True)
    set_job(app, job["id"], lease_until=stale_lease())

    recover(app)

    shown = client.get(job_url(job)).get_json()
    assert shown["status"] == "failed"
    assert shown["error"]["error"] == "interrupted_after_answer"
    assert run_next(app) == (None, 0.0)
    assert fake_gemini.calls == 1
    assert len(ledger_rows(app)) == 1


def test_a_job_whose_result_cannot_be_saved_fails(gemini_app, fake_gemini, monkeypatch):
    """A disk that is full when the result is written: the job must end
    (failed, the upstream not called again), not stay `running`."""
    app = gemini_app(JOB_WORKERS=1, JOB_LEASE_S=1)

    def disk_full(job_id, images):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(job_runner, "_save_outputs", disk_full)
    client = app.test_client()
    job = accepted(submit(client))

    done = wait_for_status(client, job_url(job), ("succeeded", "failed", "canceled"), timeout=8)
    assert done["status"] == "failed"
    assert fake_gemini.calls == 1


def test_a_disabled_accounts_queued_job_fails_without_reaching_the_upstream(
    gemini_app, fake_gemini
):
    app = gemini_app(**NO_WORKERS)
    client, auth = user_client(app)
    job = accepted(submit(client, headers=auth.headers()))
    with app.app_context():
        db.session.get(User, auth.user["id"]).disabled = True
        db.session.commit()

    run_next(app)

    row = job_row(app, job["id"])
    assert row.status == "failed" and row.error["code"] == "unauthorized"
    assert fake_gemini.calls == 0


# ---- races -------------------------------------------------------------------


def cancel_and_claim_at_once(app, client, job) -> dict:
    """DELETE the job and claim it from two threads released together."""
    start = threading.Barrier(2)
    answers = {}

    def cancel():
        start.wait()
        answers["cancel"] = client.delete(job_url(job))

    def take():
        start.wait()
        answers["claim"] = claim(app)

    threads = [threading.Thread(target=cancel), threading.Thread(target=take)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_cancel_and_claim_at_once_have_one_winner(gemini_app, fake_gemini):
    """The queued-cancel UPDATE and the claim's UPDATE race: either the job
    is canceled and no worker has it, or a worker has it and the cancel is a
    request to stop. Never both."""
    app = gemini_app(JOB_MAX_ACTIVE_PER_CALLER=100, **NO_WORKERS)
    client = app.test_client()
    for _ in range(12):
        job = accepted(submit(client))
        answers = cancel_and_claim_at_once(app, client, job)
        row = job_row(app, job["id"])
        if answers["claim"] is None:
            assert answers["cancel"].status_code == 200
            assert (row.status, row.attempts, row.worker) == ("canceled", 0, None)
        else:
            assert answers["claim"] == job["id"]
            assert answers["cancel"].status_code == 202
            assert (row.status, row.cancel_requested) == ("running", True)
            # The worker asks before its first call, and stops there.
            with app.app_context():
                job_runner.run_claimed(job["id"], WORKER)
            assert job_row(app, job["id"]).status == "canceled"
    assert fake_gemini.calls == 0
