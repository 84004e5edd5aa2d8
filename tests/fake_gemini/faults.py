"""The fault catalogue: how the fake answers one call, in Google's shapes.

Each constructor returns a `Fault`; `FAULTS` names them for the control
endpoint and the CLI, and `fault_from_spec` turns a name or a
``{"fault": ..., **arguments}`` dict into one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tests.fake_gemini.pictures import render_png

# Stands in for the server's default image inside a fault body; replaced per
# call so the picture follows the current image_size / image_kb knobs.
DEFAULT_IMAGE_DATA = "__default_image__"


@dataclass(frozen=True)
class Fault:
    """How the fake answers one call.

    ``body`` is JSON-ready; ``raw`` is sent verbatim instead (broken JSON);
    ``delay_s`` is slept before answering, on top of the server latency;
    ``reset`` drops the connection without any answer; ``headers`` are added
    to the answer (a relay's ``Retry-After``, say).
    """

    name: str
    status: int = 200
    body: dict | None = None
    raw: bytes | None = None
    delay_s: float = 0.0
    reset: bool = False
    headers: tuple[tuple[str, str], ...] = ()


def _usage(prompt_tokens: int = 12, output_tokens: int = 1290) -> dict:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def answer(parts: list[dict] | None, finish_reason: str | None = "STOP", **extra: Any) -> dict:
    """One candidate with these parts: the body of a custom ``Fault``."""
    candidate: dict[str, Any] = {"index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return {"candidates": [candidate], "usageMetadata": _usage(), **extra}


def ok(
    text: str | None = None,
    image: bool = True,
    mime: str = "image/png",
    finish_reason: str = "STOP",
) -> Fault:
    """The model's normal answer: optional text, then the default image."""
    parts: list[dict] = []
    if text is not None:
        parts.append({"text": text})
    if image:
        parts.append({"inlineData": {"mimeType": mime, "data": DEFAULT_IMAGE_DATA}})
    return Fault("ok", body=answer(parts, finish_reason))


def text_only(text: str = "I can't draw that, but here is a description.") -> Fault:
    return Fault("text_only", body=answer([{"text": text}], "STOP"))


def empty() -> Fault:
    """No candidates and no block reason: the model produced nothing."""
    return Fault("empty", body={"usageMetadata": _usage(output_tokens=0)})


def blocked_prompt(reason: str = "SAFETY") -> Fault:
    return Fault(
        "blocked_prompt",
        body={
            "promptFeedback": {
                "blockReason": reason,
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                    }
                ],
            },
            "usageMetadata": _usage(output_tokens=0),
        },
    )


def safety_finish(text: str | None = None, reason: str = "IMAGE_SAFETY") -> Fault:
    """The candidate stopped for safety: no image, maybe the model's excuse."""
    parts = [{"text": text}] if text is not None else None
    return Fault("safety_finish", body=answer(parts, reason))


def error(code: int, status: str, message: str, details: list[dict] | None = None) -> Fault:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        body["details"] = details
    return Fault(f"error_{code}", status=code, body={"error": body})


def _retry_info(retry_delay: str) -> dict:
    return {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": retry_delay,
    }


def _quota_failure(quota_id: str) -> dict:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": (
                    "generativelanguage.googleapis.com/generate_content_free_tier_requests"
                ),
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": "{model}"},
                "quotaValue": "10",
            }
        ],
    }


def error_info(reason: str) -> dict:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)


def rate_limited(retry_delay: str | None = "1s") -> Fault:
    details = [_quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier")]
    if retry_delay is not None:
        details.append(_retry_info(retry_delay))
    return Fault(
        "rate_limited",
        **_error_fields(429, "RESOURCE_EXHAUSTED", _QUOTA_MESSAGE, details),
    )


def quota_per_day(retry_delay: str = "43s") -> Fault:
    # Google sends a RetryInfo even when the daily quota is gone; waiting it
    # out does not help, which is what the provider must recognise.
    details = [
        _quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        _retry_info(retry_delay),
    ]
    return Fault(
        "quota_per_day",
        **_error_fields(429, "RESOURCE_EXHAUSTED", _QUOTA_MESSAGE, details),
    )


def overloaded(retry_delay: str | None = None) -> Fault:
    details = [_retry_info(retry_delay)] if retry_delay else None
    return Fault(
        "overloaded",
        **_error_fields(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
            details,
        ),
    )


def server_error(code: int = 500) -> Fault:
    status = {500: "INTERNAL", 502: "BAD_GATEWAY", 504: "DEADLINE_EXCEEDED"}.get(code, "INTERNAL")
    message = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
    return Fault("server_error", **_error_fields(code, status, message))


def key_invalid() -> Fault:
    message = "API key not valid. Please pass a valid API key."
    details = [
        error_info("API_KEY_INVALID"),
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        },
    ]
    return Fault("key_invalid", **_error_fields(400, "INVALID_ARGUMENT", message, details))


