"""The one place that turns failures into the JSON error shape:

    {"error": "<stable_code>", "message": "<text>", "detail": "<same text>"}

`detail` repeats the message for clients of the earlier FastAPI version,
which read `detail`. The language follows Accept-Language (zh or en).
"""

from __future__ import annotations

import math
import time
import uuid

from flask import Flask, current_app, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from app.errors import AppError
from app.extensions import db, limiter

REDIS_OUTAGES = (RedisConnectionError, RedisTimeoutError)

# Messages for errors raised by Flask/Werkzeug rather than our services.
HTTP_MESSAGES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "Bad request.", "请求无效。"),
    401: ("unauthorized", "Please log in.", "请先登录。"),
    403: ("forbidden", "Not allowed.", "无权访问。"),
    404: ("not_found", "Not found.", "未找到。"),
    405: ("method_not_allowed", "Method not allowed.", "不支持该请求方法。"),
    408: ("request_timeout", "The request took too long to arrive.", "请求超时。"),
    413: (
        "payload_too_large",
        "The request body is too large.",
        "请求体过大。",
    ),
    415: (
        "unsupported_media_type",
        "Unsupported content type.",
        "不支持的内容类型。",
    ),
    422: ("validation_error", "Invalid request data.", "请求数据无效。"),
    429: ("rate_limited", "Too many requests. Try again later.", "请求过于频繁，请稍后再试。"),
    500: ("internal_error", "Internal server error.", "服务器内部错误。"),
    503: ("unavailable", "Service unavailable.", "服务暂不可用。"),
}


def preferred_language() -> str:
    """'zh' or 'en' from the request (explicit `lang` cookie, then header)."""
    cookie = request.cookies.get("lang")
    if cookie in ("zh", "en"):
        return cookie
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-TW"], default="en")
    return "zh" if best and best.startswith("zh") else "en"


def named_language() -> str | None:
    """Like preferred_language, but None when the request names no language
    at all (no `lang` cookie, no Accept-Language): a bare script."""
    if request.cookies.get("lang") in ("zh", "en") or request.headers.get("Accept-Language"):
        return preferred_language()
    return None


def error_response(
    code: str,
    message: str,
    status: int,
    *,
    retry_after: float | None = None,
    extra: dict | None = None,
):
    body = {"error": code, "message": message, "detail": message}
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None and status in (429, 503):
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def _http_error(status: int, lang: str, *, code: str | None = None, message: str | None = None):
    default_code, en, zh = HTTP_MESSAGES.get(status, HTTP_MESSAGES[500])
    return error_response(code or default_code, message or (zh if lang == "zh" else en), status)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def handle_app_error(error: AppError):
        if error.status >= 500:
            current_app.logger.warning(
                "request %s failed: %s %s", g.get("request_id"), error.code, error.message_en
            )
        return error_response(
            error.code,
            error.message(preferred_language()),
            error.status,
            retry_after=error.retry_after,
            extra=error.extra,
        )

    @app.errorhandler(CSRFError)
    def handle_csrf(error: CSRFError):
        lang = preferred_language()
        message = (
            "缺少或无效的 CSRF 令牌（请求头 X-CSRF-Token），请刷新页面后重试。"
            if lang == "zh"
            else "Missing or invalid CSRF token (header X-CSRF-Token). Reload the page and retry."
        )
        return error_response("csrf_failed", message, 400)

    @app.errorhandler(RateLimitExceeded)
    def handle_rate_limit(error: RateLimitExceeded):
        # The window of the limit that was hit says when a retry can pass.
        current = limiter.current_limit
        retry_after = current.reset_at - time.time() if current else 60.0
        response = _http_error(429, preferred_language())
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return response

    def handle_outage(error: Exception):
        """Redis or the database away: a 503 to retry, not a 500."""
        db.session.rollback()
        which = "redis" if isinstance(error, REDIS_OUTAGES) else "database"
        current_app.logger.error(
            "request %s: %s unavailable (%s)", g.get("request_id"), which, type(error).__name__
        )
        lang = preferred_language()
        if which == "redis":
            message = (
                "会话与限流服务（Redis）暂不可用，请稍后重试。"
                if lang == "zh"
                else (
                    "The session and rate-limit service (Redis) is unavailable. Try again shortly."
                )
            )
        else:
            message = (
                "数据库暂不可用，请稍后重试。"
                if lang == "zh"
                else ("The database is unavailable. Try again shortly.")
            )
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
        response = _http_error(status, preferred_language())
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
        lang = preferred_language()
        message = (
            f"服务器内部错误（请求编号 {request_id}）。"
            if lang == "zh"
            else f"Internal server error (request id {request_id})."
        )
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
    lang = preferred_language()
    if not details:
        message = "请求数据无效。" if lang == "zh" else "Invalid request data."
    else:
        message = _explain(details[0], lang)
        if len(details) > 1:
            more = len(details) - 1
            message += f"（另有 {more} 处问题）" if lang == "zh" else f" (and {more} more)"
    return error_response("validation_error", message, 422, extra={"errors": errors})


