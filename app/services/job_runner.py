"""Workers: threads in the server process (any OS, no second program) that
take queued jobs from the jobs table, one shared queue for every process on
the same database, and run them through generation.execute.

Claiming: the oldest queued row, taken with a conditional UPDATE (on
PostgreSQL its SELECT skips rows other workers hold, FOR UPDATE SKIP LOCKED;
SQLite's writers are serial, BEGIN IMMEDIATE). A running job carries its
worker's lease, renewed while the process lives; a lease that runs out
means the process died, and the job is recovered by the rule in
docs/reliability.md ("Jobs"): run again only if no upstream call of it got
an answer.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import delete, select, update

from app.db import write_transaction
from app.errors import AppError, Busy, Canceled, Unauthorized
from app.extensions import db
from app.i18n import _l
from app.models import Job, User, utcnow
from app.services import generation, jobs, quota
from app.services.genai.contracts import GenerationOptions
from app.services.genai.service import Attempt, Watch
from app.services.job_bus import JobBus

log = logging.getLogger("nano_banana.jobs")

RECOVER_EVERY_S = 5.0
PRUNE_EVERY_S = 60.0
PRUNE_BATCH = 500
# Job folders without a row (a crash between writing the inputs and the
# row) are removed once they are this old.
ORPHAN_FOLDER_AGE_S = 3600
MAX_BUSY_BACKOFF_S = 5.0


class InterruptedAfterAnswer(
    AppError,
    code="interrupted_after_answer",
    status=502,
    message=_l(
        "The server stopped after the image model answered and before the result was saved. "
        "It is not run again, so it is not paid for twice; please try again."
    ),
): ...


class Interrupted(
    AppError,
    code="interrupted",
    status=503,
    message=_l("The server stopped each time it ran this job; it was given up."),
): ...


class InternalFailure(
    AppError,
    code="internal_error",
    status=500,
    message=_l("Something went wrong on the server while making this image."),
): ...


def error_record(error: AppError, language: str | None) -> dict:
    """How a failure is kept with the job (rendered in the job's language)."""
    record = {"code": error.code, "status": error.status, "message": error.text(language or "en")}
    if error.retry_after is not None:
        record["retry_after"] = error.retry_after
    if error.extra:
        record["extra"] = {key: value for key, value in error.extra.items() if _is_json(value)}
    return record


def _is_json(value) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None


# ---- claiming and finishing ------------------------------------------------


def claim(worker: str) -> str | None:
    """Take the oldest queued job for `worker`, or None."""
    oldest = (
        select(Job.id).where(Job.status == jobs.QUEUED).order_by(Job.created_at, Job.id).limit(1)
    )
    # A cheap read first: idle workers poll, and SQLite's write lock is shared.
    if db.session.execute(oldest).scalar_one_or_none() is None:
        db.session.commit()
        return None
    now = utcnow()
    lease = timedelta(seconds=float(current_app.config["JOB_LEASE_S"]))
    with write_transaction() as session:
        job_id = session.execute(oldest.with_for_update(skip_locked=True)).scalar_one_or_none()
        if job_id is None:
            return None
        taken = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == jobs.QUEUED)
            .values(
                status=jobs.RUNNING,
                worker=worker,
                lease_until=now + lease,
                started_at=now,
                attempts=Job.attempts + 1,
                revision=Job.revision + 1,
                retry=None,
            )
        ).rowcount
    if not taken:
        return None
    jobs.changed(job_id)
    return job_id


def _mine(job_id: str, worker: str):
    return (Job.id == job_id, Job.status == jobs.RUNNING, Job.worker == worker)


def _finish(job_id: str, worker: str, status: str, **values) -> bool:
    with write_transaction() as session:
        done = session.execute(
            update(Job)
            .where(*_mine(job_id, worker))
            .values(
                status=status,
                finished_at=utcnow(),
                lease_until=None,
                retry=None,
                revision=Job.revision + 1,
                **values,
            )
        ).rowcount
    if done:
        jobs.remove_files(job_id, "in-*")
        jobs.changed(job_id)
        log.info("job %s %s", job_id, status)
    else:
        # Our lease ran out (the process stalled) and another took the job.
        log.warning("job %s was taken from this worker before it finished", job_id)
    return bool(done)


def _requeue(job_id: str, worker: str) -> None:
    """Back in line at its old place: the gate had no room, nothing was sent."""
    with write_transaction() as session:
        session.execute(
            update(Job)
            .where(*_mine(job_id, worker))
            .values(
                status=jobs.QUEUED,
                worker=None,
                lease_until=None,
                started_at=None,
                attempts=Job.attempts - 1,
                revision=Job.revision + 1,
            )
        )
    jobs.changed(job_id, new_work=True)


def _update(job_id: str, **values) -> None:
    with write_transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
    jobs.changed(job_id)


# ---- running ----------------------------------------------------------------


