"""Accounts over HTTP: sign-up, login, logout, who am I, API tokens.

Logging out, changing the password and managing API tokens take a browser
session: a request carrying a bearer token is refused (403
`session_required`), so a leaked token can neither mint tokens that outlive
it nor lock its owner out.

Login limits: every attempt counts per address (`LOGIN_RATE_LIMIT`); failed
attempts count per username *and* address (`LOGIN_USER_RATE_LIMIT`), so a
stranger guessing doesn't lock the owner out from elsewhere; and failed
attempts per username from all addresses together meet a higher ceiling
(`LOGIN_USER_CEILING`), which a guesser rotating addresses still hits.
"""

from __future__ import annotations

import time

from flask import current_app, request, session
from flask_login import current_user, login_user, logout_user
from flask_openapi3 import APIBlueprint, Tag
from flask_wtf.csrf import generate_csrf

from app.errors import AppError
from app.extensions import limiter
from app.i18n import _l
from app.services import accounts, setup, tokens, usernames
from app.web.client import client_address
from app.web.pipeline import bearer_secret, require_user
from app.web.schemas.admin import SetupIn, SetupStatusOut, SignupIn
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


class SessionRequired(
    AppError,
    code="session_required",
    status=403,
    message=_l("This needs a logged-in browser session; an API token can't do it."),
): ...


def _require_session_user():
    """The user of a cookie session; a bearer token (valid or not) is refused."""
    user = require_user()  # anonymous, or a bad token: 401
    if bearer_secret(request) is not None:
        raise SessionRequired()
    return user


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_user_limit() -> str:
    return current_app.config["LOGIN_USER_RATE_LIMIT"]


def _login_user_ceiling() -> str:
    return current_app.config["LOGIN_USER_CEILING"]


def _signup_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


def _setup_limit() -> str:
    return current_app.config["SETUP_RATE_LIMIT"]


def _login_failed(response) -> bool:
    return response.status_code == 401


def _tried_username() -> str:
    """The account being tried, as the login finds it: "ALICE", "ａｌｉｃｅ"
    and " alice " all count against "alice"."""
    data = request.get_json(silent=True)
    name = data.get("username") if isinstance(data, dict) else None
    return usernames.key(name[:64]) if isinstance(name, str) else "-"


def _username_key() -> str:
    return "login-user:" + _tried_username()


def _username_at_address_key() -> str:
    return f"login-user-address:{_tried_username()}@{client_address()}"


def _password_owner_key() -> str:
    """Guesses at the current password count against the account, like logins."""
    return f"password:{current_user.id}" if current_user.is_authenticated else "password:-"


def _start_session(user) -> SessionOut:
    # A new session id at login: an id planted before login is worthless.
    current_app.session_interface.regenerate(session)
    session.clear()
    login_user(user)
    now = time.time()
    session["_created"] = now
    session["_seen"] = now
    accounts.mark_seen(user.id)
    return SessionOut(authenticated=True, user=UserOut.of(user), csrf_token=generate_csrf())


@bp.post("/auth/signup", responses={201: SessionOut, 403: ErrorOut, 409: ErrorOut, 429: ErrorOut})
@limiter.limit(_signup_limit)
def signup(body: SignupIn):
    """Create an account and log in. With the `invite` signup policy
    (`GET /auth/setup` says which), `invite_code` is required: 403
    `invite_required` without one, `invite_invalid` for one that is used
    up, expired, revoked or unknown."""
    user = accounts.signup(body.username, body.password, body.invite_code)
    return _start_session(user).model_dump(mode="json"), 201


@bp.get("/auth/setup", responses={200: SetupStatusOut})
def setup_status():
    """Whether the first admin still has to be made (the setup code is then
    in the server log), and the signup policy, for the page's forms."""
    status = SetupStatusOut(needed=setup.needed(), signup_policy=accounts.signup_policy())
    return status.model_dump(mode="json")


@bp.post(
    "/auth/setup",
    responses={201: SessionOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 429: ErrorOut},
)
@limiter.limit(_setup_limit)
def complete_setup(body: SetupIn):
    """Make the first admin with the setup code from the server log, and log
    in as them. Once an admin exists: 404."""
    user = setup.complete(body.setup_code, body.username, body.password)
    return _start_session(user).model_dump(mode="json"), 201


@bp.post("/auth/login", responses={200: SessionOut, 401: ErrorOut, 429: ErrorOut})
@limiter.limit(_login_limit)
@limiter.limit(_login_user_limit, key_func=_username_at_address_key, deduct_when=_login_failed)
@limiter.limit(_login_user_ceiling, key_func=_username_key, deduct_when=_login_failed)
def login(body: Credentials):
    """Log in with username and password; sets the session cookie."""
    user = accounts.authenticate(body.username, body.password)
    return _start_session(user).model_dump(mode="json")


@bp.post("/auth/logout", responses={200: OkOut, 403: ErrorOut})
def logout():
    """End the session: the stored session is deleted, the cookie is dead."""
    if bearer_secret(request) is not None:
        _require_session_user()
    logout_user()
    session.clear()
    return OkOut().model_dump()


@bp.get("/me", responses={200: SessionOut})
def me():
    """Whether the caller is logged in, who, and the CSRF token to send
    (none for a bearer token: it needs none, and has no session to keep one)."""
    if not current_user.is_authenticated:
        return SessionOut(authenticated=False).model_dump(mode="json")
    csrf_token = None if bearer_secret(request) is not None else generate_csrf()
    return SessionOut(
        authenticated=True, user=UserOut.of(current_user), csrf_token=csrf_token
    ).model_dump(mode="json")


@bp.post("/auth/password", responses={200: SessionOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut})
@limiter.limit(_login_user_limit, key_func=_password_owner_key)
def change_password(body: PasswordChange):
    """Change the password. Every other session stops working and every API
    token is revoked; this session carries on under a new id."""
    user = accounts.change_password(
        _require_session_user(), body.current_password, body.new_password
    )
    return _start_session(user).model_dump(mode="json")


@bp.get("/auth/tokens", responses={200: TokenListOut, 403: ErrorOut})
def list_tokens():
    """The caller's active API tokens (never their secrets)."""
    items = [
        TokenOut.model_validate(t, from_attributes=True)
        for t in tokens.list_for(_require_session_user())
    ]
    return TokenListOut(items=items).model_dump(mode="json")


@bp.post("/auth/tokens", responses={201: TokenCreatedOut, 403: ErrorOut, 409: ErrorOut})
def create_token(body: TokenCreate):
    """Create an API token for `Authorization: Bearer`. The secret is shown
    once; the name must differ from the caller's other active tokens."""
    token, secret = tokens.create(_require_session_user(), body.name)
    out = TokenCreatedOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=None,
        token=secret,
    )
    return out.model_dump(mode="json"), 201


@bp.delete("/auth/tokens/<int:token_id>", responses={204: None, 403: ErrorOut, 404: ErrorOut})
def revoke_token(path: TokenPath):
    """Revoke a token; it stops working at once."""
    tokens.revoke(_require_session_user(), path.token_id)
    return "", 204
