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
from redis.exceptions import RedisError
from sqlalchemy import select, update

from app.db import write_transaction
from app.errors import AppError, Busy, Canceled, Unauthorized
from app.extensions import db
from app.i18n import _l
from app.models import Job, User, utcnow
from app.services import generation, job_upkeep, jobs, quota
from app.services.genai.contracts import GenerationOptions
from app.services.genai.service import Attempt, Watch
from app.services.job_bus import JobBus
from app.services.job_upkeep import error_record

log = logging.getLogger("nano_banana.jobs")

RECOVER_EVERY_S = 5.0
PRUNE_EVERY_S = 60.0
MAX_BUSY_BACKOFF_S = 5.0


class InternalFailure(
    AppError,
    code="internal_error",
    status=500,
    message=_l("Something went wrong on the server while making this image."),
): ...


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
        on_retry=lambda number, delay, reason: _update(
            job_id,
            retry={"attempt": number, "delay_s": round(delay, 2), "reason": reason},
            revision=Job.revision + 1,
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
        _succeed(job_id, worker, result, language)
    return 0.0


def _succeed(job_id: str, worker: str, result, language: str | None) -> None:
    """The images on disk, then the row says so. A failure here (a full
    disk) fails the job now: the upstream answered, so it is not run again."""
    try:
        record = {
            "image_files": _save_outputs(job_id, result.images),
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
    except Exception:
        db.session.rollback()
        log.exception("job %s: could not save its result", job_id)
        _finish(job_id, worker, jobs.FAILED, error=error_record(InternalFailure(), language))


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
        replaces=tuple(job.payload.get("replaces") or ()),
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
                if _gate_full(self.app):
                    # A claim now would find no room and put the job back:
                    # two queue moves (every queued stream woken twice) for nothing.
                    self._stop.wait(0.5)
                    continue
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
                        job_upkeep.renew(self.name)
                    job_upkeep.recover()
                    if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                        last_prune = time.monotonic()
                        job_upkeep.prune()
                except Exception:
                    log.exception("job maintenance error")
                finally:
                    db.session.remove()
                self._stop.wait(every)


def _gate_full(app: Flask) -> bool:
    try:
        return app.extensions["genai"].gate.is_full()
    except RedisError:
        return False  # can't tell: claim, and let the gate answer for itself


def init_jobs(app: Flask) -> None:
    app.extensions["job_runner"] = JobRunner(app)
