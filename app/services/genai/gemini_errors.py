"""Every way a Gemini call can fail, as an ``UpstreamError`` with a stable code.

The provider (gemini.py) hands over what went wrong: an exception from the SDK
or its HTTP client, a block or an empty answer. This module reads Google's
error bodies (``google.rpc`` ErrorInfo, RetryInfo, QuotaFailure), tells quota
from overload from key and region problems, and words each through the
message catalogue (app/i18n.py). Upstream text is scrubbed of API keys before it is kept anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx2
import pydantic
from google.genai import errors as genai_errors

from app.errors import UpstreamError
from app.i18n import N_, _l

try:  # The SDK uses httpx instead when GOOGLE_GENAI_HTTP_CLIENT=httpx.
    import httpx
except ImportError:  # pragma: no cover - httpx2 is the 3.x default
    httpx = None

Scrub = Callable[[str | None], str]

_TIMEOUT_ERRORS: tuple[type[Exception], ...] = tuple(
    module.TimeoutException for module in (httpx2, httpx) if module is not None
)
# Connection refused or reset, protocol violations, proxy failures, bad URL
# scheme: the request never got a usable answer. (TimeoutException is a
# subclass too, so timeouts are caught first.)
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = tuple(
    module.RequestError for module in (httpx2, httpx) if module is not None
)
_DECODING_ERRORS: tuple[type[Exception], ...] = tuple(
    module.DecodingError for module in (httpx2, httpx) if module is not None
)
# A 200 whose body is not JSON (json.JSONDecodeError), or JSON that does not
# fit the response schema, e.g. invalid base64 in inlineData
# (pydantic.ValidationError).
_UNREADABLE_RESPONSE_ERRORS = (
    json.JSONDecodeError,
    pydantic.ValidationError,
    genai_errors.UnknownApiResponseError,
)

# Finish reasons meaning "the model refused", as opposed to "ran out" (MAX_TOKENS)
# or "had nothing to draw" (NO_IMAGE, IMAGE_OTHER).
BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "RECITATION",
        "IMAGE_RECITATION",
        "SPII",
        "MODEL_ARMOR",
    }
)

# What each block reason means to a person.
_BLOCK_REASON_NAMES = {
    "SAFETY": _l("safety filters"),
    "IMAGE_SAFETY": _l("image safety filters"),
    "PROHIBITED_CONTENT": _l("prohibited-content policy"),
    "IMAGE_PROHIBITED_CONTENT": _l("prohibited-content policy"),
    "BLOCKLIST": _l("blocklist"),
    "RECITATION": _l("recitation check (too close to existing content)"),
    "IMAGE_RECITATION": _l("recitation check (too close to existing content)"),
    "SPII": _l("personal-information filter"),
    "JAILBREAK": _l("jailbreak protection"),
    "MODEL_ARMOR": "Model Armor",  # a product name, the same in every language
}
_DEFAULT_BLOCK_REASON_NAME = _l("content policy")

# ErrorInfo reasons Google gives when the key works but its restrictions
# (HTTP referrer, IP, app, API) exclude this server.
_KEY_RESTRICTION_REASONS = frozenset(
    {
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",
        "API_KEY_SERVICE_BLOCKED",
    }
)
_KEY_INVALID_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"

# Google API keys have this shape; scrubbed even when they are not ours (a
# relay may echo its own key).
_GOOGLE_KEY_PATTERN = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_MAX_UPSTREAM_TEXT = 500


class Fault(NamedTuple):
    """One way the upstream fails: the code a client branches on, the HTTP
    status, whether the same call may pass if tried again, and what a person
    reads (a catalogue template; each error brings its values)."""

    code: str
    status: int
    retryable: bool
    message: str

    def error(
        self, *, extra: dict, retry_after: float | None = None, message: Any = None, **values: Any
    ) -> UpstreamError:
        return UpstreamError(
            _l(self.message, **values) if message is None else message,
            code=self.code,
            status=self.status,
            retryable=self.retryable,
            retry_after=retry_after,
            extra=extra,
        )


# One row per upstream fault.
# fmt: off
TIMEOUT = Fault("upstream_timeout", 504, True, N_("The image model did not answer within %(seconds)g s. Please try again."))
UPSTREAM_TIMEOUT = Fault("upstream_timeout", 504, True, N_("The image model timed out. Please try again."))
UNREACHABLE = Fault("upstream_unreachable", 502, True, N_("Could not reach the image model (%(exception)s). Check the network, GENAI_BASE_URL and HTTPS_PROXY."))
# Nothing changes before billing is enabled or the quotas reset: no retry.
NO_QUOTA = Fault("upstream_quota_exhausted", 429, False, N_("This API key has no quota for this model (limit 0). Image models usually need billing enabled on the key's Google Cloud project."))
DAILY_QUOTA_USED = Fault("upstream_quota_exhausted", 429, False, N_("The API key's daily quota for this model is used up. Try again after it resets (midnight Pacific time) or enable billing for the key's project."))
RATE_LIMITED = Fault("upstream_rate_limited", 429, True, N_("The image model is rate limited. Please try again shortly."))
OVERLOADED = Fault("upstream_overloaded", 503, True, N_("The image model is overloaded. Please try again shortly."))
INTERNAL_ERROR = Fault("upstream_error", 502, True, N_("The image model had an internal error (HTTP %(status)s). Please try again."))
KEY_RESTRICTED = Fault("upstream_key_restricted", 502, False, N_("Google refused this server's requests because the API key is restricted (%(why)s). Use a server API key: in Google Cloud Console → APIs & Services → Credentials, set Application restrictions to None and API restrictions to Generative Language API."))
KEY_INVALID = Fault("upstream_key_invalid", 502, False, N_("Google rejected the API key as invalid or expired. Check GOOGLE_API_KEY / GEMINI_API_KEY."))
REGION_UNSUPPORTED = Fault("upstream_region_unsupported", 502, False, N_("Google does not offer the Gemini API in this server's location. Set GENAI_BASE_URL to a relay in a supported region, or route traffic through HTTPS_PROXY."))
MODEL_NOT_FOUND = Fault("model_not_found", 400, False, N_("Model '%(model)s' was not found or does not support image generation."))
REQUEST_TOO_LARGE = Fault("upstream_request_too_large", 413, False, N_("The request is too large for the image model. Use fewer or smaller images."))
REJECTED = Fault("upstream_rejected", 400, False, N_("The image model rejected the request: %(shown)s"))
PROMPT_BLOCKED = Fault("content_blocked", 422, False, N_("The prompt was blocked by the model's %(filter)s (reason: %(reason)s). Rephrase the prompt or use different images."))
IMAGE_WITHHELD = Fault("content_blocked", 422, False, N_("The model withheld the image because of its %(filter)s (reason: %(reason)s). Rephrase the prompt or use different images."))
# An empty answer is usually a fluke of sampling: worth another call.
NO_CONTENT = Fault("no_content", 502, True, N_("The image model returned no image and no text. Please try again or rephrase the prompt."))
BAD_RESPONSE = Fault("upstream_bad_response", 502, False, N_("The image model returned a response that could not be read."))
BAD_IMAGE = Fault("upstream_bad_response", 502, False, N_("The image model returned image data that is not a valid image. Please try again."))
# fmt: on

# Pacific standard time, for when the tz database is missing (Windows without
# the tzdata package): an hour late in summer at worst.
_PACIFIC_STANDARD = dt.timezone(dt.timedelta(hours=-8))


def scrub(text: str | None, api_key: str) -> str:
    """`text` without our API key or anything shaped like a Google key."""
    if not text:
        return ""
    return _GOOGLE_KEY_PATTERN.sub("[redacted]", text.replace(api_key, "[redacted]"))


def from_exception(
    exc: Exception, *, model: str, timeout_s: float, scrub: Scrub
) -> UpstreamError | None:
    """The error a failed generate_content call means, or None for an
    exception that is not about the upstream (a bug of ours: let it raise)."""
    if isinstance(exc, genai_errors.APIError):
        return from_api_error(exc, model=model, scrub=scrub)
    if isinstance(exc, _TIMEOUT_ERRORS):
        return TIMEOUT.error(seconds=timeout_s, extra={"exception": type(exc).__name__})
    if isinstance(exc, _DECODING_ERRORS):
        return bad_response(type(exc).__name__)
    if isinstance(exc, _TRANSPORT_ERRORS):
        return UNREACHABLE.error(
            exception=type(exc).__name__,
            extra={"exception": type(exc).__name__, "detail": scrub(str(exc))},
        )
    if isinstance(exc, _UNREADABLE_RESPONSE_ERRORS):
        return bad_response(type(exc).__name__)
    return None


def from_api_error(exc: genai_errors.APIError, *, model: str, scrub: Scrub) -> UpstreamError:
    """An HTTP error answer, by status, google.rpc details and message."""
    upstream = _UpstreamErrorBody.from_exception(exc)
    message = scrub(upstream.message)
    extra = {
        "upstream_code": upstream.code,
        "upstream_status": upstream.status,
        "upstream_message": clip(message),
    }
    if upstream.reasons:
        extra["upstream_reason"] = min(upstream.reasons)
    lowered = message.lower()
    code = upstream.code

    if code == 429 or upstream.status == "RESOURCE_EXHAUSTED":
        if upstream.has_zero_quota or "limit: 0" in lowered:
            # The reset is the earliest a retry could pass.
            return NO_QUOTA.error(retry_after=seconds_until_daily_reset(), extra=extra)
        if upstream.is_daily_quota:
            return DAILY_QUOTA_USED.error(retry_after=seconds_until_daily_reset(), extra=extra)
        # retry_after is None when the upstream gave no RetryInfo: the GenAI
        # service then backs off on its own and sets one if it gives up.
        return RATE_LIMITED.error(retry_after=upstream.retry_after, extra=extra)

    if upstream.reasons & _KEY_RESTRICTION_REASONS or (
        "referer" in lowered and "blocked" in lowered
    ):
        why = extra.get("upstream_reason") or clip(message)
        return KEY_RESTRICTED.error(why=why, extra=extra)

    if (
        upstream.reasons & _KEY_INVALID_REASONS
        or "api key not valid" in lowered
        or "api key expired" in lowered
        or ("api key" in lowered and "leaked" in lowered)
        or code == 401
    ):
        return KEY_INVALID.error(extra=extra)

    if "user location is not supported" in lowered:
        return REGION_UNSUPPORTED.error(extra=extra)

    if code == 503:
        # As for the rate limit: the service fills in its own when None.
        return OVERLOADED.error(retry_after=upstream.retry_after, extra=extra)

    if code >= 500:
        return INTERNAL_ERROR.error(status=code, retry_after=upstream.retry_after, extra=extra)

    if code == 404:
        return MODEL_NOT_FOUND.error(model=model, extra={**extra, "model": model})

    if code == 413 or "payload size exceeds" in lowered:
        return REQUEST_TOO_LARGE.error(extra=extra)

    if code == 408:
        return UPSTREAM_TIMEOUT.error(extra=extra)

    if 400 <= code < 500:
        return REJECTED.error(shown=clip(message) or f"HTTP {code}", extra=extra)

    return bad_response(f"HTTP {code}")


def content_blocked(reason: str, stage: str, texts: list[str], scrub: Scrub) -> UpstreamError:
    """The prompt ("prompt") or the picture ("output") was refused."""
    fault = PROMPT_BLOCKED if stage == "prompt" else IMAGE_WITHHELD
    name = _BLOCK_REASON_NAMES.get(reason, _DEFAULT_BLOCK_REASON_NAME)
    message = _l(fault.message, filter=name, reason=reason)
    clean_texts = [scrub(text) for text in texts]
    if clean_texts:
        said = clip(" ".join(clean_texts))
        message = _l("%(message)s The model said: %(said)s", message=message, said=said)
    return fault.error(
        message=message, extra={"reason": reason, "stage": stage, "texts": clean_texts}
    )


def no_content(finish_reason: str | None) -> UpstreamError:
    return NO_CONTENT.error(extra={"finish_reason": finish_reason})


def bad_response(cause: str, fault: Fault = BAD_RESPONSE) -> UpstreamError:
    return fault.error(extra={"cause": cause})


def clip(text: str) -> str:
    return text if len(text) <= _MAX_UPSTREAM_TEXT else text[: _MAX_UPSTREAM_TEXT - 1] + "…"


class _UpstreamErrorBody:
    """The parts of Google's ``{"error": {...}}`` body the mapping needs."""

    def __init__(
        self,
        code: int,
        status: str | None,
        message: str,
        details: list[dict],
        retry_after_header: str | None,
    ):
        self.code = code
        self.status = status
        self.message = message
        self.reasons = {
            detail.get("reason")
            for detail in details
            if detail.get("@type") == _ERROR_INFO and detail.get("reason")
        }
        violations = [
            violation
            for detail in details
            if detail.get("@type") == _QUOTA_FAILURE
            for violation in detail.get("violations") or []
            if isinstance(violation, dict)
        ]
        self.is_daily_quota = any(
            "PerDay" in str(violation.get("quotaId", "")) for violation in violations
        )
        self.has_zero_quota = any(
            str(violation.get("quotaValue", "")) == "0" for violation in violations
        )
        retry_delays = [
            _parse_duration(detail.get("retryDelay"))
            for detail in details
            if detail.get("@type") == _RETRY_INFO
        ]
        retry_delays = [delay for delay in retry_delays if delay is not None]
        self.retry_after = retry_delays[0] if retry_delays else _parse_seconds(retry_after_header)

    @classmethod
    def from_exception(cls, exc: genai_errors.APIError) -> _UpstreamErrorBody:
        # APIError.details is the whole parsed body ({"error": {...}}), or
        # {"message": <text>, "status": <reason phrase>} when it was not JSON.
        body = exc.details[0] if isinstance(exc.details, list) and exc.details else exc.details
        error = body.get("error", body) if isinstance(body, dict) else {}
        if not isinstance(error, dict):
            error = {}
        details = [detail for detail in error.get("details") or [] if isinstance(detail, dict)]
        headers = getattr(exc.response, "headers", None)
        retry_after_header = headers.get("retry-after") if headers is not None else None
        return cls(
            code=int(exc.code or 0),
            status=exc.status or error.get("status"),
            message=str(exc.message or error.get("message") or ""),
            details=details,
            retry_after_header=retry_after_header,
        )


def _parse_duration(value: Any) -> float | None:
    """google.protobuf.Duration in JSON: "1s", "0.5s", "30.123s"."""
    if isinstance(value, dict):  # {"seconds": 1, "nanos": 500000000}
        try:
            return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            return None
    match = _DURATION_PATTERN.match(str(value or ""))
    return float(match.group(1)) if match else None


def _parse_seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def seconds_until_daily_reset(now: dt.datetime | None = None) -> float:
    """Seconds until Gemini's daily quotas reset: midnight Pacific time."""
    try:
        pacific: dt.tzinfo = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        pacific = _PACIFIC_STANDARD
    now = (now or dt.datetime.now(dt.UTC)).astimezone(pacific)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    # Through UTC, so a daylight-saving change tonight is counted.
    return max(0.0, (midnight.astimezone(dt.UTC) - now.astimezone(dt.UTC)).total_seconds())
