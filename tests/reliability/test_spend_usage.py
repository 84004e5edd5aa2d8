"""Reliability of the usage routes: schemathesis over /me/usage and
/admin/usage as every kind of caller (the suite-wide fuzz has no admin, so
/admin/usage would only ever answer 403 there), hostile query strings, and
the bucketing of days checked against Python's own zone arithmetic on
random ledgers in zones that change their clocks."""

from __future__ import annotations

import collections
import contextlib
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from hypothesis import errors as hypothesis_errors
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.extensions import db
from app.models import UsageRecord
from app.services import accounts, usage
from tests.reliability.support import FUZZ, NO_LIMITS, PLAIN, RELIABILITY, report
from tests.reliability.test_api_fuzz import CHECKS
from tests.support.app import make_app

EXAMPLES = 150 if FUZZ else 25
PASSWORD = "fuzz-pass-123"
ROUTES = ("GET /me/usage", "GET /admin/usage")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe")


class World:
    def __init__(self, tmp_path) -> None:
        self.app = make_app(tmp_path, **NO_LIMITS)
        with self.app.app_context():
            root = accounts.create_user("root", PASSWORD, is_admin=True)
            alice = accounts.create_user("alice", PASSWORD)
            rng = random.Random(12)
            start = datetime.now(UTC) - timedelta(days=60)
            db.session.add_all(
                UsageRecord(
                    created_at=start + timedelta(minutes=rng.randrange(90 * 24 * 60)),
                    user_id=rng.choice([root.id, alice.id, None]),
                    anon_address="203.0.113.9" if rng.random() < 0.2 else None,
                    kind="generate",
                    model=rng.choice(["gemini-2.5-flash-image", "=cmd()", "-m"]),
                    images=rng.randrange(3),
                    cost_usd=Decimal("0.039"),
                    billed=rng.random() < 0.8,
                    outcome="ok",
                )
                for _ in range(300)
            )
            db.session.commit()
        self.schema = schemathesis.openapi.from_wsgi("/openapi.json", self.app)
        self.callers = {"anonymous": ({}, {})}
        for name in ("root", "alice"):
            client = self.app.test_client()
            body = client.post(
                "/auth/login", json={"username": name, "password": PASSWORD}
            ).get_json()
            csrf = {"X-CSRF-Token": body["csrf_token"]}
            token = client.post("/auth/tokens", json={"name": "fuzz"}, headers=csrf).get_json()
            self.callers[f"{name}-session"] = (
                csrf,
                {"nb_session": client.get_cookie("nb_session").value},
            )
            self.callers[f"{name}-bearer"] = ({"Authorization": f"Bearer {token['token']}"}, {})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("usage-fuzz"))
    yield world
    world.app.extensions["genai"].close()


