"""The Gemini provider: one upstream generateContent call through google-genai.

It owns one long-lived ``genai.Client``, maps GenerationOptions to the SDK's
config, and hands every way a call can fail (HTTP errors, timeouts, broken
connections, unreadable answers, safety blocks) to gemini_errors, which makes
it an ``UpstreamError`` with a stable code: nothing above it knows the SDK. Retries are the GenAI service's job (tenacity, with the gate), so the
SDK's own retries are off: one ``generate()`` is exactly one HTTP request.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

from google import genai
from google.genai import types
from PIL import Image

from app.errors import UpstreamError
from app.services.genai import gemini_errors
from app.services.genai.contracts import (
    GenerationOptions,
    GenerationRequest,
    ProviderImage,
    ProviderResult,
)

# Where each GenerationOptions field goes in a generateContent request (the
# names are the SDK's too). tests/test_gemini_provider.py checks that every
# option is listed here, so a new one cannot be dropped on the way.
SAMPLING_OPTIONS = ("temperature", "top_p", "top_k", "seed", "max_output_tokens")
IMAGE_OPTIONS = ("aspect_ratio", "image_size")
# `model` is sent as the call's model, resolved by the catalog (request.model);
# `candidate_count` is N calls of one candidate each (GenAIService).
OPTIONS_SENT_OTHERWISE = ("model", "candidate_count")


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
                config=_request_config(request.options),
            )
        except Exception as exc:
            error = gemini_errors.from_exception(
                exc, model=request.model, timeout_s=self._timeout_s, scrub=self._scrub
            )
            if error is None:  # not about the upstream: a fault of ours
                raise
            # The SDK's exception is dropped (`from None`) on purpose: its
            # str() embeds the raw upstream body, which must not reach a log
            # line unscrubbed. What is useful is in `error.extra`, scrubbed.
            raise error from None
        finally:
            self._pending_send.pacing = None
        try:
            return self._read_response(response, request)
        except UpstreamError as error:
            # A 200 all the same (blocked, empty, unreadable): Google bills
            # it, and the ledger needs its token counts.
            error.answered_usage = _usage(response.usage_metadata)
            raise

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
            raise gemini_errors.content_blocked(block_reason, "prompt", texts, self._scrub)
        if not images and undecodable_images:
            raise gemini_errors.bad_response("undecodable image", gemini_errors.BAD_IMAGE)
        if not images and finish_reason in gemini_errors.BLOCKING_FINISH_REASONS:
            raise gemini_errors.content_blocked(finish_reason, "output", texts, self._scrub)
        if not images and not texts:
            raise gemini_errors.no_content(finish_reason)
        return ProviderResult(
            images=images,
            texts=texts,
            finish_reason=finish_reason,
            usage=_usage(response.usage_metadata),
            model=response.model_version or request.model,
        )

    def _scrub(self, text: str | None) -> str:
        return gemini_errors.scrub(text, self._api_key)


# ---------------------------------------------------------------- request


def _request_parts(request: GenerationRequest) -> list[types.Part]:
    # Images first, then the instruction: Google's prompting guide for
    # multimodal input recommends the text after the image(s), and its
    # multi-image composition examples list the images before the prompt.
    parts = [types.Part.from_bytes(data=image, mime_type="image/png") for image in request.images]
    if request.prompt:
        parts.append(types.Part.from_text(text=request.prompt))
    return parts


def _request_config(options: GenerationOptions) -> types.GenerateContentConfig:
    """The options as the SDK takes them; unset ones are left to the model."""
    sampling = _options_set(options, SAMPLING_OPTIONS)
    image_settings = _options_set(options, IMAGE_OPTIONS)
    return types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        # Image models accept one candidate per call; N images are N calls.
        candidate_count=1,
        image_config=types.ImageConfig(**image_settings) if image_settings else None,
        # Both are SDK-side loops that could send more requests than the one
        # the gate admitted; neither is sent on the wire.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
        **sampling,
    )


def _options_set(options: GenerationOptions, names: tuple[str, ...]) -> dict[str, Any]:
    values = {name: getattr(options, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


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
