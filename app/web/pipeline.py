"""The request pipeline around every view: request id and access log,
who the caller is (session cookie or bearer token), session lifetimes, CSRF
for cookie-authenticated writes, security headers and CORS."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, current_app, g, request, session
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError

from app.errors import Unauthorized
from app.extensions import login_manager

log = logging.getLogger("nano_banana.access")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Logging in or signing up starts a session; there is none to protect yet.
CSRF_EXEMPT_ENDPOINTS = frozenset({"auth.login", "auth.signup"})
SEEN_WRITE_INTERVAL_S = 60

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def init_request_pipeline(app: Flask) -> None:
    login_manager.session_protection = None  # lifetimes below; IP pinning breaks phones

    @login_manager.user_loader
    def load_user(user_key: str):
        from app.services import accounts

        if _bearer_secret(request) is not None:
            # The token, not a cookie riding along, says who the request is:
            # writes with a bearer header skip CSRF, so a forged header on a
            # cookie request must not leave the cookie's user in charge.
            return None
        return accounts.load_session_user(user_key)

    @login_manager.request_loader
    def load_user_from_bearer(req):
        secret = _bearer_secret(req)
        if secret is None:
            return None
        from app.services import tokens

        user = tokens.authenticate(secret)
        if user is None:
            # A bad token is an error, not a silent fall back to anonymous.
            raise Unauthorized(
                "Invalid or revoked API token.",
                "API 令牌无效或已被撤销。",
                code="invalid_token",
            )
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        raise Unauthorized()

    # First of all hooks, the limiter's included: a refused request is
    # timed and carries its id in the log and the response too.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)

    @app.before_request
    def enforce_session_lifetime():
        if "_user_id" not in session:
            return
        now = time.time()
        created = session.get("_created", 0)
        seen = session.get("_seen", 0)
        absolute = current_app.config["SESSION_ABSOLUTE_DAYS"] * 86400
        idle = current_app.config["SESSION_IDLE_HOURS"] * 3600
        if now - created > absolute or now - seen > idle:
            logout_user()
            session.clear()
            return
        if now - seen > SEEN_WRITE_INTERVAL_S:
            session["_seen"] = now

    @app.before_request
    def protect_cookie_writes():
        if request.method not in STATE_CHANGING:
            return
        if request.endpoint in CSRF_EXEMPT_ENDPOINTS:
            return
        if _bearer_secret(request) is not None:
            return  # a bearer token is not sent by browsers on their own
        if "_user_id" in session:
            _check_csrf_header()

    @app.after_request
    def finish_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        _apply_cors(app, response)
        started = g.get("started")
        duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        # Only a user some view already loaded: logging must not query.
        user = g.get("_login_user")
        user_id = str(user.id) if getattr(user, "is_authenticated", False) else "-"
        log.info(
            "%s %s %s %s %.1fms user=%s",
            g.get("request_id", "-"),
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            user_id,
        )
        return response


def start_request() -> None:
    g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:16]
    g.started = time.perf_counter()


def _bearer_secret(req) -> str | None:
    header = req.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _check_csrf_header() -> None:
    """Flask-WTF's token check on the X-CSRF-Token header alone. Its
    csrf.protect() also scans the form's field names, which parses the whole
    body first and fails with a 500 on a multipart part whose name werkzeug
    cannot parse (the key is None); the token is only ever sent as a header."""
    headers = current_app.config["WTF_CSRF_HEADERS"]
    token = next((request.headers[name] for name in headers if name in request.headers), None)
    try:
        validate_csrf(token)
    except ValidationError as error:
        raise CSRFError(error.args[0]) from None


def _apply_cors(app: Flask, response) -> None:
    origins = app.config.get("ALLOWED_ORIGINS") or []
    origin = request.headers.get("Origin")
    if not origins or not origin or origin not in origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-CSRF-Token"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
    response.headers["Access-Control-Expose-Headers"] = "Retry-After, X-Request-ID"
    response.vary.add("Origin")


def require_user():
    """The logged-in user, or Unauthorized. Views call this first."""
    if not current_user.is_authenticated:
        raise Unauthorized()
    return current_user._get_current_object()
