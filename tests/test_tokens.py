"""API tokens: a browser session manages them; a password change revokes them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken, SessionRecord, User

# ---- API tokens: a browser session manages them ------------------------------


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def token_secret(client, auth):
    auth.signup()
    response = client.post("/auth/tokens", json={"name": "script"}, headers=auth.headers())
    assert response.status_code == 201
    return response.get_json()["token"]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/auth/tokens", None),
        ("POST", "/auth/tokens", {"name": "minted"}),
        ("DELETE", "/auth/tokens/1", None),
        ("POST", "/auth/password", {"current_password": "x" * 8, "new_password": "y" * 8}),
        ("POST", "/auth/logout", None),
    ],
)
def test_a_bearer_token_cannot_manage_tokens_password_or_session(
    app, token_secret, method, url, body
):
    script = app.test_client()
    response = script.open(url, method=method, json=body, headers=bearer(token_secret))
    assert response.status_code == 403
    assert response.get_json()["error"] == "session_required"
    with app.app_context():
        tokens = db.session.execute(select(ApiToken)).scalars().all()
    assert [(t.name, t.revoked_at) for t in tokens] == [("script", None)]
    assert script.get("/me", headers=bearer(token_secret)).get_json()["authenticated"]


def test_me_with_a_bearer_token_writes_no_session(app, token_secret):
    with app.app_context():
        before = db.session.execute(select(func.count()).select_from(SessionRecord)).scalar()
    script = app.test_client()
    for _ in range(5):
        response = script.get("/me", headers=bearer(token_secret))
        body = response.get_json()
        assert body["authenticated"] is True and body["csrf_token"] is None
        assert "Set-Cookie" not in response.headers
    with app.app_context():
        after = db.session.execute(select(func.count()).select_from(SessionRecord)).scalar()
    assert after == before


def test_password_change_revokes_every_token(client, auth, app, token_secret):
    other = client.post("/auth/tokens", json={"name": "other"}, headers=auth.headers())
    secrets = [token_secret, other.get_json()["token"]]
    script = app.test_client()
    assert script.get("/conversations", headers=bearer(secrets[0])).status_code == 200
    response = client.post(
        "/auth/password",
        json={"current_password": "correct-horse-1", "new_password": "brand-new-pass-2"},
        headers=auth.headers(),
    )
    assert response.status_code == 200
    for secret in secrets:
        refused = script.get("/conversations", headers=bearer(secret))
        assert refused.status_code == 401
        assert refused.get_json()["error"] == "invalid_token"
    auth.csrf_token = response.get_json()["csrf_token"]
    assert client.get("/auth/tokens").get_json()["items"] == []
    # The freed names can be used again.
    again = client.post("/auth/tokens", json={"name": "script"}, headers=auth.headers())
    assert again.status_code == 201


def test_token_names_are_unique_among_a_users_active_tokens(client, auth, app, token_secret):
    duplicate = client.post("/auth/tokens", json={"name": " script "}, headers=auth.headers())
    assert duplicate.status_code == 409
    assert duplicate.get_json()["error"] == "token_name_taken"
    [token] = client.get("/auth/tokens").get_json()["items"]
    assert client.delete(f"/auth/tokens/{token['id']}", headers=auth.headers()).status_code == 204
    assert (
        client.post("/auth/tokens", json={"name": "script"}, headers=auth.headers()).status_code
        == 201
    )
    bob = app.test_client()
    body = bob.post("/auth/signup", json={"username": "bob", "password": "correct-horse-1"})
    headers = {"X-CSRF-Token": body.get_json()["csrf_token"]}
    assert bob.post("/auth/tokens", json={"name": "script"}, headers=headers).status_code == 201


def test_the_database_refuses_a_second_active_token_name(app, auth, token_secret):
    """The partial unique index, for two creations racing past the check."""
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        user_id = db.session.execute(select(User.id)).scalar_one()
        db.session.add(ApiToken(user_id=user_id, name="script", prefix="nb_x", token_hash="0" * 64))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
