"""Background jobs through HTTP (/work/notes/briefs/jobs_contract.md):
`Prefer: respond-async` on the three generation routes, /v1/jobs status,
listing, cancel, result images and the event stream. In-process: the job
workers are threads of the test app (JOB_WORKERS=-1: none runs, the jobs
stay queued)."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message
from tests.fake_gemini import hang, rate_limited
from tests.support.auth import AuthActions
from tests.support.images import png_bytes
from tests.support.jobs import (
    Stream,
    accepted,
    in_thread,
    job_count,
    job_row,
    job_url,
    parse_sse,
    submit,
    wait_for_status,
    wait_until,
)

NO_WORKERS = {"JOB_WORKERS": -1}
# A stream that never ends fails its test instead of hanging the run.
STREAM_SAFETY = {"JOB_STREAM_MAX_S": 20}


def user_client(app, name="alice"):
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup(name).status_code == 201
    return client, auth


def new_conversation(client, auth) -> int:
    response = client.post("/conversations", json={"title": "jobs"}, headers=auth.headers())
    assert response.status_code == 201
    return response.get_json()["id"]


# ---- submitting ---------------------------------------------------------------


def test_respond_async_answers_202_with_location_and_the_job(app_factory):
    app = app_factory(**NO_WORKERS)
    client = app.test_client()

    response = submit(client, prompt="a yellow banana", seed=3)

    job = accepted(response)
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert job["links"] == {
        "self": f"/v1/jobs/{job['id']}",
        "events": f"/v1/jobs/{job['id']}/events",
    }
    assert len(job["id"]) >= 20
    assert (job["kind"], job["status"], job["position"]) == ("generate", "queued", 1)
    assert (job["prompt"], job["model"]) == ("a yellow banana", "gemini-3.1-flash-image")
    assert job["attempts"] == 0 and job["cancel_requested"] is False
    assert job["result"] is None and job["error"] is None and job["retry"] is None
    assert job["started_at"] is None and job["finished_at"] is None
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    assert created.utcoffset() == timedelta(0)
    assert job_count(app) == 1


@pytest.mark.parametrize(
    "prefer", ["respond-async, wait=5", "foo, respond-async", "Respond-Async", "respond-async; x=1"]
)
def test_respond_async_is_found_among_other_preferences(app_factory, prefer):
    app = app_factory(**NO_WORKERS)
    response = submit(app.test_client(), prefer=prefer)
    assert accepted(response)["status"] == "queued"
    assert response.headers["Preference-Applied"] == "respond-async"


@pytest.mark.parametrize("prefer", [None, "return=minimal", "respond-asynchronously"])
def test_without_respond_async_the_synchronous_answer_is_unchanged(app_factory, prefer):
    app = app_factory(**NO_WORKERS)
    response = submit(app.test_client(), prefer=prefer, seed=7)

    assert response.status_code == 200
    assert "Preference-Applied" not in response.headers and "Location" not in response.headers
    body = response.get_json()
    assert len(body["images"]) == 1
    assert base64.b64decode(body["images"][0]).startswith(b"\x89PNG")
    assert "id" not in body and "status" not in body
    assert job_count(app) == 0


def test_a_job_runs_to_success_and_its_image_is_served(app):
    client = app.test_client()
    job = accepted(submit(client, prompt="a green banana", seed=5))

    done = wait_for_status(client, job_url(job), "succeeded")

    assert done["position"] is None and done["attempts"] == 1
    assert done["started_at"] and done["finished_at"]
    result = done["result"]
    assert result["images"] == [f"/v1/jobs/{job['id']}/images/0"]
    assert result["model"] == "gemini-3.1-flash-image"
    assert result["texts"] and result["image_ids"] == []
    image = client.get(result["images"][0])
    assert image.status_code == 200
    assert image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")
    cached = client.get(result["images"][0], headers={"If-None-Match": image.headers["ETag"]})
    assert cached.status_code == 304
    # The same picture the synchronous door makes for the same request.
    sync = submit(client, prefer=None, prompt="a green banana", seed=5).get_json()
    assert base64.b64decode(sync["images"][0]) == image.data
    assert client.get(f"/v1/jobs/{job['id']}/images/1").status_code == 404


def test_a_partly_made_result_succeeds_with_a_warning(gemini_app, fake_gemini):
    app = gemini_app(GENAI_MAX_RETRIES=0)
    fake_gemini.script(["ok", "blocked_prompt"])
    client = app.test_client()
    job = accepted(submit(client, candidate_count=2))

    done = wait_for_status(client, job_url(job), ("succeeded", "failed"))

    assert done["status"] == "succeeded"
    assert len(done["result"]["images"]) == 1
    [warning] = done["result"]["warnings"]
    assert warning["candidate"] == 1 and warning["code"]
    assert fake_gemini.calls == 2


@pytest.mark.parametrize(
    ("path", "fields", "status", "code"),
    [
        ("/v1/generate", {"prompt": "  "}, 400, "empty_prompt"),
        ("/v1/generate", {"model": "gemini-1.5-flash"}, 400, "unknown_model"),
        ("/v1/generate", {"prompt": ""}, 422, "validation_error"),
        ("/v1/edit", {}, 400, "not_enough_images"),
        ("/v1/compose", {"files": [png_bytes()]}, 400, "not_enough_images"),
        ("/v1/edit", {"files": [b"not a picture at all"]}, 400, None),
        ("/v1/edit", {"source_image_ids": "999"}, 404, "image_not_found"),
    ],
)
def test_invalid_requests_are_refused_at_once_and_make_no_job(
    app_factory, path, fields, status, code
):
    app = app_factory(**NO_WORKERS)

    response = submit(app.test_client(), path, **fields)

    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert {"error", "message", "detail"} <= set(body)
    if code:
        assert body["error"] == code
    assert "Location" not in response.headers
    assert job_count(app) == 0


def test_someone_elses_conversation_is_refused_at_once_and_makes_no_job(app_factory):
    app = app_factory(**NO_WORKERS)
    alice, alice_auth = user_client(app, "alice")
    bob, bob_auth = user_client(app, "bob")
    conversation = new_conversation(alice, alice_auth)

    response = submit(bob, headers=bob_auth.headers(), conv_id=conversation)

    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert job_count(app) == 0


def test_too_many_unfinished_jobs_of_one_caller_are_refused(app_factory):
    app = app_factory(JOB_MAX_ACTIVE_PER_CALLER=2, **NO_WORKERS)
    client = app.test_client()
    first = accepted(submit(client))
    accepted(submit(client))

    refused = submit(client)

    assert refused.status_code == 429
    assert refused.get_json()["error"] == "too_many_jobs"
    assert int(refused.headers["Retry-After"]) >= 1
    assert job_count(app) == 2
    # Someone else (a logged-in user) still has room.
    other, auth = user_client(app, "carol")
    accepted(submit(other, headers=auth.headers()))
    # A finished job no longer counts.
    assert client.delete(job_url(first)).status_code == 200
    accepted(submit(client))


def test_a_full_queue_refuses_new_jobs_with_503(app_factory):
    app = app_factory(JOB_MAX_QUEUED=1, **NO_WORKERS)
    accepted(submit(app.test_client()))
    other, auth = user_client(app, "dave")

    refused = submit(other, headers=auth.headers())

    assert refused.status_code == 503
    assert refused.get_json()["error"] == "queue_full"
    assert int(refused.headers["Retry-After"]) >= 1
    assert job_count(app) == 1


def test_an_async_submission_is_accepted_while_the_gate_is_full(app_factory):
    app = app_factory(**NO_WORKERS)
    app.extensions["genai"].gate.is_full = lambda: True
    client = app.test_client()

    refused = submit(client, prefer=None)
    job = accepted(submit(client))

    assert (refused.status_code, refused.get_json()["error"]) == (503, "busy")
    assert job["status"] == "queued"
    assert job_count(app) == 1


# ---- reading ------------------------------------------------------------------


def test_someone_elses_job_is_404_everywhere(app):
    alice, alice_auth = user_client(app, "alice")
    bob, bob_auth = user_client(app, "bob")
    job = accepted(submit(alice, headers=alice_auth.headers()))
    wait_for_status(alice, job_url(job), "succeeded")
    anonymous = app.test_client()

    for client, headers in ((bob, bob_auth.headers()), (anonymous, {})):
        for method, url in (
            ("get", job_url(job)),
            ("get", f"{job_url(job)}/events"),
            ("get", f"{job_url(job)}/images/0"),
            ("delete", job_url(job)),
        ):
            response = getattr(client, method)(url, headers=headers)
            assert response.status_code == 404, (method, url, response.status_code)
            assert response.get_json()["error"] == "not_found"
    # ...and nothing looks different from a job that never existed.
    unknown = bob.get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA").get_json()
    assert bob.get(job_url(job)).get_json()["error"] == unknown["error"]
    assert alice.get(f"{job_url(job)}/images/0").status_code == 200


def test_an_anonymous_job_is_readable_by_its_id_until_its_retention_ends(app):
    maker, finder = app.test_client(), app.test_client()
    job = accepted(submit(maker))
    done = wait_for_status(maker, job_url(job), "succeeded")

    assert finder.get(job_url(job)).get_json()["id"] == job["id"]
    assert finder.get(done["result"]["images"][0]).status_code == 200

    app.config["JOB_ANONYMOUS_RETENTION_S"] = 0.05
    wait_until(lambda: finder.get(job_url(job)).status_code == 404, what="the job to expire")
    assert finder.get(done["result"]["images"][0]).status_code == 404
    assert maker.get(f"{job_url(job)}/events").status_code == 404


def test_the_job_list_filters_pages_and_needs_login(app_factory):
    app = app_factory(**NO_WORKERS)
    client, auth = user_client(app)
    conversation = new_conversation(client, auth)
    headers = auth.headers()
    ids = [accepted(submit(client, headers=headers, prompt=f"p{n}"))["id"] for n in range(3)]
    in_conversation = accepted(submit(client, headers=headers, conv_id=conversation))["id"]
    canceled = client.delete(f"/v1/jobs/{ids[0]}", headers=headers)
    assert canceled.status_code == 200
    # Another user's jobs never show.
    other, other_auth = user_client(app, "erin")
    accepted(submit(other, headers=other_auth.headers()))

    def listed(query=""):
        response = client.get(f"/v1/jobs{query}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    newest_first = [in_conversation, ids[2], ids[1], ids[0]]
    assert [job["id"] for job in listed()["jobs"]] == newest_first
    assert [job["id"] for job in listed("?status=all")["jobs"]] == newest_first
    active = listed("?status=active")["jobs"]
    assert [job["id"] for job in active] == newest_first[:3]
    # Positions in the shared queue: ids[0] left it, the others keep their order.
    assert [job["position"] for job in active] == [3, 2, 1]
    assert [job["id"] for job in listed("?status=finished")["jobs"]] == [ids[0]]
    assert [job["id"] for job in listed(f"?conv_id={conversation}")["jobs"]] == [in_conversation]

    seen, cursor = [], None
    while True:
        page = listed(f"?limit=3&cursor={cursor}" if cursor else "?limit=3")
        assert len(page["jobs"]) <= 3
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    assert client.get("/v1/jobs?status=bogus").status_code == 422

    anonymous = app.test_client().get("/v1/jobs")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"] == "unauthorized"


def test_a_job_in_a_conversation_records_the_turn_once(app):
    client, auth = user_client(app)
    conversation = new_conversation(client, auth)
    job = accepted(submit(client, headers=auth.headers(), conv_id=conversation, prompt="a boat"))
    assert job["conversation_id"] == conversation

    done = wait_for_status(client, job_url(job), "succeeded")

    result = done["result"]
    assert result["conversation_id"] == conversation
    assert len(result["image_ids"]) == 1
    assert result["user_message"]["prompt"] == "a boat"
    assert result["message"]["role"] == "assistant"
    assert [image["id"] for image in result["message"]["images"]] == result["image_ids"]
    messages = client.get(f"/conversations/{conversation}/messages").get_json()["items"]
    assert [message["id"] for message in messages] == [
        result["user_message"]["id"],
        result["message"]["id"],
    ]
    stored = client.get(f"/images/{result['image_ids'][0]}")
    assert stored.status_code == 200
    assert stored.data == client.get(result["images"][0]).data
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == 2


def test_an_edit_job_uses_its_uploaded_image(app):
    client = app.test_client()
    red = png_bytes((200, 40, 40), size=(40, 30))

    job = accepted(submit(client, "/v1/edit", prompt="make it grayscale", files=[red]))
    assert job["kind"] == "edit"
    done = wait_for_status(client, job_url(job), ("succeeded", "failed"))

    assert done["status"] == "succeeded", done["error"]
    image = Image.open(io.BytesIO(client.get(done["result"]["images"][0]).data)).convert("RGB")
    assert image.size == (40, 30)
    r, g, b = image.getpixel((5, 5))
    assert r == g == b


def test_a_compose_job_runs(app):
    client = app.test_client()
    job = accepted(
        submit(
            client, "/v1/compose", prompt="tile them", files=[png_bytes("red"), png_bytes("blue")]
        )
    )
    done = wait_for_status(client, job_url(job), ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert done["kind"] == "compose" and len(done["result"]["images"]) == 1


def test_a_job_is_its_owners_whether_made_by_token_or_cookie(app):
    client, auth = user_client(app)
    secret = client.post("/auth/tokens", json={"name": "script"}, headers=auth.headers())
    bearer = {"Authorization": f"Bearer {secret.get_json()['token']}"}
    script = app.test_client()  # no cookie: the token alone says who calls

    by_token = accepted(submit(script, headers=bearer))
    by_cookie = accepted(submit(client, headers=auth.headers()))

    assert client.get(job_url(by_token)).status_code == 200
    assert script.get(job_url(by_cookie), headers=bearer).status_code == 200
    listed = script.get("/v1/jobs", headers=bearer).get_json()["jobs"]
    assert {job["id"] for job in listed} == {by_token["id"], by_cookie["id"]}
    # A bearer write needs no CSRF token.
    wait_for_status(client, job_url(by_token), "succeeded")
    assert script.delete(job_url(by_token), headers=bearer).status_code == 409


def test_a_job_goes_with_its_conversation(app_factory):
    app = app_factory(**NO_WORKERS)
    client, auth = user_client(app)
    conversation = new_conversation(client, auth)
    job = accepted(submit(client, headers=auth.headers(), conv_id=conversation))

    deleted = client.delete(f"/conversations/{conversation}", headers=auth.headers())

    assert deleted.status_code == 204
    assert client.get(job_url(job)).status_code == 404
    assert job_count(app) == 0


def test_generation_rate_limits_count_job_submissions(app_factory):
    app = app_factory(GENERATION_RATE_LIMIT="2/minute", **NO_WORKERS)
    client = app.test_client()
    accepted(submit(client))
    accepted(submit(client))

    refused = submit(client)

    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert job_count(app) == 2


def test_login_required_for_generation_holds_for_jobs(app_factory):
    app = app_factory(REQUIRE_AUTH_FOR_GENERATION=True, **NO_WORKERS)

    refused = submit(app.test_client())

    assert refused.status_code == 401
    assert job_count(app) == 0


# ---- cancel -------------------------------------------------------------------


def test_deleting_a_queued_job_cancels_it_at_once(app_factory):
    app = app_factory(**NO_WORKERS)
    client, auth = user_client(app)
    job = accepted(submit(client, headers=auth.headers()))

    without_token = client.delete(job_url(job))
    assert without_token.status_code == 400
    assert without_token.get_json()["error"] == "csrf_failed"
    assert job_row(app, job["id"]).status == "queued"

    response = client.delete(job_url(job), headers=auth.headers())

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "canceled" and body["finished_at"] and body["position"] is None
    assert client.get(job_url(job)).get_json()["status"] == "canceled"
    again = client.delete(job_url(job), headers=auth.headers())
    assert (again.status_code, again.get_json()["error"]) == (409, "job_finished")


def test_deleting_a_running_job_asks_it_to_stop(gemini_app, fake_gemini):
    app = gemini_app()
    fake_gemini.script([hang(1.5)])
    client = app.test_client()
    job = accepted(submit(client))
    wait_until(lambda: fake_gemini.in_flight == 1, what="the upstream call")

    response = client.delete(job_url(job))

    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "running" and body["cancel_requested"] is True
    done = wait_for_status(client, job_url(job), ("succeeded", "failed", "canceled"))
    assert done["status"] == "canceled"
    assert fake_gemini.calls == 1


def test_deleting_a_finished_job_is_409(app):
    client = app.test_client()
    job = accepted(submit(client))
    wait_for_status(client, job_url(job), "succeeded")

    response = client.delete(job_url(job))

    assert response.status_code == 409
    assert response.get_json()["error"] == "job_finished"
    assert client.get(job_url(job)).get_json()["status"] == "succeeded"


# ---- events -------------------------------------------------------------------


def test_the_event_stream_follows_a_job_to_its_end(gemini_app, fake_gemini):
    app = gemini_app(**STREAM_SAFETY)
    fake_gemini.script([hang(0.5)])
    client = app.test_client()
    job = accepted(submit(client))
    wait_until(lambda: fake_gemini.in_flight == 1, what="the upstream call")

    with Stream(client, f"{job_url(job)}/events") as stream:
        assert stream.status_code == 200
        assert stream.response.mimetype == "text/event-stream"
        assert "no-cache" in stream.response.headers["Cache-Control"]
        events = stream.read_to_end()

    assert stream.text.startswith("retry: ")
    assert [event.event for event in events] == ["running", "succeeded"]
    assert all(event.id for event in events)
    assert len({event.id for event in events}) == 2
    running, succeeded = (event.data for event in events)
    assert running["id"] == succeeded["id"] == job["id"]
    assert running["status"] == "running" and running["result"] is None
    assert succeeded["status"] == "succeeded"
    assert succeeded["result"]["images"] == [f"/v1/jobs/{job['id']}/images/0"]


def test_a_retry_is_streamed_and_shown(gemini_app, fake_gemini):
    app = gemini_app(**STREAM_SAFETY)
    fake_gemini.script([rate_limited(retry_delay="1s")])  # then the normal answer
    client = app.test_client()
    job = accepted(submit(client))

    with Stream(client, f"{job_url(job)}/events") as stream:
        stream.read_until(lambda text: "event: retrying" in text)
        retrying = stream.events[-1].data
        shown = in_thread(lambda: client.get(job_url(job)).get_json())
        events = stream.read_to_end()

    assert retrying["status"] == "running"
    assert retrying["retry"]["attempt"] == 2
    assert retrying["retry"]["delay_s"] >= 1.0  # the upstream's RetryInfo is honoured
    assert retrying["retry"]["reason"] == "upstream_rate_limited"  # what is being waited out
    assert (shown["status"], shown["retry"]) == ("running", retrying["retry"])
    names = [event.event for event in events]
    assert names[-1] == "succeeded" and names.count("succeeded") == 1
    assert set(names[:-1]) <= {"queued", "running", "retrying"}
    assert events[-1].data["retry"] is None
    assert fake_gemini.calls == 2


def test_resuming_a_queued_jobs_stream_repeats_nothing(app_factory):
    app = app_factory(JOB_STREAM_HEARTBEAT_S=0.05, **NO_WORKERS, **STREAM_SAFETY)
    client = app.test_client()
    job = accepted(submit(client))
    url = f"{job_url(job)}/events"
    with Stream(client, url) as stream:
        [queued] = parse_sse(stream.read_until(lambda text: "event: queued" in text))

    with Stream(client, url, headers={"Last-Event-ID": queued.id}) as resumed:
        resumed.read_until(lambda text: ": keep-alive" in text)
        assert resumed.status_code == 200 and resumed.events == []
        in_thread(lambda: client.delete(job_url(job)))
        events = resumed.read_to_end()

    assert [event.event for event in events] == ["canceled"]


def test_a_stream_ends_after_its_longest_life_and_resumes(app_factory):
    app = app_factory(JOB_STREAM_MAX_S=0.3, **NO_WORKERS)
    client = app.test_client()
    job = accepted(submit(client))
    url = f"{job_url(job)}/events"

    with Stream(client, url) as stream:
        [queued] = stream.read_to_end()  # ends by itself, the job still queued

    assert queued.event == "queued"
    with Stream(client, url, headers={"Last-Event-ID": queued.id}) as resumed:
        assert resumed.status_code == 200
        assert resumed.read_to_end() == []


def test_a_stream_ends_when_its_job_is_deleted_with_its_conversation(app_factory):
    app = app_factory(**NO_WORKERS, **STREAM_SAFETY)
    client, auth = user_client(app)
    conversation = new_conversation(client, auth)
    job = accepted(submit(client, headers=auth.headers(), conv_id=conversation))

    with Stream(client, f"{job_url(job)}/events") as stream:
        stream.read_until(lambda text: "event: queued" in text)
        deleted = in_thread(
            lambda: client.delete(f"/conversations/{conversation}", headers=auth.headers())
        )
        assert deleted.status_code == 204
        events = stream.read_to_end()

    assert [event.event for event in events] == ["queued"]
    assert client.get(f"{job_url(job)}/events").status_code == 404


def test_a_queued_job_streams_its_position_then_its_run(app_factory):
    app = app_factory(**NO_WORKERS, **STREAM_SAFETY)
    client = app.test_client()
    first = accepted(submit(client, prompt="first"))
    second = accepted(submit(client, prompt="second"))

    with Stream(client, f"{job_url(second)}/events") as stream:
        stream.read_until(lambda text: "event: queued" in text)
        assert stream.events[-1].data["position"] == 2
        # The job ahead leaves the queue: the position changes, a new event.
        assert in_thread(lambda: client.delete(job_url(first))).status_code == 200
        stream.read_until(lambda text: text.count("event: queued") == 2)
        assert stream.events[-1].data["position"] == 1
        assert stream.events[-1].id != stream.events[0].id
        assert in_thread(lambda: client.delete(job_url(second))).status_code == 200
        events = stream.read_to_end()

    assert [event.event for event in events] == ["queued", "queued", "canceled"]


def test_resuming_an_event_stream(app_factory):
    app = app_factory(**STREAM_SAFETY)
    client = app.test_client()
    job = accepted(submit(client))
    wait_for_status(client, job_url(job), "succeeded")
    url = f"{job_url(job)}/events"
    with Stream(client, url) as stream:
        final = stream.read_to_end()[-1]
    assert final.event == "succeeded" and final.id

    # Seen to the end: 204, EventSource stops reconnecting.
    seen = client.get(url, headers={"Last-Event-ID": final.id})
    assert seen.status_code == 204 and seen.data == b""

    # From an earlier event on: only what came after, the final event.
    with Stream(client, url, headers={"Last-Event-ID": "1"}) as stream:
        assert stream.status_code == 200
        events = stream.read_to_end()
    assert [(event.event, event.id) for event in events] == [("succeeded", final.id)]

    # A Last-Event-ID that isn't one of ours is ignored, not an error.
    for garbage in ("banana", "1.x", "🍌", "9" * 50):
        with Stream(client, url, headers={"Last-Event-ID": garbage}) as stream:
            assert stream.status_code == 200, garbage
            assert [event.event for event in stream.read_to_end()] == ["succeeded"]


def test_an_idle_stream_sends_heartbeats(app_factory):
    app = app_factory(JOB_STREAM_HEARTBEAT_S=0.05, **NO_WORKERS, **STREAM_SAFETY)
    client = app.test_client()
    job = accepted(submit(client))

    with Stream(client, f"{job_url(job)}/events") as stream:
        text = stream.read_until(lambda text: text.count(": keep-alive") >= 2)

    assert text.count(": keep-alive") >= 2
    assert [event.event for event in stream.events] == ["queued"]


def test_streams_per_caller_are_capped(app_factory):
    app = app_factory(JOB_STREAMS_PER_CALLER=1, **NO_WORKERS, **STREAM_SAFETY)
    client, auth = user_client(app)
    job = accepted(submit(client, headers=auth.headers()))
    url = f"{job_url(job)}/events"
    # Another caller's stream is counted apart.
    anonymous = app.test_client()
    other_job = accepted(submit(anonymous))

    def status_of_another_stream(who, url):
        with Stream(who, url) as stream:
            return stream.status_code

    with Stream(client, url) as first:
        assert first.status_code == 200
        second = in_thread(lambda: client.get(url))
        assert second.status_code == 429
        assert second.get_json()["error"] == "too_many_streams"
        assert int(second.headers["Retry-After"]) >= 1
        other_url = f"{job_url(other_job)}/events"
        assert in_thread(lambda: status_of_another_stream(anonymous, other_url)) == 200
    # Closed: the slot is back.
    with Stream(client, url) as again:
        assert again.status_code == 200


def test_streams_in_all_are_capped(app_factory):
    app = app_factory(JOB_STREAMS_MAX=1, **NO_WORKERS, **STREAM_SAFETY)
    alice, alice_auth = user_client(app, "alice")
    bob, bob_auth = user_client(app, "bob")
    alice_job = accepted(submit(alice, headers=alice_auth.headers()))
    bob_job = accepted(submit(bob, headers=bob_auth.headers()))

    with Stream(alice, f"{job_url(alice_job)}/events") as first:
        assert first.status_code == 200
        refused = in_thread(lambda: bob.get(f"{job_url(bob_job)}/events"))
        assert refused.status_code == 503
        assert refused.get_json()["error"] == "streams_full"
        assert int(refused.headers["Retry-After"]) >= 1
    with Stream(bob, f"{job_url(bob_job)}/events") as after:
        assert after.status_code == 200


def test_a_stream_that_ends_gives_its_slot_back(app_factory):
    app = app_factory(JOB_STREAMS_PER_CALLER=1, JOB_STREAMS_MAX=1, **STREAM_SAFETY)
    client = app.test_client()
    job = accepted(submit(client))
    url = f"{job_url(job)}/events"

    with Stream(client, url) as stream:
        assert stream.read_to_end()[-1].event == "succeeded"
        # Ended but not yet closed by the client: the slot is back already.
        with Stream(client, url) as again:
            assert again.status_code == 200
            assert [event.event for event in again.read_to_end()] == ["succeeded"]
    assert app.extensions["job_streams"].open == 0


# ---- the API description ----------------------------------------------------------


def test_openapi_lists_the_job_routes_and_the_202s(client):
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]

    assert set(paths["/v1/jobs"]) >= {"get"}
    assert set(paths["/v1/jobs/{job_id}"]) >= {"get", "delete"}
    assert "get" in paths["/v1/jobs/{job_id}/events"]
    assert "get" in paths["/v1/jobs/{job_id}/images/{index}"]
    for route in ("/v1/generate", "/v1/edit", "/v1/compose"):
        responses = paths[route]["post"]["responses"]
        assert {"200", "202"} <= set(responses), route
    delete_responses = paths["/v1/jobs/{job_id}"]["delete"]["responses"]
    assert {"200", "202", "404", "409"} <= set(delete_responses)
