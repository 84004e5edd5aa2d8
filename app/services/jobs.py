"""Background jobs: a generation accepted at once and run by a worker
(app/services/job_runner.py) through the same path as a synchronous call
(generation.prepare at the door, generation.execute in the worker).

A job's row holds what the request held (prompt, options, the caller, the
input images as files in the job's folder), so any process can run it, and
run it again after a restart. Someone else's job is a 404; a job made
without login is reachable by whoever holds its unguessable id.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from app import private_files
from app.db import write_transaction
from app.errors import JobFinished, JobNotSaveable, NotFound, QueueFull, TooManyJobs
from app.extensions import db
from app.models import Job, User, utcnow
from app.services import conversations, generation, quota, stored_images
from app.services.image_codec import CleanImage, read_upload_header

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELED)
LISTED = {"active": ACTIVE, "finished": FINISHED, "all": ACTIVE + FINISHED}


def files_root() -> Path:
    """Beside the image files: the folder every process mounts (docs/scaling.md)."""
    return Path(current_app.config["IMAGE_DIR"]) / "jobs"


def job_dir(job_id: str) -> Path:
    return files_root() / job_id


def write_file(job_id: str, name: str, data: bytes) -> None:
    """Owner-only, flushed to disk, renamed into place: a crash leaves the
    old file or the new one, never half of one."""
    folder = private_files.make_dir(job_dir(job_id))
    target = folder / name
    temporary = folder / f".tmp-{name}"
    temporary.unlink(missing_ok=True)
    with private_files.open_new(temporary) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def remove_files(job_id: str, pattern: str = "*") -> None:
    folder = job_dir(job_id)
    if pattern == "*":
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.glob(pattern):
        path.unlink(missing_ok=True)


# ---- submit -----------------------------------------------------------------


def submit(prepared: generation.Prepared, caller: quota.Caller) -> Job:
    """Queue a prepared request. Refused whole (and nothing kept) when the
    caller has too many unfinished jobs, the queue is full, or the quota or
    budget would refuse it now."""
    generation.check_quota(prepared, caller)
    job_id = secrets.token_urlsafe(16)
    inputs = _save_inputs(job_id, prepared.inputs)
    job = Job(
        id=job_id,
        user_id=caller.user_id,
        token_id=caller.token_id,
        address=caller.address,
        request_id=caller.request_id,
        conversation_id=prepared.conversation_id,
        kind=prepared.kind,
        status=QUEUED,
        prompt=prepared.prompt,
        model=prepared.model,
        payload={
            "options": prepared.options.model_dump(mode="json", exclude_none=True),
            "language": prepared.language,
            "inputs": inputs,
            "warnings": prepared.warnings,
            "replaces": list(prepared.replaces),
        },
        revision=1,
        attempts=0,
        answered=False,
        cancel_requested=False,
        created_at=utcnow(),
    )
    try:
        with write_transaction() as session:
            _check_room(session, caller)
            session.add(job)
    except BaseException:
        remove_files(job_id)
        raise
    changed(job_id, new_work=True)
    return job


def _check_room(session, caller: quota.Caller) -> None:
    """Inside the write transaction that adds the job: SQLite's writers are
    serial, so the counts hold; on PostgreSQL two submissions at the same
    instant may both pass (one job over, never a lost one)."""
    config = current_app.config
    if caller.user_id is not None:
        mine = Job.user_id == caller.user_id
    else:
        mine = and_(Job.user_id.is_(None), Job.address == caller.address)
    active = session.execute(
        select(func.count()).select_from(Job).where(mine, Job.status.in_(ACTIVE))
    ).scalar_one()
    if active >= int(config["JOB_MAX_ACTIVE_PER_CALLER"]):
        raise TooManyJobs(retry_after=10)
    queued = session.execute(
        select(func.count()).select_from(Job).where(Job.status == QUEUED)
    ).scalar_one()
    if queued >= int(config["JOB_MAX_QUEUED"]):
        raise QueueFull(retry_after=10)


def _save_inputs(job_id: str, inputs: list[CleanImage]) -> list[dict]:
    """The cleaned input images in the job's own folder: a conversation
    being deleted (which removes its files) can't take them from a queued job."""
    if not inputs:
        return []
    saved = []
    for index, image in enumerate(inputs):
        name = f"in-{index}.png"
        write_file(job_id, name, image.data)
        saved.append({"file": name, "width": image.width, "height": image.height})
    return saved


def load_inputs(job: Job) -> list[CleanImage]:
    folder = job_dir(job.id)
    images = []
    for item in job.payload.get("inputs", []):
        try:
            data = (folder / item["file"]).read_bytes()
        except FileNotFoundError:
            raise NotFound(code="image_missing") from None
        images.append(CleanImage(data=data, width=item["width"], height=item["height"]))
    return images


# ---- reading ----------------------------------------------------------------


def get_for(viewer: User | None, job_id: str) -> Job:
    """The job if `viewer` may see it: their own, or one made without login
    (by its id alone, for an hour after it finished). Anything else is
    indistinguishable from a job that never existed."""
    if not isinstance(job_id, str) or not 8 <= len(job_id) <= 32:
        raise NotFound()
    job = db.session.get(Job, job_id)
    if job is None:
        raise NotFound()
    if job.user_id is not None:
        if viewer is None or not viewer.is_authenticated or viewer.id != job.user_id:
            raise NotFound()
    elif job.finished_at is not None and job.finished_at < utcnow() - timedelta(
        seconds=float(current_app.config["JOB_ANONYMOUS_RETENTION_S"])
    ):
        raise NotFound()
    return job


