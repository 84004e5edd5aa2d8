"""The first admin: made with `flask create-user NAME --admin`, or in the
browser with a one-time setup code the server prints in its log at start
while no admin exists. Nobody becomes admin by being the first to sign up.

Only the code's sha256 is stored, one row per process that printed one (a
deployment of several processes prints several codes; each works). Making
the admin deletes every row in the same transaction, after locking them all:
of two people racing with valid codes, one wins and the other's code is gone.
Once an admin exists the route answers 404, whatever code it is sent.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError

from app.db import write_transaction
from app.errors import AppError, NotFound
from app.extensions import db
from app.i18n import _l
from app.models import SetupCode, User
from app.services import accounts

log = logging.getLogger("nano_banana.setup")

# Four groups of five from an alphabet without look-alikes (no 0/O, 1/I/L):
# about 99 bits, typed from a log by a person.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_LENGTH = 4, 5


class InvalidSetupCode(
    AppError,
    code="invalid_setup_code",
    status=403,
    message=_l("That setup code is not valid. Use the one in the server log."),
): ...


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _digest(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def new_code() -> str:
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "-".join(groups)


def needed() -> bool:
    """Whether no enabled admin exists (the page then offers the setup form)."""
    admin = db.session.execute(
        select(User.id).where(User.is_admin.is_(True), User.disabled.is_(False)).limit(1)
    ).first()
    return admin is None


def announce() -> str | None:
    """At server start: while setup is needed, store a fresh code's hash and
    print the code in the log; once it isn't, drop any codes left over.
    Returns the code printed, if any."""
    try:
        if not needed():
            with write_transaction() as session:
                session.execute(delete(SetupCode))
            return None
        code = new_code()
        with write_transaction() as session:
            session.add(SetupCode(code_hash=_digest(code)))
    except DBAPIError as error:  # a database that can't answer yet: the server still starts
        db.session.rollback()
        log.warning("setup code not made: %s", type(error).__name__)
        return None
    log.warning(
        "No administrator yet. Open the page and choose 'Set up the admin account' with "
        "the setup code %s (or run: flask create-user NAME --admin).",
        code,
    )
    return code


def complete(setup_code: str, username: str, password: str) -> User:
    """Make the first admin. 404 once an admin exists."""
    if not needed():
        raise NotFound()
    wanted = _digest(setup_code) if isinstance(setup_code, str) else ""

    def consume_codes(session) -> None:
        # Every code locked (PostgreSQL; SQLite's write lock is already
        # held), in one order so two takers never deadlock; a taker that
        # waited finds the rows the winner deleted gone.
        codes = set(
            session.execute(
                select(SetupCode.code_hash).order_by(SetupCode.code_hash).with_for_update()
            ).scalars()
        )
        if wanted not in codes:
            raise InvalidSetupCode()
        if session.execute(
            select(User.id).where(User.is_admin.is_(True), User.disabled.is_(False)).limit(1)
        ).first():
            raise NotFound()
        session.execute(delete(SetupCode))

    return accounts.create_user(username, password, is_admin=True, before_insert=consume_codes)
