"""Quotas and the budget: reserved before the upstream, refused whole, given
back when unused, counted per the caller (user, token owner, address)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.errors import BudgetExhausted, QuotaExceeded
from app.extensions import db
from app.models import QuotaCounter, QuotaReservation, UsageRecord, User
from app.services import quota
from app.services.quota import Caller
from tests.support.auth import AuthActions


def generate(client, n=1, headers=None, **body):
    return client.post(
        "/v1/generate",
        json={"prompt": "a banana", "candidate_count": n, **body},
        headers=headers or {},
    )


def user_client(app, name="alice"):
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup(name).status_code == 201
    return client, auth


def counter(app, subject, period_prefix="d:"):
    with app.app_context():
        rows = db.session.execute(
            select(QuotaCounter).where(
                QuotaCounter.subject == subject, QuotaCounter.period.startswith(period_prefix)
            )
        ).scalars()
        row = next(iter(rows), None)
        return None if row is None else (row.used_images, row.reserved_images)


# ---- refused whole, before the upstream ---------------------------------------


def test_a_request_for_more_than_is_left_is_refused_whole_before_the_upstream(
    gemini_app, fake_gemini
):
    app = gemini_app(QUOTA_DAILY_IMAGES=5)
    client, auth = user_client(app)
    assert generate(client, 2, auth.headers()).status_code == 200
    assert fake_gemini.calls == 2

    response = generate(client, 4, auth.headers())

    assert response.status_code == 429
    body = response.get_json()
    assert body["error"] == "quota_exceeded"
    assert body["limit"] == "daily_images"
    assert (body["used"], body["limit_value"], body["left"], body["asked"]) == (2, 5, 3, 4)
    assert "3 of 5 left" in body["message"]
    assert int(response.headers["Retry-After"]) >= 1
    resets_at = datetime.fromisoformat(body["resets_at"])
    assert resets_at > datetime.now(UTC)
    assert (
        abs((resets_at - datetime.now(UTC)).total_seconds() - int(response.headers["Retry-After"]))
        < 5
    )
    assert fake_gemini.calls == 2  # the refusal never reached the upstream
    assert counter(app, f"user:{auth.user['id']}") == (2, 0)


def test_the_refusal_speaks_the_callers_language(app_factory):
    app = app_factory(QUOTA_DAILY_IMAGES=1)
    client, auth = user_client(app)
    assert generate(client, 1, auth.headers()).status_code == 200

    response = generate(client, 1, {**auth.headers(), "Accept-Language": "zh-CN"})

    assert response.status_code == 429
    assert "每日图片配额" in response.get_json()["message"]
    assert "还剩 0 张" in response.get_json()["message"]


def test_the_quota_day_ends_at_midnight_of_the_quota_timezone(app_factory):
    app = app_factory(QUOTA_DAILY_IMAGES=1, QUOTA_TIMEZONE="Asia/Shanghai")
    with app.test_request_context():
        user = User(username="u", username_key="u", confusable_key="u", password_hash="x")
        db.session.add(user)
        db.session.commit()
        caller = Caller(user=user)
        # 15:30 UTC is 23:30 in Shanghai; 16:30 UTC is the next day there.
        evening = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)
        quota.reserve(caller, 1, "gemini-3.1-flash-image", None, now=evening).settle(1, Decimal(0))
        with pytest.raises(QuotaExceeded) as refused:
            quota.reserve(caller, 1, "gemini-3.1-flash-image", None, now=evening)
        assert refused.value.extra["resets_at"] == "2026-12-05T16:00:00+00:00"
        after_midnight = evening + timedelta(hours=1)
        quota.reserve(caller, 1, "gemini-3.1-flash-image", None, now=after_midnight).release()


# ---- what counts against whom ------------------------------------------------


def test_api_tokens_count_against_their_owner(app_factory):
    app = app_factory(QUOTA_DAILY_IMAGES=2)
    client, auth = user_client(app)
    token = client.post("/auth/tokens", json={"name": "script"}, headers=auth.headers())
    secret = token.get_json()["token"]
    bare = app.test_client()  # no cookie: the token alone says who calls
    bearer = {"Authorization": f"Bearer {secret}"}

    assert generate(bare, 1, bearer).status_code == 200
    assert generate(client, 1, auth.headers()).status_code == 200
    refused = generate(bare, 1, bearer)

    assert refused.status_code == 429
    assert refused.get_json()["error"] == "quota_exceeded"
    with app.app_context():
        rows = db.session.execute(select(UsageRecord).order_by(UsageRecord.id)).scalars().all()
        assert [row.user_id for row in rows] == [auth.user["id"]] * 2
        assert rows[0].token_id is not None and rows[1].token_id is None


def test_an_admins_override_beats_the_default(app_factory):
    app = app_factory(QUOTA_DAILY_IMAGES=1)
    client, auth = user_client(app)
    with app.app_context():
        db.session.get(User, auth.user["id"]).quota_daily_images = 3
        db.session.commit()

    statuses = [generate(client, 1, auth.headers()).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_anonymous_callers_share_a_daily_limit_per_address(app_factory):
    app = app_factory(ANON_DAILY_IMAGES=2)
    first, second = app.test_client(), app.test_client()
    elsewhere = {"REMOTE_ADDR": "198.51.100.7"}

    assert generate(first, 1).status_code == 200
    assert generate(second, 1).status_code == 200
    refused = generate(first, 1)
    other_address = first.post("/v1/generate", json={"prompt": "a banana"}, environ_base=elsewhere)

    assert refused.status_code == 429
    assert refused.get_json()["limit"] == "anon_daily_images"
    assert other_address.status_code == 200
    with app.app_context():
        addresses = db.session.execute(select(UsageRecord.anon_address)).scalars().all()
        assert sorted(set(addresses)) == ["127.0.0.1", "198.51.100.7"]


def test_usage_is_counted_with_no_limit_set(app_factory):
    app = app_factory()
    client, auth = user_client(app)

    assert generate(client, 2, auth.headers()).status_code == 200

    with app.test_request_context():
        status = quota.status_for(db.session.get(User, auth.user["id"]))
    assert status["daily_images"]["used"] == 2
    assert status["daily_images"]["limit"] is None
    assert status["monthly_images"]["used"] == 2
    assert status["monthly_usd"] == {
        "used": 0.0,  # the offline engine is free
        "limit": None,
        "resets_at": status["monthly_usd"]["resets_at"],
    }


# ---- released when unused ----------------------------------------------------


def test_a_failed_call_gives_its_images_back(gemini_app, fake_gemini):
    app = gemini_app(QUOTA_DAILY_IMAGES=1)
    client, auth = user_client(app)
    fake_gemini.enqueue("key_invalid")

    failed = generate(client, 1, auth.headers())
    after = generate(client, 1, auth.headers())

    assert failed.status_code == 502
    assert after.status_code == 200
    assert counter(app, f"user:{auth.user['id']}") == (1, 0)


def test_fewer_images_than_asked_count_only_what_came(gemini_app, fake_gemini):
    app = gemini_app(QUOTA_DAILY_IMAGES=3)
    client, auth = user_client(app)
    fake_gemini.script(["ok", "key_invalid"])  # a fault that stops the request

    response = generate(client, 3, auth.headers())

    assert response.status_code == 200
    assert len(response.get_json()["images"]) == 1
    assert counter(app, f"user:{auth.user['id']}") == (1, 0)


def test_a_crashed_processs_hold_expires_and_is_swept(app_factory):
    app = app_factory(QUOTA_DAILY_IMAGES=2, GENAI_DEADLINE_S=30)
    with app.test_request_context():
        user = User(username="u", username_key="u", confusable_key="u", password_hash="x")
        db.session.add(user)
        db.session.commit()
        caller = Caller(user=user)
        now = datetime.now(UTC)
        quota.reserve(caller, 2, "gemini-3.1-flash-image", None, now=now)  # never settled
        with pytest.raises(QuotaExceeded):
            quota.reserve(caller, 1, "gemini-3.1-flash-image", None, now=now)

        later = now + timedelta(seconds=30 + quota.RESERVATION_MARGIN_S + 1)
        quota.reserve(caller, 2, "gemini-3.1-flash-image", None, now=later).settle(2, Decimal(0))

        assert db.session.scalar(select(func.count()).select_from(QuotaReservation)) == 0
        row = db.session.get(QuotaCounter, (f"user:{user.id}", f"d:{later.date().isoformat()}"))
        assert (row.used_images, row.reserved_images) == (2, 0)


def test_a_settle_after_the_sweep_keeps_the_use_and_frees_nothing_twice(app_factory):
    app = app_factory(GENAI_DEADLINE_S=30)
    with app.test_request_context():
        now = datetime.now(UTC)
        held = quota.reserve(Caller(address="192.0.2.1"), 2, "gemini-3.1-flash-image", None)
        assert quota.sweep(now + timedelta(seconds=30 + quota.RESERVATION_MARGIN_S + 1)) == 1
        held.settle(1, Decimal(0))
        held.settle(1, Decimal(0))  # a second settle is a no-op
        row = db.session.get(QuotaCounter, ("addr:192.0.2.1", f"d:{now.date().isoformat()}"))
        assert (row.used_images, row.reserved_images) == (1, 0)


# ---- the budget ---------------------------------------------------------------


def test_the_budget_reached_stops_every_user(gemini_app, fake_gemini):
    # Two images of gemini-3.1-flash-image at 1K: 2 x $0.067 + prompt tokens.
    app = gemini_app(BUDGET_MONTHLY_USD="0.13")
    alice, alice_auth = user_client(app, "alice")
    bob, bob_auth = user_client(app, "bob")

    assert generate(alice, 1, alice_auth.headers()).status_code == 200
    refused = [generate(alice, 1, alice_auth.headers()), generate(bob, 1, bob_auth.headers())]

    assert [response.status_code for response in refused] == [429, 429]
    assert {response.get_json()["error"] for response in refused} == {"budget_exhausted"}
    assert refused[1].get_json()["limit"] == "budget_monthly_usd"
    assert fake_gemini.calls == 1
    with app.app_context():
        status = quota.budget_status()
        assert status["used_usd"] == pytest.approx(0.067, abs=1e-4)
        assert status["exhausted"] is False  # not reached: only too little left
        assert quota.budget_exhausted() is False


def test_a_budget_used_up_refuses_even_the_free_engine(app_factory):
    app = app_factory(BUDGET_MONTHLY_USD="0")
    client, auth = user_client(app)

    response = generate(client, 1, auth.headers())

    assert response.status_code == 429
    assert response.get_json()["error"] == "budget_exhausted"
    with app.app_context():
        assert quota.budget_exhausted() is True


def test_the_estimate_is_checked_against_the_spending_quota(app_factory):
    app = app_factory(QUOTA_MONTHLY_USD="0.10")
    with app.test_request_context():
        user = User(username="u", username_key="u", confusable_key="u", password_hash="x")
        db.session.add(user)
        db.session.commit()
        caller = Caller(user=user)
        held = quota.reserve(caller, 1, "gemini-2.5-flash-image", None)  # $0.039
        held.settle(1, Decimal("0.039"))
        with pytest.raises(QuotaExceeded) as refused:
            quota.reserve(caller, 1, "gemini-3-pro-image", "4K")  # $0.24
        assert refused.value.extra["limit"] == "monthly_usd"
        assert refused.value.extra["left"] == pytest.approx(0.061)
        assert refused.value.extra["asked"] == pytest.approx(0.24)
        assert "$0.06 of $0.10 left" in refused.value.text("en")


def test_a_budget_refusal_is_its_own_error(app_factory):
    app = app_factory(BUDGET_MONTHLY_USD="0.05", QUOTA_DAILY_IMAGES=0)
    with app.test_request_context():
        user = User(username="u", username_key="u", confusable_key="u", password_hash="x")
        db.session.add(user)
        db.session.commit()
        with pytest.raises(BudgetExhausted):
            quota.reserve(Caller(user=user), 1, "gemini-3.1-flash-image", None)


def test_a_deleted_users_counters_can_be_forgotten(app_factory):
    from app.db import write_transaction

    app = app_factory(QUOTA_DAILY_IMAGES=1)
    with app.test_request_context():
        user = User(username="u", username_key="u", confusable_key="u", password_hash="x")
        db.session.add(user)
        db.session.commit()
        quota.reserve(Caller(user=user), 1, "gemini-3.1-flash-image", None).settle(1, Decimal(0))
        with write_transaction() as session:
            quota.forget_user(session, user.id)
        # A user given the same id later starts from zero.
        quota.reserve(Caller(user=user), 1, "gemini-3.1-flash-image", None).release()
