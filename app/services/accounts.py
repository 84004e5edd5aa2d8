"""Accounts: sign-up, authentication, password changes.

Passwords are hashed with scrypt (werkzeug) at OWASP's minimum N=2^15, r=8,
p=3 in production. An unknown username still costs one hash check against a
dummy hash, so the answer's timing doesn't tell which usernames exist.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import write_transaction
from app.errors import AppError, Conflict, InvalidInput
from app.extensions import db
from app.models import User

USERNAME_MIN, USERNAME_MAX = 3, 32
PASSWORD_MIN, PASSWORD_MAX = 8, 128
# Letters of any script (CJK included), digits, and _ . -
_USERNAME_CHARS = re.compile(r"^[\w.\-]+$", re.UNICODE)


class InvalidCredentials(AppError):
    code = "invalid_credentials"
    status = 401
    message_en = "Wrong username or password."
    message_zh = "用户名或密码错误。"


class SignupClosed(AppError):
    code = "signup_closed"
    status = 403
    message_en = "Sign-up is disabled on this server."
    message_zh = "此服务器已关闭注册。"


def normalise_username(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip()


def username_key(username: str) -> str:
    return normalise_username(username).casefold()


def validate_username(username: str) -> str:
    username = normalise_username(username)
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX or not _USERNAME_CHARS.match(username):
        raise InvalidInput(
            "Username must be 3–32 characters: letters, digits, _ . -",
            "用户名须为 3–32 个字符：字母、数字、_ . -",
            code="invalid_username",
        )
    return username


def validate_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            "Password must be 8–128 characters.",
            "密码长度须为 8–128 个字符。",
            code="invalid_password",
        )
    return password


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@lru_cache(maxsize=4)
def _dummy_hash(method: str) -> str:
    return generate_password_hash("not-a-real-password", method=method)


def create_user(username: str, password: str, *, is_admin: bool = False) -> User:
    username = validate_username(username)
    validate_password(password)
    user = User(
        username=username,
        username_key=username_key(username),
        password_hash=hash_password(password),
        is_admin=is_admin,
    )
    taken = Conflict("That username is taken.", "该用户名已被占用。", code="username_taken")
    try:
        with write_transaction() as session:
            exists = session.execute(
                select(User.id).where(User.username_key == user.username_key)
            ).first()
            if exists:
                raise taken
            session.add(user)
    except IntegrityError:
        # Two sign-ups for one name at once: the unique index decides.
        raise taken from None
    return user


def signup(username: str, password: str) -> User:
    if not current_app.config["ALLOW_SIGNUP"]:
        raise SignupClosed()
    return create_user(username, password)


def authenticate(username: str, password: str) -> User:
    key = username_key(username) if isinstance(username, str) else ""
    user = db.session.execute(select(User).where(User.username_key == key)).scalar_one_or_none()
    if user is None:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        raise InvalidCredentials()
    if not check_password_hash(user.password_hash, password) or user.disabled:
        raise InvalidCredentials()
    return user


def change_password(user: User, current_password: str, new_password: str) -> User:
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
