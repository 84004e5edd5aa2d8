"""Roles: the first admin by setup code, the signup policy and invites, and
what an admin does to accounts (issue 12, points 1, 2 and the admin API)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import ApiToken, Conversation, Image, Invite, SetupCode, UsageRecord, User, utcnow
from app.services import setup
from tests.support.auth import PASSWORD, AuthActions


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def make_admin(app, username: str) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.username == username).values(is_admin=True))
        db.session.commit()


def user_id(app, username: str) -> int:
    with app.app_context():
        return db.session.execute(select(User.id).where(User.username == username)).scalar_one()


def announce(app) -> str:
    with app.app_context():
        return setup.announce()


@pytest.fixture
def admin(app, client, auth):
    """alice, an admin, logged in on `client`."""
    auth.signup("alice")
    make_admin(app, "alice")
    return auth


@pytest.fixture
def bob(app):
    """bob, a plain user, logged in on a client of his own."""
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup("bob").status_code == 201
    auth.client = client
    auth.id = auth.user["id"]
    return auth


# ---- the first admin ---------------------------------------------------------


def test_setup_is_needed_until_an_admin_exists_and_says_the_signup_policy(app, client):
    assert client.get("/auth/setup").get_json() == {"needed": True, "signup_policy": "open"}
    AuthActions(client).signup("first")  # signing up first makes no admin
    assert client.get("/auth/setup").get_json()["needed"] is True
    make_admin(app, "first")
    assert client.get("/auth/setup").get_json()["needed"] is False


def test_the_setup_code_makes_the_first_admin_once(app, client, caplog):
    with caplog.at_level(logging.WARNING, logger="nano_banana.setup"):
        code = announce(app)
    assert code in caplog.text
    with app.app_context():
        stored = db.session.execute(select(SetupCode.code_hash)).scalars().all()
    assert code not in stored and len(stored) == 1  # only its hash

    body = {"setup_code": "WRONG-CODE", "username": "owner", "password": PASSWORD}
    response = client.post("/auth/setup", json=body)
    assert response.status_code == 403
    assert response.get_json()["error"] == "invalid_setup_code"

    # Typed from a log: case and dashes don't matter.
    body["setup_code"] = code.lower().replace("-", " ")
    response = client.post("/auth/setup", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["user"]["is_admin"] is True
    assert client.get("/me").get_json()["user"]["username"] == "owner"
    assert client.get("/admin/users").status_code == 200

    body["setup_code"] = code
    assert app.test_client().post("/auth/setup", json=body).status_code == 404
    with app.app_context():
        assert db.session.execute(select(SetupCode)).first() is None


def test_a_refused_setup_keeps_the_code(app, client):
    code = announce(app)
    taken = AuthActions(app.test_client()).signup("taken")
    assert taken.status_code == 201
    for name, password, status in [("taken", PASSWORD, 409), ("newname", "short", 400)]:
        body = {"setup_code": code, "username": name, "password": password}
        assert client.post("/auth/setup", json=body).status_code == status
    body = {"setup_code": code, "username": "newname", "password": PASSWORD}
    assert client.post("/auth/setup", json=body).status_code == 201


def test_each_process_code_works_and_two_racing_make_one_admin(app):
    codes = [announce(app), announce(app)]  # two processes, two codes
    assert codes[0] != codes[1]
    barrier = threading.Barrier(2)
    statuses = []

    def complete(n):
        client = app.test_client()
        barrier.wait()
        body = {"setup_code": codes[n], "username": f"racer{n}", "password": PASSWORD}
        statuses.append(client.post("/auth/setup", json=body).status_code)

    threads = [threading.Thread(target=complete, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) in ([201, 403], [201, 404])
    with app.app_context():
        admins = db.session.execute(select(User).where(User.is_admin)).scalars().all()
    assert len(admins) == 1


def test_once_an_admin_exists_start_prints_no_code_and_clears_old_ones(app, admin):
    with app.app_context():
        db.session.add(SetupCode(code_hash="0" * 64))
        db.session.commit()
    assert announce(app) is None
    with app.app_context():
        assert db.session.execute(select(SetupCode)).first() is None


def test_setup_attempts_are_rate_limited(app_factory):
    app = app_factory(SETUP_RATE_LIMIT="3/minute")
    client = app.test_client()
    body = {"setup_code": "AAAAA-BBBBB", "username": "owner", "password": PASSWORD}
    statuses = [client.post("/auth/setup", json=body).status_code for _ in range(4)]
    assert statuses == [403, 403, 403, 429]


# ---- the signup policy -----------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "policy"),
    [
        ({"SIGNUP_POLICY": "closed"}, "closed"),
        ({"ALLOW_SIGNUP": False, "SIGNUP_POLICY": "open"}, "closed"),
        ({"SIGNUP_POLICY": "by-magic"}, "closed"),  # unknown: closed, never open
        ({"SIGNUP_POLICY": " Invite "}, "invite"),
    ],
)
def test_the_signup_policy_comes_from_config(app_factory, settings, policy):
    client = app_factory(**settings).test_client()
    assert client.get("/auth/setup").get_json()["signup_policy"] == policy
    response = AuthActions(client).signup("gina")
    assert response.status_code == 403
    expected = "signup_closed" if policy == "closed" else "invite_required"
    assert response.get_json()["error"] == expected


@pytest.fixture
def invite_app(app_factory):
    app = app_factory(SIGNUP_POLICY="invite", SIGNUP_RATE_LIMIT="100/minute")
    owner = app.test_client()
    with app.app_context():
        from app.services import accounts

        accounts.create_user("owner", PASSWORD, is_admin=True)
    auth = AuthActions(owner)
    auth.login("owner")

    def invite(**body):
        response = owner.post("/admin/invites", json=body, headers=auth.headers())
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    app.invite = invite
    app.owner, app.owner_auth = owner, auth
    return app


def signup(app, username, code=None):
    body = {"username": username, "password": PASSWORD}
    if code is not None:
        body["invite_code"] = code
    return app.test_client().post("/auth/signup", json=body)


def test_with_invites_signup_needs_a_valid_code(invite_app):
    assert signup(invite_app, "nocode").get_json()["error"] == "invite_required"
    assert signup(invite_app, "blank", "  ").get_json()["error"] == "invite_required"
    response = signup(invite_app, "guess", "nbi_not-a-real-code")
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "invite_invalid" and "invalid or expired" in body["message"]
    code = invite_app.invite()["code"]
    assert signup(invite_app, "guest", code).status_code == 201
    assert signup(invite_app, "second", code).get_json()["error"] == "invite_invalid"


def test_an_invite_allows_as_many_signups_as_its_uses(invite_app):
    created = invite_app.invite(uses=2, expires_in_days=3)
    assert created["uses"] == created["uses_total"] == created["uses_left"] == 2
    assert created["code"].startswith(created["prefix"])
    assert signup(invite_app, "one", created["code"]).status_code == 201
    assert signup(invite_app, "two", created["code"]).status_code == 201
    assert signup(invite_app, "three", created["code"]).status_code == 403
    listed = invite_app.owner.get("/admin/invites").get_json()["items"]
    assert [(i["uses_left"], i["state"]) for i in listed] == [(0, "used")]


def test_a_failed_signup_keeps_the_invite_use(invite_app):
    code = invite_app.invite()["code"]
    assert signup(invite_app, "owner", code).status_code == 409  # name taken
    assert signup(invite_app, "newcomer", code).status_code == 201


def test_an_expired_invite_is_invalid(invite_app):
    created = invite_app.invite(expires_in_days=1)
    with invite_app.app_context():
        db.session.execute(update(Invite).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert signup(invite_app, "late", created["code"]).get_json()["error"] == "invite_invalid"
    listed = invite_app.owner.get("/admin/invites").get_json()["items"]
    assert listed[0]["state"] == "expired"


@pytest.mark.parametrize("by", ["code", "id"])
def test_a_revoked_invite_stops_working(invite_app, by):
    created = invite_app.invite(uses=5)
    headers = invite_app.owner_auth.headers()
    ref = created[by]
    response = invite_app.owner.delete(f"/admin/invites/{ref}", headers=headers)
    assert response.status_code == 204
    assert signup(invite_app, "late", created["code"]).get_json()["error"] == "invite_invalid"
    assert invite_app.owner.delete(f"/admin/invites/{ref}", headers=headers).status_code == 404
    listed = invite_app.owner.get("/admin/invites").get_json()["items"]
    assert listed[0]["state"] == "revoked" and listed[0]["revoked_at"]


def test_the_invite_list_never_shows_a_code(invite_app):
    codes = [invite_app.invite()["code"] for _ in range(3)]
    response = invite_app.owner.get("/admin/invites")
    assert [item["state"] for item in response.get_json()["items"]] == ["active"] * 3
    assert not any(code in response.get_data(as_text=True) for code in codes)
    with invite_app.app_context():
        hashes = set(db.session.execute(select(Invite.code_hash)).scalars())
    assert hashes == {hashlib.sha256(code.encode()).hexdigest() for code in codes}


def test_racing_signups_for_the_last_use_let_one_in(invite_app):
    code = invite_app.invite(uses=1)["code"]
    racers = 6
    barrier = threading.Barrier(racers)
    statuses = []

    def race(n):
        client = invite_app.test_client()
        body = {"username": f"racer{n}", "password": PASSWORD, "invite_code": code}
        barrier.wait()
        statuses.append(client.post("/auth/signup", json=body).status_code)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [403] * (racers - 1)
    with invite_app.app_context():
        assert db.session.execute(select(Invite.uses_left)).scalar_one() == 0
        assert len(db.session.execute(select(User)).all()) == 2  # owner and the winner


# ---- the user list -------------------------------------------------------------


def test_the_user_list_shows_role_usage_and_quota(app_factory):
    app = app_factory(QUOTA_DAILY_IMAGES="10", QUOTA_MONTHLY_USD="5")
    client = app.test_client()
    auth = AuthActions(client)
    auth.signup("alice")
    make_admin(app, "alice")
    AuthActions(app.test_client()).signup("bob")
    bob_id = user_id(app, "bob")
    with app.app_context():
        db.session.add(
            UsageRecord(
                user_id=bob_id,
                request_id="r1",
                kind="generate",
                model="gemini-2.5-flash-image",
                images=2,
                cost_usd=Decimal("0.078"),
                billed=True,
                outcome="ok",
                duration_ms=10,
                attempt=1,
            )
        )
        db.session.commit()
    patch = {"quota_daily_images": 3}
    assert (
        client.patch(f"/admin/users/{bob_id}", json=patch, headers=auth.headers()).status_code
        == 200
    )

    items = {row["username"]: row for row in client.get("/admin/users").get_json()["items"]}
    assert set(items) == {"alice", "bob"}
    bob = items["bob"]
    assert bob["is_admin"] is False and bob["disabled"] is False
    assert bob["last_seen_at"] and bob["created_at"]
    assert (bob["images_today"], bob["images_month"], bob["cost_month_usd"]) == (2, 2, 0.078)
    assert bob["quota"]["daily_images"] == {"override": 3, "default": 10, "effective": 3}
    assert bob["quota"]["monthly_images"] == {"override": None, "default": None, "effective": None}
    assert bob["quota"]["monthly_usd"] == {"override": None, "default": 5.0, "effective": 5.0}
    assert items["alice"]["is_admin"] is True and items["alice"]["images_today"] == 0


def test_quota_overrides_set_and_fall_back_to_the_default(app, client, admin, bob):
    url = f"/admin/users/{bob.id}"
    body = {"quota_daily_images": 7, "quota_monthly_images": 0, "quota_monthly_usd": "2.5"}
    quota = client.patch(url, json=body, headers=admin.headers()).get_json()["quota"]
    assert [quota[k]["override"] for k in ("daily_images", "monthly_images", "monthly_usd")] == [
        7,
        0,
        2.5,
    ]
    with app.app_context():
        stored = db.session.get(User, bob.id)
        assert stored.quota_monthly_usd == Decimal("2.5")
    # null: back to the default; a field not sent stays as it was.
    quota = client.patch(url, json={"quota_daily_images": None}, headers=admin.headers())
    quota = quota.get_json()["quota"]
    assert quota["daily_images"]["override"] is None
    assert quota["monthly_images"]["override"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"quota_daily_images": -1},
        {"quota_daily_images": "many"},
        {"quota_monthly_usd": "1.23456"},
        {"is_admin": "yes please"},
        {"is_superuser": True},
    ],
)
def test_a_bad_patch_is_refused_and_changes_nothing(app, client, admin, bob, body):
    response = client.patch(f"/admin/users/{bob.id}", json=body, headers=admin.headers())
    assert response.status_code == 422
    with app.app_context():
        stored = db.session.get(User, bob.id)
        assert (stored.is_admin, stored.quota_daily_images, stored.quota_monthly_usd) == (
            False,
            None,
            None,
        )


# ---- disable, promote, the last admin --------------------------------------


def test_disabling_ends_the_users_sessions_and_tokens_at_once(app, client, admin, bob):
    secret = bob.client.post("/auth/tokens", json={"name": "s"}, headers=bob.headers()).get_json()
    secret = secret["token"]
    assert bob.client.get("/conversations").status_code == 200
    script = app.test_client()
    assert script.get("/conversations", headers=bearer(secret)).status_code == 200

    response = client.patch(
        f"/admin/users/{bob.id}", json={"disabled": True}, headers=admin.headers()
    )
    assert response.status_code == 200 and response.get_json()["disabled"] is True

    assert bob.client.get("/conversations").status_code == 401
    assert script.get("/conversations", headers=bearer(secret)).status_code == 401
    assert AuthActions(app.test_client()).login("bob").status_code == 401

    # Enabled again: he logs in afresh; the old session and token stay dead.
    client.patch(f"/admin/users/{bob.id}", json={"disabled": False}, headers=admin.headers())
    assert bob.client.get("/conversations").status_code == 401
    assert script.get("/conversations", headers=bearer(secret)).status_code == 401
    assert AuthActions(app.test_client()).login("bob").status_code == 200


def test_a_promoted_user_can_administer_and_a_demoted_one_cannot(client, admin, bob):
    assert bob.client.get("/admin/users").status_code == 403
    client.patch(f"/admin/users/{bob.id}", json={"is_admin": True}, headers=admin.headers())
    assert bob.client.get("/admin/users").status_code == 200
    client.patch(f"/admin/users/{bob.id}", json={"is_admin": False}, headers=admin.headers())
    response = bob.client.get("/admin/users")
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"


@pytest.mark.parametrize("body", [{"is_admin": False}, {"disabled": True}])
def test_the_last_admin_cannot_be_demoted_or_disabled(app, client, admin, body):
    me = admin.user["id"]
    response = client.patch(f"/admin/users/{me}", json=body, headers=admin.headers())
    assert response.status_code == 409
    assert response.get_json()["error"] == "last_admin"
    with app.app_context():
        stored = db.session.get(User, me)
        assert stored.is_admin and not stored.disabled


def test_with_a_second_admin_one_can_step_down(client, admin, bob):
    client.patch(f"/admin/users/{bob.id}", json={"is_admin": True}, headers=admin.headers())
    me = admin.user["id"]
    response = client.patch(f"/admin/users/{me}", json={"is_admin": False}, headers=admin.headers())
    assert response.status_code == 200 and response.get_json()["is_admin"] is False
    # Now bob is the last one.
    response = bob.client.patch(
        f"/admin/users/{bob.id}", json={"disabled": True}, headers=bob.headers()
    )
    assert response.get_json()["error"] == "last_admin"
    assert bob.client.delete(f"/admin/users/{bob.id}", headers=bob.headers()).status_code == 409


def test_two_admins_demoting_each_other_at_once_leave_one(app, client, admin, bob):
    client.patch(f"/admin/users/{bob.id}", json={"is_admin": True}, headers=admin.headers())
    pairs = [(client, admin, bob.id), (bob.client, bob, admin.user["id"])]
    barrier = threading.Barrier(2)
    statuses = []

    def demote(who, auth, target):
        barrier.wait()
        statuses.append(
            who.patch(
                f"/admin/users/{target}", json={"is_admin": False}, headers=auth.headers()
            ).status_code
        )

    threads = [threading.Thread(target=demote, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        admins = db.session.execute(select(User.id).where(User.is_admin)).scalars().all()
    assert len(admins) == 1
    # The loser is refused as the last admin, or, when the winner was first
    # by a whole request, as no admin any more.
    assert sorted(statuses) in ([200, 403], [200, 409])


# ---- password reset, delete ------------------------------------------------


def test_an_admin_password_reset_ends_the_old_sessions(app, client, admin, bob):
    url = f"/admin/users/{bob.id}/password"
    response = client.post(url, json={"password": "short"}, headers=admin.headers())
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_password"
    response = client.post(url, json={"password": "a-new-pass-99"}, headers=admin.headers())
    assert response.status_code == 200
    assert bob.client.get("/conversations").status_code == 401
    assert AuthActions(app.test_client()).login("bob").status_code == 401
    assert AuthActions(app.test_client()).login("bob", "a-new-pass-99").status_code == 200


def test_deleting_a_user_removes_their_history_and_files_nobody_else_uses(
    app, client, admin, bob, seed_turn
):
    carol = AuthActions(app.test_client())
    carol.signup("carol")
    carol_id = carol.user["id"]
    shared, own = (10, 200, 30), (240, 10, 10)
    for user, color in [(bob.id, shared), (bob.id, own), (carol_id, shared)]:
        with app.app_context():
            conv = Conversation(user_id=user, title="t")
            db.session.add(conv)
            db.session.commit()
            conv_id = conv.id
        seed_turn(user, conv_id, color=color)
    secret = bob.client.post("/auth/tokens", json={"name": "s"}, headers=bob.headers()).get_json()
    store = app.extensions["image_store"]
    with app.app_context():
        bob_images = (
            db.session.execute(select(Image).where(Image.user_id == bob.id)).scalars().all()
        )
        files = {image.sha256: store.path_for(image.sha256, image.mime) for image in bob_images}
        carol_hash = db.session.execute(
            select(Image.sha256).where(Image.user_id == carol_id)
        ).scalar_one()
    assert len(files) == 2 and all(path.exists() for path in files.values())

    response = client.delete(f"/admin/users/{bob.id}", headers=admin.headers())
    assert response.status_code == 204
    assert files[carol_hash].exists()  # carol has the same picture
    assert not next(path for sha, path in files.items() if sha != carol_hash).exists()
    with app.app_context():
        assert db.session.get(User, bob.id) is None
        assert not db.session.execute(
            select(Conversation).where(Conversation.user_id == bob.id)
        ).first()
        assert not db.session.execute(select(Image).where(Image.user_id == bob.id)).first()
        assert not db.session.execute(select(ApiToken).where(ApiToken.user_id == bob.id)).first()
        assert db.session.execute(select(Image).where(Image.user_id == carol_id)).scalar_one()
    assert bob.client.get("/conversations").status_code == 401
    assert (
        app.test_client().get("/conversations", headers=bearer(secret["token"])).status_code == 401
    )
    assert carol.login("carol").status_code == 200
    assert client.delete(f"/admin/users/{bob.id}", headers=admin.headers()).status_code == 404


def test_an_admin_cannot_delete_themselves(client, admin):
    response = client.delete(f"/admin/users/{admin.user['id']}", headers=admin.headers())
    assert response.status_code == 409
    assert response.get_json()["error"] == "cannot_delete_self"


# ---- last seen ---------------------------------------------------------------


def last_seen(app, uid):
    with app.app_context():
        return db.session.get(User, uid).last_seen_at


def test_last_seen_is_written_on_login_session_use_and_token_use(app, bob):
    assert last_seen(app, bob.id) is not None  # signing up logs in
    with app.app_context():
        db.session.execute(update(User).values(last_seen_at=None))
        db.session.commit()
    bob.client.get("/conversations")
    assert last_seen(app, bob.id) is None  # seen a moment ago: no write
    with bob.client.session_transaction() as session:
        session["_seen"] = time.time() - 120
    bob.client.get("/conversations")
    assert last_seen(app, bob.id) is not None

    secret = bob.client.post("/auth/tokens", json={"name": "s"}, headers=bob.headers()).get_json()
    with app.app_context():
        db.session.execute(update(User).values(last_seen_at=None))
        db.session.commit()
    app.test_client().get("/conversations", headers=bearer(secret["token"]))
    assert last_seen(app, bob.id) is not None


def test_refusals_speak_the_callers_language(invite_app):
    client = invite_app.test_client()
    body = {"username": "lily", "password": PASSWORD, "invite_code": "nbi_nope"}
    response = client.post("/auth/signup", json=body, headers={"Accept-Language": "zh-CN"})
    assert response.get_json()["message"] == "邀请码无效或已过期。"
    owner = invite_app.owner
    me = invite_app.owner_auth.user["id"]
    response = owner.patch(
        f"/admin/users/{me}",
        json={"is_admin": False},
        headers=invite_app.owner_auth.headers(**{"Accept-Language": "zh"}),
    )
    assert response.get_json()["message"] == "这是最后一位管理员：请先指定另一位管理员。"
