"""The Gemini provider: one upstream generateContent call through google-genai.

It owns one long-lived ``genai.Client`` and turns every way a call can fail
(HTTP errors, timeouts, broken connections, unreadable answers, safety blocks)
into an ``UpstreamError`` with a stable code, so nothing above it needs to know
the SDK. Retries are the GenAI service's job (tenacity, with the gate), so the
SDK's own retries are off: one ``generate()`` is exactly one HTTP request.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from app.errors import UpstreamError
from app.services.genai.contracts import GenerationRequest, ProviderImage, ProviderResult

try:  # The SDK uses httpx instead when GOOGLE_GENAI_HTTP_CLIENT=httpx.
    import httpx
except ImportError:  # pragma: no cover - httpx2 is the 3.x default
    httpx = None

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
_BLOCKING_FINISH_REASONS = frozenset(
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

# What each block reason means to a person, in English and Chinese.
_BLOCK_REASON_NAMES = {
    "SAFETY": ("safety filters", "安全过滤"),
    "IMAGE_SAFETY": ("image safety filters", "图片安全过滤"),
    "PROHIBITED_CONTENT": ("prohibited-content policy", "违禁内容政策"),
    "IMAGE_PROHIBITED_CONTENT": ("prohibited-content policy", "违禁内容政策"),
    "BLOCKLIST": ("blocklist", "屏蔽词列表"),
    "RECITATION": (
        "recitation check (too close to existing content)",
        "防复制检查（与已有内容过于相似）",
    ),
    "IMAGE_RECITATION": (
        "recitation check (too close to existing content)",
        "防复制检查（与已有内容过于相似）",
    ),
    "SPII": ("personal-information filter", "个人敏感信息过滤"),
    "JAILBREAK": ("jailbreak protection", "越狱防护"),
    "MODEL_ARMOR": ("Model Armor", "Model Armor"),
}
_DEFAULT_BLOCK_REASON_NAME = ("content policy", "内容政策")

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


class GeminiProvider:
    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        api_version: str = "v1beta",
        timeout_s: float = 90,
        proxy: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("GeminiProvider needs an API key")
        self._api_key = api_key.strip()
        self._timeout_s = timeout_s
        # The SDK builds its own httpx2.Client(**client_args) (httpx2 is the
        # google-genai 3.x default backend). httpx2 clients default to
        # trust_env=True, so without a `transport` they read HTTPS_PROXY /
        # HTTP_PROXY / ALL_PROXY / NO_PROXY from the environment when the
        # client is created: nothing to do for those. An explicit proxy goes
        # in client_args; httpx2 then routes everything ("all://") through it
        # and ignores the environment, NO_PROXY included.
        client_args: dict = {"proxy": proxy} if proxy else {}
        # The gate paces upstream starts. Its wait runs as the request's
        # first byte is about to be written (after the connection is taken
        # from the pool or opened), and the gate hears when the body is
        # written, through httpcore's `trace` extension, which the request
        # hook sets: so neither the SDK's time to build a request nor a new
        # connection's handshake can shorten the gap the upstream sees.
        self._pending_send = threading.local()
        client_args["event_hooks"] = {"request": [self._on_request]}
        self._client = genai.Client(
            api_key=self._api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version=api_version,
                # Milliseconds. httpx2 applies it to each phase (connect, each
                # read, write), not to the whole call; the SDK also sends it to
                # Google as X-Server-Timeout.
                # (0 would mean "no timeout" to the SDK, hence at least 1 ms.)
                timeout=max(1, round(timeout_s * 1000)),
                # attempts=1: no SDK retries; the GenAI service retries
                # through its gate and honours RetryInfo itself.
                retry_options=types.HttpRetryOptions(attempts=1),
                client_args=client_args,
            ),
        )

    def close(self) -> None:
        self._client.close()

    def _on_request(self, request) -> None:
        pacing = getattr(self._pending_send, "pacing", None)
        if pacing is None:
            return
        before_send, after_send = pacing
        outer = request.extensions.get("trace")

        def trace(event: str, info: dict) -> None:
            # "http11.send_request_headers.started", or http2's; through an
            # HTTPS proxy the CONNECT request comes first (wait_for_start
            # runs once; a later report of a send only moves it later).
            if event.endswith(".send_request_headers.started") and before_send:
                before_send()
            elif event.endswith(".send_request_body.complete") and after_send:
                after_send()
            if outer is not None:
                outer(event, info)

        request.extensions["trace"] = trace

    # ------------------------------------------------------------ the call

    def generate(
        self,
        request: GenerationRequest,
        before_send: Callable[[], None] | None = None,
        after_send: Callable[[], None] | None = None,
    ) -> ProviderResult:
        self._pending_send.pacing = (before_send, after_send) if before_send or after_send else None
        try:
            response = self._client.models.generate_content(
                model=request.model,
                contents=[types.Content(role="user", parts=_request_parts(request))],
                config=_request_config(request),
            )
        except genai_errors.APIError as exc:
            raise self._from_api_error(exc, request) from None
        except _TIMEOUT_ERRORS as exc:
            raise UpstreamError(
                f"The image model did not answer within {self._timeout_s:g} s. Please try again.",
                f"图像模型在 {self._timeout_s:g} 秒内没有响应，请重试。",
                code="upstream_timeout",
                status=504,
                retryable=True,
                extra={"exception": type(exc).__name__},
            ) from None
        except _DECODING_ERRORS as exc:
            raise _bad_response(type(exc).__name__) from None
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamError(
                f"Could not reach the image model ({type(exc).__name__}). "
                "Check the network, GENAI_BASE_URL and HTTPS_PROXY.",
                f"无法连接图像模型（{type(exc).__name__}）。"
                "请检查网络、GENAI_BASE_URL 和 HTTPS_PROXY 设置。",
                code="upstream_unreachable",
                status=502,
                retryable=True,
                extra={
                    "exception": type(exc).__name__,
                    "detail": self._scrub(str(exc)),
                },
            ) from None
        except _UNREADABLE_RESPONSE_ERRORS as exc:
            raise _bad_response(type(exc).__name__) from None
        finally:
            self._pending_send.pacing = None
        # Chained exceptions are dropped (`from None`) on purpose: the SDK's
        # str() embeds the raw upstream body, which must not reach a log line
        # unscrubbed. Everything useful is copied, scrubbed, into `extra`.
        return self._read_response(response, request)

    # ------------------------------------------------------------ success path

    def _read_response(
        self, response: types.GenerateContentResponse, request: GenerationRequest
    ) -> ProviderResult:
        images: list[ProviderImage] = []
        undecodable_images = 0
        texts: list[str] = []
        finish_reason: str | None = None
        for candidate in response.candidates or []:
            if candidate.finish_reason is not None and finish_reason is None:
                finish_reason = _enum_name(candidate.finish_reason)
            parts = candidate.content.parts if candidate.content and candidate.content.parts else []
            for part in parts:
                # Thinking models send drafts (text and images) marked as
                # thoughts before the answer; they are not the result.
                if part.thought:
                    continue
                if part.inline_data is not None and part.inline_data.data:
                    image = _verified_image(part.inline_data.data, part.inline_data.mime_type)
                    if image is None:
                        undecodable_images += 1
                    else:
                        images.append(image)
                elif part.text:
                    texts.append(part.text)

        block_reason = (
            _enum_name(response.prompt_feedback.block_reason) if response.prompt_feedback else None
        )
        if block_reason and not images:
            raise self._content_blocked(block_reason, "prompt", texts)
        if not images and undecodable_images:
            raise _bad_response(
                "undecodable image",
                en="The image model returned image data that is not a valid image. "
                "Please try again.",
                zh="图像模型返回的图片数据已损坏，无法读取，请重试。",
            )
        if not images and finish_reason in _BLOCKING_FINISH_REASONS:
            raise self._content_blocked(finish_reason, "output", texts)
        if not images and not texts:
            raise UpstreamError(
                "The image model returned no image and no text. "
                "Please try again or rephrase the prompt.",
                "图像模型没有返回图片或文字，请重试或修改提示词。",
                code="no_content",
                status=502,
                # An empty answer is usually a fluke of sampling.
                retryable=True,
                extra={"finish_reason": finish_reason},
            )
        return ProviderResult(
            images=images,
            texts=texts,
            finish_reason=finish_reason,
            usage=_usage(response.usage_metadata),
            model=response.model_version or request.model,
        )

    def _content_blocked(self, reason: str, stage: str, texts: list[str]) -> UpstreamError:
        name_en, name_zh = _BLOCK_REASON_NAMES.get(reason, _DEFAULT_BLOCK_REASON_NAME)
        if stage == "prompt":
            message_en = f"The prompt was blocked by the model's {name_en} (reason: {reason})."
            message_zh = f"提示词被模型的{name_zh}拦截（原因：{reason}）。"
        else:
            message_en = (
                f"The model withheld the image because of its {name_en} (reason: {reason})."
            )
            message_zh = f"模型因{name_zh}未返回图片（原因：{reason}）。"
        message_en += " Rephrase the prompt or use different images."
        message_zh += "请修改提示词或更换图片。"
        clean_texts = [self._scrub(text) for text in texts]
        if clean_texts:
            said = _clip(" ".join(clean_texts))
            message_en += f" The model said: {said}"
            message_zh += f"模型回复：{said}"
        return UpstreamError(
            message_en,
            message_zh,
            code="content_blocked",
            status=422,
            retryable=False,
            extra={"reason": reason, "stage": stage, "texts": clean_texts},
        )

    # ------------------------------------------------------------ HTTP errors

    def _from_api_error(
        self, exc: genai_errors.APIError, request: GenerationRequest
    ) -> UpstreamError:
        upstream = _UpstreamErrorBody.from_exception(exc)
        message = self._scrub(upstream.message)
        extra = {
            "upstream_code": upstream.code,
            "upstream_status": upstream.status,
            "upstream_message": _clip(message),
        }
        if upstream.reasons:
            extra["upstream_reason"] = min(upstream.reasons)
        lowered = message.lower()
        code = upstream.code

        if code == 429 or upstream.status == "RESOURCE_EXHAUSTED":
            if upstream.has_zero_quota or "limit: 0" in lowered:
                return UpstreamError(
                    "This API key has no quota for this model (limit 0). "
                    "Image models usually need billing enabled on the key's Google Cloud project.",
                    "该 API 密钥没有此模型的配额（上限为 0）。"
                    "图像模型通常需要为密钥所属的 Google Cloud 项目开通结算。",
                    code="upstream_quota_exhausted",
                    status=429,
                    retryable=False,
                    extra=extra,
                )
            if upstream.is_daily_quota:
                return UpstreamError(
                    "The API key's daily quota for this model is used up. "
                    "Try again after it resets (midnight Pacific time) "
                    "or enable billing for the key's project.",
                    "该 API 密钥对此模型的每日配额已用完。"
                    "请在配额重置后（太平洋时间午夜）重试，或为密钥所属项目开通结算。",
                    code="upstream_quota_exhausted",
                    status=429,
                    retry_after=_seconds_until_pacific_midnight(),
                    retryable=False,
                    extra=extra,
                )
            return UpstreamError(
                "The image model is rate limited. Please try again shortly.",
                "上游模型速率受限，请稍后重试。",
                code="upstream_rate_limited",
                status=429,
                retry_after=upstream.retry_after,
                retryable=True,
                extra=extra,
            )

        if upstream.reasons & _KEY_RESTRICTION_REASONS or (
            "referer" in lowered and "blocked" in lowered
        ):
            why = extra.get("upstream_reason") or _clip(message)
            return UpstreamError(
                f"Google refused this server's requests because the API key is restricted ({why}). "
                "Use a server API key: in Google Cloud Console → APIs & Services → Credentials, "
                "set Application restrictions to None and "
                "API restrictions to Generative Language API.",
                f"API 密钥设置了限制，Google 拒绝了本服务器的请求（{why}）。"
                "请使用服务器专用密钥：在 Google Cloud 控制台 → API 和服务 → 凭据 中，"
                "将“应用限制”设为“无”，将“API 限制”设为 Generative Language API。",
                code="upstream_key_restricted",
                status=502,
                retryable=False,
                extra=extra,
            )

        if (
            upstream.reasons & _KEY_INVALID_REASONS
            or "api key not valid" in lowered
            or "api key expired" in lowered
            or ("api key" in lowered and "leaked" in lowered)
            or code == 401
        ):
            return UpstreamError(
                "Google rejected the API key as invalid or expired. "
                "Check GOOGLE_API_KEY / GEMINI_API_KEY.",
                "API 密钥无效或已过期，已被 Google 拒绝。请检查 GOOGLE_API_KEY / GEMINI_API_KEY。",
                code="upstream_key_invalid",
                status=502,
                retryable=False,
                extra=extra,
            )

        if "user location is not supported" in lowered:
            return UpstreamError(
                "Google does not offer the Gemini API in this server's location. "
                "Set GENAI_BASE_URL to a relay in a supported region, "
                "or route traffic through HTTPS_PROXY.",
                "Gemini API 不支持本服务器所在的地区。"
                "请将 GENAI_BASE_URL 设为受支持地区的中转地址，或通过 HTTPS_PROXY 设置代理。",
                code="upstream_region_unsupported",
                status=502,
                retryable=False,
                extra=extra,
            )

        if code == 503:
            return UpstreamError(
                "The image model is overloaded. Please try again shortly.",
                "上游模型当前过载，请稍后重试。",
                code="upstream_overloaded",
                status=503,
                retry_after=upstream.retry_after,
                retryable=True,
                extra=extra,
            )

        if code >= 500:
            return UpstreamError(
                f"The image model had an internal error (HTTP {code}). Please try again.",
                f"上游模型内部错误（HTTP {code}），请重试。",
                code="upstream_error",
                status=502,
                retry_after=upstream.retry_after,
                retryable=True,
                extra=extra,
            )

        if code == 404:
            return UpstreamError(
                f"Model '{request.model}' was not found or does not support image generation.",
                f"未找到模型“{request.model}”，或该模型不支持图像生成。",
                code="model_not_found",
                status=400,
                retryable=False,
                extra={**extra, "model": request.model},
            )

        if code == 413 or "payload size exceeds" in lowered:
            return UpstreamError(
                "The request is too large for the image model. Use fewer or smaller images.",
                "请求内容过大，请减少图片数量或缩小图片。",
                code="upstream_request_too_large",
                status=413,
                retryable=False,
                extra=extra,
            )

        if code == 408:
            return UpstreamError(
                "The image model timed out. Please try again.",
                "图像模型响应超时，请重试。",
                code="upstream_timeout",
                status=504,
                retryable=True,
                extra=extra,
            )

        if 400 <= code < 500:
            shown = _clip(message) or f"HTTP {code}"
            return UpstreamError(
                f"The image model rejected the request: {shown}",
                f"图像模型拒绝了该请求：{shown}",
                code="upstream_rejected",
                status=400,
                retryable=False,
                extra=extra,
            )

        return _bad_response(f"HTTP {code}")

    def _scrub(self, text: str | None) -> str:
        if not text:
            return ""
        return _GOOGLE_KEY_PATTERN.sub("[redacted]", text.replace(self._api_key, "[redacted]"))


# ---------------------------------------------------------------- request


def _request_parts(request: GenerationRequest) -> list[types.Part]:
    # Images first, then the instruction: Google's prompting guide for
    # multimodal input recommends the text after the image(s), and its
    # multi-image composition examples list the images before the prompt.
    parts = [types.Part.from_bytes(data=image, mime_type="image/png") for image in request.images]
    if request.prompt:
        parts.append(types.Part.from_text(text=request.prompt))
    return parts


def _request_config(request: GenerationRequest) -> types.GenerateContentConfig:
    sampling = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "seed": request.seed,
        "max_output_tokens": request.max_output_tokens,
    }
    image_settings = {
        "aspect_ratio": request.aspect_ratio,
        "image_size": request.image_size,
    }
    image_settings = {key: value for key, value in image_settings.items() if value is not None}
    return types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        # Image models accept one candidate per call; N images are N calls.
        candidate_count=1,
        image_config=types.ImageConfig(**image_settings) if image_settings else None,
        # Both are SDK-side loops that could send more requests than the one
        # the gate admitted; neither is sent on the wire.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
        **{key: value for key, value in sampling.items() if value is not None},
    )


# ---------------------------------------------------------------- response


def _verified_image(data: bytes, declared_mime: str | None) -> ProviderImage | None:
    """The image if Pillow can read it, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            detected_mime = Image.MIME.get(image.format or "")
            image.verify()
    # Pillow reports a broken file through many types (UnidentifiedImageError,
    # SyntaxError, OSError, struct.error, DecompressionBombError...); any of
    # them means the bytes are not a usable picture.
    except Exception:
        return None
    return ProviderImage(data=data, mime=detected_mime or declared_mime or "image/png")


def _usage(
    metadata: types.GenerateContentResponseUsageMetadata | None,
) -> dict[str, int]:
    if metadata is None:
        return {}
    prompt_tokens = metadata.prompt_token_count or 0
    output_tokens = metadata.candidates_token_count or 0
    return {
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "total_tokens": metadata.total_token_count or prompt_tokens + output_tokens,
    }


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "value", None) or str(value)


def _bad_response(cause: str, *, en: str | None = None, zh: str | None = None) -> UpstreamError:
    return UpstreamError(
        en or "The image model returned a response that could not be read.",
        zh or "图像模型返回的响应无法解析。",
        code="upstream_bad_response",
        status=502,
        retryable=False,
        extra={"cause": cause},
    )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_UPSTREAM_TEXT else text[: _MAX_UPSTREAM_TEXT - 1] + "…"


# ---------------------------------------------------------------- error bodies


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


def _seconds_until_pacific_midnight() -> float | None:
    """When Gemini's daily quotas reset. None where tz data is missing."""
    try:
        pacific = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        return None
    now = dt.datetime.now(pacific)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    # Through UTC, so a daylight-saving change tonight is counted.
    return max(0.0, (midnight.astimezone(dt.UTC) - now.astimezone(dt.UTC)).total_seconds())
