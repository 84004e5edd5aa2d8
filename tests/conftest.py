"""Fixtures: `app`, `client`, `runner`, and `auth` (after Flask's tutorial).

The database is SQLite in a temporary folder, or PostgreSQL when
TEST_DATABASE_URL is set (`.ci/run` runs the suite both ways).
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from app import create_app
from app.extensions import db, limiter
from config import TestingConfig

pytest_plugins = ["tests.fake_gemini"]

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def make_app(tmp_path, **overrides):
    settings = {"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": None}
    if TEST_DATABASE_URL:
        settings["SQLALCHEMY_DATABASE_URI"] = TEST_DATABASE_URL
    settings.update(overrides)

    class Config(TestingConfig):
        pass

    for key, value in settings.items():
        setattr(Config, key, value)
    app = create_app(Config)
    with app.app_context():
        reset_database()
    limiter.reset()
    return app


def reset_database() -> None:
    if db.engine.dialect.name == "postgresql":
        db.create_all()
        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        db.session.commit()
    else:
        db.drop_all()
        db.create_all()


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


GEMINI_TEST_KEY = "test-key-123"


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


class AuthActions:
    """Sign up / log in through the API and remember the CSRF token."""

    def __init__(self, client):
        self._client = client
        self.csrf_token: str | None = None
        self.user: dict | None = None

    def signup(self, username="alice", password="correct-horse-1"):
        response = self._client.post(
            "/auth/signup", json={"username": username, "password": password}
        )
        self._remember(response)
        return response

    def login(self, username="alice", password="correct-horse-1"):
        response = self._client.post(
            "/auth/login", json={"username": username, "password": password}
        )
        self._remember(response)
        return response

    def logout(self):
        return self._client.post("/auth/logout", headers=self.headers())

    def headers(self, **extra) -> dict:
        headers = {"X-CSRF-Token": self.csrf_token} if self.csrf_token else {}
        headers.update(extra)
        return headers

    def _remember(self, response) -> None:
        if response.status_code in (200, 201):
            body = response.get_json()
            self.csrf_token = body["csrf_token"]
            self.user = body["user"]


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def second_client(app):
    """Another browser: its own cookie jar."""
    return app.test_client()


def png_bytes(color=(200, 180, 40), size=(32, 24)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def seed_turn(app):
    """Store a finished turn (prompt → one output image) straight through the
    services, for tests of history that don't need a generation."""
    import hashlib
    from types import SimpleNamespace

    from app.models import User
    from app.services import conversations, stored_images

    def seed(user_id: int, conv_id: int, prompt="a banana", color=(200, 180, 40)):
        data = png_bytes(color)
        clean = SimpleNamespace(
            data=data,
            mime="image/png",
            width=32,
            height=24,
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


def connect_redis(url: str):
    """A client for a local Redis, or a skip (a failure in CI) when none answers."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(url)
    try:
        client.ping()
    except RedisConnectionError:
        client.close()
        require_service("Redis")
    return client


def require_service(name: str) -> None:
    """Skip when a local service is missing, except in CI (NB_REQUIRE_SERVICES=1),
    where a missing service is a failure."""
    if os.environ.get("NB_REQUIRE_SERVICES"):
        pytest.fail(f"{name} is required in CI but not available")
    pytest.skip(f"{name} not available")
