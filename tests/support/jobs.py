"""What the background-job tests share: submitting with `Prefer:
respond-async`, waiting for a job to reach a status, reading an event
stream through the test client, and looking at the jobs table directly."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Job

ASYNC = {"Prefer": "respond-async"}
FINISHED = ("succeeded", "failed", "canceled")


def submit(client, path="/v1/generate", *, headers=None, prefer="respond-async", **fields):
    """POST a generation; JSON for /v1/generate, multipart for edit and
    compose (`files=[bytes, ...]` become uploads)."""
    sent = dict(headers or {})
    if prefer is not None:
        sent["Prefer"] = prefer
    if path.endswith("/generate"):
        body = {"prompt": "a banana", **fields}
        return client.post(path, json=body, headers=sent)
    uploads = [
        (io.BytesIO(blob), f"in-{index}.png") for index, blob in enumerate(fields.pop("files", []))
    ]
    form = {"prompt": "a banana", **fields}
    if uploads:
        form["files"] = uploads
    return client.post(path, data=form, headers=sent, content_type="multipart/form-data")


def accepted(response) -> dict:
    """The job of a 202 answer (fails the test on anything else)."""
    assert response.status_code == 202, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def wait_until(predicate: Callable[[], object], timeout: float = 15, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_status(client, url: str, statuses, timeout: float = 15, headers=None) -> dict:
    """GET the job at `url` until its status is one of `statuses`."""
    wanted = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    seen = {}

    def reached():
        response = client.get(url, headers=headers or {})
        assert response.status_code == 200, (response.status_code, response.get_json())
        seen["job"] = response.get_json()
        return seen["job"] if seen["job"]["status"] in wanted else None

    try:
        return wait_until(reached, timeout, what=f"status in {wanted}")
    except AssertionError:
        raise AssertionError(f"job never reached {wanted}: {seen.get('job')}") from None


def job_url(job: dict) -> str:
    return job["links"]["self"]


# ---- the jobs table -----------------------------------------------------------


def job_row(app, job_id: str) -> Job | None:
    """The row as the database has it now (detached: read its fields only)."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        if job is not None:
            db.session.expunge(job)
        return job


def job_count(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Job)).scalar_one()


def set_job(app, job_id: str, **values) -> None:
    """Write columns straight into the row (a dead worker's leftovers, an old
    finish time)."""
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job_id).values(**values))
        db.session.commit()


# ---- event streams --------------------------------------------------------------


@dataclass
class Event:
    id: str | None
    event: str | None
    data: dict | None


def parse_sse(text: str) -> list[Event]:
    """The events of a text/event-stream body (comments and `retry:` lines,
    which carry no event, are left out)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "event" in fields or "data" in fields:
            data = json.loads(fields["data"]) if "data" in fields else None
            events.append(Event(fields.get("id"), fields.get("event"), data))
    return events


def in_thread(call: Callable[[], object], timeout: float = 30):
    """`call()` run in a thread of its own; its result.

    While a Stream is open in the test's thread, its request context stays
    pushed there between chunks (stream_with_context), and a request made
    from the same thread would share its app context, `g` and database
    session. A server runs each request in a thread of its own: so do the
    tests, for requests made while a stream is open."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="test-request")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the request did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Stream:
    """An event stream opened through the test client, read chunk by chunk
    in the test's thread (the view's generator runs as it is iterated).
    Make other requests meanwhile through in_thread()."""

    def __init__(self, client, url: str, headers=None) -> None:
        self.response = client.get(url, headers=headers or {}, buffered=False)
        self.status_code = self.response.status_code
        self._chunks = iter(self.response.response) if self.status_code == 200 else iter(())
        self.text = ""

    def read_until(self, predicate: Callable[[str], bool]) -> str:
        """Read chunks until `predicate(text so far)` holds or the stream
        ends; the text so far."""
        while not predicate(self.text):
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self.text += chunk.decode() if isinstance(chunk, bytes) else chunk
        return self.text

    def read_to_end(self) -> list[Event]:
        self.read_until(lambda _text: False)
        return self.events

    @property
    def events(self) -> list[Event]:
        return parse_sse(self.text)

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