def run_claimed(job_id: str, worker: str) -> float:
    """Run a job this worker has claimed. Returns how long the worker should
    wait before claiming again (the gate was full), else 0."""
    job = db.session.get(Job, job_id)
    if job is None:  # its conversation or user was deleted meanwhile
        return 0.0
    language = job.payload.get("language")
    try:
        prepared = _prepared(job)
    except AppError as error:
        _finish(job_id, worker, jobs.FAILED, error=error_record(error, language))
        return 0.0
    caller = quota.Caller(
        user=prepared.user, token_id=job.token_id, address=job.address, request_id=job.request_id
    )
    db.session.commit()  # no connection held across the upstream call
    watch = Watch(
        on_attempt=lambda attempt: _on_attempt(job_id, attempt),
        on_retry=lambda number, delay: _update(
            job_id, retry={"attempt": number, "delay_s": round(delay, 2)}, revision=Job.revision + 1
        ),
        should_stop=lambda: _cancel_requested(job_id),
    )
    try:
        result = generation.execute(prepared, caller, watch)
    except Canceled:
        _finish(job_id, worker, jobs.CANCELED)
    except Busy as error:
        if _answered(job_id):
            _finish(job_id, worker, jobs.FAILED, error=error_record(error, language))
            return 0.0
        _requeue(job_id, worker)
        return min(MAX_BUSY_BACKOFF_S, max(0.5, error.retry_after or 1.0))
    except AppError as error:
        _finish(job_id, worker, jobs.FAILED, error=error_record(error, language))
    except Exception:
        db.session.rollback()
        log.exception("job %s failed", job_id)
        _finish(job_id, worker, jobs.FAILED, error=error_record(InternalFailure(), language))
    else:
        files = _save_outputs(job_id, result.images)
        record = {
            "image_files": files,
            "texts": result.texts,
            "image_ids": result.image_ids,
            "model": result.model,
            "finish_reasons": result.finish_reasons,
            "usage": result.usage,
            "warnings": result.warnings,
            "duration_ms": result.duration_ms,
            "conversation_id": result.conversation_id,
            "user_message_id": getattr(result.user_message, "id", None),
            "message_id": getattr(result.message, "id", None),
        }
        # Canceled while its last call was in flight: what that call made is kept.
        status = jobs.CANCELED if _cancel_requested(job_id) else jobs.SUCCEEDED
        _finish(job_id, worker, status, result=record)
    return 0.0


def _prepared(job: Job) -> generation.Prepared:
    user = db.session.get(User, job.user_id) if job.user_id is not None else None
    if user is not None and user.disabled:
        # An admin disabled the account while its jobs waited: they stop too.
        raise Unauthorized()
    return generation.Prepared(
        kind=job.kind,
        prompt=job.prompt,
        options=GenerationOptions.model_validate(job.payload.get("options") or {}),
        model=job.model,
        inputs=jobs.load_inputs(job),
        user=user,
        conversation_id=job.conversation_id,
        language=job.payload.get("language"),
        warnings=list(job.payload.get("warnings") or []),
    )


def _on_attempt(job_id: str, attempt: Attempt) -> None:
    """The first answer from the upstream is written down before anything
    else happens: from then on a crash must not run the job again."""
    if attempt.answered:
        _update(job_id, answered=True)


def _answered(job_id: str) -> bool:
    answered = db.session.execute(select(Job.answered).where(Job.id == job_id)).scalar()
    db.session.commit()
    return bool(answered)


def _cancel_requested(job_id: str) -> bool:
    asked = db.session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar()
    db.session.commit()
    return asked is None or bool(asked)  # a deleted job has nobody to make it for


def _save_outputs(job_id: str, images) -> list[str]:
    """Written and flushed to disk before the job is marked succeeded."""
    names = []
    for index, image in enumerate(images):
        names.append(f"out-{index}.png")
        jobs.write_file(job_id, names[-1], image.data)
    return names


# ---- leases, recovery, retention -------------------------------------------


def renew(worker: str) -> None:
    lease = timedelta(seconds=float(current_app.config["JOB_LEASE_S"]))
    with write_transaction() as session:
        session.execute(
            update(Job)
            .where(Job.worker == worker, Job.status == jobs.RUNNING)
            .values(lease_until=utcnow() + lease)
        )


