"""What was spent: images and estimated cost from the usage ledger, by day,
model or user, for a user's usage panel, the admin's report and its CSV.

Read only: app/services/ledger.py writes the ledger, one row per upstream
attempt. The counting rule, in one place (`_IMAGES`, `_COST`, `_CALLS`):
images are the images the attempts returned (an error returns none),
cost is the estimated cost of the billed ones (which attempts are billed is
app/services/pricing.py's rule), calls are all the attempts, retries and
failures included.

Days are the days of QUOTA_TIMEZONE (app/services/periods.py), so a day
here is the day a quota resets on. Every query is one range scan of the
(user_id, created_at) or (created_at) index.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import String, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from app.errors import InvalidInput
from app.extensions import db
from app.i18n import _l
from app.models import UsageRecord, User
from app.services import periods

MAX_RANGE_DAYS = 366
# Dates a report can name: far from where date arithmetic overflows.
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
GROUPS = ("day", "user", "model")
MICRO = Decimal("0.000001")
# Spreadsheets run a cell that starts with one of these as a formula
# (OWASP, "CSV injection"); usernames and model ids are not ours to trust.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Keeps SQLite well under its bound-parameter limit on a long user list.
IN_CHUNK = 500

_IMAGES = func.coalesce(func.sum(UsageRecord.images), 0)
_COST = func.coalesce(
    func.sum(case((UsageRecord.billed.is_(True), UsageRecord.cost_usd), else_=0)), 0
)
_CALLS = func.count(UsageRecord.id)

CSV_COLUMNS = {
    "day": ("date", "images", "cost_usd", "calls"),
    "user": ("user_id", "username", "account", "images", "cost_usd", "calls"),
    "model": ("model", "images", "cost_usd", "calls"),
}


# ---- periods -------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Days `first` to `last`, both included, in QUOTA_TIMEZONE."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def bounds(self):
        return periods.midnight(self.first), periods.midnight(self.last + timedelta(days=1))


def parse_date(text: str | None, name: str) -> date | None:
    """A YYYY-MM-DD query value, or None when absent; InvalidInput otherwise."""
    if text is None or text == "":
        return None
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None or not EARLIEST <= day <= LATEST:
        raise InvalidInput(
            _l(
                "%(name)s must be a date written YYYY-MM-DD, from %(earliest)s to %(latest)s.",
                name=name,
                earliest=EARLIEST.isoformat(),
                latest=LATEST.isoformat(),
            ),
            code="invalid_date",
        )
    return day


def period(date_from: date | None = None, date_to: date | None = None) -> Period:
    """The range asked for. `to` defaults to the last day of the current
    month, `from` to the first day of `to`'s month: no dates at all is this
    month, days still to come included (a chart shows the whole month)."""
    last = date_to or periods.month_end(periods.today())
    first = date_from or periods.month_start(last)
    if first > last:
        raise InvalidInput(_l("from must not be after to."), code="invalid_date")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(
            _l("A range is at most %(days)s days.", days=MAX_RANGE_DAYS), code="invalid_date"
        )
    return Period(first, last)


# ---- queries -------------------------------------------------------------


class utc_prefix(FunctionElement):
    """A time in UTC as text cut to a date, an hour or a minute:
    "YYYY-MM-DD", "YYYY-MM-DD HH" or "YYYY-MM-DD HH:MM". SQLite stores times
    as that text already (a prefix, no parsing); PostgreSQL formats it."""

    type = String()
    inherit_cache = True
    # The length is part of the SQL: statements that differ in it must not
    # share a compiled form in SQLAlchemy's cache.
    _traverse_internals = [
        *FunctionElement._traverse_internals,
        ("length", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, column, length: int) -> None:
        self.length = length
        super().__init__(column)


_PG_FORMATS = {10: "YYYY-MM-DD", 13: "YYYY-MM-DD HH24", 16: "YYYY-MM-DD HH24:MI"}


@compiles(utc_prefix, "sqlite")
def _utc_prefix_sqlite(element, compiler, **kw):
    return f"substr({compiler.process(element.clauses, **kw)}, 1, {element.length})"


@compiles(utc_prefix, "postgresql")
def _utc_prefix_postgresql(element, compiler, **kw):
    column = compiler.process(element.clauses, **kw)
    return f"to_char({column} AT TIME ZONE 'UTC', '{_PG_FORMATS[element.length]}')"


def daily(span: Period, *where) -> list[dict]:
    """One row per day of the range, days without use included (a chart
    needs them): {date, images, cost_usd, calls}.

    SQL sums per UTC date, hour or minute, the coarsest that no local
    midnight of the range falls inside (a date in UTC, hours in most zones,
    minutes in Nepal's); Python adds each to the local day it belongs to.
    Exact across clock changes: every zone's midnight is a whole UTC minute
    (offsets have been whole minutes everywhere since 1972)."""
    days = span.days
    edges = [periods.midnight(day) for day in [*days, span.last + timedelta(days=1)]]
    if all(edge.hour == edge.minute == 0 for edge in edges):
        length, layout = 10, "%Y-%m-%d"
    elif all(edge.minute == 0 for edge in edges):
        length, layout = 13, "%Y-%m-%d %H"
    else:
        length, layout = 16, "%Y-%m-%d %H:%M"
    bucket = utc_prefix(UsageRecord.created_at, length)
    rows = db.session.execute(
        select(bucket, _IMAGES, _COST, _CALLS)
        .where(UsageRecord.created_at >= edges[0], UsageRecord.created_at < edges[-1], *where)
        .group_by(bucket)
    ).all()
    starts = [edge.strftime(layout) for edge in edges]
    totals = [[0, Decimal(0), 0] for _ in days]
    for at, images, cost, calls in rows:
        total = totals[bisect_right(starts, at) - 1]
        total[0] += int(images)
        total[1] += _money(cost)
        total[2] += calls
    return [
        {"date": day, "images": images, "cost_usd": cost, "calls": calls}
        for day, (images, cost, calls) in zip(days, totals, strict=True)
    ]


def by_model(span: Period, *where) -> list[dict]:
    """{model, images, cost_usd, calls}, dearest first."""
    lo, hi = span.bounds()
    rows = db.session.execute(
        select(UsageRecord.model, _IMAGES, _COST, _CALLS)
        .where(UsageRecord.created_at >= lo, UsageRecord.created_at < hi, *where)
        .group_by(UsageRecord.model)
    ).all()
    out = [
        {"model": model, "images": int(images), "cost_usd": _money(cost), "calls": calls}
        for model, images, cost, calls in rows
    ]
    return sorted(out, key=lambda row: (-row["cost_usd"], -row["images"], row["model"]))


def by_user(span: Period) -> list[dict]:
    """{user_id, username, account, images, cost_usd, calls}, dearest
    first. `account` is "user", "anonymous" (callers without an account, by
    address) or "deleted" (rows whose user has since been deleted)."""
    lo, hi = span.bounds()
    anonymous = case((UsageRecord.anon_address.is_not(None), 1), else_=0)
    rows = db.session.execute(
        select(UsageRecord.user_id, anonymous, _IMAGES, _COST, _CALLS)
        .where(UsageRecord.created_at >= lo, UsageRecord.created_at < hi)
        .group_by(UsageRecord.user_id, anonymous)
    ).all()
    names = _usernames({user_id for user_id, *_ in rows if user_id is not None})
    merged: dict[tuple, dict] = {}
    for user_id, is_anonymous, images, cost, calls in rows:
        if user_id is not None:
            key = (user_id, "user")
        else:
            key = (None, "anonymous" if is_anonymous else "deleted")
        row = merged.setdefault(
            key,
            {
                "user_id": key[0],
                "username": names.get(user_id),
                "account": key[1],
                "images": 0,
                "cost_usd": Decimal(0),
                "calls": 0,
            },
        )
        row["images"] += int(images)
        row["cost_usd"] += _money(cost)
        row["calls"] += calls
    return sorted(
        merged.values(),
        key=lambda row: (-row["cost_usd"], -row["images"], row["username"] or "", row["account"]),
    )


def usage_for(user: User, date_from: date | None = None, date_to: date | None = None) -> dict:
    """A user's usage panel, all but the quota and the budget (the quota
    service's): {from, to, timezone, days, models, total}."""
    span = period(date_from, date_to)
    mine = UsageRecord.user_id == user.id
    days = daily(span, mine)
    return {
        "from": span.first,
        "to": span.last,
        "timezone": periods.zone().key,
        "days": days,
        "models": by_model(span, mine),
        "total": _total(days),
    }


def install_usage(date_from: date | None, date_to: date | None, group_by: str) -> dict:
    """The whole install's usage over a range: {from, to, timezone,
    group_by, items, total}."""
    if group_by not in GROUPS:
        raise InvalidInput(
            _l("group_by must be one of: %(groups)s.", groups=", ".join(GROUPS)),
            code="invalid_group",
        )
    span = period(date_from, date_to)
    if group_by == "day":
        items = daily(span)
    elif group_by == "model":
        items = by_model(span)
    else:
        items = by_user(span)
    return {
        "from": span.first,
        "to": span.last,
        "timezone": periods.zone().key,
        "group_by": group_by,
        "items": items,
        "total": _total(items),
    }


def user_totals(user_ids: Iterable[int]) -> dict[int, dict]:
    """For the admin's user list: {user_id: {images_today, images_month,
    cost_month_usd}} for every id asked, zeros for those with no use."""
    ids = sorted(set(user_ids))
    today = periods.today()
    day_start, _ = periods.day_bounds(today)
    month_start, month_end = periods.month_bounds(today)
    today_only = case((UsageRecord.created_at >= day_start, UsageRecord.images), else_=0)
    images_today = func.coalesce(func.sum(today_only), 0)
    totals = {
        user_id: {"images_today": 0, "images_month": 0, "cost_month_usd": Decimal(0)}
        for user_id in ids
    }
    for start in range(0, len(ids), IN_CHUNK):
        rows = db.session.execute(
            select(UsageRecord.user_id, images_today, _IMAGES, _COST)
            .where(
                UsageRecord.user_id.in_(ids[start : start + IN_CHUNK]),
                UsageRecord.created_at >= month_start,
                UsageRecord.created_at < month_end,
            )
            .group_by(UsageRecord.user_id)
        ).all()
        for user_id, today_images, month_images, cost in rows:
            totals[user_id] = {
                "images_today": int(today_images),
                "images_month": int(month_images),
                "cost_month_usd": _money(cost),
            }
    return totals


# ---- rendering -----------------------------------------------------------


def csv_lines(items: list[dict], group_by: str) -> Iterator[str]:
    """The report as CSV, a header row first, one line at a time."""
    columns = CSV_COLUMNS[group_by]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in [columns, *([item.get(name) for name in columns] for item in items)]:
        writer.writerow([_csv_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def table_lines(report: dict) -> list[str]:
    """The report as an aligned text table with a total line (the CLI)."""
    columns = CSV_COLUMNS[report["group_by"]]
    rows = [[_text(item.get(name)) for name in columns] for item in report["items"]]
    total = report["total"]
    rows.append(
        [
            "total" if name == columns[0] else _text(total[name]) if name in total else ""
            for name in columns
        ]
    )
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(columns)]
    numeric = {"images", "cost_usd", "calls", "user_id"}

    def line(cells):
        return "  ".join(
            cell.rjust(width) if name in numeric else cell.ljust(width)
            for cell, width, name in zip(cells, widths, columns, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(columns), rule, *(line(row) for row in rows[:-1]), rule, line(rows[-1])]


# ---- helpers -------------------------------------------------------------


def _total(items: list[dict]) -> dict:
    return {
        "images": sum(item["images"] for item in items),
        "cost_usd": sum((item["cost_usd"] for item in items), Decimal(0)),
        "calls": sum(item["calls"] for item in items),
    }


def _money(value) -> Decimal:
    # SQLite sums NUMERIC as a float: back to the ledger's six places.
    return Decimal(str(value or 0)).quantize(MICRO)


def _usernames(user_ids: set[int]) -> dict[int, str]:
    ids = sorted(user_ids)
    names: dict[int, str] = {}
    for start in range(0, len(ids), IN_CHUNK):
        names.update(
            db.session.execute(
                select(User.id, User.username).where(User.id.in_(ids[start : start + IN_CHUNK]))
            ).all()
        )
    return names


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.6f}"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value:.4f}"
    return str(value)
