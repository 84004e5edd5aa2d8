"""Keeping the jobs table true over time: leases of running jobs renewed
while their process lives, jobs of a dead process recovered by the rule in
docs/reliability.md §9, finished jobs pruned after their retention.
Called by each process's maintenance thread (job_runner.JobRunner)."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from app.db import write_transaction
from app.errors import AppError
from app.extensions import db
from app.i18n import _l
from app.models import Job, utcnow
from app.services import jobs

log = logging.getLogger("nano_banana.jobs")

PRUNE_BATCH = 500
# Job folders without a row (a crash between writing the inputs and the
# row) are removed once they are this old.
ORPHAN_FOLDER_AGE_S = 3600


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
