"""The ledger agrees with what the upstream saw: one row per attempt, billed
rows are the upstream's 200 answers, and their cost is the price table
applied to them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import UsageRecord
from app.services import pricing
from tests.fake_gemini import faults as fg
from tests.support.auth import AuthActions

# The documented defaults (app/services/pricing.py), written out again here
# so a change to the table is a change to this test too.
PRICE = {
    ("gemini-3.1-flash-image", None): Decimal("0.067"),
    ("gemini-3.1-flash-image", "2K"): Decimal("0.101"),
}
INPUT_PER_MILLION = Decimal("0.50")


def generate(client, auth, n=1, **body):
    return client.post(
        "/v1/generate",
        json={"prompt": "a banana", "candidate_count": n, **body},
        headers=auth.headers(),
    )


def ledger_rows(app) -> list[UsageRecord]:
    with app.app_context():
        rows = db.session.execute(select(UsageRecord).order_by(UsageRecord.id)).scalars().all()
        db.session.expunge_all()
        return rows


def answered_cost(call) -> Decimal:
    """The price table applied to one of the fake's answers."""
    size = (call.body.get("generationConfig", {}).get("imageConfig") or {}).get("imageSize")
    images = 1 if call.fault == "ok" else 0
    prompt_tokens = 12  # what every fake answer reports (faults._usage)
    return PRICE[(call.model, size)] * images + INPUT_PER_MILLION * prompt_tokens / 10**6


def test_after_a_mixed_run_the_ledger_agrees_with_the_upstream(gemini_app, fake_gemini):
    app = gemini_app(QUOTA_DAILY_IMAGES=4, GENAI_MAX_RETRIES=2)
    client = app.test_client()
    auth = AuthActions(client)
    auth.signup()
    no_wait = {"fault": "rate_limited", "retry_delay": None}
    fake_gemini.script(
        [
            no_wait, "overloaded", "ok",  # A: two retries, then an image
            "safety_finish",  # B: a 200 with the image withheld
            "blocked_prompt",  # C: a 200 refusing the prompt
            "ok", fg.server_error(500), "ok",  # D: 2 images at 2K, one retried
            "quota_per_day",  # E: the key's daily quota, not retried
        ]
    )  # fmt: skip

    statuses = [
        generate(client, auth).status_code,
        generate(client, auth).status_code,
        generate(client, auth).status_code,
        generate(client, auth, 2, image_size="2K").status_code,
        generate(client, auth).status_code,
    ]
    refused = generate(client, auth, 2)  # F: 3 made, 2 more asked, 4 a day: no

    assert statuses == [200, 422, 422, 200, 429]
    assert refused.status_code == 429 and refused.get_json()["error"] == "quota_exceeded"
    rows = ledger_rows(app)
    calls = fake_gemini.requests
    assert len(rows) == len(calls) == 9  # F never reached the upstream
    answered = [call for call in calls if call.status == 200]
    assert sum(row.billed for row in rows) == len(answered) == 5
    assert sum(row.cost_usd for row in rows) == sum(answered_cost(call) for call in answered)
    assert [row.outcome for row in rows] == [
        "upstream_rate_limited",
        "upstream_overloaded",
        "ok",
        "content_blocked",
        "content_blocked",
        "ok",
        "upstream_error",
        "ok",
        "upstream_quota_exhausted",
    ]
    assert [row.attempt for row in rows] == [1, 2, 3, 1, 1, 1, 1, 2, 1]
    assert [row.images for row in rows] == [0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert {row.image_size for row in rows[5:8]} == {"2K"}
    assert all(row.cost_usd == 0 for row in rows if not row.billed)
    assert {row.user_id for row in rows} == {auth.user["id"]}


def test_a_row_carries_the_request_id_tokens_and_duration(gemini_app, fake_gemini):
    app = gemini_app()
    client = app.test_client()
    auth = AuthActions(client)
    auth.signup()

    response = generate(client, auth)

    [row] = ledger_rows(app)
    assert row.request_id == response.headers["X-Request-ID"]
    assert (row.prompt_tokens, row.output_tokens, row.total_tokens) == (12, 1290, 1302)
    assert row.kind == "generate" and row.model == "gemini-3.1-flash-image"
    assert row.outcome == "ok" and row.billed and row.duration_ms >= 0
    assert row.cost_usd == Decimal("0.067006")


def test_the_offline_engine_is_recorded_but_never_billed(app_factory):
    app = app_factory()
    client = app.test_client()

    assert client.post("/v1/generate", json={"prompt": "a banana"}).status_code == 200

    [row] = ledger_rows(app)
    assert (row.outcome, row.images, row.billed, row.cost_usd) == ("ok", 1, False, 0)
    assert row.user_id is None and row.anon_address == "127.0.0.1"


def test_price_table_overrides_merge_over_the_defaults(app_factory):
    table = '{"gemini-3-pro-image": {"image": {"4K": 0.2}}, "relay-model": {"image": {"default": 0.05}}}'
    app = app_factory(PRICE_TABLE=table)
    with app.app_context():
        assert pricing.estimate("gemini-3-pro-image", "4K", 2) == Decimal("0.4")
        assert pricing.estimate("gemini-3-pro-image", "2K", 1) == Decimal("0.134")
        assert pricing.estimate("relay-model", None, 1) == Decimal("0.05")


def test_a_model_missing_from_the_table_is_priced_as_the_dearest_image(app_factory):
    app = app_factory()
    with app.app_context():
        assert pricing.estimate("someone-elses-model", None, 1) == Decimal("0.24")


def test_a_malformed_price_table_is_refused_at_start(app_factory):
    with pytest.raises(ValueError):
        app_factory(PRICE_TABLE='["not", "a", "table"]')
