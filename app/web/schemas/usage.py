"""Usage request and response models: /me/usage and /admin/usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PlainSerializer

from app.web.schemas.common import Schema

# Money is Decimal in Python and a JSON number in the API, to four places.
Usd = Annotated[Decimal, PlainSerializer(lambda value: round(float(value), 4), return_type=float)]
# A quota's figure: images (int) or US dollars (a number).
Amount = Annotated[
    int | float,
    PlainSerializer(
        lambda value: value if isinstance(value, int) else round(value, 4),
        return_type=int | float,
    ),
]

_DATE = {"format": "date", "example": "2026-12-01"}


class UsageQuery(Schema):
    # Dates are read by the usage service, so a malformed one is a 400
    # saying which, like a range that is back to front or too long.
    model_config = ConfigDict(populate_by_name=True)

    date_from: str | None = Field(
        None,
        alias="from",
        description="First day, YYYY-MM-DD, in QUOTA_TIMEZONE (default: the first of to's month)",
        json_schema_extra=_DATE,
    )
    date_to: str | None = Field(
        None,
        alias="to",
        description="Last day, included (default: the last day of this month); 366 days at most",
        json_schema_extra=_DATE,
    )


class AdminUsageQuery(UsageQuery):
    group_by: Literal["day", "user", "model"] = "day"
    format: Literal["json", "csv"] = Field(
        "json", description="csv: a file to download, with a header row"
    )


class DayUsage(Schema):
    date: dt.date
    images: int
    cost_usd: Usd
    calls: int = Field(description="Upstream attempts, failures and retries included")


class ModelUsage(Schema):
    model: str
    images: int
    cost_usd: Usd
    calls: int


class Totals(Schema):
    images: int
    cost_usd: Usd
    calls: int


class Limit(Schema):
    used: Amount
    limit: Amount | None = Field(description="null: unlimited")
    resets_at: dt.datetime | None = None


class QuotaOut(Schema):
    daily_images: Limit
    monthly_images: Limit
    monthly_usd: Limit


class BudgetOut(Schema):
    """The install's monthly budget (BUDGET_MONTHLY_USD): every user learns
    whether it is spent and when it resets; only admins see the figures."""

    exhausted: bool
    resets_at: dt.datetime | None = None
    used_usd: Usd | None = None
    limit_usd: Usd | None = Field(None, description="null: no budget")


class MyUsageOut(Schema):
    model_config = ConfigDict(populate_by_name=True)

    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    timezone: str = Field(description="QUOTA_TIMEZONE: the zone of the days")
    quota: QuotaOut
    budget: BudgetOut
    days: list[DayUsage] = Field(description="Every day of the range, days without use as 0")
    models: list[ModelUsage]
    total: Totals


class UsageRow(Schema):
    """One row of the admin's report: `date` (group_by=day), `model`
    (group_by=model) or `user_id`, `username` and `account` (group_by=user)."""

    date: dt.date | None = None
    model: str | None = None
    user_id: int | None = None
    username: str | None = None
    account: Literal["user", "anonymous", "deleted"] | None = Field(
        None,
        description="anonymous: callers without an account; deleted: accounts deleted since",
    )
    images: int
    cost_usd: Usd
    calls: int


class AdminUsageOut(Schema):
    model_config = ConfigDict(
        populate_by_name=True,
        openapi_extra={
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "date,images,cost_usd,calls\r\n2026-12-01,3,0.117000,4\r\n",
                }
            }
        },
    )

    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    timezone: str
    group_by: Literal["day", "user", "model"]
    items: list[UsageRow]
    total: Totals
