"""A fake Gemini REST server for tests and benchmarks.

The real google-genai SDK talks to it through ``HttpOptions(base_url=...)``, so
tests exercise the SDK's own request building, error raising and response
parsing; nothing here mocks Python objects.

Wire format (what google-genai 3.6.1 actually sends, recorded by the tests):
``POST /{api_version}/models/{model}:generateContent`` with the key in the
``x-goog-api-key`` header and a camelCase JSON body::

    {"contents": [{"role": "user", "parts": [
        {"inlineData": {"data": "<base64>", "mime_type": "image/png"}},
        {"text": "prompt"}]}],
     "generationConfig": {"temperature": .., "topP": .., "topK": <float>, "seed": ..,
        "maxOutputTokens": .., "candidateCount": 1,
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}}

Answers use Google's shapes: ``candidates[].content.parts[]`` with ``text`` or
``inlineData``, ``finishReason``, ``promptFeedback.blockReason``,
``usageMetadata``. Note the SDK writes ``mime_type`` (snake case) inside
``inlineData``, the image as URL-safe base64 (``-`` and ``_``, padded) and
``topK`` as a float; Google accepts all of these, and the fake only records
what arrives. Errors are
``{"error": {code, message, status, details}}``.

Each call consumes one scripted fault from a FIFO queue (``enqueue`` /
``script``); an empty queue means the default success answer. The server counts
calls in flight and records when each started, so tests can assert on the
concurrency gate of the code under test.

Standard library plus Pillow only, so it also runs as a subprocess::

    python tests/fake_gemini.py --port 8765 --latency 0.5 --image-kb 1024

with control endpoints on the same port: ``GET /_fake/stats``,
``POST /_fake/reset``, ``POST /_fake/config`` ``{latency, image_kb,
image_size, api_key}``, ``POST /_fake/script`` ``["rate_limited", {"fault":
"error", "code": 500, "status": "INTERNAL", "message": "boom"}, ...]``
(replaces the queue) and ``POST /_fake/enqueue`` (one fault, appended). The
stats' ``start_times`` are ``time.monotonic()`` of the server process; on
Linux that clock is system-wide, so a parent process can compare them.
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import functools
import io
import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from PIL import Image

try:  # The CLI must run where pytest is not installed.
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

MODEL_VERSION_SUFFIX = "-fake"
# Stands in for the server's default image inside a fault body; replaced per
# call so the picture follows the current image_size / image_kb knobs.
DEFAULT_IMAGE_DATA = "__default_image__"

_GENERATE_PATH = re.compile(
    r"^/(?P<api_version>[^/]+)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)


# ---------------------------------------------------------------- faults


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


def _answer(parts: list[dict] | None, finish_reason: str | None = "STOP", **extra: Any) -> dict:
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
    return Fault("ok", body=_answer(parts, finish_reason))


def text_only(text: str = "I can't draw that, but here is a description.") -> Fault:
    return Fault("text_only", body=_answer([{"text": text}], "STOP"))


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
    return Fault("safety_finish", body=_answer(parts, reason))


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


def _error_info(reason: str) -> dict:
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
        _error_info("API_KEY_INVALID"),
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
            [_error_info("API_KEY_HTTP_REFERRER_BLOCKED")],
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
    png = _render_png(256, 256, seed=7, image_kb=None)
    data = base64.b64encode(png[: len(png) // 2]).decode()
    return Fault(
        "truncated_image",
        body=_answer([{"inlineData": {"mimeType": "image/png", "data": data}}]),
    )


def invalid_base64() -> Fault:
    return Fault(
        "invalid_base64",
        body=_answer([{"inlineData": {"mimeType": "image/png", "data": "iVBORw0K!!not*base64"}}]),
    )


def not_an_image() -> Fault:
    data = base64.b64encode(b"<html>this is not a picture</html>").decode()
    return Fault(
        "not_an_image",
        body=_answer([{"inlineData": {"mimeType": "image/png", "data": data}}]),
    )


def thought_then_image() -> Fault:
    """Thinking models send draft parts marked ``thought``; only the rest counts."""
    draft = base64.b64encode(_render_png(32, 32, seed=999, image_kb=None)).decode()
    parts = [
        {"text": "**Planning the composition** I will draw a banana.", "thought": True},
        {"inlineData": {"mimeType": "image/png", "data": draft}, "thought": True},
        {"text": "Here is your banana."},
        {"inlineData": {"mimeType": "image/png", "data": DEFAULT_IMAGE_DATA}},
    ]
    return Fault("thought_then_image", body=_answer(parts))


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


# ---------------------------------------------------------------- images


@functools.lru_cache(maxsize=32)
def _render_png(width: int, height: int, seed: int, image_kb: int | None) -> bytes:
    """A deterministic PNG. With ``image_kb``, random noise of about that size
    (noise does not compress), for benchmarks that need realistic payloads."""
    if image_kb:
        side = max(8, int((image_kb * 1024 / 3) ** 0.5))
        noise = random.Random(seed).randbytes(side * side * 3)
        image = Image.frombytes("RGB", (side, side), noise)
        compress_level = 1
    else:
        # A gradient whose colour depends on the seed, so callers can tell
        # answers to different requests apart.
        tint = seed % 256
        gradient_x = (
            Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((width, height))
        )
        gradient_y = Image.linear_gradient("L").resize((width, height))
        image = Image.merge("RGB", (gradient_x, gradient_y, Image.new("L", (width, height), tint)))
        compress_level = 6
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


# ---------------------------------------------------------------- server


@dataclass
class RecordedCall:
    method: str
    path: str
    model: str
    api_version: str
    headers: dict[str, str]
    body: Any
    started: float
    ended: float | None = None
    fault: str = "ok"
    status: int | None = None
    # True when the request came as a proxy would send it (absolute URL).
    proxied: bool = False


@dataclass
class _State:
    latency: float = 0.0
    image_size: tuple[int, int] = (64, 64)
    image_kb: int | None = None
    # When set, any other x-goog-api-key is answered with key_invalid().
    api_key: str | None = None
    requests: list[RecordedCall] = field(default_factory=list)
    start_times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    # Targets of CONNECT requests: an HTTPS client was told to use this server
    # as its proxy. They are refused (no TLS here) but recorded.
    proxy_tunnels: list[str] = field(default_factory=list)


class FakeGemini:
    """The fake server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        image_size: tuple[int, int] = (64, 64),
        image_kb: int | None = None,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._faults: collections.deque[Fault] = collections.deque()
        self._state = _State(
            latency=latency,
            image_size=tuple(image_size),
            image_kb=image_kb,
            api_key=api_key,
        )
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._stopping.clear()
        self._server = _Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        # A short poll interval keeps stop(), and so each test's teardown, fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in latency or hang()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block the calling thread until interrupted (the CLI)."""
        if self._server is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ knobs

    @property
    def latency(self) -> float:
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = float(seconds)

    @property
    def image_size(self) -> tuple[int, int]:
        return self._state.image_size

    @image_size.setter
    def image_size(self, size: tuple[int, int]) -> None:
        self._state.image_size = (int(size[0]), int(size[1]))

    @property
    def image_kb(self) -> int | None:
        return self._state.image_kb

    @image_kb.setter
    def image_kb(self, kilobytes: int | None) -> None:
        self._state.image_kb = int(kilobytes) if kilobytes else None

    @property
    def image_bytes(self) -> int | None:
        """Approximate size of the default image, in bytes (None: a small gradient)."""
        return self._state.image_kb * 1024 if self._state.image_kb else None

    @image_bytes.setter
    def image_bytes(self, size: int | None) -> None:
        self.image_kb = max(1, round(size / 1024)) if size else None

    @property
    def api_key(self) -> str | None:
        return self._state.api_key

    @api_key.setter
    def api_key(self, key: str | None) -> None:
        self._state.api_key = key

    # ------------------------------------------------------------ script

    def enqueue(self, fault: str | dict | Fault) -> None:
        with self._lock:
            self._faults.append(fault_from_spec(fault))

    def script(self, faults: list[str | dict | Fault]) -> None:
        """Replace the queue: one item per coming call, then default answers."""
        parsed = [fault_from_spec(spec) for spec in faults]
        with self._lock:
            self._faults.clear()
            self._faults.extend(parsed)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget calls, counters and scripted faults; keep the knobs."""
        with self._lock:
            self._faults.clear()
            self._state.requests = []
            self._state.start_times = []
            self._state.proxy_tunnels = []
            self._state.max_in_flight = self._state.in_flight

    # ------------------------------------------------------------ observations

    @property
    def requests(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._state.requests)

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._state.requests)

    @property
    def start_times(self) -> list[float]:
        """time.monotonic() at which each generate call arrived, in order."""
        with self._lock:
            return list(self._state.start_times)

    @property
    def proxy_tunnels(self) -> list[str]:
        """``host:port`` of each CONNECT received (see _State.proxy_tunnels)."""
        with self._lock:
            return list(self._state.proxy_tunnels)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._state.max_in_flight

    def stats(self) -> dict:
        with self._lock:
            return {
                "max_in_flight": self._state.max_in_flight,
                "in_flight": self._state.in_flight,
                "calls": len(self._state.requests),
                "start_times": list(self._state.start_times),
                "latency": self._state.latency,
                "image_kb": self._state.image_kb,
                "pending_faults": len(self._faults),
            }

    def configure(self, settings: dict) -> None:
        if "latency" in settings:
            self.latency = settings["latency"]
        if "image_kb" in settings:
            self.image_kb = settings["image_kb"]
        if "image_size" in settings:
            self.image_size = tuple(settings["image_size"])
        if "api_key" in settings:
            self.api_key = settings["api_key"]

    # ------------------------------------------------------------ per call (handler side)

    def _begin_call(self, call: RecordedCall) -> Fault:
        with self._lock:
            state = self._state
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            state.start_times.append(call.started)
            state.requests.append(call)
            fault = self._faults.popleft() if self._faults else ok()
            if state.api_key is not None and call.headers.get("x-goog-api-key") != state.api_key:
                fault = key_invalid()
            call.fault = fault.name
            return fault

    def _end_call(self, call: RecordedCall, status: int | None) -> None:
        with self._lock:
            self._state.in_flight -= 1
            call.ended = time.monotonic()
            call.status = status

    def _default_image_base64(self, request_body: Any) -> str:
        state = self._state
        seed = _seed_of(request_body)
        width, height = state.image_size
        return base64.b64encode(_render_png(width, height, seed, state.image_kb)).decode()


def _seed_of(request_body: Any) -> int:
    try:
        return int(request_body["generationConfig"]["seed"])
    except (KeyError, TypeError, ValueError):
        return 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers still sleeping in hang().
    block_on_close = False
    allow_reuse_address = True
    # Many benchmark clients connect at once.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGemini
    protocol_version = "HTTP/1.1"  # keep-alive, like Google's front end
    # http.server sends headers and body in two writes; with Nagle on, a
    # small body waits for the delayed ACK (~40 ms), which no real front end
    # adds. TCP_NODELAY, as Google's front end and waitress have.
    disable_nagle_algorithm = True
    server_version = "ESF"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # ------------------------------------------------------------ routing

    def do_CONNECT(self) -> None:
        with self.owner._lock:
            self.owner._state.proxy_tunnels.append(self.path)
        self.close_connection = True
        self._send_bytes(403, b"tunnelling not supported by the fake", "text/plain")

    def _target(self) -> tuple[str, bool]:
        """The request path, and whether it came through a forward proxy
        (which sends the absolute URL: ``POST http://host/v1beta/...``)."""
        target = self.path
        proxied = target.startswith(("http://", "https://"))
        if proxied:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        return target.split("?")[0], proxied

    def do_GET(self) -> None:
        if self._target()[0] == "/_fake/stats":
            self._send_json(200, self.owner.stats())
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        raw_body = self._read_body()
        path, proxied = self._target()
        if path.startswith("/_fake/"):
            self._control(path, raw_body)
            return
        match = _GENERATE_PATH.match(path)
        if not match or match["method"] != "generateContent":
            self._send_not_found()
            return
        self._generate(match["api_version"], match["model"], raw_body, proxied)

    # ------------------------------------------------------------ control

    def _control(self, path: str, raw_body: bytes) -> None:
        try:
            payload = json.loads(raw_body) if raw_body else None
            if path == "/_fake/reset":
                self.owner.reset()
            elif path == "/_fake/config":
                self.owner.configure(payload or {})
            elif path == "/_fake/script":
                self.owner.script(payload or [])
            elif path == "/_fake/enqueue":
                self.owner.enqueue(payload)
            else:
                self._send_not_found()
                return
        except (ValueError, KeyError, TypeError) as exc:
            self._send_json(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._send_json(200, self.owner.stats())

    # ------------------------------------------------------------ generateContent

    def _generate(self, api_version: str, model: str, raw_body: bytes, proxied: bool) -> None:
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = {"unparseable": raw_body[:200].decode("utf-8", "replace")}
        call = RecordedCall(
            method="POST",
            path=self.path,
            model=model,
            api_version=api_version,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            started=time.monotonic(),
            proxied=proxied,
        )
        fault = self.owner._begin_call(call)
        status: int | None = None
        try:
            self.owner._stopping.wait(self.owner.latency + fault.delay_s)
            if fault.reset:
                self._reset_connection()
                return
            if fault.raw is not None:
                status = fault.status
                self._send_bytes(status, fault.raw, headers=fault.headers)
                return
            try:
                answer = self._materialize(fault.body or {}, model, api_version, body)
                status = fault.status
            # A bug in the fake must show up as an answer, not a dropped connection.
            except Exception as exc:
                status = 500
                answer = {
                    "error": {
                        "code": 500,
                        "message": f"fake_gemini failed: {exc!r}",
                        "status": "INTERNAL",
                    }
                }
            self._send_json(status, answer, headers=fault.headers)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired during hang()).
            self.close_connection = True
        finally:
            self.owner._end_call(call, status)

    def _materialize(self, template: dict, model: str, api_version: str, request_body: Any) -> dict:
        answer = copy.deepcopy(template)
        if "error" in answer:
            error_body = answer["error"]
            error_body["message"] = (
                error_body["message"]
                .replace("{model}", model)
                .replace("{api_version}", api_version)
            )
            for detail in error_body.get("details", []):
                for violation in detail.get("violations", []):
                    dimensions = violation.get("quotaDimensions", {})
                    if dimensions.get("model") == "{model}":
                        dimensions["model"] = model
            return answer
        for candidate in answer.get("candidates", []):
            for part in (candidate.get("content") or {}).get("parts", []):
                inline = part.get("inlineData")
                if inline and inline.get("data") == DEFAULT_IMAGE_DATA:
                    inline["data"] = self.owner._default_image_base64(request_body)
        answer.setdefault("modelVersion", model)
        answer.setdefault("responseId", f"fake-{time.monotonic_ns():x}")
        return answer

    # ------------------------------------------------------------ I/O

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), headers=headers)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json; charset=UTF-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_not_found(self) -> None:
        self._send_json(
            404,
            {
                "error": {
                    "code": 404,
                    "message": f"Not found: {self.path}",
                    "status": "NOT_FOUND",
                }
            },
        )

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


# ---------------------------------------------------------------- pytest


if pytest is not None:

    @pytest.fixture
    def fake_gemini():
        """A running FakeGemini on a free loopback port, stopped after the test."""
        with FakeGemini() as fake:
            yield fake


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve a fake Gemini generateContent API until killed."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--image-kb",
        type=int,
        default=None,
        help="default image size (random noise PNG)",
    )
    parser.add_argument("--image-size", default="64x64", help="WIDTHxHEIGHT of the gradient image")
    parser.add_argument("--api-key", default=None, help="reject any other x-goog-api-key")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.image_size.lower().split("x"))
    fake = FakeGemini(
        host=args.host,
        port=args.port,
        latency=args.latency,
        image_size=(width, height),
        image_kb=args.image_kb,
        api_key=args.api_key,
    )
    fake.start()
    # One line on stdout so a parent process knows the port is bound.
    print(json.dumps({"url": fake.url}), flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
