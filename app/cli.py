"""Command-line tools: `flask create-user`, `flask sessions cleanup`
(and `flask db upgrade` from Flask-Migrate)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext


def register_cli(app: Flask) -> None:
    app.cli.add_command(create_user_command)
    app.cli.add_command(sessions_group)


@click.command("create-user")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@with_appcontext
def create_user_command(username: str, password: str, admin: bool) -> None:
    """Create an account (works even when sign-up is disabled)."""
    from app.errors import AppError
    from app.services import accounts

    try:
        user = accounts.create_user(username, password, is_admin=admin)
    except AppError as error:
        raise click.ClickException(error.message_en) from None
    click.echo(f"created user {user.username} (id {user.id}{', admin' if admin else ''})")


@click.group("sessions", cls=AppGroup)
def sessions_group() -> None:
    """Server-side session maintenance."""


@sessions_group.command("cleanup")
def cleanup_sessions() -> None:
    """Delete expired sessions from the database (Redis expires its own)."""
    interface = current_app.session_interface
    if not hasattr(interface, "_delete_expired_sessions") or current_app.config.get("REDIS_URL"):
        click.echo("sessions are in Redis; they expire by themselves")
        return
    removed = interface._delete_expired_sessions()
    click.echo(f"removed {removed} expired sessions")
