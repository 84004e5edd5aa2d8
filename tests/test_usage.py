"""Usage you can read: /me/usage, /admin/usage (JSON and CSV), `flask usage
report`, and user_totals for the admin's user list, over ledger rows seeded
straight into the table (the ledger's own writing is tests/test_ledger.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from app.models import UsageRecord, User
from app.services import accounts, periods, usage
from tests.support.auth import PASSWORD

PRO = "gemini-3-pro-image"
FLASH = "gemini-2.5-flash-image"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def ledger(app):
    """ledger(user_id, when, images=1, cost="0.039", ...) adds one attempt."""

    def add(user_id, when, images=1, cost="0.039", *, billed=True, model=FLASH, **fields):
        with app.app_context():
            db.session.add(
                UsageRecord(
                    created_at=when,
                    user_id=user_id,
                    request_id="r",
                    kind="generate",
                    model=model,
                    images=images,
                    cost_usd=Decimal(cost),
                    billed=billed,
                    outcome="ok" if billed else "upstream_error",
                    **fields,
                )
            )
            db.session.commit()

    return add


@pytest.fixture
def alice(auth):
    auth.signup("alice")
    return auth.user["id"]


def make_user(app, name, *, admin=False) -> int:
    with app.app_context():
        return accounts.create_user(name, PASSWORD, is_admin=admin).id


@pytest.fixture
def admin_client(app):
    make_user(app, "root", admin=True)
    client = app.test_client()
    client.post("/auth/login", json={"username": "root", "password": PASSWORD})
    return client


def my_usage(client, **query):
    response = client.get("/me/usage", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# ---- /me/usage ---------------------------------------------------------------


def test_days_are_quota_timezone_days(app_factory):
    app = app_factory(QUOTA_TIMEZONE="Asia/Shanghai")  # UTC+8, no clock changes
    client = app.test_client()
    body = client.post("/auth/signup", json={"username": "alice", "password": PASSWORD})
    user_id = body.get_json()["user"]["id"]
    with app.app_context():
        for when, images in (
            (at("2026-03-01T15:59:59"), 1),  # 23:59:59 on 1 March in Shanghai
            (at("2026-03-01T16:00:00"), 2),  # midnight: 2 March
            (at("2026-02-28T16:00:00"), 4),  # midnight: 1 March
        ):
            db.session.add(
                UsageRecord(
                    created_at=when, user_id=user_id, kind="generate", model=FLASH,
                    images=images, cost_usd=Decimal("0.039") * images, billed=True, outcome="ok",
                )
            )  # fmt: skip
        db.session.commit()
    body = my_usage(client, **{"from": "2026-02-28", "to": "2026-03-02"})
    assert body["timezone"] == "Asia/Shanghai"
    assert [(d["date"], d["images"]) for d in body["days"]] == [
        ("2026-02-28", 0),
        ("2026-03-01", 5),
        ("2026-03-02", 2),
    ]
    assert body["days"][1]["cost_usd"] == pytest.approx(0.195)


def test_a_day_when_clocks_go_back_is_25_hours_long(app_factory):
    app = app_factory(QUOTA_TIMEZONE="America/New_York")
    with app.app_context():
        user_id = accounts.create_user("alice", PASSWORD).id
        # 1 Nov 2026: EDT (UTC-4) until 06:00 UTC, then EST (UTC-5).
        for when in (
            at("2026-11-01T03:59:00"),  # 23:59 on 31 Oct EDT
            at("2026-11-01T04:00:00"),  # midnight EDT: 1 Nov
            at("2026-11-02T04:30:00"),  # 23:30 on 1 Nov EST (a UTC-4 day would end at 04:00)
            at("2026-11-02T05:00:00"),  # midnight EST: 2 Nov
        ):
            db.session.add(
                UsageRecord(
                    created_at=when, user_id=user_id, kind="generate", model=FLASH,
                    images=1, cost_usd=Decimal("0.039"), billed=True, outcome="ok",
                )
            )  # fmt: skip
        db.session.commit()
        user = db.session.get(User, user_id)
        days = usage.usage_for(user, date(2026, 10, 31), date(2026, 11, 2))["days"]
    assert [(d["date"], d["images"]) for d in days] == [
        (date(2026, 10, 31), 1),
        (date(2026, 11, 1), 2),
        (date(2026, 11, 2), 1),
    ]


def test_half_hour_midnights_and_whole_hour_ones_in_one_process(app_factory):
    """Lord Howe Island is UTC+11 in summer, UTC+10:30 in winter: a summer
    range buckets by UTC hour, a winter one by minute, one after the other."""
    app = app_factory(QUOTA_TIMEZONE="Australia/Lord_Howe")
    with app.app_context():
        user_id = accounts.create_user("alice", PASSWORD).id
        for when in (
            at("2026-01-09T12:59:00"),  # 23:59 on 9 Jan (+11)
            at("2026-01-09T13:00:00"),  # midnight: 10 Jan
            at("2026-07-09T13:15:00"),  # 23:45 on 9 Jul (+10:30)
            at("2026-07-09T13:45:00"),  # 00:15 on 10 Jul
        ):
            db.session.add(
                UsageRecord(
                    created_at=when, user_id=user_id, kind="generate", model=FLASH,
                    images=1, cost_usd=Decimal("0.039"), billed=True, outcome="ok",
                )
            )  # fmt: skip
        db.session.commit()
        user = db.session.get(User, user_id)
        for first in (date(2026, 1, 9), date(2026, 7, 9)):
            days = usage.usage_for(user, first, first + timedelta(days=1))["days"]
            assert [d["images"] for d in days] == [1, 1], first


def test_days_without_use_are_listed_as_zero(client, alice, ledger):
    ledger(alice, at("2026-05-03T12:00:00"), images=2, cost="0.078")
    body = my_usage(client, **{"from": "2026-05-01", "to": "2026-05-05"})
    assert [d["date"] for d in body["days"]] == [f"2026-05-0{n}" for n in range(1, 6)]
    assert [d["images"] for d in body["days"]] == [0, 0, 2, 0, 0]
    assert [d["cost_usd"] for d in body["days"]] == [0, 0, 0.078, 0, 0]
    assert body["total"] == {"images": 2, "cost_usd": 0.078, "calls": 1}


def test_the_default_range_is_the_whole_current_month(app, client, alice, ledger):
    with app.app_context():
        today = periods.today()
    ledger(alice, datetime.now(UTC), images=3, cost="0.117")
    body = my_usage(client)
    first = today.replace(day=1)
    assert body["from"] == first.isoformat()
    assert body["to"] == periods.month_end(today).isoformat()
    assert len(body["days"]) == (periods.month_end(today) - first).days + 1
    assert sum(d["images"] for d in body["days"]) == 3
    # Only `to`: its month, from its first day.
    body = my_usage(client, to="2026-02-10")
    assert (body["from"], len(body["days"])) == ("2026-02-01", 10)


def test_models_break_down_the_range_dearest_first(client, alice, ledger):
    day = at("2026-05-03T12:00:00")
    ledger(alice, day, images=1, cost="0.039", model=FLASH)
    ledger(alice, day, images=1, cost="0.039", model=FLASH)
    ledger(alice, day, images=1, cost="0.24", model=PRO, image_size="4K")
    # A refused attempt: a call, no image, no cost.
    ledger(alice, day, images=0, cost="0", billed=False, model=PRO)
    ledger(alice, at("2026-06-01T12:00:00"), images=5, cost="0.5", model=PRO)  # out of range
    body = my_usage(client, **{"from": "2026-05-01", "to": "2026-05-31"})
    assert body["models"] == [
        {"model": PRO, "images": 1, "cost_usd": 0.24, "calls": 2},
        {"model": FLASH, "images": 2, "cost_usd": 0.078, "calls": 2},
    ]
    assert body["total"] == {"images": 3, "cost_usd": 0.318, "calls": 4}


def test_an_unbilled_attempt_costs_nothing_even_if_it_carries_a_cost(client, alice, ledger):
    ledger(alice, at("2026-05-03T12:00:00"), images=0, cost="0.5", billed=False)
    body = my_usage(client, **{"from": "2026-05-03", "to": "2026-05-03"})
    assert body["days"] == [{"date": "2026-05-03", "images": 0, "cost_usd": 0, "calls": 1}]


def test_someone_elses_use_is_not_mine(app, client, alice, ledger):
    bob = make_user(app, "bob")
    ledger(bob, at("2026-05-03T12:00:00"), images=4, cost="0.156")
    ledger(None, at("2026-05-03T12:00:00"), images=1, anon_address="203.0.113.9")
    body = my_usage(client, **{"from": "2026-05-01", "to": "2026-05-31"})
    assert body["total"]["images"] == 0
    assert body["models"] == []


def test_my_usage_carries_quota_and_budget(client, alice):
    body = my_usage(client)
    assert set(body["quota"]) == {"daily_images", "monthly_images", "monthly_usd"}
    for limit in body["quota"].values():
        assert {"used", "limit"} <= set(limit)
    # A user learns whether generation stops and until when, not the figures.
    assert set(body["budget"]) == {"exhausted", "resets_at"}
    assert body["budget"]["exhausted"] is False
    assert "no-store" in client.get("/me/usage").headers["Cache-Control"]


def test_my_usage_works_with_an_api_token(client, auth, alice, ledger):
    secret = client.post("/auth/tokens", json={"name": "t"}, headers=auth.headers()).get_json()
    ledger(alice, at("2026-05-03T12:00:00"), images=2)
    other = client.application.test_client()
    response = other.get(
        "/me/usage?from=2026-05-03&to=2026-05-03",
        headers={"Authorization": f"Bearer {secret['token']}"},
    )
    assert response.status_code == 200
    assert response.get_json()["total"]["images"] == 2


def test_my_usage_needs_a_login(client):
    response = client.get("/me/usage")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "query, field",
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"to": "2026-2-3"}, "to"),
        ({"from": "20260101"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),
    ],
)
def test_a_bad_date_is_a_400_naming_the_field(client, alice, query, field):
    response = client.get("/me/usage", query_string=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_date"
    assert body["message"] == body["detail"]
    assert body["message"].startswith(field)


def test_a_range_back_to_front_or_too_long_is_a_400(client, alice):
    for query in (
        {"from": "2026-05-02", "to": "2026-05-01"},
        {"from": "2025-01-01", "to": "2026-01-02"},
    ):
        response = client.get("/me/usage", query_string=query)
        assert response.status_code == 400, query
        assert response.get_json()["error"] == "invalid_date"
    # 366 days is the most: a leap year fits.
    assert client.get("/me/usage?from=2028-01-01&to=2028-12-31").status_code == 200


def test_the_message_speaks_the_callers_language(client, alice):
    response = client.get("/me/usage?from=nope", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert "YYYY-MM-DD" in message and not message.startswith("from must")


# ---- /admin/usage ------------------------------------------------------------


def test_admin_usage_by_day_user_and_model(app, admin_client, ledger):
    alice_id, bob_id = make_user(app, "alice"), make_user(app, "bob")
    day1, day2 = at("2026-05-01T10:00:00"), at("2026-05-02T10:00:00")
    ledger(alice_id, day1, images=2, cost="0.078")
    ledger(bob_id, day2, images=1, cost="0.24", model=PRO)
    ledger(bob_id, day2, images=0, cost="0", billed=False, model=PRO)
    ledger(None, day2, images=1, cost="0.039", anon_address="203.0.113.9")
    query = "from=2026-05-01&to=2026-05-03"

    by_day = admin_client.get(f"/admin/usage?{query}&group_by=day").get_json()
    assert by_day["items"] == [
        {"date": "2026-05-01", "images": 2, "cost_usd": 0.078, "calls": 1},
        {"date": "2026-05-02", "images": 2, "cost_usd": 0.279, "calls": 3},
        {"date": "2026-05-03", "images": 0, "cost_usd": 0, "calls": 0},
    ]
    assert by_day["total"] == {"images": 4, "cost_usd": 0.357, "calls": 4}

    by_user = admin_client.get(f"/admin/usage?{query}&group_by=user").get_json()["items"]
    assert [(r["username"], r["account"], r["images"], r["calls"]) for r in by_user] == [
        ("bob", "user", 1, 2),
        ("alice", "user", 2, 1),
        (None, "anonymous", 1, 1),
    ]
    assert by_user[0]["user_id"] == bob_id

    by_model = admin_client.get(f"/admin/usage?{query}&group_by=model").get_json()["items"]
    assert [(r["model"], r["images"], r["cost_usd"]) for r in by_model] == [
        (PRO, 1, 0.24),
        (FLASH, 3, 0.117),
    ]


def test_a_deleted_users_spend_still_counts(app, admin_client, ledger):
    gone = make_user(app, "gone")
    ledger(gone, at("2026-05-01T10:00:00"), images=1, cost="0.039")
    with app.app_context():
        # What ON DELETE SET NULL leaves behind.
        db.session.query(UsageRecord).update({UsageRecord.user_id: None})
        db.session.commit()
    items = admin_client.get("/admin/usage?from=2026-05-01&to=2026-05-01&group_by=user").get_json()[
        "items"
    ]
    assert items == [
        {
            "user_id": None,
            "username": None,
            "account": "deleted",
            "images": 1,
            "cost_usd": 0.039,
            "calls": 1,
        }
    ]


def test_admin_usage_csv_is_a_download_with_a_header_row(app, admin_client, ledger):
    ledger(make_user(app, "alice"), at("2026-05-02T10:00:00"), images=2, cost="0.078")
    response = admin_client.get("/admin/usage?from=2026-05-01&to=2026-05-03&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=nano-banana-usage-2026-05-01-2026-05-03.csv"
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.is_streamed
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows == [
        ["date", "images", "cost_usd", "calls"],
        ["2026-05-01", "0", "0.000000", "0"],
        ["2026-05-02", "2", "0.078000", "1"],
        ["2026-05-03", "0", "0.000000", "0"],
    ]


def test_csv_cells_a_spreadsheet_would_run_are_escaped(app, admin_client, ledger):
    dash = make_user(app, "-cmd")  # a username may start with "-"
    day = at("2026-05-02T10:00:00")
    ledger(dash, day, images=1)
    for model in ('=HYPERLINK("http://x")', "+1+1", "@SUM(A1)", "\tx", "plain-model"):
        ledger(dash, day, images=1, model=model)
    text = admin_client.get(
        "/admin/usage?from=2026-05-02&to=2026-05-02&format=csv&group_by=model"
    ).get_data(as_text=True)
    models = {row[0] for row in list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1:]}
    assert models == {
        '\'=HYPERLINK("http://x")',
        "'+1+1",
        "'@SUM(A1)",
        "'\tx",
        "plain-model",
        FLASH,
    }
    text = admin_client.get(
        "/admin/usage?from=2026-05-02&to=2026-05-02&format=csv&group_by=user"
    ).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["user_id", "username", "account", "images", "cost_usd", "calls"]
    assert rows[1][1:3] == ["'-cmd", "user"]


def test_csv_keeps_chinese_names_readable_in_excel(app, admin_client, ledger):
    ledger(make_user(app, "张三abc"), at("2026-05-02T10:00:00"))
    data = admin_client.get(
        "/admin/usage?from=2026-05-02&to=2026-05-02&format=csv&group_by=user"
    ).get_data()
    assert data.startswith("\ufeff".encode())  # Excel's cue that the file is UTF-8
    assert "张三abc".encode() in data


def test_admin_usage_is_for_admins_only(app, client, auth):
    assert client.get("/admin/usage").status_code == 401
    auth.signup("alice")
    for path in ("/admin/usage", "/admin/usage?format=csv"):
        response = client.get(path)
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"


def test_admin_usage_needs_a_browser_session_not_a_token(app, admin_client):
    csrf = admin_client.get("/me").get_json()["csrf_token"]
    secret = admin_client.post(
        "/auth/tokens", json={"name": "t"}, headers={"X-CSRF-Token": csrf}
    ).get_json()["token"]
    response = app.test_client().get("/admin/usage", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "session_required"


def test_admin_usage_refuses_bad_input(admin_client):
    assert admin_client.get("/admin/usage?from=2026-02-31").status_code == 400
    for query in ("group_by=week", "format=xml"):
        response = admin_client.get(f"/admin/usage?{query}")
        assert response.status_code == 422, query
        assert response.get_json()["error"] == "validation_error"


# ---- user_totals, for the admin's user list ----------------------------------


def test_user_totals_count_today_and_this_month(app, ledger):
    alice_id, bob_id, idle_id = (make_user(app, name) for name in ("alice", "bob", "idle"))
    now = datetime.now(UTC)
    with app.app_context():
        day_start, _ = periods.day_bounds(periods.today())
        month_start, _ = periods.month_bounds(periods.today())
    ledger(alice_id, now, images=2, cost="0.078")
    ledger(alice_id, now, images=0, cost="0", billed=False)
    if day_start - timedelta(seconds=1) >= month_start:  # not on the 1st
        ledger(alice_id, day_start - timedelta(seconds=1), images=3, cost="0.117")
    else:
        ledger(alice_id, day_start + timedelta(seconds=1), images=3, cost="0.117")
    ledger(alice_id, month_start - timedelta(seconds=1), images=9, cost="0.9")  # last month
    ledger(bob_id, now, images=1, cost="0.24", model=PRO)
    with app.app_context():
        totals = usage.user_totals([alice_id, bob_id, idle_id])
    first_of_month = day_start - timedelta(seconds=1) < month_start
    assert totals[alice_id] == {
        "images_today": 5 if first_of_month else 2,
        "images_month": 5,
        "cost_month_usd": Decimal("0.195000"),
    }
    assert totals[bob_id]["cost_month_usd"] == Decimal("0.24")
    assert totals[idle_id] == {"images_today": 0, "images_month": 0, "cost_month_usd": 0}


# ---- the CLI -----------------------------------------------------------------


def test_flask_usage_report_prints_the_table(app, runner, ledger):
    ledger(make_user(app, "alice"), at("2026-05-02T10:00:00"), images=2, cost="0.078")
    ledger(make_user(app, "bob"), at("2026-05-02T11:00:00"), images=1, cost="0.24", model=PRO)
    result = runner.invoke(
        args=["usage", "report", "--from", "2026-05-01", "--to", "2026-05-31", "--group-by", "user"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "usage 2026-05-01 to 2026-05-31 (UTC), by user"
    assert lines[1].split() == ["user_id", "username", "account", "images", "cost_usd", "calls"]
    assert lines[3].split()[1:] == ["bob", "user", "1", "0.2400", "1"]
    assert lines[4].split()[1:] == ["alice", "user", "2", "0.0780", "1"]
    assert lines[-1].split() == ["total", "3", "0.3180", "2"]


def test_flask_usage_report_as_csv_matches_the_http_export(app, runner, admin_client, ledger):
    ledger(make_user(app, "alice"), at("2026-05-02T10:00:00"), images=2, cost="0.078")
    result = runner.invoke(
        args=["usage", "report", "--from", "2026-05-01", "--to", "2026-05-03", "--csv"]
    )
    assert result.exit_code == 0, result.output
    http = admin_client.get("/admin/usage?from=2026-05-01&to=2026-05-03&format=csv")
    assert result.output.splitlines() == http.get_data(as_text=True).lstrip("\ufeff").splitlines()


def test_flask_usage_report_refuses_a_bad_date(runner):
    result = runner.invoke(args=["usage", "report", "--from", "May"])
    assert result.exit_code == 2
    assert "--from must be a date written YYYY-MM-DD" in result.output


def test_a_generation_shows_in_my_usage_as_the_quota_counts_it(client, auth, alice):
    """Through the real path: the generation service writes the ledger row,
    the quota settles; the usage panel and the quota agree on today."""
    response = client.post("/v1/generate", json={"prompt": "a banana"}, headers=auth.headers())
    assert response.status_code == 200, response.get_json()
    body = my_usage(client)
    today = [day for day in body["days"] if day["images"]]
    assert len(today) == 1 and today[0]["images"] == 1 and today[0]["calls"] == 1
    # The offline engine costs nothing; its image still counts.
    assert today[0]["cost_usd"] == 0
    assert body["quota"]["daily_images"]["used"] == 1
