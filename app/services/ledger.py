"""The ledger of upstream calls: one usage_ledger row per attempt (a retry is
an attempt of its own), with who asked, what came back and what it cost by
the billing rule of app/services/pricing.py.

Only the generation service writes here; the usage service reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy.orm import Session

from app.db import write_transaction
from app.models import UsageRecord
from app.services import pricing
from app.services.genai.service import Attempt
from app.services.quota import Caller


def record_attempt(
    caller: Caller, *, kind: str, image_size: str | None, provider: str, attempt: Attempt
) -> Decimal:
    return record_attempts(
        caller, kind=kind, image_size=image_size, provider=provider, attempts=[attempt]
    )


def record_attempts(
    caller: Caller,
    *,
    kind: str,
    image_size: str | None,
    provider: str,
    attempts: Iterable[Attempt],
    session: Session | None = None,
) -> Decimal:
    """A row per attempt, in one transaction (or in `session`'s, which the
    caller commits); the billed cost of them all."""
    rows = [_row(caller, kind, image_size, provider, attempt) for attempt in attempts]
    if session is not None:
        session.add_all(rows)
    elif rows:
        with write_transaction() as own:
            own.add_all(rows)
    return sum((row.cost_usd for row in rows), Decimal(0))


def billed_cost(provider: str, image_size: str | None, attempts: Iterable[Attempt]) -> Decimal:
    """What the attempts cost by the billing rule (what record_attempts writes)."""
    return sum((_cost(provider, image_size, attempt) for attempt in attempts), Decimal(0))


def _cost(provider: str, image_size: str | None, attempt: Attempt) -> Decimal:
    if not pricing.is_billed(provider, attempt.answered):
        return Decimal(0)
    return pricing.cost_of(attempt.model, image_size, attempt.images, attempt.usage)


def _row(caller: Caller, kind: str, image_size, provider: str, attempt: Attempt) -> UsageRecord:
    usage = attempt.usage or {}
    return UsageRecord(
        created_at=attempt.started_at,
        user_id=caller.user_id,
        token_id=caller.token_id,
        anon_address=None if caller.user is not None else caller.address,
        request_id=caller.request_id,
        kind=kind,
        model=attempt.model,
        image_size=image_size,
        images=attempt.images,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
        cost_usd=_cost(provider, image_size, attempt),
        billed=pricing.is_billed(provider, attempt.answered),
        outcome=attempt.outcome,
        duration_ms=attempt.duration_ms,
        attempt=attempt.number,
    )
