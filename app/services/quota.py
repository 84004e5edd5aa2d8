"""Quotas and the install's budget, reserved before the upstream is called.

Every generation reserves its images (and their estimated cost) on the
counters that apply to its caller: the user's day and month (a token counts
against its owner), an anonymous address's day, and the install's month.
Each counter is one row per subject and period; a reservation is one
conditional UPDATE per row, ``reserved = reserved + n WHERE used + reserved +
n <= limit``, all inside one write transaction (app/db.py: on SQLite it takes
the write lock up front, on PostgreSQL the UPDATE locks and re-checks the
row), so no number of requests at the edge can pass one image too many. A
request that doesn't fit is refused whole, before the upstream.

After the call, ``settle`` moves what was used from reserved to used and
``release`` gives everything back. A reservation carries an expiry: one left
behind by a crashed process is swept back once it has expired.

Usage is counted whether or not a limit is set, so a limit set mid-month
starts from what was really used. Rows are locked in one order (sorted keys)
so two transactions never wait on each other crosswise.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db import write_transaction
from app.errors import AppError, Busy
from app.extensions import db
from app.models import QuotaCounter, QuotaReservation, User
from app.services import periods, pricing, quota_limits
from app.services.quota_limits import (  # the names are part of this module's API
    ANON_DAILY_IMAGES,
    BUDGET_MONTHLY_USD,
    DAILY_IMAGES,
    MONTHLY_IMAGES,
    MONTHLY_USD,
    PRIORITY,
    Limit,
    effective_limits,
    int_setting,
    refusal_error,
    usd,
    usd_setting,
)

# Part of this module's API: the factory validates the settings through it.
validate = quota_limits.validate

log = logging.getLogger("nano_banana.quota")

INSTALL = "install"
# Longest a reservation may be held past the GenAI deadline before a sweep
# takes it back (decoding before, storing after the upstream call).
RESERVATION_MARGIN_S = 120
SWEEP_EVERY_S = 60
SWEEP_BATCH = 200


@dataclass(frozen=True)
class Caller:
    """Who a generation is for: a user (directly or through one of their API
    tokens), or an anonymous address; request_id ties the ledger to the logs."""

    user: User | None = None
    token_id: int | None = None
    address: str | None = None
    request_id: str | None = None
    # Read once: after a commit the user's attributes would be loaded again.
    user_id: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_id", self.user.id if self.user is not None else None)


# ---- limits -----------------------------------------------------------------


def _day_key(day) -> str:
    return f"d:{day.isoformat()}"


def _month_key(day) -> str:
    return f"m:{day.year:04d}-{day.month:02d}"


def _micro(amount: Decimal | None) -> int | None:
    return None if amount is None else pricing.to_micro(amount)


def _user_limits(user: User, day, now: datetime) -> list[Limit]:
    limits = effective_limits(user)
    subject = f"user:{user.id}"
    next_day, next_month = periods.next_midnight(now=now), periods.next_month_start(now=now)
    return [
        Limit(DAILY_IMAGES, subject, _day_key(day), False, limits[DAILY_IMAGES], next_day),
        Limit(MONTHLY_IMAGES, subject, _month_key(day), False, limits[MONTHLY_IMAGES], next_month),
        Limit(MONTHLY_USD, subject, _month_key(day), True, _micro(limits[MONTHLY_USD]), next_month),
    ]


def _limits_for(caller: Caller, now: datetime) -> list[Limit]:
    config = current_app.config
    day = periods.today(now=now)
    limits: list[Limit] = []
    if caller.user is not None:
        limits += _user_limits(caller.user, day, now)
    elif caller.address:
        limits.append(
            Limit(
                ANON_DAILY_IMAGES,
                f"addr:{caller.address}"[:80],
                _day_key(day),
                False,
                int_setting(config["ANON_DAILY_IMAGES"]),
                periods.next_midnight(now=now),
            )
        )
    budget = _micro(usd_setting(config["BUDGET_MONTHLY_USD"]))
    limits.append(
        Limit(
            BUDGET_MONTHLY_USD,
            INSTALL,
            _month_key(day),
            True,
            budget,
            periods.next_month_start(now=now),
        )
    )
    return limits


# ---- reserving ----------------------------------------------------------------


@dataclass
class Reservation:
    id: str
    counters: list[tuple[str, str]]
    images: int
    micro_usd: int
    done: bool = field(default=False)

    @property
    def estimate(self) -> Decimal:
        return pricing.from_micro(self.micro_usd)

    def settle(
        self, used_images: int, cost: Decimal, also: Callable[[Session], None] | None = None
    ) -> None:
        """What the request used stays counted; the rest of the hold goes back.
        `also` writes in the same transaction (the ledger's rows): one commit."""
        if self.done:
            return
        _finish(self, max(0, used_images), pricing.to_micro(max(Decimal(0), cost)), also)
        self.done = True

    def release(self) -> None:
        self.settle(0, Decimal(0))


class _Refused(Exception):
    def __init__(self, error: AppError) -> None:
        self.error = error


def reserve(
    caller: Caller,
    images: int,
    model: str,
    image_size: str | None,
    *,
    provider: str = "gemini",
    now: datetime | None = None,
) -> Reservation:
    """Hold `images` images and their estimated cost on every counter of the
    caller, or raise QuotaExceeded / BudgetExhausted and hold nothing."""
    now = now or periods.now_utc()
    estimate = (
        pricing.estimate(model, image_size, images)
        if pricing.is_billed(provider, answered=True)
        else Decimal(0)
    )
    micro = pricing.to_micro(estimate)
    limits = _limits_for(caller, now)
    _sweep_now_and_then(now)
    try:
        return _reserve(limits, images, micro, now)
    except _Refused as refused:
        # A crashed process's holds may be all that is in the way.
        if sweep(now) == 0:
            raise refused.error from None
    try:
        return _reserve(limits, images, micro, now)
    except _Refused as refused:
        raise refused.error from None


# Plain SQL, the same on SQLite and PostgreSQL, compiled once: a reservation
# is on every generation's path. A limit not set is UNLIMITED, so one
# statement serves every row.
UNLIMITED = 2**62
_HOLD = text(
    "UPDATE quota_counters"
    " SET reserved_images = reserved_images + :images,"
    " reserved_micro_usd = reserved_micro_usd + :micro"
    " WHERE subject = :subject AND period = :period"
    " AND used_images + reserved_images + :images <= :image_limit"
    " AND used_micro_usd + reserved_micro_usd + :micro <= :usd_limit"
    # A money limit reached refuses even a free call (the offline engine).
    " AND used_micro_usd + reserved_micro_usd < :usd_limit"
)
_CREATE = text(
    "INSERT INTO quota_counters"
    " (subject, period, used_images, reserved_images, used_micro_usd, reserved_micro_usd)"
    " VALUES (:subject, :period, 0, 0, 0, 0) ON CONFLICT DO NOTHING"
)
_MOVE = text(
    "UPDATE quota_counters"
    " SET reserved_images = reserved_images - :images,"
    " reserved_micro_usd = reserved_micro_usd - :micro,"
    " used_images = used_images + :used_images,"
    " used_micro_usd = used_micro_usd + :used_micro"
    " WHERE subject = :subject AND period = :period"
)
_DROP = text("DELETE FROM quota_reservations WHERE id = :id")
_KEEP = QuotaReservation.__table__.insert()


def _reserve(limits: list[Limit], images: int, micro: int, now: datetime) -> Reservation:
    keys = sorted({limit.key for limit in limits})
    reservation = Reservation(uuid.uuid4().hex, keys, images, micro)
    holds = [
        {
            "subject": key[0],
            "period": key[1],
            "images": images,
            "micro": micro,
            "image_limit": _limit_of([limit for limit in limits if limit.key == key], usd=False),
            "usd_limit": _limit_of([limit for limit in limits if limit.key == key], usd=True),
        }
        for key in keys
    ]
    keep = {
        "id": reservation.id,
        "counters": [list(key) for key in keys],
        "images": images,
        "micro_usd": micro,
        "created_at": now,
        "expires_at": now + timedelta(seconds=_hold_seconds()),
    }
    try:
        with write_transaction() as session:
            # The usual case, in one round trip: every row there, every hold fits
            # (the rows are taken in `keys` order, as everywhere).
            if session.execute(_HOLD, holds).rowcount != len(holds):
                raise _Shortfall
            session.execute(_KEEP, keep)
        return reservation
    except _Shortfall:
        pass
    for _ in range(SLOW_PATH_TRIES):
        with write_transaction() as session:
            if _hold_all(session, holds):
                session.execute(_KEEP, keep)
                return reservation
            # Read the figures without this transaction's own holds.
            session.rollback()
            refusal = _refusal(session, limits, images, micro)
        if refusal is not None:
            raise _Refused(refusal)
        # Nothing is over its limit any more: a hold was given back between
        # the UPDATE and the read. Try again.
    raise _Refused(_refusal(None, limits, images, micro, assume_full=True))


# How often a reservation is retried when a refusal finds every limit with
# room (holds given back concurrently); then it is refused as full.
SLOW_PATH_TRIES = 3


def _hold_all(session: Session, holds: list[dict]) -> bool:
    for hold in holds:
        if session.execute(_HOLD, hold).rowcount == 1:
            continue
        # No row yet for this period: the first use creates it. Another
        # transaction may be creating it at this moment (on PostgreSQL the
        # insert then waits for it and does nothing): hold on whichever row
        # is there now.
        session.execute(_CREATE, hold)
        if session.execute(_HOLD, hold).rowcount != 1:
            return False
    return True


class _Shortfall(Exception):
    """Some hold didn't take: a row to create first, or a refusal to explain."""


def _limit_of(limits: list[Limit], *, usd: bool) -> int:
    values = [limit.value for limit in limits if limit.usd == usd and limit.value is not None]
    return min(values, default=UNLIMITED)


def _hold_seconds() -> float:
    return float(current_app.config["GENAI_DEADLINE_S"]) + RESERVATION_MARGIN_S


def _refusal(
    session: Session | None,
    limits: list[Limit],
    images: int,
    micro: int,
    *,
    assume_full: bool = False,
) -> AppError | None:
    """The error for the most important limit that doesn't fit, with its
    figures; None when every limit has room after all."""
    if assume_full:
        limited = [limit for limit in limits if limit.value is not None]
        if not limited:  # nothing to be over: only contention, come back soon
            return Busy(retry_after=1)
        return refusal_error(limited[0], limited[0].value, images, micro)
    rows = {
        (row.subject, row.period): row
        for row in session.execute(
            select(QuotaCounter).where(
                QuotaCounter.subject.in_({limit.subject for limit in limits})
            )
        ).scalars()
    }
    failing = []
    for limit in limits:
        row = rows.get(limit.key)  # None: first use (its insert was rolled back)
        if limit.value is None:
            continue
        if limit.usd:
            held = (row.used_micro_usd + row.reserved_micro_usd) if row else 0
            if held + micro > limit.value or held >= limit.value:
                failing.append((limit, held))
        else:
            held = (row.used_images + row.reserved_images) if row else 0
            if held + images > limit.value:
                failing.append((limit, held))
    if not failing:  # changed under us between the UPDATE and this read
        return None
    limit, held = min(failing, key=lambda item: PRIORITY.index(item[0].name))
    return refusal_error(limit, held, images, micro)


# ---- settling ----------------------------------------------------------------


def _finish(reservation: Reservation, used_images: int, used_micro: int, also=None) -> None:
    with write_transaction() as session:
        if also is not None:
            also(session)
        held = session.execute(_DROP, {"id": reservation.id}).rowcount
        # Swept already (it outlived its expiry): the hold is gone, the use stays.
        images, micro = (reservation.images, reservation.micro_usd) if held else (0, 0)
        _apply(session, reservation.counters, images, micro, used_images, used_micro)


def _apply(session, keys, held_images, held_micro, used_images=0, used_micro=0) -> None:
    """Give back a hold and count what was used, on each of its counters."""
    if not (held_images or held_micro or used_images or used_micro):
        return
    moves = [
        {
            "subject": subject,
            "period": period,
            "images": held_images,
            "micro": held_micro,
            "used_images": used_images,
            "used_micro": used_micro,
        }
        for subject, period in sorted(tuple(key) for key in keys)
    ]
    session.execute(_MOVE, moves)


_last_sweep = 0.0
_sweep_lock = threading.Lock()


def _sweep_now_and_then(now: datetime) -> None:
    global _last_sweep
    with _sweep_lock:
        if time.monotonic() - _last_sweep < SWEEP_EVERY_S:
            return
        _last_sweep = time.monotonic()
    try:
        sweep(now)
    except Exception:  # a failed sweep must not cost the request
        db.session.rollback()
        log.exception("quota sweep failed")


def sweep(now: datetime | None = None) -> int:
    """Give back the holds of reservations past their expiry; how many."""
    now = now or periods.now_utc()
    expired = (
        db.session.execute(
            select(QuotaReservation.id).where(QuotaReservation.expires_at <= now).limit(SWEEP_BATCH)
        )
        .scalars()
        .all()
    )
    if not expired:
        db.session.commit()
        return 0
    swept = 0
    with write_transaction() as session:
        for reservation in (
            session.execute(select(QuotaReservation).where(QuotaReservation.id.in_(expired)))
            .scalars()
            .all()
        ):
            if session.execute(_DROP, {"id": reservation.id}).rowcount:
                _apply(session, reservation.counters, reservation.images, reservation.micro_usd)
                swept += 1
    if swept:
        log.warning("quota: %d expired reservation(s) given back", swept)
    return swept


# ---- reading ----------------------------------------------------------------


def _counters(keys: list[tuple[str, str]]) -> dict[tuple[str, str], QuotaCounter]:
    subjects = {subject for subject, _ in keys}
    rows = db.session.execute(
        select(QuotaCounter).where(QuotaCounter.subject.in_(subjects))
    ).scalars()
    wanted = set(keys)
    return {(row.subject, row.period): row for row in rows if (row.subject, row.period) in wanted}


def status_for(user: User, now: datetime | None = None) -> dict:
    """The /me/usage `quota` object: per limit, used (reservations in flight
    included), limit (None: unlimited) and when it resets."""
    now = now or periods.now_utc()
    limits = _user_limits(user, periods.today(now=now), now)
    rows = _counters([limit.key for limit in limits])
    status = {}
    for limit in limits:
        row = rows.get(limit.key)
        if limit.usd:
            held = (row.used_micro_usd + row.reserved_micro_usd) if row else 0
            used, value = usd(held), None if limit.value is None else usd(limit.value)
        else:
            used = (row.used_images + row.reserved_images) if row else 0
            value = limit.value
        status[limit.name] = {
            "used": used,
            "limit": value,
            "resets_at": limit.resets_at.isoformat(),
        }
    return status


def budget_status(now: datetime | None = None) -> dict:
    """The install's month: estimated spend, budget (None: none), exhausted."""
    now = now or periods.now_utc()
    limit = _limits_for(Caller(), now)[-1]
    row = _counters([limit.key]).get(limit.key)
    held = (row.used_micro_usd + row.reserved_micro_usd) if row else 0
    return {
        "used_usd": usd(held),
        "limit_usd": None if limit.value is None else usd(limit.value),
        "exhausted": limit.value is not None and held >= limit.value,
        "resets_at": limit.resets_at.isoformat(),
    }


def budget_exhausted() -> bool:
    return budget_status()["exhausted"]


def forget_user(session: Session, user_id: int) -> None:
    """Drop a deleted user's counters, inside the deleting transaction: on
    SQLite a later user can be given the same id, and must start from zero."""
    session.execute(
        text("DELETE FROM quota_counters WHERE subject = :subject"),
        {"subject": f"user:{user_id}"},
    )
