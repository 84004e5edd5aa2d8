"""A retry is the same turn: `retry_of` names the failed reply a request tries
again, and the turn it makes (successful or failed) replaces that one."""

from __future__ import annotations

import pytest

from tests.fake_gemini import server_error
from tests.support.auth import AuthActions
from tests.support.jobs import accepted, job_url, submit, wait_for_status


@pytest.fixture
def setup(gemini_app):
    app = gemini_app(GENAI_MAX_RETRIES=0)
    client = app.test_client()
    auth = AuthActions(client)
    auth.signup()
    conv = client.post("/conversations", json={}, headers=auth.headers()).get_json()["id"]
    return app, client, auth, conv


def messages(client, conv) -> list[dict]:
    return client.get(f"/conversations/{conv}/messages").get_json()["items"]


def fail_once(fake_gemini, client, auth, conv) -> int:
    """A failed turn stored in the conversation; the failed reply's id."""
    fake_gemini.script([server_error()])
    response = client.post(
        "/v1/generate", json={"prompt": "a banana", "conv_id": conv}, headers=auth.headers()
    )
    assert response.status_code >= 500
    body = response.get_json()
    stored = messages(client, conv)[-1]
    assert stored["error"] is not None
    # The error answer names the message that records it.
    assert body["message_id"] == stored["id"]
    return body["message_id"]


def test_a_successful_retry_replaces_the_failed_turn(setup, fake_gemini):
    _app, client, auth, conv = setup
    failed = fail_once(fake_gemini, client, auth, conv)

    response = client.post(
        "/v1/generate",
        json={"prompt": "a banana", "conv_id": conv, "retry_of": failed},
        headers=auth.headers(),
    )

    assert response.status_code == 200
    stored = messages(client, conv)
    assert [(m["role"], m["error"]) for m in stored] == [("user", None), ("assistant", None)]
    assert stored[0]["prompt"] == "a banana"
    assert stored[1]["images"]
    conversation = client.get(f"/conversations/{conv}").get_json()
    assert conversation["message_count"] == 2


def test_a_failed_retry_replaces_the_failure_so_there_is_one(setup, fake_gemini):
    _app, client, auth, conv = setup
    failed = fail_once(fake_gemini, client, auth, conv)
    fake_gemini.script([server_error()])

    response = client.post(
        "/v1/generate",
        json={"prompt": "a banana", "conv_id": conv, "retry_of": failed},
        headers=auth.headers(),
    )

    assert response.status_code >= 500
    stored = messages(client, conv)
    assert len(stored) == 2
    assert stored[1]["error"] is not None
    assert response.get_json()["message_id"] == stored[1]["id"] != failed


def test_a_job_retry_replaces_the_failed_turn(setup, fake_gemini):
    _app, client, auth, conv = setup
    fake_gemini.script([server_error()])
    job = accepted(submit(client, headers=auth.headers(), prompt="a banana", conv_id=conv))
    failed_job = wait_for_status(client, job_url(job), "failed")
    failed = failed_job["error"]["message_id"]
    assert messages(client, conv)[-1]["id"] == failed

    retry = accepted(
        submit(client, headers=auth.headers(), prompt="a banana", conv_id=conv, retry_of=failed)
    )
    done = wait_for_status(client, job_url(retry), "succeeded")

    stored = messages(client, conv)
    assert [m["id"] for m in stored] == [
        done["result"]["user_message"]["id"],
        done["result"]["message"]["id"],
    ]
    assert all(m["error"] is None for m in stored)


@pytest.mark.parametrize("prefer", [None, "respond-async"])
def test_retry_of_a_reply_that_did_not_fail_is_404_and_nothing_changes(setup, prefer):
    _app, client, auth, conv = setup
    ok = client.post(
        "/v1/generate", json={"prompt": "a banana", "conv_id": conv}, headers=auth.headers()
    ).get_json()["message"]["id"]

    response = submit(
        client, headers=auth.headers(), prefer=prefer, prompt="again", conv_id=conv, retry_of=ok
    )

    assert response.status_code == 404
    assert response.get_json()["error"] == "retry_not_found"
    assert len(messages(client, conv)) == 2


def test_retry_of_without_a_conversation_is_400(setup):
    _app, client, auth, _conv = setup
    response = client.post(
        "/v1/generate", json={"prompt": "a banana", "retry_of": 1}, headers=auth.headers()
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "retry_needs_conversation"


def test_someone_elses_failed_reply_is_404(setup, fake_gemini):
    app, client, auth, conv = setup
    failed = fail_once(fake_gemini, client, auth, conv)
    other = app.test_client()
    mallory = AuthActions(other)
    mallory.signup("mallory")
    theirs = other.post("/conversations", json={}, headers=mallory.headers()).get_json()["id"]

    response = other.post(
        "/v1/generate",
        json={"prompt": "x", "conv_id": theirs, "retry_of": failed},
        headers=mallory.headers(),
    )

    assert response.status_code == 404
    assert len(messages(client, conv)) == 2  # Alice's failed turn is still there
