"""Keeping what was made before logging in: POST /v1/jobs/{id}/save files a
finished job's prompt and images into the caller's conversation, without
calling the model again."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import UsageRecord
from tests.support.auth import AuthActions
from tests.support.jobs import accepted, job_url, submit, wait_for_status


@pytest.fixture
def made_logged_out(app):
    """A job made without login, finished; the client that made it."""
    client = app.test_client()
    job = accepted(submit(client, prompt="a banana before login", candidate_count=2))
    return client, wait_for_status(client, job_url(job), "succeeded")


def upstream_calls(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(UsageRecord)).scalar()


def log_in_with_a_conversation(client, name="alice") -> tuple[AuthActions, int]:
    auth = AuthActions(client)
    auth.signup(name)
    conv = client.post("/conversations", json={}, headers=auth.headers()).get_json()["id"]
    return auth, conv


def test_a_job_made_logged_out_is_saved_without_a_new_call(app, made_logged_out):
    client, job = made_logged_out
    calls = upstream_calls(app)
    auth, conv = log_in_with_a_conversation(client)

    response = client.post(f"{job_url(job)}/save", json={"conv_id": conv}, headers=auth.headers())

    assert response.status_code == 200, response.get_json()
    saved = response.get_json()
    assert saved["conversation_id"] == conv
    assert saved["user_message"]["prompt"] == "a banana before login"
    assert len(saved["message"]["images"]) == 2
    stored = client.get(f"/conversations/{conv}/messages").get_json()["items"]
    assert [m["id"] for m in stored] == [saved["user_message"]["id"], saved["message"]["id"]]
    # The same pictures, now the user's own.
    image = client.get(saved["message"]["images"][0]["url"])
    original = client.get(job["result"]["images"][0])
    assert image.status_code == 200 and image.data == original.data
    assert upstream_calls(app) == calls  # nothing was generated again
    # The job is the user's now, filed in that conversation.
    assert client.get(job_url(job)).get_json()["conversation_id"] == conv


def test_a_second_save_is_409_and_records_nothing(made_logged_out):
    client, job = made_logged_out
    auth, conv = log_in_with_a_conversation(client)
    first = client.post(f"{job_url(job)}/save", json={"conv_id": conv}, headers=auth.headers())
    assert first.status_code == 200

    again = client.post(f"{job_url(job)}/save", json={"conv_id": conv}, headers=auth.headers())

    assert again.status_code == 409
    assert again.get_json()["error"] == "job_not_saveable"
    assert len(client.get(f"/conversations/{conv}/messages").get_json()["items"]) == 2


def test_saving_needs_a_login_and_your_own_conversation(app, made_logged_out):
    client, job = made_logged_out
    anonymous = client.post(f"{job_url(job)}/save", json={"conv_id": 1})
    assert anonymous.status_code == 401

    other = app.test_client()
    _, theirs = log_in_with_a_conversation(other, "bob")
    auth, _mine = log_in_with_a_conversation(client, "alice")
    response = client.post(f"{job_url(job)}/save", json={"conv_id": theirs}, headers=auth.headers())
    assert response.status_code == 404
    assert client.get(job_url(job)).get_json()["conversation_id"] is None


def test_someone_elses_job_cannot_be_saved(app):
    owner = app.test_client()
    owner_auth, _ = log_in_with_a_conversation(owner, "owner")
    job = accepted(submit(owner, headers=owner_auth.headers(), prompt="mine"))
    wait_for_status(owner, job_url(job), "succeeded", headers=owner_auth.headers())
    thief = app.test_client()
    auth, conv = log_in_with_a_conversation(thief, "thief")

    response = thief.post(f"{job_url(job)}/save", json={"conv_id": conv}, headers=auth.headers())

    assert response.status_code == 404


def test_a_job_without_a_result_cannot_be_saved(app_factory):
    app = app_factory(JOB_WORKERS=-1)  # nothing runs: the job stays queued
    client = app.test_client()
    job = accepted(submit(client, prompt="still waiting"))
    auth, conv = log_in_with_a_conversation(client)

    response = client.post(f"{job_url(job)}/save", json={"conv_id": conv}, headers=auth.headers())

    assert response.status_code == 409
    assert client.get(f"/conversations/{conv}/messages").get_json()["items"] == []