def referer_blocked() -> Fault:
    return Fault(
        "referer_blocked",
        **_error_fields(
            403,
            "PERMISSION_DENIED",
            "Requests from referer <empty> are blocked.",
            [error_info("API_KEY_HTTP_REFERRER_BLOCKED")],
        ),
    )


def region_unsupported() -> Fault:
    return Fault(
        "region_unsupported",
        **_error_fields(
            400,
            "FAILED_PRECONDITION",
            "User location is not supported for the API use.",
        ),
    )


def model_not_found() -> Fault:
    # {model} and {api_version} are filled in from the request path.
    message = (
        "models/{model} is not found for API version {api_version}, or is not supported for "
        "generateContent. Call ListModels to see the list of available models "
        "and their supported methods."
    )
    return Fault("model_not_found", **_error_fields(404, "NOT_FOUND", message))


def bad_request(message: str = "Request contains an invalid argument.") -> Fault:
    return Fault("bad_request", **_error_fields(400, "INVALID_ARGUMENT", message))


def _error_fields(code: int, status: str, message: str, details: list[dict] | None = None) -> dict:
    fault = error(code, status, message, details)
    return {"status": fault.status, "body": fault.body}


def hang(seconds: float = 30.0) -> Fault:
    """Answer only after ``seconds`` (past the client's timeout)."""
    return Fault("hang", delay_s=seconds, body=ok().body)


def connection_reset() -> Fault:
    return Fault("connection_reset", reset=True)


def malformed_json() -> Fault:
    return Fault(
        "malformed_json",
        raw=b'{"candidates": [{"content": {"parts": [{"text": "cut off',
    )


def truncated_image() -> Fault:
    """Valid base64 of a PNG cut in half: decodes as bytes, not as an image."""
    png = render_png(256, 256, seed=7, image_kb=None)
    data = base64.b64encode(png[: len(png) // 2]).decode()
    return Fault(
        "truncated_image",
        body=answer([{"inlineData": {"mimeType": "image/png", "data": data}}]),
    )


def invalid_base64() -> Fault:
    return Fault(
        "invalid_base64",
        body=answer([{"inlineData": {"mimeType": "image/png", "data": "iVBORw0K!!not*base64"}}]),
    )


def not_an_image() -> Fault:
    data = base64.b64encode(b"<html>this is not a picture</html>").decode()
    return Fault(
        "not_an_image",
        body=answer([{"inlineData": {"mimeType": "image/png", "data": data}}]),
    )


def thought_then_image() -> Fault:
    """Thinking models send draft parts marked ``thought``; only the rest counts."""
    draft = base64.b64encode(render_png(32, 32, seed=999, image_kb=None)).decode()
    parts = [
        {"text": "**Planning the composition** I will draw a banana.", "thought": True},
        {"inlineData": {"mimeType": "image/png", "data": draft}, "thought": True},
        {"text": "Here is your banana."},
        {"inlineData": {"mimeType": "image/png", "data": DEFAULT_IMAGE_DATA}},
    ]
    return Fault("thought_then_image", body=answer(parts))


# Names accepted by POST /_fake/script and the CLI.
FAULTS = {
    constructor.__name__: constructor
    for constructor in (
        ok,
        text_only,
        empty,
        blocked_prompt,
        safety_finish,
        error,
        rate_limited,
        quota_per_day,
        overloaded,
        server_error,
        key_invalid,
        referer_blocked,
        region_unsupported,
        model_not_found,
        bad_request,
        hang,
        connection_reset,
        malformed_json,
        truncated_image,
        invalid_base64,
        not_an_image,
        thought_then_image,
    )
}


def fault_from_spec(spec: str | dict | Fault) -> Fault:
    """``"overloaded"`` or ``{"fault": "error", "code": 500, ...}`` → Fault."""
    if isinstance(spec, Fault):
        return spec
    if isinstance(spec, str):
        return FAULTS[spec]()
    kwargs = dict(spec)
    return FAULTS[kwargs.pop("fault")](**kwargs)
