"""The request pipeline around every view, declared once, in order.

WSGI layers see the request before Flask pushes its context (and opens the
session); steps run as before_request hooks in the order listed, Flask's
extensions' own hooks (Flask-Limiter's check) in the slot marked for them;
blueprints' hooks follow; after the view, finish_request. install() puts it
in place; the factory calls it once, after binding the extensions.

What the steps do: request id and access log, who the caller is (session
cookie or bearer token), unusable JSON refused before anything reads it,
session lifetimes, CSRF for cookie-authenticated writes, gzip for text
answers, security and cache headers, CORS.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from itertools import accumulate

from flask import Flask, current_app, g, request, session
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_cookie
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms.validators import ValidationError

from app.errors import Busy, InvalidInput, Unauthorized
from app.extensions import login_manager
from app.i18n import DEFAULT_LANGUAGE, _l, language_from_headers
from app.web.compression import compress_response, init_compression
from app.web.errors import error_body, retry_after_header
from app.web.shedding import ShedWhenGateFull

log = logging.getLogger("nano_banana.access")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Logging in or signing up starts a session; there is none to protect yet.
CSRF_EXEMPT_ENDPOINTS = frozenset({"auth.login", "auth.signup"})
SEEN_WRITE_INTERVAL_S = 60
# A client's own X-Request-ID is kept only from a trusted proxy, and only in
# a form that can't forge a log line or a header.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
# flask-openapi3 JSON-decodes form fields; Python's decoder recurses once per
# level and fails with RecursionError near 1000. No field nests this deep.
MAX_FORM_NESTING = 256
# The largest JSON body any route takes (a 20,000-character prompt, every
# character escaped, is 120 KB); images travel as multipart.
MAX_JSON_BYTES = 1024 * 1024
# A 429 or 503 whose producer named no wait still says when to come back.
DEFAULT_RETRY_AFTER_S = 5

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
# A static file a browser can only run as a script, apply as a stylesheet or
# show as a picture is never a document: CSP and X-Frame-Options act on
# documents only, and Referrer-Policy on what a file loads itself (a module
# script's imports follow the page's policy; a stylesheet's url()s follow its
# own). Those files carry only what applies to them (nosniff always): about
# 330 bytes less on each of the twenty-odd files of a first load. Anything
# else (HTML, JSON, SVG, which can hold a script, a 304 without a type) gets
# every header.
STATIC_ENDPOINTS = frozenset({"static", "docs.static"})
STATIC_ONLY_HEADERS = {
    "text/javascript": ("X-Content-Type-Options",),
    "application/javascript": ("X-Content-Type-Options",),
    "text/css": ("X-Content-Type-Options", "Referrer-Policy"),
    "image/png": ("X-Content-Type-Options",),
    "image/jpeg": ("X-Content-Type-Options",),
    "image/webp": ("X-Content-Type-Options",),
    "image/gif": ("X-Content-Type-Options",),
    "image/x-icon": ("X-Content-Type-Options",),
    "image/vnd.microsoft.icon": ("X-Content-Type-Options",),
}


# ---- the steps, in pipeline order ---------------------------------------


def trust_proxies(app: Flask, wsgi_app):
    """X-Forwarded-* only from the configured number of proxies in front of
    us (one mechanism, here, not in waitress too); none by default."""
    n = app.config["TRUSTED_PROXY_COUNT"]
    if n <= 0:
        return wsgi_app
    return ProxyFix(wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)


def shed_when_gate_full(app: Flask, wsgi_app, endpoints: Iterable[str]):
    """These endpoints refused at once while every gate slot and queue place
    is taken, before the session store is read (app/web/shedding.py)."""
    return ShedWhenGateFull(app, wsgi_app, endpoints, refuse=refuse_busy)


def refuse_busy(app: Flask, environ, start_response, retry_after: float):
    """The shedding layer's refusal, written without Flask's request context
    (which would open the session) and at a fraction of its cost: the same
    answer as any other (one error shape, the caller's language, request id,
    the headers finish_request adds, an access log line), from the same
    helpers, reading the WSGI environ."""
    started = time.perf_counter()
    request_id = request_id_for(app.config, environ.get("HTTP_X_REQUEST_ID"))
    cookie = environ.get("HTTP_COOKIE")
    lang_cookie = parse_cookie(cookie).get("lang") if cookie and "lang=" in cookie else None
    language = language_from_headers(environ.get("HTTP_ACCEPT_LANGUAGE"), lang_cookie)
    error = Busy(retry_after=retry_after)
    message = error.text(language or DEFAULT_LANGUAGE)
    response = app.json.response(error_body(error.code, message))  # jsonify, context-free
    response.status_code = 503
    response.headers.extend(
        [
            ("Retry-After", retry_after_header(retry_after)),
            ("X-Request-ID", request_id),
            ("Cache-Control", "no-store"),
            *SECURITY_HEADERS,
            *cors_headers(app.config, environ.get("HTTP_ORIGIN")),
        ]
    )
    duration_ms = (time.perf_counter() - started) * 1000
    log_access(request_id, "POST", environ.get("PATH_INFO", ""), 503, duration_ms, "-")
    return response(environ, start_response)


def start_request() -> None:
    """Id and timer first: a request refused by any later step is still
    logged with both."""
    g.started = time.perf_counter()
    g.request_id = request_id_for(current_app.config, request.headers.get("X-Request-ID"))


def refuse_unusable_json() -> None:
    """A JSON body must be an object (the views, their schemas and the
    limiters' keys read fields of it), and must parse without exhausting the
    stack. Parsed here, once: werkzeug caches the result for everyone after."""
    if not request.is_json:
        return
    if (request.content_length or 0) > MAX_JSON_BYTES:
        # Parsed before the limiter: a refused client must not get to make
        # us parse megabytes. No JSON route takes more than a prompt.
        raise RequestEntityTooLarge()
    data = request.get_data(cache=True)
    if not data.strip():
        return
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise _too_deep() from None
    if body is None and data.strip() != b"null":
        return  # not JSON at all: the view's validation says so, as before
    if not isinstance(body, dict):
        raise InvalidInput(
            _l("The request body must be a JSON object."),
            code="invalid_json",
        )


# Flask's extensions register their own before_request hooks when bound
# (Flask-Limiter's limit check; Flask-WTF's default CSRF check, which
# WTF_CSRF_CHECK_DEFAULT turns off): install() puts them here.
EXTENSION_HOOKS = "extension hooks"


def enforce_session_lifetime() -> None:
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
        _mark_user_seen(session["_user_id"])


def protect_cookie_writes() -> None:
    if request.method not in STATE_CHANGING:
        return
    if request.endpoint in CSRF_EXEMPT_ENDPOINTS:
        return
    if bearer_secret(request) is not None:
        return  # a bearer token is not sent by browsers on their own
    if "_user_id" in session:
        _check_csrf_header()


def refuse_deep_form_fields() -> None:
    """flask-openapi3 runs json.loads on form fields; one nested a few
    thousand levels deep would raise RecursionError in the view. After the
    limiter and CSRF: reading the form parses the uploads."""
    if request.mimetype not in FORM_TYPES:
        return
    for _, value in request.form.items(multi=True):
        if nested_deeper_than(value, MAX_FORM_NESTING):
            raise _too_deep()


def finish_request(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    for name, value in security_headers(response):
        response.headers.setdefault(name, value)
    if response.mimetype == "application/json":
        # JSON here is per caller (CSRF tokens, history, results): a shared
        # computer's browser or a proxy must not keep it.
        response.headers.setdefault("Cache-Control", "no-store")
    if response.status_code in (429, 503):
        response.headers.setdefault("Retry-After", str(DEFAULT_RETRY_AFTER_S))
    _apply_cors(current_app, response)
    started = g.get("started")
    duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
    # Only a user some view already loaded: logging must not query.
    user = g.get("_login_user")
    user_id = str(user.id) if getattr(user, "is_authenticated", False) else "-"
    log_access(
        g.get("request_id", "-"),
        request.method,
        request.path,
        response.status_code,
        duration_ms,
        user_id,
    )
    return response


def security_headers(response) -> tuple[tuple[str, str], ...]:
    """Every security header, but only those that act on it for a static
    script, stylesheet or picture (STATIC_ONLY_HEADERS)."""
    if request.endpoint in STATIC_ENDPOINTS:
        kept = STATIC_ONLY_HEADERS.get(response.mimetype)
        if kept is not None:
            return tuple((name, value) for name, value in SECURITY_HEADERS if name in kept)
    return SECURITY_HEADERS


# ---- the declaration ----------------------------------------------------

BEFORE_VIEW = (
    start_request,
    refuse_unusable_json,
    EXTENSION_HOOKS,
    enforce_session_lifetime,
    protect_cookie_writes,
    refuse_deep_form_fields,
)
# In the order they run: the body compressed (app/web/compression.py), then
# headers and the access log line, whose duration includes the compression.
AFTER_VIEW = (compress_response, finish_request)


def install(app: Flask, *, shed_endpoints: Iterable[str]) -> None:
    """The pipeline, in its order; once per app, after the extensions are
    bound (their hooks are placed in their slot, not left in front)."""
    if "limiter" not in app.extensions:
        raise RuntimeError("bind the extensions (limiter.init_app) before install()")
    hooks = app.before_request_funcs.setdefault(None, [])
    if any(step in hooks for step in BEFORE_VIEW):
        raise RuntimeError("the request pipeline is already installed")
    extension_hooks = list(hooks)
    ours = [hook for hook in extension_hooks if not hook.__module__.startswith("flask_")]
    if ours:
        raise RuntimeError(f"declare these in BEFORE_VIEW, where they belong: {ours}")
    hooks[:] = [
        hook
        for step in BEFORE_VIEW
        for hook in (extension_hooks if step is EXTENSION_HOOKS else [step])
    ]
    init_compression(app)
    for step in reversed(AFTER_VIEW):  # Flask runs the last registered first
        app.after_request(step)
    # The WSGI layers, outermost first: trust_proxies, shed_when_gate_full.
    app.wsgi_app = trust_proxies(app, shed_when_gate_full(app, app.wsgi_app, shed_endpoints))
    _init_login(app)


# ---- who is calling -----------------------------------------------------


def _init_login(app: Flask) -> None:
    login_manager.session_protection = None  # lifetimes above; IP pinning breaks phones

    @login_manager.user_loader
    def load_user(user_key: str):
        from app.services import accounts

        if bearer_secret(request) is not None:
            # The token, not a cookie riding along, says who the request is:
            # writes with a bearer header skip CSRF, so a forged header on a
            # cookie request must not leave the cookie's user in charge.
            return None
        return accounts.load_session_user(user_key)

    @login_manager.request_loader
    def load_user_from_bearer(req):
        secret = bearer_secret(req)
        if secret is None:
            return None
        from app.services import tokens

        token = tokens.authenticate_token(secret)
        if token is None:
            # A bad token is an error, not a silent fall back to anonymous.
            raise Unauthorized(
                _l("Invalid or revoked API token."),
                code="invalid_token",
            )
        # The ledger records which of the owner's tokens was used.
        g.api_token_id = token.id
        return token.user

    @login_manager.unauthorized_handler
    def unauthorized():
        raise Unauthorized()


def require_user():
    """The logged-in user, or Unauthorized. Views call this first."""
    if not current_user.is_authenticated:
        raise Unauthorized()
    return current_user._get_current_object()


# ---- helpers ------------------------------------------------------------


def request_id_for(config, sent: str | None) -> str:
    """The id the client's proxy sent, when we trust one and it is safe to
    log and echo; else a new one."""
    if config["TRUSTED_PROXY_COUNT"] > 0 and sent and REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex[:16]


def log_access(request_id: str, method: str, path: str, status: int, ms: float, user: str):
    log.info("%s %s %s %s %.1fms user=%s", request_id, method, path, status, ms, user)


_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether a JSON decoder could recurse deeper than `limit` on `text`.
    Brackets inside strings count too (no tokenizing): it only overstates."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case, in two C-speed passes
    brackets = _NOT_BRACKETS.sub("", text)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > limit


def _mark_user_seen(user_key) -> None:
    """users.last_seen_at, as often as the session's own `_seen` (once a
    minute at most): the admin list shows it."""
    from app.services import accounts

    try:
        user_id = int(str(user_key).split(":", 1)[0])
    except ValueError:
        return
    accounts.mark_seen(user_id)


def _too_deep() -> InvalidInput:
    return InvalidInput(
        _l("The request is nested too deeply."),
        code="invalid_json",
    )


def bearer_secret(req) -> str | None:
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
    for name, value in cors_headers(app.config, request.headers.get("Origin")):
        if name == "Vary":
            response.vary.add(value)
        else:
            response.headers[name] = value


def cors_headers(config, origin: str | None) -> list[tuple[str, str]]:
    """For an allowed Origin, what lets its page read the answer."""
    if not origin or origin not in (config.get("ALLOWED_ORIGINS") or []):
        return []
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Headers", "Authorization, Content-Type, X-CSRF-Token"),
        ("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS"),
        ("Access-Control-Expose-Headers", "Retry-After, X-Request-ID"),
        ("Vary", "Origin"),
    ]
