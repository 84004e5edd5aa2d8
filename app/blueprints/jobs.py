"""Background jobs (/v1/jobs): status, listing, cancel, result images and
live events. Jobs are made by the generation routes with
`Prefer: respond-async` (app/blueprints/imaging.py)."""

from __future__ import annotations

from flask import make_response, request
from flask_login import current_user
from flask_openapi3 import APIBlueprint, Tag

from app.errors import NotFound
from app.services import conversations, jobs
from app.web.client import client_address
from app.web.job_events import parse_last_event_id, stream
from app.web.pipeline import require_user
from app.web.schemas.common import ErrorOut, MessageOut, error_responses
from app.web.schemas.jobs import (
    JobImagePath,
    JobListQuery,
    JobOut,
    JobPageOut,
    JobPath,
    JobSaveBody,
    JobSavedOut,
    job_out,
)

bp = APIBlueprint(
    "jobs",
    __name__,
    url_prefix="/v1",
    abp_tags=[Tag(name="jobs")],
    abp_responses=error_responses(400, 404),
)


def viewer():
    return current_user._get_current_object() if current_user.is_authenticated else None


def describe(job, position: int | None = None) -> dict:
    result = job.result or {}
    messages = conversations.owned_messages(
        viewer(), [result.get("user_message_id"), result.get("message_id")]
    )
    return job_out(job, position, messages).model_dump(mode="json")


def accepted(job):
    """The answer to a request with `Prefer: respond-async` (RFC 7240)."""
    response = make_response(describe(job, jobs.position_of(job)), 202)
    response.headers["Location"] = response.json["links"]["self"]
    response.headers["Preference-Applied"] = "respond-async"
    return response


@bp.get("/jobs", responses={200: JobPageOut, 401: ErrorOut})
def list_jobs(query: JobListQuery):
    """The caller's own jobs, newest first (log in: a job made without login
    is reachable only by its id)."""
    page = jobs.list_for(
        require_user(),
        status=query.status,
        conversation_id=query.conv_id,
        limit=query.limit,
        cursor=query.cursor,
    )
    return {
        "jobs": [describe(job, page.positions.get(job.id)) for job in page.jobs],
        "next_cursor": page.next_cursor,
    }


@bp.get("/jobs/<job_id>", responses={200: JobOut, 404: ErrorOut})
def get_job(path: JobPath):
    """A job's status, and its result or error once finished."""
    job = jobs.get_for(viewer(), path.job_id)
    return describe(job, jobs.position_of(job))


@bp.delete("/jobs/<job_id>", responses={200: JobOut, 202: JobOut, 404: ErrorOut, 409: ErrorOut})
def cancel_job(path: JobPath):
    """Cancel: a queued job at once (200); a running one after its current
    upstream call, billing nothing more (202, `cancel_requested`)."""
    job = jobs.cancel(viewer(), path.job_id)
    return describe(job, jobs.position_of(job)), 200 if job.status == jobs.CANCELED else 202


@bp.post(
    "/jobs/<job_id>/save",
    responses={200: JobSavedOut, 401: ErrorOut, 404: ErrorOut, 409: ErrorOut},
)
def save_job(path: JobPath, body: JobSaveBody):
    """File a finished job made without login (or one of yours made outside a
    conversation) into your conversation: its prompt and images, with no new
    upstream call. Once: a second save is 409."""
    user_message, reply = jobs.save_to_conversation(require_user(), path.job_id, body.conv_id)
    return JobSavedOut(
        conversation_id=body.conv_id,
        user_message=MessageOut.of(user_message),
        message=MessageOut.of(reply),
    ).model_dump(mode="json")


@bp.get("/jobs/<job_id>/images/<int:index>", responses={200: None, 304: None, 404: ErrorOut})
def get_job_image(path: JobImagePath):
    """Result image `index` (PNG), with the job's access rule."""
    job = jobs.get_for(viewer(), path.job_id)
    files = (job.result or {}).get("image_files") or []
    if path.index >= len(files):
        raise NotFound()
    etag = f"{job.id}-{path.index}"
    if etag in request.if_none_match:
        response = make_response("", 304)
    else:
        try:
            data = (jobs.job_dir(job.id) / files[path.index]).read_bytes()
        except FileNotFoundError:
            raise NotFound(code="image_missing") from None
        response = make_response(data)
        response.headers["Content-Type"] = "image/png"
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get(
    "/jobs/<job_id>/events",
    responses={200: None, 204: None, 404: ErrorOut, 429: ErrorOut, 503: ErrorOut},
)
def job_events(path: JobPath):
    """Live status as `text/event-stream`: `queued` (again when the position
    changes), `running`, `retrying`, then `succeeded`, `failed` or
    `canceled`, and the stream ends. Each event's data is the job; its `id`
    resumes (Last-Event-ID). Too many streams open: 429/503, poll instead."""
    job = jobs.get_for(viewer(), path.job_id)
    last = parse_last_event_id(request.headers.get("Last-Event-ID"))
    if job.status in jobs.FINISHED and last is not None and last[0] >= job.revision:
        return "", 204  # seen to the end: EventSource stops reconnecting
    who = viewer()
    key = f"user:{who.id}" if who is not None else f"ip:{client_address()}"
    return stream(job, key, last, describe)