def position_of(job: Job) -> int | None:
    """1-based place in the shared queue (first in, first out), while queued."""
    if job.status != QUEUED:
        return None
    ahead = db.session.execute(
        select(func.count())
        .select_from(Job)
        .where(
            Job.status == QUEUED,
            or_(
                Job.created_at < job.created_at,
                and_(Job.created_at == job.created_at, Job.id < job.id),
            ),
        )
    ).scalar_one()
    return ahead + 1


def queue_positions(limit: int) -> dict[str, int]:
    """Every queued job's position, in one query (the queue is bounded)."""
    ids = db.session.execute(
        select(Job.id).where(Job.status == QUEUED).order_by(Job.created_at, Job.id).limit(limit)
    ).scalars()
    return {job_id: index for index, job_id in enumerate(ids, start=1)}


@dataclass
class JobPage:
    jobs: list[Job]
    positions: dict[str, int]
    next_cursor: str | None


def list_for(
    user: User,
    *,
    status: str = "all",
    conversation_id: int | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> JobPage:
    """The user's own jobs, newest first."""
    stmt = select(Job).where(Job.user_id == user.id, Job.status.in_(LISTED[status]))
    if conversation_id is not None:
        stmt = stmt.where(Job.conversation_id == conversation_id)
    if cursor:
        created, job_id = conversations.decode_cursor(cursor, datetime.fromisoformat, str)
        stmt = stmt.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = list(db.session.execute(stmt).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = conversations.encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id)
    positions = {}
    if any(job.status == QUEUED for job in rows):
        positions = queue_positions(int(current_app.config["JOB_MAX_QUEUED"]) * 2)
    return JobPage(rows, positions, next_cursor)


# ---- cancel -----------------------------------------------------------------


def cancel(viewer: User | None, job_id: str) -> Job:
    """A queued job is canceled at once and never reaches the upstream; a
    running one is asked to stop: it finishes the upstream call in flight
    (which is billed) and starts no other."""
    job = get_for(viewer, job_id)
    now = utcnow()
    with write_transaction() as session:
        dequeued = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == QUEUED)
            .values(status=CANCELED, finished_at=now, revision=Job.revision + 1)
        ).rowcount
        asked = 0
        if not dequeued:
            asked = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == RUNNING)
                .values(cancel_requested=True, revision=Job.revision + 1)
            ).rowcount
    if not (dequeued or asked):
        raise JobFinished()
    if dequeued:
        remove_files(job.id, "in-*")
    changed(job.id)
    db.session.refresh(job)
    return job


# ---- saving a result made without login ------------------------------------


def save_to_conversation(viewer: User, job_id: str, conversation_id: int):
    """File a finished job's prompt and result images into the viewer's
    conversation, without calling the model again (it was paid for when it
    ran): a job made without login, or one of the viewer's own made outside a
    conversation. The job becomes the viewer's; a second save is a 409. The
    (user message, reply) recorded."""
    job = get_for(viewer, job_id)
    conversation = conversations.get_owned(viewer, conversation_id)
    files = (job.result or {}).get("image_files") or []
    if job.conversation_id is not None or job.status not in (SUCCEEDED, CANCELED) or not files:
        raise JobNotSaveable()
    outputs = []
    for name in files:
        try:
            data = (job_dir(job.id) / name).read_bytes()
        except FileNotFoundError:
            raise NotFound(code="image_missing") from None
        header = read_upload_header(data)
        outputs.append(
            stored_images.save(CleanImage(data=data, width=header.width, height=header.height))
        )
    with write_transaction() as session:
        # Claimed first: two saves at once make one turn.
        claimed = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.conversation_id.is_(None))
            .values(conversation_id=conversation.id, user_id=viewer.id, revision=Job.revision + 1)
        ).rowcount
    if not claimed:
        raise JobNotSaveable()
    result = job.result
    turn = conversations.TurnRecord(
        kind=job.kind,
        prompt=job.prompt,
        params=dict(job.payload.get("options") or {}),
        inputs=[],  # the job's inputs went when it finished
        outputs=outputs,
        texts=result.get("texts") or [],
        model=result.get("model") or job.model,
        finish_reasons=result.get("finish_reasons") or [],
        usage=result.get("usage") or {},
        duration_ms=result.get("duration_ms"),
    )
    try:
        recorded = conversations.record_turn(viewer, conversation.id, turn)
    except BaseException:
        with write_transaction() as session:
            session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(conversation_id=None, user_id=job.user_id)
            )
        raise
    changed(job.id)
    return recorded


# ---- change notices ---------------------------------------------------------


def changed(job_id: str, *, new_work: bool = False) -> None:
    """Tell this process's event streams (and, for new work, its idle
    workers) at once; other processes notice within JOB_POLL_S."""
    runner = current_app.extensions.get("job_runner")
    if runner is not None:
        runner.changed(job_id, new_work=new_work)
