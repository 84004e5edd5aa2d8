"""`flask usage report`: the install's usage over a period, the table the
admin panel shows and /admin/usage answers."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.errors import AppError


@click.group("usage", cls=AppGroup)
def usage_group() -> None:
    """Images and estimated cost from the usage ledger."""


@usage_group.command("report")
@click.option("--from", "date_from", metavar="YYYY-MM-DD", help="First day (default: month start).")
@click.option(
    "--to", "date_to", metavar="YYYY-MM-DD", help="Last day, included (default: month end)."
)
@click.option(
    "--group-by",
    type=click.Choice(["day", "user", "model"]),
    default="day",
    show_default=True,
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV (as /admin/usage?format=csv) instead.")
def report_command(date_from: str | None, date_to: str | None, group_by: str, as_csv: bool) -> None:
    """Print images, estimated cost and upstream calls per day, user or
    model. Days are QUOTA_TIMEZONE's."""
    from app.services import usage

    try:
        report = usage.install_usage(
            usage.parse_date(date_from, "--from"), usage.parse_date(date_to, "--to"), group_by
        )
    except AppError as error:
        raise click.BadParameter(error.text("en")) from None
    if as_csv:
        for line in usage.csv_lines(report["items"], group_by):
            click.echo(line, nl=False)
        return
    click.echo(f"usage {report['from']} to {report['to']} ({report['timezone']}), by {group_by}")
    for line in usage.table_lines(report):
        click.echo(line)