def _fuzz(world, operation, caller, mode, tally, failures) -> None:
    @settings(RELIABILITY, max_examples=EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        headers, cookies = world.callers[caller]
        response = case.call(headers={**headers, **PLAIN}, cookies=dict(cookies))
        tally[(operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as failure:  # schemathesis' FailureGroup
            if isinstance(failure, KeyboardInterrupt):
                raise
            failures.append((operation.label, str(failure)[:800]))
        if response.status_code >= 400:
            body = response.json()
            if not (body.get("error") and body.get("message") == body.get("detail")):
                failures.append((operation.label, f"not the error shape: {body}"))

    with contextlib.suppress(hypothesis_errors.Unsatisfiable):
        run()


@pytest.mark.slow
@pytest.mark.parametrize(
    "caller", ["anonymous", "alice-session", "alice-bearer", "root-session", "root-bearer"]
)
def test_usage_routes_survive_fuzzing(world, caller):
    tally: collections.Counter[tuple[str, int]] = collections.Counter()
    failures = []
    operations = [op.ok() for op in world.schema.get_all_operations() if op.ok().label in ROUTES]
    assert sorted(op.label for op in operations) == sorted(ROUTES)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(world, operation, caller, mode, tally, failures)
    report(f"usage_fuzz[{caller}]", statuses=dict(sorted(tally.items())), failures=len(failures))
    assert not failures, "\n\n".join(f"{label}: {message}" for label, message in failures[:10])
    assert not any(status >= 500 for _, status in tally)
    statuses = {label: {status for (seen, status) in tally if seen == label} for label in ROUTES}
    # Who may read what, whatever the query.
    if caller == "anonymous":
        # 422: flask-openapi3 checks the query's enums before the view runs.
        assert statuses["GET /me/usage"] <= {401} and statuses["GET /admin/usage"] <= {401, 422}
    elif caller == "root-session":
        assert 200 in statuses["GET /admin/usage"]
    else:
        assert 200 not in statuses["GET /admin/usage"]
    if caller != "anonymous":
        assert 200 in statuses["GET /me/usage"]


_text = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A-?[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}\Z"),
    st.dates().map(date.isoformat),
    st.sampled_from(["", "0000-00-00", "2026-02-29", "2028-02-29", "9999-12-31", "１２３"]),
)


@settings(RELIABILITY, max_examples=EXAMPLES * 4)
@given(
    date_from=st.none() | _text,
    date_to=st.none() | _text,
    group_by=st.none() | st.sampled_from(["day", "user", "model", "week", ""]),
    fmt=st.none() | st.sampled_from(["json", "csv", "xml"]),
)
def test_hostile_query_strings_get_an_answer_in_the_error_shape(
    world, date_from, date_to, group_by, fmt
):
    headers, cookies = world.callers["root-session"]
    client = world.app.test_client()
    client.set_cookie("nb_session", cookies["nb_session"])
    query = {
        key: value
        for key, value in (
            ("from", date_from),
            ("to", date_to),
            ("group_by", group_by),
            ("format", fmt),
        )
        if value is not None
    }
    for path in ("/me/usage", "/admin/usage"):
        response = client.get(path, query_string=query, headers=headers)
        assert response.status_code in (200, 400, 422), (path, query, response.status_code)
        if response.status_code == 200:
            continue
        body = response.get_json()
        assert body["error"] in ("invalid_date", "validation_error"), body
        assert body["message"] == body["detail"]


# ---- the days add up ----------------------------------------------------------


@pytest.fixture(scope="module")
def zone_apps(tmp_path_factory):
    apps = {zone: make_app(tmp_path_factory.mktemp("zone"), QUOTA_TIMEZONE=zone) for zone in ZONES}
    yield apps
    for app in apps.values():
        app.extensions["genai"].close()


@settings(RELIABILITY, max_examples=EXAMPLES)
@given(
    zone=st.sampled_from(ZONES),
    first=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 1)),
    length=st.integers(min_value=1, max_value=60),
    minutes=st.lists(st.integers(min_value=-2 * 24 * 60, max_value=62 * 24 * 60), max_size=60),
)
def test_every_attempt_lands_on_its_local_day_exactly_once(zone_apps, zone, first, length, minutes):
    """Rows around the range (before, inside, after, across clock changes)
    are counted on the day Python's zoneinfo puts them, and only inside it."""
    app = zone_apps[zone]
    last = first + timedelta(days=length - 1)
    origin = datetime.combine(first, datetime.min.time(), tzinfo=ZoneInfo(zone))
    times = [(origin + timedelta(minutes=m)).astimezone(UTC) for m in minutes]
    with app.app_context():
        db.session.query(UsageRecord).delete()
        db.session.add_all(
            UsageRecord(
                created_at=when, user_id=None, kind="generate", model="m",
                images=1, cost_usd=Decimal("0.01"), billed=True, outcome="ok",
            )
            for when in times
        )  # fmt: skip
        db.session.commit()
        days = usage.install_usage(first, last, "day")["items"]
    expected = collections.Counter(
        when.astimezone(ZoneInfo(zone)).date()
        for when in times
        if first <= when.astimezone(ZoneInfo(zone)).date() <= last
    )
    assert [row["date"] for row in days] == [first + timedelta(days=n) for n in range(length)]
    assert {row["date"]: row["images"] for row in days if row["images"]} == dict(expected)
