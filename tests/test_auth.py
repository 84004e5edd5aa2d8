"""Accounts, sessions and CSRF."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Conversation, SessionRecord, User
from app.web.sessions import stored_session_id


def session_cookie(client):
    cookie = client.get_cookie("nb_session")
    return cookie.value if cookie else None


def test_signup_logs_in_and_me_reports_user(client, auth):
    response = auth.signup("alice", "correct-horse-1")
    assert response.status_code == 201
    body = response.get_json()
    assert body["authenticated"] is True
    assert body["user"]["username"] == "alice"
    assert body["csrf_token"]

    me = client.get("/me").get_json()
    assert me["authenticated"] is True
    assert me["user"]["username"] == "alice"
    assert me["csrf_token"]


def test_me_when_anonymous(client):
    body = client.get("/me").get_json()
    assert body == {"authenticated": False, "user": None, "csrf_token": None}


def test_session_cookie_flags(client, auth):
    response = auth.signup()
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header


def test_duplicate_signup_is_409_case_insensitively(client, auth, app):
    assert auth.signup("Alice").status_code == 201
    other = app.test_client()
    response = other.post("/auth/signup", json={"username": "aLICE", "password": "another-pass-1"})
    assert response.status_code == 409
    assert response.get_json()["error"] == "username_taken"


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("ab", "long-enough-1", "invalid_username"),
        ("x" * 33, "long-enough-1", "invalid_username"),
        ("bad name", "long-enough-1", "invalid_username"),
        ("bad/name", "long-enough-1", "invalid_username"),
        ("alice", "short", "invalid_password"),
        ("alice", "p" * 129, "invalid_password"),
        ("alice", "p" * 300, "validation_error"),
    ],
)
def test_signup_rejects_bad_credentials(client, username, password, code):
    response = client.post("/auth/signup", json={"username": username, "password": password})
    assert response.status_code in (400, 422)
    assert response.get_json()["error"] == code


def test_cjk_username_allowed(client, auth):
    assert auth.signup("香蕉用户", "correct-horse-1").status_code == 201


def test_password_hash_is_scrypt(app, auth):
    auth.signup()
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        assert user.password_hash.startswith("scrypt:")
        assert "correct-horse-1" not in user.password_hash


def test_production_hash_meets_owasp_minimum():
    from config import Config

    method, n, r, p = Config.PASSWORD_HASH_METHOD.split(":")
    assert method == "scrypt" and int(n) >= 2**15 and int(r) >= 8 and int(p) >= 3


def test_login_and_logout(client, auth):
    auth.signup()
    auth.logout()
    assert client.get("/me").get_json()["authenticated"] is False
    assert auth.login().status_code == 200
    assert client.get("/me").get_json()["authenticated"] is True


def test_session_id_changes_at_login(client, auth, app):
    auth.signup()
    first = session_cookie(client)
    auth.login()
    second = session_cookie(client)
    assert first and second and first != second


def test_planted_session_id_is_not_kept(app):
    client = app.test_client()
    client.set_cookie("nb_session", "attacker-chosen-id")
    client.post("/auth/signup", json={"username": "alice", "password": "correct-horse-1"})
    assert session_cookie(client) != "attacker-chosen-id"


def test_cookie_replayed_after_logout_is_401(client, auth, app):
    auth.signup()
    stolen = session_cookie(client)
    assert auth.logout().status_code == 200
    replay = app.test_client()
    replay.set_cookie("nb_session", stolen)
    response = replay.get("/conversations")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_logout_deletes_stored_session(client, auth, app):
    auth.signup()
    sid = session_cookie(client)
    with app.app_context():
        assert db.session.get(SessionRecord, stored_session_id(sid)) is not None
    auth.logout()
    with app.app_context():
        assert db.session.get(SessionRecord, stored_session_id(sid)) is None


def test_session_store_keeps_a_hash_never_the_cookie(client, auth, app):
    auth.signup()
    auth.login()
    sid = session_cookie(client)
    with app.app_context():
        stored = db.session.execute(select(SessionRecord.id)).scalars().all()
    assert stored_session_id(sid) in stored
    assert sid not in stored
    assert all(len(key) == 64 for key in stored)
    # The hash itself, sent as a cookie, is nobody's session.
    replay = app.test_client()
    replay.set_cookie("nb_session", stored_session_id(sid))
    assert replay.get("/me").get_json()["authenticated"] is False


@pytest.mark.redis
def test_redis_sessions_are_stored_by_hash_too(app_factory):
    from tests.support.services import connect_redis

    url = "redis://127.0.0.1:6379/11"
    redis = connect_redis(url)
    app = app_factory(REDIS_URL=url)
    client = app.test_client()
    try:
        client.post("/auth/signup", json={"username": "redis-user", "password": "correct-horse-1"})
        sid = session_cookie(client)
        assert redis.exists(f"nb:session:{stored_session_id(sid)}")
        assert not redis.exists(f"nb:session:{sid}")
        assert client.get("/me").get_json()["authenticated"] is True
    finally:
        for key in redis.scan_iter("nb:session:*"):
            redis.delete(key)
        redis.close()


def test_expired_sessions_are_removed_by_the_server_itself(app, monkeypatch):
    from datetime import timedelta

    from app.models import utcnow
    from app.web import sessions

    interface = app.session_interface

    def stored_ids():
        with app.app_context():
            return set(db.session.execute(select(SessionRecord.id)).scalars())

    def add(key, age_hours):
        with app.app_context():
            db.session.add(
                SessionRecord(id=key, data=b"\x80", expiry=utcnow() - timedelta(hours=age_hours))
            )
            db.session.commit()

    add("expired-1", 1)
    add("alive-1", -1)
    first = app.test_client()
    first.post("/auth/signup", json={"username": "tidy", "password": "correct-horse-1"})
    assert "expired-1" not in stored_ids() and "alive-1" in stored_ids()

    # Not again before the interval: one cleanup per process per interval.
    add("expired-2", 1)
    app.test_client().post("/auth/login", json={"username": "tidy", "password": "correct-horse-1"})
    assert "expired-2" in stored_ids()
    clock = sessions.time.monotonic() + interface.cleanup_interval_s + 1
    monkeypatch.setattr(sessions.time, "monotonic", lambda: clock)
    app.test_client().post("/auth/login", json={"username": "tidy", "password": "correct-horse-1"})
    assert "expired-2" not in stored_ids() and "alive-1" in stored_ids()


def test_health_and_bearer_requests_never_trigger_the_cleanup(app, auth, client):
    auth.signup()
    secret = client.post("/auth/tokens", json={"name": "t"}, headers=auth.headers()).get_json()[
        "token"
    ]
    app.session_interface._next_cleanup = 0.0  # due
    other = app.test_client()
    assert other.get("/health").status_code == 200
    assert other.get("/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert app.session_interface._next_cleanup == 0.0  # still due: neither ran it


def test_password_change_ends_other_sessions(client, auth, app):
    auth.signup()
    other = app.test_client()
    other.post("/auth/login", json={"username": "alice", "password": "correct-horse-1"})
    assert other.get("/conversations").status_code == 200
    response = client.post(
        "/auth/password",
        json={"current_password": "correct-horse-1", "new_password": "brand-new-pass-2"},
        headers=auth.headers(),
    )
    assert response.status_code == 200
    assert other.get("/conversations").status_code == 401
    # The session that changed it carries on with the new epoch.
    auth.csrf_token = response.get_json()["csrf_token"]
    assert client.get("/conversations").status_code == 200


def test_unknown_user_and_wrong_password_answer_alike(client, auth, app):
    auth.signup()
    auth.logout()
    unknown = app.test_client().post(
        "/auth/login", json={"username": "nobody", "password": "whatever-123"}
    )
    wrong = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "whatever-123"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()


def test_unknown_user_costs_a_hash_check(app, auth):
    """The dummy hash keeps an unknown name from answering faster."""
    auth.signup()
    auth.logout()
    from app.services import accounts

    def timed(name):
        times = []
        with app.app_context():
            for _ in range(15):
                start = time.perf_counter()
                with pytest.raises(accounts.InvalidCredentials):
                    accounts.authenticate(name, "wrong-password-1")
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    unknown, known = timed("nobody"), timed("alice")
    assert unknown > known * 0.5


def test_cookie_write_without_csrf_is_rejected_and_changes_nothing(client, auth, app):
    auth.signup()
    response = client.post("/conversations", json={"title": "sneaky"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"
    response = client.post(
        "/conversations", json={"title": "sneaky"}, headers={"X-CSRF-Token": "forged"}
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Conversation)).scalar() == 0


def test_csrf_required_for_logout_with_cookie(client, auth):
    auth.signup()
    assert client.post("/auth/logout").status_code == 400
    assert client.get("/me").get_json()["authenticated"] is True


def test_anonymous_scripts_need_no_csrf_token(client):
    response = client.post("/auth/login", json={"username": "nobody", "password": "x" * 10})
    assert response.status_code == 401  # judged on credentials, not on CSRF


def test_login_rate_limit_is_json_429_with_retry_after(app_factory):
    app = app_factory(LOGIN_RATE_LIMIT="3/minute", LOGIN_USER_RATE_LIMIT="100/minute")
    client = app.test_client()
    statuses = [
        client.post("/auth/login", json={"username": "bob", "password": "wrong-pass-1"}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429
    response = client.post("/auth/login", json={"username": "bob", "password": "wrong-pass-1"})
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"] == "rate_limited" and body["message"] == body["detail"]
    assert int(response.headers["Retry-After"]) >= 1


def test_login_ceiling_per_username_holds_across_addresses(app_factory):
    app = app_factory(
        LOGIN_RATE_LIMIT="100/minute",
        LOGIN_USER_RATE_LIMIT="100/minute",
        LOGIN_USER_CEILING="2/minute",
    )
    client = app.test_client()
    statuses = []
    for i in range(3):
        response = client.post(
            "/auth/login",
            json={"username": "carol", "password": "wrong-pass-1"},
            environ_base={"REMOTE_ADDR": f"10.0.0.{i + 1}"},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 429]


def test_a_strangers_failed_logins_dont_lock_the_owner_out(app_factory):
    app = app_factory(LOGIN_RATE_LIMIT="100/minute", LOGIN_USER_RATE_LIMIT="2/minute")
    client = app.test_client()
    client.post("/auth/signup", json={"username": "carol", "password": "correct-horse-1"})

    def attempt(password, address):
        return client.post(
            "/auth/login",
            json={"username": "carol", "password": password},
            environ_base={"REMOTE_ADDR": address},
        ).status_code

    stranger = [attempt("wrong-pass-1", "10.0.0.66") for _ in range(3)]
    assert stranger == [401, 401, 429]
    assert attempt("correct-horse-1", "10.0.0.7") == 200
    # Only failures count: the owner logging in again and again is never limited.
    assert [attempt("correct-horse-1", "10.0.0.7") for _ in range(4)] == [200] * 4


def test_forwarded_for_is_ignored_without_trusted_proxies(app_factory):
    app = app_factory(LOGIN_RATE_LIMIT="2/minute", LOGIN_USER_RATE_LIMIT="100/minute")
    client = app.test_client()
    statuses = [
        client.post(
            "/auth/login",
            json={"username": f"user{i}", "password": "wrong-pass-1"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_trusted_proxy_gives_real_client_address(app_factory):
    app = app_factory(
        TRUSTED_PROXY_COUNT=1, LOGIN_RATE_LIMIT="2/minute", LOGIN_USER_RATE_LIMIT="100/minute"
    )
    client = app.test_client()

    def attempt(forwarded):
        return client.post(
            "/auth/login",
            json={"username": "dave", "password": "wrong-pass-1"},
            headers={"X-Forwarded-For": forwarded},
        ).status_code

    # A forged left-most entry changes nothing: the proxy appended the real one.
    assert [attempt(f"1.1.1.{i}, 198.51.100.7") for i in range(3)] == [401, 401, 429]
    # Another real client still has its own allowance.
    assert attempt("198.51.100.8") == 401


def test_disabled_user_cannot_log_in(client, auth, app):
    auth.signup()
    auth.logout()
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        user.disabled = True
        db.session.commit()
    assert auth.login().status_code == 401


def test_session_expires_after_idle_lifetime(app_factory):
    app = app_factory(SESSION_IDLE_HOURS=1)
    client = app.test_client()
    client.post("/auth/signup", json={"username": "erin", "password": "correct-horse-1"})
    with client.session_transaction() as session:
        session["_seen"] = time.time() - 7200
    assert client.get("/conversations").status_code == 401


def test_session_expires_after_absolute_lifetime(app_factory):
    app = app_factory(SESSION_ABSOLUTE_DAYS=1)
    client = app.test_client()
    client.post("/auth/signup", json={"username": "fay", "password": "correct-horse-1"})
    with client.session_transaction() as session:
        session["_created"] = time.time() - 2 * 86400
    assert client.get("/conversations").status_code == 401


def test_create_user_cli(runner, app):
    result = runner.invoke(args=["create-user", "admin", "--password", "admin-pass-1", "--admin"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        assert user.is_admin


def test_signup_can_be_closed(app_factory):
    app = app_factory(ALLOW_SIGNUP=False)
    response = app.test_client().post(
        "/auth/signup", json={"username": "gina", "password": "correct-horse-1"}
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "signup_closed"


def test_cookie_is_secure_over_https_through_trusted_proxy(app_factory):
    app = app_factory(TRUSTED_PROXY_COUNT=1)
    client = app.test_client()
    response = client.post(
        "/auth/signup",
        json={"username": "hank", "password": "correct-horse-1"},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"},
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_forwarded_proto_is_ignored_without_trusted_proxy(client):
    response = client.post(
        "/auth/signup",
        json={"username": "ivan", "password": "correct-horse-1"},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" not in response.headers["Set-Cookie"]
