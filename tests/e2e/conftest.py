"""Browser tests: the chat page in Debian's Chromium, driven by Playwright,
against `python wsgi.py` (waitress) in a subprocess — once with the offline
engine and once with the real SDK talking to the fake Gemini server.

Every test fails on a console error or an uncaught page exception, except
the network errors a test expects (`console.allow("status of 429")`).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.helpers import DESKTOP, goto_ready
from tests.e2e.jobs_support import start_single_worker_server
from tests.fake_gemini import FakeGemini
from tests.support.services import require_service
from tests.wsgi_server import NO_LIMITS, WsgiServer, isolated_environment

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _start_server(name: str, tmp: Path, extra_env: dict[str, str]) -> WsgiServer:
    settings = dict(SECRET_KEY="test", GENAI_PROVIDER="offline", GENAI_MIN_INTERVAL_MS="0")
    env = isolated_environment(tmp, **{**settings, **NO_LIMITS, **extra_env})
    return WsgiServer(env, tmp / "server.log", name=name).start()


@pytest.fixture(scope="session")
def offline_server(tmp_path_factory):
    server = _start_server("offline", tmp_path_factory.mktemp("e2e-offline"), {})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gemini_fake():
    """The fake Gemini behind gemini_server; tests script its answers."""
    fake = FakeGemini(image_size=(320, 240)).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gemini_server(tmp_path_factory, gemini_fake):
    server = _start_server(
        "gemini",
        tmp_path_factory.mktemp("e2e-gemini"),
        {
            "GOOGLE_API_KEY": "test-key",
            "GENAI_PROVIDER": "gemini",
            "GENAI_BASE_URL": gemini_fake.url,
            "GENAI_MAX_RETRIES": "0",
        },
    )
    yield server
    server.stop()


@pytest.fixture(params=["offline", "gemini"])
def any_server(request):
    """The test runs once against each provider."""
    return request.getfixturevalue(f"{request.param}_server")


# ---- the browser ----------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        require_service("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@dataclass
class ConsoleWatch:
    """Console errors and page exceptions; a test lists what it expects."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def record(self, text: str) -> None:
        self.errors.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console():
    return ConsoleWatch()


@pytest.fixture
def open_page(browser, console):
    """open_page(server, viewport=..., locale=...) → a fresh context's page at /."""
    contexts = []

    def open_(
        server: WsgiServer, *, viewport=None, locale="en-US", color_scheme="light", **options
    ):
        context = browser.new_context(
            base_url=server.url(),
            viewport=viewport or DESKTOP,
            locale=locale,
            color_scheme=color_scheme,
            # No transitions: drawers are where they end up at once.
            reduced_motion="reduce",
            accept_downloads=True,
            **options,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                console.record(f"console.{message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: console.record(f"pageerror: {error}"))
        goto_ready(page)
        return page

    yield open_
    for context in contexts:
        context.close()
    unexpected = console.unexpected()
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)


@pytest.fixture(scope="module")
def one_worker_server(tmp_path_factory, gemini_fake):
    """A server with one job worker on the fake Gemini, per test module
    (tests/e2e/jobs_support.py): jobs queue behind each other visibly."""
    server = start_single_worker_server(tmp_path_factory.mktemp("e2e-one-worker"), gemini_fake)
    yield server
    server.stop()


@pytest.fixture
def fake(gemini_fake):
    """The shared fake Gemini, reset and without latency, for one test."""
    gemini_fake.reset()
    gemini_fake.latency = 0
    yield gemini_fake
    gemini_fake.reset()
