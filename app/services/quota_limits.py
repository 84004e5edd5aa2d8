"""The limits a generation is reserved against, and the words of a refusal
(app/services/quota.py reserves; this module names and explains)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask import current_app

from app.errors import AppError, BudgetExhausted, QuotaExceeded
from app.i18n import N_, _l
from app.models import User
from app.services import periods, pricing

DAILY_IMAGES = "daily_images"
MONTHLY_IMAGES = "monthly_images"
MONTHLY_USD = "monthly_usd"
ANON_DAILY_IMAGES = "anon_daily_images"
BUDGET_MONTHLY_USD = "budget_monthly_usd"

# Which refusal a caller hears first when several limits are hit at once.
PRIORITY = (BUDGET_MONTHLY_USD, DAILY_IMAGES, ANON_DAILY_IMAGES, MONTHLY_IMAGES, MONTHLY_USD)

MESSAGES = {
    DAILY_IMAGES: N_(
        "Daily image quota: %(left)s of %(limit)s left, and this request asks for %(asked)s. "
        "It resets at %(resets)s."
    ),
    MONTHLY_IMAGES: N_(
        "Monthly image quota: %(left)s of %(limit)s left, and this request asks for "
        "%(asked)s. It resets at %(resets)s."
    ),
    MONTHLY_USD: N_(
        "Monthly spending quota: $%(left)s of $%(limit)s left, and this request is estimated "
        "at $%(asked)s. It resets at %(resets)s."
    ),
    ANON_DAILY_IMAGES: N_(
        "Daily image limit for guests at this address: %(left)s of %(limit)s left, and this "
        "request asks for %(asked)s. Log in to use your own quota, or try again after "
        "%(resets)s."
    ),
    BUDGET_MONTHLY_USD: N_(
        "This server's monthly spending budget has $%(left)s of $%(limit)s left, not enough "
        "for this request (estimated $%(asked)s). Generation resumes at %(resets)s."
    ),
}


@dataclass(frozen=True)
class Limit:
    name: str
    subject: str
    period: str
    usd: bool  # money (micro-dollars) rather than images
    value: int | None  # None: unlimited, counted all the same
    resets_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.subject, self.period)


def refusal_error(limit: Limit, held: int, images: int, micro: int) -> AppError:
    left = max(0, limit.value - held)
    if limit.usd:
        figures = {
            "used": usd(held),
            "limit_value": usd(limit.value),
            "left": usd(left),
            "asked": usd(micro),
        }
        shown = {name: f"{value:.2f}" for name, value in figures.items()}
    else:
        figures = {"used": held, "limit_value": limit.value, "left": left, "asked": images}
        shown = dict(figures)
    resets = periods.zone()
    local = limit.resets_at.astimezone(resets)
    message = _l(
        MESSAGES[limit.name],
        left=shown["left"],
        limit=shown["limit_value"],
        asked=shown["asked"],
        resets=f"{local:%Y-%m-%d %H:%M} ({resets.key})",
    )
    retry_after = max(1.0, (limit.resets_at - periods.now_utc()).total_seconds())
    error_class = BudgetExhausted if limit.name == BUDGET_MONTHLY_USD else QuotaExceeded
    return error_class(
        message,
        retry_after=math.ceil(retry_after),
        extra={"limit": limit.name, **figures, "resets_at": limit.resets_at.isoformat()},
    )


def usd(micro: int) -> float:
    return round(float(pricing.from_micro(micro)), 4)


# ---- the limits' settings ------------------------------------------------


def int_setting(value) -> int | None:
    if value is None or value == "":
        return None
    return max(0, int(value))


def usd_setting(value) -> Decimal | None:
    if value is None or value == "":
        return None
    return max(Decimal(0), Decimal(str(value)))


def validate(config) -> None:
    """Refuse malformed settings at start rather than at the first image."""
    for name in ("QUOTA_DAILY_IMAGES", "QUOTA_MONTHLY_IMAGES", "ANON_DAILY_IMAGES"):
        int_setting(config.get(name))
    for name in ("QUOTA_MONTHLY_USD", "BUDGET_MONTHLY_USD"):
        usd_setting(config.get(name))
    periods.zone(config.get("QUOTA_TIMEZONE") or "UTC")
    pricing.validate(config)


def effective_limits(user: User) -> dict:
    """The user's limits: their own override, else the config default;
    None is unlimited."""
    config = current_app.config
    own = (user.quota_daily_images, user.quota_monthly_images, user.quota_monthly_usd)
    return {
        DAILY_IMAGES: own[0] if own[0] is not None else int_setting(config["QUOTA_DAILY_IMAGES"]),
        MONTHLY_IMAGES: own[1]
        if own[1] is not None
        else int_setting(config["QUOTA_MONTHLY_IMAGES"]),
        MONTHLY_USD: Decimal(own[2])
        if own[2] is not None
        else usd_setting(config["QUOTA_MONTHLY_USD"]),
    }
