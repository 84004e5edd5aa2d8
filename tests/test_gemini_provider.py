"""GeminiProvider against the fake Gemini server, through the real SDK.

Nothing here mocks google-genai: each test scripts what the fake answers on the
wire and checks what reached the wire and what the provider made of it.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import re
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from app.errors import UpstreamError
from app.services.genai import gemini_errors
from app.services.genai.contracts import GenerationOptions, GenerationRequest
from app.services.genai.gemini import (
    IMAGE_OPTIONS,
    OPTIONS_SENT_OTHERWISE,
    SAMPLING_OPTIONS,
    GeminiProvider,
)
from tests import fake_gemini as fakes
from tests.fake_gemini import FakeGemini
from tests.fake_gemini.plugin import fake_gemini  # noqa: F401

API_KEY = "AIzaSyTESTKEY-0123456789abcdefghijklmnop"
MODEL = "gemini-2.5-flash-image"
CJK = re.compile(r"[\u4e00-\u9fff]")
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch):
    # httpx reads proxy variables when the client is built; a developer's
    # proxy must not capture calls meant for the loopback fake.
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def make_provider(fake_gemini):  # noqa: F811
    providers = []

    def make(**overrides):
        settings = {"api_key": API_KEY, "base_url": fake_gemini.url, "timeout_s": 5}
        provider = GeminiProvider(**{**settings, **overrides})
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


@pytest.fixture
def provider(make_provider):
    return make_provider()


def generation(**overrides) -> GenerationRequest:
    return GenerationRequest(
        **{"kind": "generate", "prompt": "a banana", "model": MODEL, **overrides}
    )


def png(color: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def failure(provider: GeminiProvider, request: GenerationRequest | None = None, **pacing):
    with pytest.raises(UpstreamError) as caught:
        provider.generate(request or generation(), **pacing)
    return caught.value


# ---------------------------------------------------------------- what reaches the wire


def test_every_parameter_reaches_the_wire_exactly(provider, fake_gemini):  # noqa: F811
    options = GenerationOptions(
        temperature=0.4,
        top_p=0.8,
        top_k=32,
        seed=1234,
        max_output_tokens=2048,
        aspect_ratio="16:9",
        image_size="2K",
        candidate_count=3,  # N calls of one candidate, not one call of N
    )
    provider.generate(generation(options=options))

    assert fake_gemini.requests[0].body["generationConfig"] == {
        "temperature": 0.4,
        "topP": 0.8,
        "topK": 32,  # the SDK sends 32.0; equal as JSON numbers
        "seed": 1234,
        "maxOutputTokens": 2048,
        "candidateCount": 1,
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
    }


def test_every_option_has_a_place_in_the_request():
    # A new GenerationOptions field fails here until the provider maps it
    # (or says why it sends it otherwise), instead of being silently dropped.
    placed = [*SAMPLING_OPTIONS, *IMAGE_OPTIONS, *OPTIONS_SENT_OTHERWISE]
    assert sorted(placed) == sorted(GenerationOptions.model_fields)


def test_unset_parameters_are_left_to_the_model(provider, fake_gemini):  # noqa: F811
    provider.generate(generation())

    assert fake_gemini.requests[0].body["generationConfig"] == {
        "candidateCount": 1,
        "responseModalities": ["TEXT", "IMAGE"],
    }


def test_input_images_are_sent_inline_before_the_prompt(provider, fake_gemini):  # noqa: F811
    red, blue = png("red"), png("blue")

    provider.generate(generation(kind="compose", prompt="merge them", images=(red, blue)))

    [content] = fake_gemini.requests[0].body["contents"]
    assert content["role"] == "user"
    *image_parts, text_part = content["parts"]
    assert text_part == {"text": "merge them"}
    # The SDK encodes URL-safe base64.
    sent = [base64.urlsafe_b64decode(part["inlineData"]["data"]) for part in image_parts]
    assert sent == [red, blue]
    # google-genai 3.6.1 spells the inner key in snake case.
    mimes = [
        part["inlineData"].get("mime_type") or part["inlineData"].get("mimeType")
        for part in image_parts
    ]
    assert mimes == ["image/png", "image/png"]


def test_api_key_travels_in_a_header_and_api_version_in_the_path(
    make_provider,
    fake_gemini,  # noqa: F811
):
    make_provider(api_version="v1alpha").generate(generation())

    call = fake_gemini.requests[0]
    assert call.headers["x-goog-api-key"] == API_KEY
    assert call.path == f"/v1alpha/models/{MODEL}:generateContent"
    assert (call.api_version, call.model) == ("v1alpha", MODEL)
    assert API_KEY not in call.path


def test_default_api_version_is_v1beta(provider, fake_gemini):  # noqa: F811
    provider.generate(generation())

    assert fake_gemini.requests[0].api_version == "v1beta"


# ---------------------------------------------------------------- reading answers


def test_image_and_text_of_the_answer_are_returned(provider, fake_gemini):  # noqa: F811
    fake_gemini.image_size = (40, 30)
    fake_gemini.enqueue(fakes.ok(text="Here is your banana."))

    result = provider.generate(generation())

    [image] = result.images
    assert image.mime == "image/png"
    assert Image.open(io.BytesIO(image.data)).size == (40, 30)
    assert result.texts == ["Here is your banana."]
    assert result.finish_reason == "STOP"
    assert result.model == MODEL


def test_usage_metadata_becomes_token_counts(provider):
    result = provider.generate(generation())

    assert result.usage == {
        "prompt_tokens": 12,
        "output_tokens": 1290,
        "total_tokens": 1302,
    }


def test_thought_parts_are_skipped(provider, fake_gemini):  # noqa: F811
    fake_gemini.image_size = (48, 48)
    fake_gemini.enqueue(fakes.thought_then_image())

    result = provider.generate(generation())

    # The draft thought image is 32x32; only the final 48x48 one counts.
    assert [Image.open(io.BytesIO(i.data)).size for i in result.images] == [(48, 48)]
    assert result.texts == ["Here is your banana."]


def test_text_only_answer_is_a_result_not_an_error(provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(fakes.text_only("I would rather describe it: a yellow fruit."))

    result = provider.generate(generation())

    assert result.images == []
    assert result.texts == ["I would rather describe it: a yellow fruit."]


def test_undecodable_images_are_dropped_when_a_good_one_came_too(
    provider,
    fake_gemini,  # noqa: F811
):
    junk = base64.b64encode(b"not a picture").decode()
    parts = [
        {"inlineData": {"mimeType": "image/png", "data": junk}},
        {"inlineData": {"mimeType": "image/png", "data": fakes.DEFAULT_IMAGE_DATA}},
    ]
    fake_gemini.enqueue(fakes.Fault("mixed", body=fakes.answer(parts)))

    result = provider.generate(generation())

    assert len(result.images) == 1
    Image.open(io.BytesIO(result.images[0].data)).verify()


# ---------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("fault", "code", "status", "retryable", "retry_after"),
    [
        (fakes.rate_limited("1s"), "upstream_rate_limited", 429, True, 1.0),
        (fakes.rate_limited("0.5s"), "upstream_rate_limited", 429, True, 0.5),
        (fakes.rate_limited("30.123s"), "upstream_rate_limited", 429, True, 30.123),
        (fakes.rate_limited(None), "upstream_rate_limited", 429, True, None),
        (fakes.overloaded(), "upstream_overloaded", 503, True, None),
        (fakes.overloaded("7s"), "upstream_overloaded", 503, True, 7.0),
        (fakes.server_error(500), "upstream_error", 502, True, None),
        (fakes.server_error(502), "upstream_error", 502, True, None),
        (fakes.server_error(504), "upstream_error", 502, True, None),
        (fakes.key_invalid(), "upstream_key_invalid", 502, False, None),
        (fakes.referer_blocked(), "upstream_key_restricted", 502, False, None),
        (fakes.region_unsupported(), "upstream_region_unsupported", 502, False, None),
        (fakes.model_not_found(), "model_not_found", 400, False, None),
        (fakes.bad_request("Bad aspect ratio"), "upstream_rejected", 400, False, None),
        (fakes.connection_reset(), "upstream_unreachable", 502, True, None),
        (fakes.malformed_json(), "upstream_bad_response", 502, False, None),
        (fakes.invalid_base64(), "upstream_bad_response", 502, False, None),
        (fakes.truncated_image(), "upstream_bad_response", 502, False, None),
        (fakes.not_an_image(), "upstream_bad_response", 502, False, None),
        (fakes.empty(), "no_content", 502, True, None),
        (fakes.blocked_prompt(), "content_blocked", 422, False, None),
        (fakes.safety_finish(), "content_blocked", 422, False, None),
    ],
    ids=lambda value: value.name if isinstance(value, fakes.Fault) else None,
)
def test_upstream_faults_map_to_stable_codes(
    provider,
    fake_gemini,  # noqa: F811
    fault,
    code,
    status,
    retryable,
    retry_after,
):
    fake_gemini.enqueue(fault)

    error = failure(provider)

    assert (error.code, error.status, error.retryable) == (code, status, retryable)
    assert error.retry_after == retry_after
    assert CJK.search(error.text("zh")), "the Chinese message must be Chinese"
    assert error.text("en") != error.text("zh")


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (fakes.error(413, "PAYLOAD_TOO_LARGE", "Too large"), "upstream_request_too_large", 413),
        (
            fakes.bad_request("Request payload size exceeds the limit: 20971520 bytes."),
            "upstream_request_too_large",
            413,
        ),
        (fakes.error(401, "UNAUTHENTICATED", "Missing credentials"), "upstream_key_invalid", 502),
        (
            fakes.error(403, "PERMISSION_DENIED", "Your API key was reported as leaked."),
            "upstream_key_invalid",
            502,
        ),
        (
            fakes.error(
                403,
                "PERMISSION_DENIED",
                "Requests to this API method are blocked.",
                [fakes.error_info("API_KEY_SERVICE_BLOCKED")],
            ),
            "upstream_key_restricted",
            502,
        ),
        (fakes.error(408, "DEADLINE_EXCEEDED", "Request timed out"), "upstream_timeout", 504),
        # A relay's HTML error page instead of Google's JSON.
        (
            fakes.Fault("relay_html", status=502, raw=b"<html>502 Bad Gateway</html>"),
            "upstream_error",
            502,
        ),
    ],
    ids=["413", "payload-size", "401", "leaked", "service-blocked", "408", "relay-html"],
)
def test_less_common_upstream_faults_map_too(provider, fake_gemini, fault, code, status):  # noqa: F811
    fake_gemini.enqueue(fault)

    error = failure(provider)

    assert (error.code, error.status) == (code, status)


def test_relay_retry_after_header_is_used_without_retry_info(provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(
        fakes.Fault(
            "relay_429",
            status=429,
            body={"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}},
            headers=(("Retry-After", "3"),),
        )
    )

    error = failure(provider)

    assert (error.code, error.retry_after) == ("upstream_rate_limited", 3.0)


def test_daily_quota_is_exhausted_not_rate_limited(provider, fake_gemini):  # noqa: F811
    # The body also carries a RetryInfo; waiting it out would not help.
    fake_gemini.enqueue(fakes.quota_per_day(retry_delay="43s"))

    error = failure(provider)

    assert (error.code, error.status, error.retryable) == (
        "upstream_quota_exhausted",
        429,
        False,
    )
    # Seconds until midnight Pacific, when the quotas reset.
    assert 0 < error.retry_after <= 25 * 3600


def test_zero_quota_is_exhausted_with_a_billing_hint(provider, fake_gemini):  # noqa: F811
    message = (
        f"Quota exceeded for metric: generate_content_free_tier_requests, limit: 0, model: {MODEL}"
    )
    fake_gemini.enqueue(fakes.error(429, "RESOURCE_EXHAUSTED", message))

    error = failure(provider)

    assert error.code == "upstream_quota_exhausted"
    assert not error.retryable
    assert "billing" in error.text("en")
    assert "结算" in error.text("zh")
    # A 429 says when to come back: at the daily reset, the earliest it could pass.
    assert 0 < error.retry_after <= 25 * 3600


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        ("2025-01-15T23:30:00-08:00", 0.5),
        ("2025-01-15T00:00:00-08:00", 24),
        # The night clocks spring forward: that day has 23 hours.
        ("2025-03-09T00:30:00-08:00", 22.5),
        # ...and fall back: 25.
        ("2025-11-02T00:30:00-07:00", 24.5),
    ],
)
def test_daily_quota_resets_at_midnight_pacific(now, hours):
    moment = datetime.datetime.fromisoformat(now)
    assert gemini_errors.seconds_until_daily_reset(moment) == hours * 3600


def test_restricted_key_message_gives_the_fix(provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(fakes.referer_blocked())

    error = failure(provider)

    assert "API_KEY_HTTP_REFERRER_BLOCKED" in error.text("en")
    for message in (error.text("en"), error.text("zh")):
        assert "Generative Language API" in message
    assert "Application restrictions to None" in error.text("en")
    assert "“应用限制”设为“无”" in error.text("zh")


def test_unsupported_region_message_points_to_relay_or_proxy(
    provider,
    fake_gemini,  # noqa: F811
):
    fake_gemini.enqueue(fakes.region_unsupported())

    error = failure(provider)

    for message in (error.text("en"), error.text("zh")):
        assert "GENAI_BASE_URL" in message
        assert "HTTPS_PROXY" in message


def test_model_not_found_names_the_model(provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(fakes.model_not_found())

    error = failure(provider, generation(model="gemini-9-imaginary"))

    assert "gemini-9-imaginary" in error.text("en")
    assert "gemini-9-imaginary" in error.text("zh")
    assert error.extra["model"] == "gemini-9-imaginary"


def test_rejected_request_carries_the_upstream_message(provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(fakes.bad_request("Unsupported aspect ratio: 5:1"))

    error = failure(provider)

    assert "Unsupported aspect ratio: 5:1" in error.text("en")
    assert "Unsupported aspect ratio: 5:1" in error.text("zh")
    assert error.extra["upstream_status"] == "INVALID_ARGUMENT"


def test_blocked_prompt_names_the_reason(provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(fakes.blocked_prompt(reason="PROHIBITED_CONTENT"))

    error = failure(provider)

    assert error.extra == {"reason": "PROHIBITED_CONTENT", "stage": "prompt", "texts": []}
    assert "PROHIBITED_CONTENT" in error.text("en")
    assert "PROHIBITED_CONTENT" in error.text("zh")
    # The filter's name is a message of its own, rendered in the error's language.
    assert "prohibited-content policy" in error.text("en")
    assert "提示词被模型的违禁内容政策拦截" in error.text("zh")


@pytest.mark.parametrize(
    "reason",
    ["SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "RECITATION"],
)
def test_safety_finish_keeps_the_reason_and_the_model_text(
    provider,
    fake_gemini,  # noqa: F811
    reason,
):
    fake_gemini.enqueue(fakes.safety_finish(text="I can't create that image.", reason=reason))

    error = failure(provider)

    assert error.code == "content_blocked"
    assert error.extra == {
        "reason": reason,
        "stage": "output",
        "texts": ["I can't create that image."],
    }
    assert "The model said: I can't create that image." in error.text("en")
    assert "模型回复：I can't create that image." in error.text("zh")


def test_timeout_is_reported_quickly(make_provider, fake_gemini):  # noqa: F811
    fake_gemini.enqueue(fakes.hang(10))
    provider = make_provider(timeout_s=0.3)

    started = time.monotonic()
    error = failure(provider)

    assert time.monotonic() - started < 2
    assert (error.code, error.status, error.retryable) == ("upstream_timeout", 504, True)


def test_nothing_listening_is_unreachable(make_provider):
    with FakeGemini() as closed_soon:
        dead_url = closed_soon.url
    provider = make_provider(base_url=dead_url)

    error = failure(provider)

    assert (error.code, error.status, error.retryable) == (
        "upstream_unreachable",
        502,
        True,
    )


# ---------------------------------------------------------------- secrecy


@pytest.mark.parametrize(
    "fault",
    [
        fakes.bad_request(f"Invalid value for key={API_KEY} in request"),
        fakes.error(403, "PERMISSION_DENIED", f"Key {API_KEY} is blocked for referer x"),
        fakes.error(500, "INTERNAL", f"backend saw {API_KEY}"),
        fakes.safety_finish(text=f"your key is {API_KEY}"),
    ],
    ids=["rejected", "restricted", "internal", "blocked"],
)
def test_api_key_in_upstream_text_is_scrubbed(provider, fake_gemini, fault):  # noqa: F811
    fake_gemini.enqueue(fault)

    error = failure(provider)

    everything = " ".join(
        [
            str(error),
            repr(error),
            error.text("en"),
            error.text("zh"),
            json.dumps(error.extra, ensure_ascii=False),
            "".join(traceback.format_exception(error)),
        ]
    )
    assert API_KEY not in everything
    assert "[redacted]" in everything


def test_any_google_shaped_key_is_scrubbed(provider, fake_gemini):  # noqa: F811
    relay_key = "AIza" + "R" * 35
    fake_gemini.enqueue(fakes.bad_request(f"relay key {relay_key} rejected"))

    error = failure(provider)

    assert relay_key not in error.text("en") + json.dumps(error.extra)


# ---------------------------------------------------------------- one call, one request


@pytest.mark.parametrize(
    "fault",
    [
        fakes.overloaded("0s"),
        fakes.rate_limited("0s"),
        fakes.server_error(500),
        fakes.connection_reset(),
    ],
    ids=lambda fault: fault.name,
)
def test_sdk_retries_are_off(provider, fake_gemini, fault):  # noqa: F811
    fake_gemini.script([fault, fakes.ok()])

    failure(provider)

    assert fake_gemini.calls == 1
    assert fake_gemini.pending_faults == 1


def test_one_client_serves_concurrent_calls(provider, fake_gemini):  # noqa: F811
    # The provider does not serialise: limiting concurrency is the gate's job.
    fake_gemini.latency = 0.2
    results = []

    def call() -> None:
        results.append(provider.generate(generation()))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    assert fake_gemini.max_in_flight == 4


def test_pacing_runs_as_the_request_is_written(provider, fake_gemini):  # noqa: F811
    events = []

    def before_send():
        # The connection is open by now: pacing waits on the wire, not
        # before a handshake that would eat into the gap.
        events.append(("before", fake_gemini.calls))

    def after_send():
        events.append(("after", fake_gemini.calls))

    provider.generate(generation(), before_send=before_send, after_send=after_send)
    provider.generate(generation(), before_send=before_send, after_send=after_send)

    assert [name for name, _ in events] == ["before", "after", "before", "after"]
    assert events[0][1] == 0 and events[2][1] == 1  # before the fake saw each call


def test_a_call_that_never_reaches_the_wire_is_neither_paced_nor_reported(make_provider):
    with FakeGemini() as closed_soon:
        dead_url = closed_soon.url
    provider = make_provider(base_url=dead_url)
    events = []

    failure_seen = failure(
        provider,
        before_send=lambda: events.append("before"),
        after_send=lambda: events.append("after"),
    )

    assert failure_seen.code == "upstream_unreachable"
    assert events == []


# ---------------------------------------------------------------- proxies


def test_proxy_argument_routes_calls_through_the_proxy(
    make_provider,
    fake_gemini,  # noqa: F811
):
    # The fake accepts absolute-URL requests, as a forward proxy does.
    provider = make_provider(base_url="http://gemini.invalid", proxy=fake_gemini.url)

    provider.generate(generation())

    assert fake_gemini.requests[0].proxied


def test_proxy_environment_variables_are_honoured(
    make_provider,
    fake_gemini,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv("HTTP_PROXY", fake_gemini.url)
    monkeypatch.setenv("HTTPS_PROXY", fake_gemini.url)

    make_provider(base_url="http://gemini.invalid").generate(generation())
    # An https upstream is tunnelled with CONNECT; the fake refuses the tunnel
    # (no TLS here), which is enough to show HTTPS_PROXY was used.
    error = failure(make_provider(base_url="https://generativelanguage.googleapis.com"))

    assert fake_gemini.requests[0].proxied
    assert fake_gemini.proxy_tunnels == ["generativelanguage.googleapis.com:443"]
    assert error.code == "upstream_unreachable"


def test_a_proxy_from_the_environment_is_left_to_httpx_so_no_proxy_holds(
    gemini_app,
    fake_gemini,  # noqa: F811
    monkeypatch,
):
    # HTTPS_PROXY in the environment: not handed to the SDK, so httpx applies
    # it with NO_PROXY (and, for this http:// base URL, not at all).
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    app = gemini_app(HTTPS_PROXY="http://proxy.invalid:3128")
    assert app.test_client().post("/v1/generate", json={"prompt": "x"}).status_code == 200
    assert not fake_gemini.requests[0].proxied


def test_a_proxy_set_only_in_the_config_is_handed_to_the_sdk(
    gemini_app,
    fake_gemini,  # noqa: F811
):
    # instance/config.py or a config mapping: httpx can't see it, so it is
    # passed on (and routes every call, as the fake records).
    app = gemini_app(GENAI_BASE_URL="http://gemini.invalid", HTTPS_PROXY=fake_gemini.url)
    assert app.test_client().post("/v1/generate", json={"prompt": "x"}).status_code == 200
    assert fake_gemini.requests[0].proxied


# ---------------------------------------------------------------- the fake itself


def control(fake: FakeGemini, path: str, payload=None):
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        fake.url + path, data=data, method="POST" if data is not None else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_fake_can_be_scripted_and_inspected_over_http(provider, fake_gemini):  # noqa: F811
    control(fake_gemini, "/_fake/config", {"latency": 0.05, "image_kb": 16})
    control(fake_gemini, "/_fake/script", ["overloaded", {"fault": "text_only", "text": "hi"}])

    assert failure(provider).code == "upstream_overloaded"
    assert provider.generate(generation()).texts == ["hi"]
    big = provider.generate(generation()).images[0].data
    stats = control(fake_gemini, "/_fake/stats")

    assert 12_000 < len(big) < 24_000
    assert stats["calls"] == 3
    assert stats["max_in_flight"] == 1
    assert len(stats["start_times"]) == 3
    assert control(fake_gemini, "/_fake/reset", {})["calls"] == 0


def test_fake_runs_as_a_command(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_gemini", "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(fakes.__file__).parents[2],
    )
    try:
        url = json.loads(process.stdout.readline())["url"]
        provider = GeminiProvider(api_key=API_KEY, base_url=url, timeout_s=5)
        try:
            assert provider.generate(generation()).images
        finally:
            provider.close()
        with urllib.request.urlopen(url + "/_fake/stats", timeout=5) as response:
            assert json.loads(response.read())["calls"] == 1
    finally:
        process.terminate()
        process.wait(timeout=5)
