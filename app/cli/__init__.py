"""Command-line tools: `flask create-user`, `flask sessions cleanup`
(and `flask db upgrade` from Flask-Migrate)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.cli import backup, usage


def register_cli(app: Flask) -> None:
    app.cli.add_command(create_user_command)
    app.cli.add_command(sessions_group)
    app.cli.add_command(backup.backup_command)
    app.cli.add_command(nano_group)
    app.cli.add_command(usage.usage_group)


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
        raise click.ClickException(error.text("en")) from None
    click.echo(f"created user {user.username} (id {user.id}{', admin' if admin else ''})")


@click.group("sessions", cls=AppGroup)
def sessions_group() -> None:
    """Server-side session maintenance."""


@sessions_group.command("cleanup")
def cleanup_sessions() -> None:
    """Delete every expired session from the database now. The server also
    removes them on its own, a batch every ten minutes; Redis expires its own."""
    interface = current_app.session_interface
    if not hasattr(interface, "_delete_expired_sessions") or current_app.config.get("REDIS_URL"):
        click.echo("sessions are in Redis; they expire by themselves")
        return
    removed = interface._delete_expired_sessions()
    click.echo(f"removed {removed} expired sessions")


@click.group("nano", cls=AppGroup)
def nano_group() -> None:
    """Generate or edit images from the command line (the same path as the /v1 API, for scripts on the server itself)."""


def _run_and_save(kind, prompt, paths, output, model, aspect_ratio, seed, count):
    from pathlib import Path

    from pydantic import ValidationError

    from app.errors import AppError
    from app.services import generation
    from app.services.genai.contracts import GenerationOptions

    uploads = [Path(path).read_bytes() for path in paths]
    try:
        options = GenerationOptions(
            model=model, aspect_ratio=aspect_ratio, seed=seed, candidate_count=count
        )
    except ValidationError as error:
        raise click.BadParameter(_first_problem(error)) from None
    with current_app.test_request_context():
        try:
            result = generation.run(
                kind=kind, prompt=prompt, options=options, user=None, uploads=uploads
            )
        except AppError as error:
            raise click.ClickException(f"{error.code}: {error.text('en')}") from None
    for text in result.texts:
        click.echo(text)
    if not result.images:
        raise click.ClickException("the model returned no image")
    target = Path(output)
    for index, image in enumerate(result.images):
        path = (
            target if index == 0 else target.with_name(f"{target.stem}-{index + 1}{target.suffix}")
        )
        path.write_bytes(image.data)
        click.echo(f"saved {path} ({image.width}×{image.height})")


def _first_problem(error) -> str:
    problem = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}"


_common = [
    click.option("-o", "--output", default="generated_image.png", show_default=True),
    click.option("--model", default=None, help="Model id (see GET /v1/models)."),
    click.option("--aspect-ratio", default=None, help="e.g. 1:1, 16:9"),
    click.option("--seed", type=int, default=None),
    click.option("-n", "--count", type=click.IntRange(1, 6), default=1, show_default=True),
]


def _with_common(func):
    for option in reversed(_common):
        func = option(func)
    return func


@nano_group.command("generate")
@click.argument("prompt")
@_with_common
def nano_generate(prompt, output, model, aspect_ratio, seed, count):
    """Make an image from PROMPT and save it."""
    _run_and_save("generate", prompt, [], output, model, aspect_ratio, seed, count)


@nano_group.command("edit")
@click.argument("prompt")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@_with_common
def nano_edit(prompt, images, output, model, aspect_ratio, seed, count):
    """Edit IMAGES by PROMPT (two or more images are composed)."""
    kind = "compose" if len(images) > 1 else "edit"
    _run_and_save(kind, prompt, list(images), output, model, aspect_ratio, seed, count)