def recover() -> int:
    """Jobs whose worker's lease ran out: canceled if their owner asked,
    back in the queue if the upstream never answered them, failed (and said
    why) if it did, or if they have been started JOB_MAX_RUNS times already."""
    now = utcnow()
    stale = db.session.execute(
        select(Job.id, Job.answered, Job.attempts, Job.cancel_requested, Job.payload).where(
            Job.status == jobs.RUNNING, Job.lease_until < now
        )
    ).all()
    db.session.commit()
    max_runs = int(current_app.config["JOB_MAX_RUNS"])
    for job_id, answered, attempts, cancel_requested, payload in stale:
        expired = (Job.id == job_id, Job.status == jobs.RUNNING, Job.lease_until < now)
        language = (payload or {}).get("language")
        if cancel_requested:  # its owner asked it to stop: it stops here
            values = dict(status=jobs.CANCELED, finished_at=now)
        elif answered or attempts >= max_runs:
            error = InterruptedAfterAnswer() if answered else Interrupted()
            values = dict(status=jobs.FAILED, finished_at=now, error=error_record(error, language))
        else:
            values = dict(status=jobs.QUEUED, started_at=None)
        with write_transaction() as session:
            done = session.execute(
                update(Job)
                .where(*expired)
                .values(
                    worker=None, lease_until=None, retry=None, revision=Job.revision + 1, **values
                )
            ).rowcount
        if done:
            log.warning("recovered job %s from a stopped worker: %s", job_id, values["status"])
            jobs.changed(job_id, new_work=values["status"] == jobs.QUEUED)
    return len(stale)


def prune() -> int:
    """Finished jobs past their retention go, with their folders; the images
    saved to conversations stay there."""
    config = current_app.config
    now = utcnow()
    kept_until = now - timedelta(days=float(config["JOB_RETENTION_DAYS"]))
    anonymous_until = now - timedelta(seconds=float(config["JOB_ANONYMOUS_RETENTION_S"]))
    old = (
        select(Job.id)
        .where(
            Job.status.in_(jobs.FINISHED),
            (Job.finished_at < kept_until)
            | ((Job.user_id.is_(None)) & (Job.finished_at < anonymous_until)),
        )
        .limit(PRUNE_BATCH)
    )
    ids = list(db.session.execute(old).scalars())
    if ids:
        with write_transaction() as session:
            session.execute(delete(Job).where(Job.id.in_(ids)))
        for job_id in ids:
            jobs.remove_files(job_id)
    _remove_orphan_folders(now.timestamp())
    db.session.commit()
    return len(ids)


def _remove_orphan_folders(now: float) -> None:
    root = jobs.files_root()
    if not root.is_dir():
        return
    folders = [path for path in root.iterdir() if path.is_dir()]
    old = [path for path in folders if now - path.stat().st_mtime > ORPHAN_FOLDER_AGE_S]
    for start in range(0, len(old), PRUNE_BATCH):
        batch = old[start : start + PRUNE_BATCH]
        known = set(
            db.session.execute(
                select(Job.id).where(Job.id.in_([path.name for path in batch]))
            ).scalars()
        )
        for path in batch:
            if path.name not in known:
                jobs.remove_files(path.name)


# ---- the threads ------------------------------------------------------------


class JobRunner:
    """One per app: its worker threads, the lease keeper, and the bus that
    wakes event streams. Threads start with the server (app/web/server.py)
    or with the first job submitted to this process."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        self.app = app
        setting = int(config["JOB_WORKERS"])
        self.workers = int(config["GENAI_MAX_CONCURRENT"]) if setting == 0 else max(0, setting)
        self.name = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.bus = JobBus(app)
        self._wake = threading.Condition()
        self._pending = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Jobs this process runs now: only then is there a lease to renew.
        self._running = 0

    def ensure_started(self) -> None:
        with self._lock:
            if self._threads or self._stop.is_set():
                return
            targets = [self._work] * self.workers + [self._maintain]
            for index, target in enumerate(targets):
                thread = threading.Thread(target=target, name=f"nb-jobs-{index}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def changed(self, job_id: str, *, new_work: bool = False) -> None:
        self.bus.poke()
        if new_work:
            self.ensure_started()
            with self._wake:
                self._pending = True
                self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self.bus.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _idle(self) -> None:
        """Until this process queues something, or it's time to look for
        what other processes queued."""
        idle_s = max(1.0, float(self.app.config["JOB_POLL_S"]) * 4)
        with self._wake:
            if not self._pending:
                self._wake.wait(idle_s)
            self._pending = False

    def _work(self) -> None:
        with self.app.app_context():
            while not self._stop.is_set():
                backoff = 0.0
                try:
                    job_id = claim(self.name)
                    if job_id is None:
                        self._idle()
                        continue
                    with self._lock:
                        self._running += 1
                    try:
                        backoff = run_claimed(job_id, self.name)
                    finally:
                        with self._lock:
                            self._running -= 1
                except Exception:
                    log.exception("job worker error")
                    backoff = 1.0
                finally:
                    db.session.remove()
                if backoff:
                    self._stop.wait(backoff)

    def _maintain(self) -> None:
        lease_s = float(self.app.config["JOB_LEASE_S"])
        every = max(0.2, min(lease_s / 3, RECOVER_EVERY_S))
        last_prune = 0.0
        with self.app.app_context():
            while not self._stop.is_set():
                try:
                    if self._running:
                        renew(self.name)
                    recover()
                    if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                        last_prune = time.monotonic()
                        prune()
                except Exception:
                    log.exception("job maintenance error")
                finally:
                    db.session.remove()
                self._stop.wait(every)


def init_jobs(app: Flask) -> None:
    app.extensions["job_runner"] = JobRunner(app)