# pydantic error type → (English, Chinese) templates; {field} and the
# error's context ({min_length}, {ge}, {expected}…) fill them in.
_EXPLAINED = {
    "missing": ("{field} is required.", "缺少 {field}。"),
    "string_too_short": (
        "{field} must be at least {min_length} characters.",
        "{field} 至少需要 {min_length} 个字符。",
    ),
    "too_short": (
        "{field} needs at least {min_length} item(s).",
        "{field} 至少需要 {min_length} 项。",
    ),
    "string_too_long": (
        "{field} is too long (at most {max_length} characters).",
        "{field} 太长（最多 {max_length} 个字符）。",
    ),
    "too_long": (
        "{field} has too many items (at most {max_length}).",
        "{field} 最多 {max_length} 项。",
    ),
    "greater_than_equal": ("{field} must be at least {ge}.", "{field} 不能小于 {ge}。"),
    "greater_than": ("{field} must be greater than {gt}.", "{field} 必须大于 {gt}。"),
    "less_than_equal": ("{field} must be at most {le}.", "{field} 不能大于 {le}。"),
    "less_than": ("{field} must be less than {lt}.", "{field} 必须小于 {lt}。"),
    "int_parsing": ("{field} must be a whole number.", "{field} 必须是整数。"),
    "int_type": ("{field} must be a whole number.", "{field} 必须是整数。"),
    "int_from_float": ("{field} must be a whole number.", "{field} 必须是整数。"),
    "float_parsing": ("{field} must be a number.", "{field} 必须是数字。"),
    "float_type": ("{field} must be a number.", "{field} 必须是数字。"),
    "bool_parsing": ("{field} must be true or false.", "{field} 必须是 true 或 false。"),
    "bool_type": ("{field} must be true or false.", "{field} 必须是 true 或 false。"),
    "string_type": ("{field} must be a string.", "{field} 必须是字符串。"),
    "list_type": ("{field} must be a list.", "{field} 必须是列表。"),
    "literal_error": ("{field} must be one of: {expected}.", "{field} 只能是：{expected}。"),
    "enum": ("{field} must be one of: {expected}.", "{field} 只能是：{expected}。"),
    "extra_forbidden": ("{field} is not a known field.", "未知字段 {field}。"),
    "string_pattern_mismatch": ("{field} has the wrong format.", "{field} 格式不正确。"),
}
_NOT_AN_OBJECT = ("The request body must be a JSON object.", "请求体必须是 JSON 对象。")


def _explain(item: dict, lang: str) -> str:
    loc = [str(part) for part in item.get("loc", ())]
    kind = item.get("type", "")
    zh = lang == "zh"
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type", "json_invalid"):
        return _NOT_AN_OBJECT[1 if zh else 0]
    field = ".".join(loc) or ("请求体" if zh else "the request body")
    context = dict(item.get("ctx") or {})
    if kind in ("string_too_short", "too_short") and context.get("min_length") == 1:
        return f"{field} 不能为空。" if zh else f"{field} must not be empty."
    templates = _EXPLAINED.get(kind)
    if templates:
        try:
            return templates[1 if zh else 0].format(field=field, **context)
        except (KeyError, IndexError, ValueError):
            pass  # a context without the expected keys: fall back below
    prefix = "请求数据无效" if zh else "Invalid request data"
    separator = "：" if zh else ": "
    return f"{prefix}{separator}{field}: {item.get('msg', '')}".strip()
