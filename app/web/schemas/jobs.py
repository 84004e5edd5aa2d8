"""Background jobs (/v1/jobs): what a job looks like, and the paths and
queries that name them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.web.schemas.common import MAX_ID, MessageOut, Schema
from app.web.schemas.imaging import ImagingOut

JOB_ID = Field(min_length=8, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")


class JobPath(Schema):
    job_id: str = JOB_ID


class JobImagePath(Schema):
    job_id: str = JOB_ID
    index: int = Field(ge=0, le=63)


class JobListQuery(Schema):
    status: Literal["active", "finished", "all"] = Field(
        "all", description="active: queued or running; finished: succeeded, failed or canceled"
    )
    conv_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this conversation's")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=500)


class JobSaveBody(Schema):
    conv_id: int = Field(ge=1, le=MAX_ID, description="Your conversation to file it in")


class JobSavedOut(Schema):
    conversation_id: int
    user_message: MessageOut
    message: MessageOut


class JobRetry(Schema):
    attempt: int = Field(description="The attempt about to be made (2 = first retry)")
    delay_s: float
    reason: str | None = Field(
        None, description="The upstream's refusal being waited out (an error code)"
    )


class JobResult(ImagingOut):
    """The synchronous answer's shape, with image URLs instead of base64."""

    images: list[str] = Field(description="URLs of the images (GET, same access as the job)")


class JobOut(Schema):
    id: str = Field(description="Unguessable; the only key to a job made without login")
    kind: Literal["generate", "edit", "compose"]
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    position: int | None = Field(None, description="1-based place in the queue, while queued")
    prompt: str
    model: str
    options: dict[str, Any] = Field(
        default_factory=dict, description="The options asked for (as the request sent them)"
    )
    input_images: int = Field(0, description="How many images it was given")
    conversation_id: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(description="Times a worker has started it")
    cancel_requested: bool = False
    retry: JobRetry | None = Field(None, description="While waiting to retry the upstream")
    error: dict[str, Any] | None = Field(None, description="The usual error shape, when failed")
    result: JobResult | None = None
    links: dict[str, str] = Field(description="self, events")


class JobPageOut(Schema):
    jobs: list[JobOut]
    next_cursor: str | None = None


def job_out(job, position: int | None = None, messages: dict | None = None) -> JobOut:
    """A job as clients see it; `messages` are the user's own turn messages
    its result names (app/services/conversations.owned_messages)."""
    from flask import url_for

    from app.web.errors import error_body

    messages = messages or {}
    result = None
    if job.result is not None:
        stored = job.result
        turn = {key: messages.get(stored.get(f"{key}_id")) for key in ("user_message", "message")}
        result = JobResult(
            images=[
                url_for("jobs.get_job_image", job_id=job.id, index=index)
                for index in range(len(stored.get("image_files") or []))
            ],
            texts=stored.get("texts") or [],
            image_ids=stored.get("image_ids") or [],
            model=stored.get("model") or job.model,
            finish_reasons=stored.get("finish_reasons") or [],
            usage=stored.get("usage") or {},
            warnings=stored.get("warnings") or [],
            duration_ms=stored.get("duration_ms") or 0,
            conversation_id=stored.get("conversation_id"),
            user_message=MessageOut.of(turn["user_message"]) if turn["user_message"] else None,
            message=MessageOut.of(turn["message"]) if turn["message"] else None,
        )
    error = None
    if job.error is not None:
        stored = job.error
        extra = {**(stored.get("extra") or {}), "status": stored.get("status")}
        if stored.get("retry_after") is not None:
            extra["retry_after"] = stored["retry_after"]
        error = error_body(stored.get("code", "error"), stored.get("message", ""), extra)
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        position=position,
        prompt=job.prompt,
        model=job.model,
        options=job.payload.get("options") or {},
        input_images=len(job.payload.get("inputs") or []),
        conversation_id=job.conversation_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        retry=JobRetry(**job.retry) if job.retry else None,
        error=error,
        result=result,
        links={
            "self": url_for("jobs.get_job", job_id=job.id),
            "events": url_for("jobs.job_events", job_id=job.id),
        },
    )
