"""Accounts over HTTP: sign-up, login, logout, who am I, API tokens."""

from __future__ import annotations

import time

from flask import current_app, session
from flask_login import login_user, logout_user
from flask_openapi3 import APIBlueprint, Tag
from flask_wtf.csrf import generate_csrf

from app.extensions import limiter
from app.services import accounts, tokens
from app.web.pipeline import require_user
from app.web.schemas.common import (
    Credentials,
    ErrorOut,
    OkOut,
    PasswordChange,
    SessionOut,
    TokenCreate,
    TokenCreatedOut,
    TokenListOut,
    TokenOut,
    TokenPath,
    UserOut,
    error_responses,
)

bp = APIBlueprint(
    "auth", __name__, abp_tags=[Tag(name="auth")], abp_responses=error_responses(400, 401, 413)
)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_user_limit() -> str:
    return current_app.config["LOGIN_USER_RATE_LIMIT"]


def _signup_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


def _username_key() -> str:
    """Rate-limit key for the username being tried, whatever IP it comes from."""
    from flask import request

    data = request.get_json(silent=True)
    name = data.get("username") if isinstance(data, dict) else None
    return "user:" + (accounts.username_key(name) if isinstance(name, str) else "-")


def _password_owner_key() -> str:
    """Guesses at the current password count against the account, like logins."""
    from flask_login import current_user

    return f"password:{current_user.id}" if current_user.is_authenticated else "password:-"


def _start_session(user) -> SessionOut:
    # A new session id at login: an id planted before login is worthless.
    current_app.session_interface.regenerate(session)
    session.clear()
    login_user(user)
    now = time.time()
    session["_created"] = now
    session["_seen"] = now
    return SessionOut(authenticated=True, user=UserOut.of(user), csrf_token=generate_csrf())


@bp.post("/auth/signup", responses={201: SessionOut, 403: ErrorOut, 409: ErrorOut, 429: ErrorOut})
@limiter.limit(_signup_limit)
def signup(body: Credentials):
    """Create an account and log in."""
    user = accounts.signup(body.username, body.password)
    return _start_session(user).model_dump(mode="json"), 201


@bp.post("/auth/login", responses={200: SessionOut, 401: ErrorOut, 429: ErrorOut})
@limiter.limit(_login_limit)
@limiter.limit(_login_user_limit, key_func=_username_key)
def login(body: Credentials):
    """Log in with username and password; sets the session cookie."""
    user = accounts.authenticate(body.username, body.password)
    return _start_session(user).model_dump(mode="json")


@bp.post("/auth/logout", responses={200: OkOut})
def logout():
    """End the session: the stored session is deleted, the cookie is dead."""
    logout_user()
    session.clear()
    return OkOut().model_dump()


@bp.get("/me", responses={200: SessionOut})
def me():
    """Whether the caller is logged in, who, and the CSRF token to send."""
    from flask_login import current_user

    if not current_user.is_authenticated:
        return SessionOut(authenticated=False).model_dump(mode="json")
    return SessionOut(
        authenticated=True, user=UserOut.of(current_user), csrf_token=generate_csrf()
    ).model_dump(mode="json")


@bp.post("/auth/password", responses={200: SessionOut, 401: ErrorOut, 429: ErrorOut})
@limiter.limit(_login_user_limit, key_func=_password_owner_key)
def change_password(body: PasswordChange):
    """Change the password. Every other session and cookie stops working."""
    user = accounts.change_password(require_user(), body.current_password, body.new_password)
    return _start_session(user).model_dump(mode="json")


@bp.get("/auth/tokens", responses={200: TokenListOut})
def list_tokens():
    """The caller's active API tokens (never their secrets)."""
    items = [
        TokenOut.model_validate(t, from_attributes=True) for t in tokens.list_for(require_user())
    ]
    return TokenListOut(items=items).model_dump(mode="json")


@bp.post("/auth/tokens", responses={201: TokenCreatedOut})
def create_token(body: TokenCreate):
    """Create an API token for `Authorization: Bearer`. The secret is shown once."""
    token, secret = tokens.create(require_user(), body.name)
    out = TokenCreatedOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=None,
        token=secret,
    )
    return out.model_dump(mode="json"), 201


@bp.delete("/auth/tokens/<int:token_id>", responses={204: None, 404: ErrorOut})
def revoke_token(path: TokenPath):
    """Revoke a token; it stops working at once."""
    tokens.revoke(require_user(), path.token_id)
    return "", 204
