"""Accounts: sign-up, authentication, password changes.

Passwords are hashed with scrypt (werkzeug) at OWASP's minimum N=2^15, r=8,
p=3 in production. An unknown username still costs one hash check against a
dummy hash, so the answer's timing doesn't tell which usernames exist. What
a username may be, and when two are the same, is app/services/usernames.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import write_transaction
from app.errors import AppError, Conflict, InvalidInput
from app.extensions import db
from app.i18n import _l
from app.models import User, utcnow
from app.services import invites, tokens, usernames

PASSWORD_MIN, PASSWORD_MAX = 8, 128
SIGNUP_POLICIES = ("open", "invite", "closed")


class InvalidCredentials(
    AppError, code="invalid_credentials", status=401, message=_l("Wrong username or password.")
): ...


class SignupClosed(
    AppError, code="signup_closed", status=403, message=_l("Sign-up is disabled on this server.")
): ...


def validate_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            _l("Password must be 8–128 characters."),
            code="invalid_password",
        )
    return password


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@lru_cache(maxsize=4)
def _dummy_hash(method: str) -> str:
    return generate_password_hash("not-a-real-password", method=method)


def create_user(
    username: str,
    password: str,
    *,
    is_admin: bool = False,
    before_insert: Callable[[Session], None] | None = None,
) -> User:
    """`before_insert` runs inside the write transaction, after the name is
    found free: what it takes (an invite's use, the setup code) is given back
    if the user isn't made after all."""
    username = usernames.validate(username)
    validate_password(password)
    user = User(
        username=username,
        username_key=usernames.key(username),
        confusable_key=usernames.confusable_key(username),
        password_hash=hash_password(password),
        is_admin=is_admin,
    )
    # One answer for "taken" and "looks like one that is": both say no more
    # than that a name exists, and the sign-up form needs only one message.
    taken = Conflict(
        _l("That username is taken, or looks the same as one that is."),
        code="username_taken",
    )
    try:
        with write_transaction() as session:
            exists = session.execute(
                select(User.id).where(
                    or_(
                        User.username_key == user.username_key,
                        User.confusable_key == user.confusable_key,
                    )
                )
            ).first()
            if exists:
                raise taken
            if before_insert is not None:
                before_insert(session)
            session.add(user)
    except IntegrityError:
        # Two sign-ups for one name at once: the unique indexes decide.
        raise taken from None
    return user


def signup_policy() -> str:
    """open, invite or closed. ALLOW_SIGNUP=0 keeps meaning closed; a value
    we don't know closes sign-up rather than opening it."""
    if not current_app.config["ALLOW_SIGNUP"]:
        return "closed"
    policy = (current_app.config.get("SIGNUP_POLICY") or "open").strip().lower()
    return policy if policy in SIGNUP_POLICIES else "closed"


def signup(username: str, password: str, invite_code: str | None = None) -> User:
    policy = signup_policy()
    if policy == "closed":
        raise SignupClosed()
    if policy == "open":
        return create_user(username, password)
    if not invite_code or not invite_code.strip():
        raise invites.InviteRequired()
    return create_user(
        username, password, before_insert=lambda session: invites.redeem(session, invite_code)
    )


def mark_seen(user_id: int) -> None:
    """users.last_seen_at, written at most once a minute per user: the
    callers (login, the session hook, token use) already hold back."""
    with write_transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(last_seen_at=utcnow()))


def authenticate(username: str, password: str) -> User:
    key = usernames.key(username) if isinstance(username, str) else ""
    user = db.session.execute(select(User).where(User.username_key == key)).scalar_one_or_none()
    if user is None:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        raise InvalidCredentials()
    if not check_password_hash(user.password_hash, password) or user.disabled:
        raise InvalidCredentials()
    return user


def change_password(user: User, current_password: str, new_password: str) -> User:
    """Set a new password. Every session made under the old one stops
    working (the epoch moves on) and every API token is revoked: whoever
    knew the old password may have made either."""
    if not check_password_hash(user.password_hash, current_password):
        raise InvalidCredentials()
    validate_password(new_password)
    new_hash = hash_password(new_password)
    with write_transaction() as session:
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(password_hash=new_hash, auth_epoch=User.auth_epoch + 1)
        )
        tokens.revoke_all(session, user.id)
    return db.session.get(User, user.id, populate_existing=True)


def load_session_user(user_key: str) -> User | None:
    """Flask-Login's loader: '<id>:<auth_epoch>'; a stale epoch is no user."""
    try:
        user_id, epoch = (int(part) for part in user_key.split(":", 1))
    except (ValueError, AttributeError):
        return None
    user = db.session.get(User, user_id)
    if user is None or user.auth_epoch != epoch or user.disabled:
        return None
    return user
