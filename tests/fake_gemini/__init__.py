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
what arrives. Errors are ``{"error": {code, message, status, details}}``.

The package, one idea a module:

- ``faults``: the catalogue of answers and failures (``ok()``,
  ``rate_limited()``, ``hang()``...), one per scripted call;
- ``pictures``: the deterministic images the fake sends;
- ``state`` and ``server``: ``FakeGemini``, the threaded HTTP server, its
  knobs, script queue, observations and control endpoints;
- ``__main__``: the CLI, ``python -m tests.fake_gemini --port 8765``, for
  benchmarks and the soak test, which run it as a subprocess;
- ``plugin``: the pytest fixture ``fake_gemini`` (tests/conftest.py loads it).

Everything but ``plugin`` needs only the standard library and Pillow.
"""

from tests.fake_gemini.faults import (
    DEFAULT_IMAGE_DATA,
    FAULTS,
    Fault,
    answer,
    bad_request,
    blocked_prompt,
    connection_reset,
    empty,
    error,
    error_info,
    fault_from_spec,
    hang,
    invalid_base64,
    key_invalid,
    malformed_json,
    model_not_found,
    not_an_image,
    ok,
    overloaded,
    quota_per_day,
    rate_limited,
    referer_blocked,
    region_unsupported,
    safety_finish,
    server_error,
    text_only,
    thought_then_image,
    truncated_image,
)
from tests.fake_gemini.pictures import render_png
from tests.fake_gemini.server import FakeGemini
from tests.fake_gemini.state import RecordedCall

__all__ = [
    "DEFAULT_IMAGE_DATA",
    "FAULTS",
    "FakeGemini",
    "Fault",
    "RecordedCall",
    "answer",
    "bad_request",
    "blocked_prompt",
    "connection_reset",
    "empty",
    "error",
    "error_info",
    "fault_from_spec",
    "hang",
    "invalid_base64",
    "key_invalid",
    "malformed_json",
    "model_not_found",
    "not_an_image",
    "ok",
    "overloaded",
    "quota_per_day",
    "rate_limited",
    "referer_blocked",
    "region_unsupported",
    "render_png",
    "safety_finish",
    "server_error",
    "text_only",
    "thought_then_image",
    "truncated_image",
]
