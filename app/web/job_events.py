"""A job's live status as Server-Sent Events.

Each open stream holds one waitress thread for as long as it is open, so
streams are counted: at most JOB_STREAMS_PER_CALLER per caller and
JOB_STREAMS_MAX in all (the thread pool is sized for them, app/web/server.py).
Past either, the answer is a JSON 429/503 and the page polls GET
/v1/jobs/{id} instead. A stream sleeps on the job bus
(app/services/job_bus.py) and reads its job only when woken; it ends when
the job finishes, after JOB_STREAM_MAX_S (EventSource reconnects with
Last-Event-ID), or when the client is gone (waitress tells, or the next
heartbeat's write fails).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

from flask import Flask, current_app, request, stream_with_context
from sqlalchemy import select

from app.errors import StreamsFull, TooManyStreams
from app.extensions import db
from app.models import Job
from app.services import jobs

STREAM_RETRY_AFTER_S = 5
# How often a sleeping stream looks whether its client went away.
DISCONNECT_CHECK_S = 2.0
# EventSource's reconnection delay after the server ends a stream.
RECONNECT_MS = 2000


class StreamSlots:
    def __init__(self, per_caller: int, total: int) -> None:
        self.per_caller = per_caller
        self.total = total
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._count = 0

    def take(self, key: str) -> None:
        with self._lock:
            if self._count >= self.total:
                raise StreamsFull(retry_after=STREAM_RETRY_AFTER_S)
            if self._open.get(key, 0) >= self.per_caller:
                raise TooManyStreams(retry_after=STREAM_RETRY_AFTER_S)
            self._open[key] = self._open.get(key, 0) + 1
            self._count += 1

    def give_back(self, key: str) -> None:
        with self._lock:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)
            self._count = max(0, self._count - 1)

    @property
    def open(self) -> int:
        with self._lock:
            return self._count


def init_streams(app: Flask) -> None:
    config = app.config
    app.extensions["job_streams"] = StreamSlots(
        int(config["JOB_STREAMS_PER_CALLER"]), int(config["JOB_STREAMS_MAX"])
    )


def parse_last_event_id(value: str | None) -> tuple | None:
    """ "7" or "7.3" (revision, and the queue position while queued)."""
    if not value or len(value) > 40:
        return None
    revision, _, position = value.strip().partition(".")
    try:
        return (int(revision), int(position) if position else None)
    except ValueError:
        return None


def event_name(job: Job) -> str:
    if job.status == jobs.RUNNING and job.retry:
        return "retrying"
    return job.status


def frame(job: Job, position: int | None, body: dict) -> str:
    event_id = f"{job.revision}.{position}" if position is not None else str(job.revision)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event_name(job)}\ndata: {data}\n\n"


def stream(job: Job, key: str, last: tuple | None, describe: Callable[[Job, int | None], dict]):
    """The response for an open stream; the caller has checked access.
    `describe` renders the job as the API does (the view's job_out)."""
    slots: StreamSlots = current_app.extensions["job_streams"]
    slots.take(key)
    released = threading.Event()

    def give_back() -> None:
        if not released.is_set():
            released.set()
            slots.give_back(key)

    try:
        events = _events(job.id, last, describe, request.environ, give_back)
        response = current_app.response_class(
            stream_with_context(events), mimetype="text/event-stream"
        )
    except BaseException:
        give_back()
        raise
    # An answer that is never iterated (the client left first) still frees its slot.
    response.call_on_close(give_back)
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _events(job_id, last, describe, environ, give_back) -> Iterator[str]:
    config = current_app.config
    heartbeat_s = float(config["JOB_STREAM_HEARTBEAT_S"])
    ends_at = time.monotonic() + float(config["JOB_STREAM_MAX_S"])
    bus = current_app.extensions["job_runner"].bus
    client_gone = environ.get("waitress.client_disconnected") or (lambda: False)
    watcher = bus.watch(job_id)
    sent = last
    last_body = None  # the job as last sent, while it is queued
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        beat_at = time.monotonic() + heartbeat_s
        while True:
            # populate_existing: the session keeps objects across commits
            # (expire_on_commit is off), and this one must be read afresh.
            job = db.session.execute(
                select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if job is None:  # deleted with its conversation
                return
            position = jobs.position_of(job)
            # Decided before the yield: the session may load the row again
            # while the client reads the event.
            finished = job.status in jobs.FINISHED
            event = None
            if (job.revision, position) != sent:
                sent = (job.revision, position)
                body = describe(job, position)
                last_body = body if job.status == jobs.QUEUED else None
                event = frame(job, position, body)
            db.session.commit()  # no connection held while the stream sleeps
            if event is not None:
                yield event
            if finished:
                return
            while True:
                now = time.monotonic()
                if now >= ends_at or client_gone():
                    return
                if watcher.wait(min(DISCONNECT_CHECK_S, beat_at - now, ends_at - now)):
                    moved = _position_only(watcher.state, sent, last_body)
                    if moved is None:
                        break  # anything but a queue move: read the job afresh
                    if moved != sent:
                        sent = moved
                        last_body = dict(last_body, position=moved[1])
                        data = json.dumps(last_body, ensure_ascii=False, separators=(",", ":"))
                        yield f"id: {moved[0]}.{moved[1]}\nevent: queued\ndata: {data}\n\n"
                if time.monotonic() >= beat_at:
                    yield ": keep-alive\n\n"
                    beat_at = time.monotonic() + heartbeat_s
    finally:
        bus.unwatch(watcher)
        give_back()


def _position_only(state, sent, last_body):
    """The bus's (revision, position) when only the queue position moved
    since the last event of a queued job, else None (read the job)."""
    if last_body is None or state is None or sent is None or len(state) != 2:
        return None
    revision, position = state
    if revision != sent[0] or position is None:
        return None
    return state
