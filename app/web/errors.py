"""The one place that turns failures into the JSON error shape:

    {"error": "<stable_code>", "message": "<text>", "detail": "<same text>"}

`detail` repeats the message because the API's first clients (scripts
written against the original product description) read `detail`. The text comes from the catalogue (app/i18n.py) in the
request's language, sent as UTF-8 (readable Chinese in a `curl` answer).
"""

from __future__ import annotations

import math
import time
import uuid

from flask import Flask, current_app, g, jsonify
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from app.errors import AppError, Busy, NotFound, Unauthorized
from app.extensions import db, limiter
from app.i18n import N_, LazyMessage, _, _l

REDIS_OUTAGES = (RedisConnectionError, RedisTimeoutError)

# Messages for errors raised by Flask/Werkzeug rather than our services.
HTTP_MESSAGES: dict[int, tuple[str, LazyMessage]] = {
    400: ("bad_request", _l("Bad request.")),
    401: (Unauthorized.code, Unauthorized.message),
    403: ("forbidden", _l("Not allowed.")),
    404: (NotFound.code, NotFound.message),
    405: ("method_not_allowed", _l("Method not allowed.")),
    408: ("request_timeout", _l("The request took too long to arrive.")),
    413: ("payload_too_large", _l("The request body is too large.")),
    415: ("unsupported_media_type", _l("Unsupported content type.")),
    422: ("validation_error", _l("Invalid request data.")),
    429: ("rate_limited", _l("Too many requests. Try again later.")),
    500: ("internal_error", _l("Internal server error.")),
    503: ("unavailable", _l("Service unavailable.")),
}


def error_body(code: str, message: str, extra: dict | None = None) -> dict:
    """The one error shape. Also written outside a request context, by the
    load-shedding layer (app/web/pipeline.py, refuse_busy)."""
    body = {"error": code, "message": message, "detail": message}
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def error_response(
    code: str,
    message: str,
    status: int,
    *,
    retry_after: float | None = None,
    extra: dict | None = None,
):
    message = str(message)  # a lazy message renders in the request's language
    response = jsonify(error_body(code, message, extra))
    response.status_code = status
    if retry_after is not None and status in (429, 503):
        response.headers["Retry-After"] = retry_after_header(retry_after)
    return response


def _http_error(status: int):
    code, message = HTTP_MESSAGES.get(status, HTTP_MESSAGES[500])
    return error_response(code, message, status)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def handle_app_error(error: AppError):
        # A refusal for load is no failure: its access log line records it,
        # and a burst of them must stay cheap.
        if error.status >= 500 and not isinstance(error, Busy):
            current_app.logger.warning(
                "request %s failed: %s %s", g.get("request_id"), error.code, error.text("en")
            )
        return error_response(
            error.code,
            error.text(),
            error.status,
            retry_after=error.retry_after,
            extra=error.extra,
        )

    @app.errorhandler(CSRFError)
    def handle_csrf(error: CSRFError):
        message = _(
            "Missing or invalid CSRF token (header X-CSRF-Token). Reload the page and retry."
        )
        return error_response("csrf_failed", message, 400)

    @app.errorhandler(RateLimitExceeded)
    def handle_rate_limit(error: RateLimitExceeded):
        # The window of the limit that was hit says when a retry can pass.
        current = limiter.current_limit
        retry_after = current.reset_at - time.time() if current else 60.0
        response = _http_error(429)
        response.headers["Retry-After"] = retry_after_header(retry_after)
        return response

    def handle_outage(error: Exception):
        """Redis or the database away: a 503 to retry, not a 500."""
        db.session.rollback()
        which = "redis" if isinstance(error, REDIS_OUTAGES) else "database"
        current_app.logger.error(
            "request %s: %s unavailable (%s)", g.get("request_id"), which, type(error).__name__
        )
        if which == "redis":
            message = _(
                "The session and rate-limit service (Redis) is unavailable. Try again shortly."
            )
        else:
            message = _("The database is unavailable. Try again shortly.")
        return error_response(f"{which}_unavailable", message, 503, retry_after=5)

    for outage in (*REDIS_OUTAGES, OperationalError):
        app.register_error_handler(outage, handle_outage)

    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException):
        # Failures while the request context is pushed (opening the session)
        # reach Flask's handle_exception wrapped in a 500; unwrap them.
        original = getattr(error, "original_exception", None)
        if isinstance(original, (*REDIS_OUTAGES, OperationalError)):
            return handle_outage(original)
        if isinstance(original, AppError):
            return handle_app_error(original)
        status = error.code or 500
        response = _http_error(status)
        if status == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        # Roll back so the failed transaction can't leak into the next
        # request on this thread; log the traceback against the request id.
        db.session.rollback()
        request_id = g.get("request_id") or uuid.uuid4().hex[:12]
        current_app.logger.exception("unhandled error in request %s", request_id)
        message = _("Internal server error (request id %(request_id)s).", request_id=request_id)
        return error_response("internal_error", message, 500, extra={"request_id": request_id})


