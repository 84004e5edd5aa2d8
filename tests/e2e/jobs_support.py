"""What the background-job browser tests share: a server with one job
worker (so a second job waits in the queue), a browser Notification that
records instead of showing, and the page actions the tests repeat."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fake_gemini import FakeGemini, Fault, ok
from tests.wsgi_server import NO_LIMITS, WsgiServer, isolated_environment

RESULT_IMAGES = ".msg-assistant .tile img"
PENDING = ".msg-assistant.pending"


def start_single_worker_server(tmp: Path, fake: FakeGemini) -> WsgiServer:
    """The fake Gemini behind one job worker (jobs run one at a time, so a
    second one waits in the queue) that retries a failed call once."""
    env = isolated_environment(
        tmp,
        SECRET_KEY="test",
        GENAI_PROVIDER="gemini",
        GOOGLE_API_KEY="test-key",
        GENAI_BASE_URL=fake.url,
        GENAI_MAX_RETRIES="1",
        GENAI_MIN_INTERVAL_MS="0",
        JOB_WORKERS="1",
        **NO_LIMITS,
    )
    return WsgiServer(env, tmp / "server.log", name="one-worker").start()


def slow(seconds: float) -> Fault:
    """The model's normal answer, `seconds` late."""
    return Fault("slow", body=ok().body, delay_s=seconds)


def send(page, prompt: str) -> None:
    page.locator("#prompt").fill(prompt)
    page.locator("#prompt").press("Enter")


def submit(page, prompt: str) -> dict:
    """Send a prompt and return the job the server accepted (the 202's body)."""
    with page.expect_response(
        lambda response: response.request.method == "POST" and "/v1/" in response.url
    ) as accepted:
        send(page, prompt)
    assert accepted.value.status == 202, accepted.value.text()
    assert accepted.value.request.headers.get("prefer") == "respond-async"
    return accepted.value.json()


def wait_for_upstream_calls(fake: FakeGemini, count: int, timeout_s: float = 15) -> None:
    """Until `count` generateContent calls have been answered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        finished = [call for call in fake.requests if call.ended is not None]
        if len(finished) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"wanted {count} answered calls, the fake saw {fake.requests}")


def set_hidden(page, hidden: bool) -> None:
    """Pretend the tab went to the background (or came back)."""
    page.evaluate(
        """hidden => {
          Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
          Object.defineProperty(document, "visibilityState",
            { value: hidden ? "hidden" : "visible", configurable: true });
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


# A Notification that records what it was asked to show and when permission
# was asked for; installed before the page's scripts run.
RECORDING_NOTIFICATION = """
(() => {
  window.__notifications = [];
  window.__permissionRequests = 0;
  class RecordingNotification {
    static permission = "default";
    static async requestPermission() {
      window.__permissionRequests += 1;
      RecordingNotification.permission = "granted";
      return "granted";
    }
    constructor(title, options = {}) {
      window.__notifications.push({ title, body: options.body || "" });
    }
    addEventListener() {}
    close() {}
  }
  window.Notification = RecordingNotification;
})();
"""
