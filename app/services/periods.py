"""Days and months of QUOTA_TIMEZONE (default UTC), as UTC instants.

Quotas reset and usage is counted at midnight there, and the month is the
calendar month there. Every bound is half-open, [start, end), aware and in
UTC, which is how the database stores times. A day is 23 or 25 hours long
when the zone changes its clocks; the bounds follow the wall clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(tz: ZoneInfo | str | None = None) -> ZoneInfo:
    """`tz`, or QUOTA_TIMEZONE of the app in context, or UTC."""
    if isinstance(tz, ZoneInfo):
        return tz
    if tz is None and has_app_context():
        tz = current_app.config.get("QUOTA_TIMEZONE")
    return _zone(tz or "UTC")


def now_utc() -> datetime:
    return datetime.now(UTC)


def today(tz: ZoneInfo | str | None = None, *, now: datetime | None = None) -> date:
    return (now or now_utc()).astimezone(zone(tz)).date()


def midnight(day: date, tz: ZoneInfo | str | None = None) -> datetime:
    """The UTC instant at which `day` starts in the zone."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def day_bounds(day: date, tz: ZoneInfo | str | None = None) -> tuple[datetime, datetime]:
    return midnight(day, tz), midnight(day + timedelta(days=1), tz)


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return next_month(day) - timedelta(days=1)


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_bounds(day: date, tz: ZoneInfo | str | None = None) -> tuple[datetime, datetime]:
    return midnight(month_start(day), tz), midnight(next_month(day), tz)


def next_midnight(tz: ZoneInfo | str | None = None, *, now: datetime | None = None) -> datetime:
    """When the current day's quota resets (UTC)."""
    return midnight(today(tz, now=now) + timedelta(days=1), tz)


def next_month_start(tz: ZoneInfo | str | None = None, *, now: datetime | None = None) -> datetime:
    """When the current month's quota and budget reset (UTC)."""
    return midnight(next_month(today(tz, now=now)), tz)
