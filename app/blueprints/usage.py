"""Usage over HTTP: a user's own (`/me/usage`) and the install's, for admins
(`/admin/usage`, JSON or a CSV file). Days are QUOTA_TIMEZONE's."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from app.blueprints.admin import require_admin
from app.services import quota, usage
from app.web.pipeline import require_user
from app.web.schemas.common import ErrorOut, error_responses
from app.web.schemas.usage import AdminUsageOut, AdminUsageQuery, MyUsageOut, UsageQuery

bp = APIBlueprint(
    "usage", __name__, abp_tags=[Tag(name="usage")], abp_responses=error_responses(400, 401)
)

# Excel reads a CSV without it as the local code page: Chinese names garbled.
UTF8_BOM = "\ufeff"


def _period(query: UsageQuery) -> tuple:
    return (
        usage.parse_date(query.date_from, "from"),
        usage.parse_date(query.date_to, "to"),
    )


@bp.get("/me/usage", responses={200: MyUsageOut})
def my_usage(query: UsageQuery):
    """The caller's images and estimated cost per day and per model over a
    range (default: this month), what is left of each quota and when it
    resets, and whether the install's monthly budget is spent."""
    user = require_user()
    report = usage.usage_for(user, *_period(query))
    report["quota"] = quota.status_for(user)
    budget = quota.budget_status()
    if not user.is_admin:
        budget = {key: budget[key] for key in ("exhausted", "resets_at")}
    report["budget"] = budget
    out = MyUsageOut.model_validate(report)
    return out.model_dump(mode="json", by_alias=True, exclude_unset=True)


@bp.get("/admin/usage", responses={200: AdminUsageOut, 403: ErrorOut})
def admin_usage(query: AdminUsageQuery):
    """The install's usage over a range (default: this month), by day, user
    or model, with a total. `format=csv` answers a file to download (cells
    a spreadsheet would run as a formula are prefixed with `'`)."""
    require_admin()
    report = usage.install_usage(*_period(query), query.group_by)
    if query.format == "csv":
        lines = usage.csv_lines(report["items"], report["group_by"])
        name = f"nano-banana-usage-{report['from']}-{report['to']}.csv"
        response = Response(_with_bom(lines), mimetype="text/csv")
        response.headers["Content-Disposition"] = f"attachment; filename={name}"
        response.headers["Cache-Control"] = "no-store"
        return response
    out = AdminUsageOut.model_validate(report)
    return out.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _with_bom(lines):
    yield UTF8_BOM
    yield from lines