def validation_error_response(error):
    """flask-openapi3's callback for pydantic failures: 422 in our shape,
    with the field errors (location, message, type) for clients to show and
    a message a person can act on, in their language, for the first one."""
    details = error.errors(include_url=False, include_input=False)
    errors = [
        {
            "loc": [str(part) for part in item.get("loc", ())],
            "msg": item.get("msg", ""),
            "type": item.get("type", ""),
        }
        for item in details
    ]
    if not details:
        message = _("Invalid request data.")
    else:
        message = _explain(details[0])
        if len(details) > 1:
            message = _("%(message)s (and %(more)s more)", message=message, more=len(details) - 1)
    return error_response("validation_error", message, 422, extra={"errors": errors})


# pydantic error type → message template; %(field)s and the error's context
# (%(min_length)s, %(ge)s, %(expected)s…) fill it in.
_EXPLAINED = {
    "missing": N_("%(field)s is required."),
    "string_too_short": N_("%(field)s must be at least %(min_length)s characters."),
    "too_short": N_("%(field)s needs at least %(min_length)s item(s)."),
    "string_too_long": N_("%(field)s is too long (at most %(max_length)s characters)."),
    "too_long": N_("%(field)s has too many items (at most %(max_length)s)."),
    "greater_than_equal": N_("%(field)s must be at least %(ge)s."),
    "greater_than": N_("%(field)s must be greater than %(gt)s."),
    "less_than_equal": N_("%(field)s must be at most %(le)s."),
    "less_than": N_("%(field)s must be less than %(lt)s."),
    "int_parsing": N_("%(field)s must be a whole number."),
    "int_type": N_("%(field)s must be a whole number."),
    "int_from_float": N_("%(field)s must be a whole number."),
    "float_parsing": N_("%(field)s must be a number."),
    "float_type": N_("%(field)s must be a number."),
    "bool_parsing": N_("%(field)s must be true or false."),
    "bool_type": N_("%(field)s must be true or false."),
    "string_type": N_("%(field)s must be a string."),
    "list_type": N_("%(field)s must be a list."),
    "literal_error": N_("%(field)s must be one of: %(expected)s."),
    "enum": N_("%(field)s must be one of: %(expected)s."),
    "extra_forbidden": N_("%(field)s is not a known field."),
    "string_pattern_mismatch": N_("%(field)s has the wrong format."),
}
_NOT_AN_OBJECT = ("model_type", "model_attributes_type", "dict_type", "json_invalid")


def _explain(item: dict) -> str:
    loc = [str(part) for part in item.get("loc", ())]
    kind = item.get("type", "")
    if not loc and kind in _NOT_AN_OBJECT:
        return _("The request body must be a JSON object.")
    field = ".".join(loc) or _("the request body")
    context = dict(item.get("ctx") or {})
    if kind in ("string_too_short", "too_short") and context.get("min_length") == 1:
        return _("%(field)s must not be empty.", field=field)
    template = _EXPLAINED.get(kind)
    if template:
        try:
            return _(template, **{**context, "field": field})
        except (KeyError, ValueError, TypeError):
            pass  # a context without the expected keys: fall back below
    detail = item.get("msg", "")
    return _("Invalid request data: %(field)s: %(detail)s", field=field, detail=detail).strip()
