"""The ``fake_gemini`` fixture, as a pytest plugin (tests/conftest.py loads it
through ``pytest_plugins``), so the rest of the package never imports pytest."""

from __future__ import annotations

import pytest

from tests.fake_gemini.server import FakeGemini


@pytest.fixture
def fake_gemini():
    """A running FakeGemini on a free loopback port, stopped after the test."""
    with FakeGemini() as fake:
        yield fake
