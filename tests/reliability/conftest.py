"""Fixtures of the reliability suite."""

from __future__ import annotations

import pytest


@pytest.fixture
def gemini_app(app_factory, fake_gemini):
    """Build an app on the real google-genai SDK against the fake Gemini server."""

    def build(**overrides):
        settings = dict(
            GENAI_PROVIDER="gemini",
            GOOGLE_API_KEY="test-key-reliability",
            GENAI_BASE_URL=fake_gemini.url,
            GENAI_MAX_RETRIES=1,
            GENAI_BACKOFF_MS=10,
            GENAI_TIMEOUT_S=5,
            GENAI_MIN_INTERVAL_MS=0,
        )
        settings.update(overrides)
        return app_factory(**settings)

    return build
