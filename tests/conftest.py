"""Fixtures: `app`, `client`, `runner`, and `auth` (after Flask's tutorial).

Fixtures only: what they are built from lives in tests/support/ (which the
benchmarks import too) and tests/fake_gemini/. Nothing imports this module.
"""

from __future__ import annotations

import hashlib
import io
from types import SimpleNamespace

import pytest
from PIL import Image

from app.extensions import db
from tests.support.app import GEMINI_TEST_KEY, make_app, stop_job_runners
from tests.support.auth import AuthActions
from tests.support.images import png_bytes

pytest_plugins = ["tests.fake_gemini.plugin"]


@pytest.fixture(autouse=True)
def _job_workers_stopped():
    """No test's job workers outlive it (tests/support/app.py)."""
    yield
    stop_job_runners()


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    app.extensions["genai"].close()


@pytest.fixture
def app_factory(tmp_path):
    """Build an app with config overrides: app_factory(REQUIRE_AUTH_FOR_GENERATION=True)."""
    made = []

    def build(**overrides):
        made.append(make_app(tmp_path, **overrides))
        return made[-1]

    yield build
    for app in made:
        with app.app_context():
            db.engine.dispose()
        app.extensions["genai"].close()


@pytest.fixture
def gemini_app(app_factory, fake_gemini):
    """Build an app on the real google-genai SDK against the fake Gemini server."""

    def build(**overrides):
        settings = dict(
            GENAI_PROVIDER="gemini",
            GOOGLE_API_KEY=GEMINI_TEST_KEY,
            GENAI_BASE_URL=fake_gemini.url,
            GENAI_MAX_RETRIES=2,
            GENAI_BACKOFF_MS=10,
            GENAI_TIMEOUT_S=5,
            GENAI_MIN_INTERVAL_MS=0,
        )
        settings.update(overrides)
        return app_factory(**settings)

    return build


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def second_client(app):
    """Another browser: its own cookie jar."""
    return app.test_client()


@pytest.fixture
def seed_turn(app):
    """Store a finished turn (prompt → one output image) straight through the
    services, for tests of history that don't need a generation."""
    from app.models import User
    from app.services import conversations, stored_images

    def seed(user_id: int, conv_id: int, prompt="a banana", color=(200, 180, 40)):
        data = png_bytes(color)
        width, height = Image.open(io.BytesIO(data)).size
        clean = SimpleNamespace(
            data=data,
            mime="image/png",
            width=width,
            height=height,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        with app.test_request_context():
            user = db.session.get(User, user_id)
            stored = stored_images.save(clean)
            turn = conversations.TurnRecord(
                kind="generate",
                prompt=prompt,
                params={},
                inputs=[],
                outputs=[stored],
                texts=["here you go"],
                model="test-model",
                finish_reasons=["STOP"],
            )
            user_message, reply = conversations.record_turn(user, conv_id, turn)
            image_id = reply.image_links[0].image_id
            db.session.remove()
        return SimpleNamespace(
            user_message_id=user_message.id, reply_id=reply.id, image_id=image_id
        )

    return seed


# ---- a run that tested nothing must not pass -------------------------------

_passed = 0


def pytest_runtest_logreport(report):
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and _passed == 0 and not session.config.option.collectonly:
        session.exitstatus = 1
