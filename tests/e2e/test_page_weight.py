"""Issue 17 point 13 in the browser: what the page costs on the wire, read
from Chromium's own Network events (Chrome DevTools Protocol): the first
visit's bytes, gzip on every script and stylesheet, no request at all for
them on a repeat visit (a reload, and again after logging in), and the
thread showing display-sized renditions rather than the originals."""

from __future__ import annotations

import time

import pytest

from tests.e2e.helpers import (
    DESKTOP,
    PHONE,
    ROOT,
    sign_up_by_api,
    unique_name,
    wait_images_loaded,
)

pytestmark = pytest.mark.browser

IDLE_S = 0.5
STATIC = ROOT / "app" / "static"


class Wire:
    """One page's requests as Chromium saw them: URL, status, bytes on the
    wire (headers and body, as sent), encoding, and whether the cache
    answered instead of the network."""

    def __init__(self, page) -> None:
        self.page = page
        self.requests: dict[str, dict] = {}
        self.last_event = time.monotonic()
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._finished)
        cdp.send("Network.enable")

    def _sent(self, event) -> None:
        self.last_event = time.monotonic()
        url = event["request"]["url"]
        if not url.startswith("data:"):
            self.requests[event["requestId"]] = {"url": url, "cached": False, "done": False}

    def _from_cache(self, event) -> None:
        if event["requestId"] in self.requests:
            self.requests[event["requestId"]]["cached"] = True

    def _response(self, event) -> None:
        entry = self.requests.get(event["requestId"])
        if entry is None:
            return
        response = event["response"]
        headers = {name.lower(): value for name, value in response["headers"].items()}
        entry.update(status=response["status"], encoding=headers.get("content-encoding"))
        entry["cache_control"] = headers.get("cache-control", "")
        if response.get("fromDiskCache"):
            entry["cached"] = True

    def _finished(self, event) -> None:
        self.last_event = time.monotonic()
        entry = self.requests.get(event["requestId"])
        if entry is not None:
            entry["done"] = True
            entry["bytes"] = int(event.get("encodedDataLength", 0))

    def settle(self, timeout_s: float = 20) -> list[dict]:
        """Wait until nothing has been in flight for IDLE_S; what was asked
        for since the last settle()."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.page.wait_for_timeout(50)
            pending = [r["url"] for r in self.requests.values() if not r["done"]]
            if not pending and time.monotonic() - self.last_event >= IDLE_S:
                break
            assert time.monotonic() < deadline, f"still loading: {pending}"
        taken = list(self.requests.values())
        self.requests.clear()
        return taken


def static(requests: list[dict]) -> list[dict]:
    return [r for r in requests if "/static/" in r["url"]]


def from_network(requests: list[dict]) -> list[dict]:
    return [r for r in requests if not r["cached"]]


def kilobytes(requests: list[dict]) -> float:
    return sum(r.get("bytes", 0) for r in from_network(requests)) / 1024


def open_wired(browser, server, viewport, **options):
    context = browser.new_context(base_url=server.url(), viewport=viewport, **options)
    page = context.new_page()
    wire = Wire(page)
    page.goto("/")
    page.locator("body.ready").wait_for(state="attached")
    return context, page, wire


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_first_visit_is_compressed_and_a_repeat_visit_asks_for_nothing(
    browser, offline_server, viewport
):
    context, page, wire = open_wired(browser, offline_server, viewport)
    try:
        first = wire.settle()
        files = static(first)
        assert len(files) >= 15  # the stylesheet, the modules, the logo
        for request in files:
            assert request["status"] == 200, request
            assert "immutable" in request["cache_control"], request
            name = request["url"].split("/static/", 1)[1].split("/", 1)[1]
            if name.endswith((".js", ".css")) and (STATIC / name).stat().st_size >= 1024:
                assert request["encoding"] == "gzip", request
        # Before: about 290 KB, nothing compressed (docs/benchmarks.md, "Page weight").
        assert kilobytes(first) < 130, [(r["url"], r.get("bytes")) for r in first]

        page.reload()
        page.locator("body.ready").wait_for(state="attached")
        again = static(wire.settle())
        assert len(again) == len(files)  # the same files, all of them...
        assert from_network(again) == []  # ...from the cache: no request, no 304

        page.goto("/")
        page.locator("body.ready").wait_for(state="attached")
        assert from_network(static(wire.settle())) == []
    finally:
        context.close()


def test_logging_in_does_not_make_the_browser_ask_again(browser, offline_server):
    """A new session cookie must not invalidate the cached files (no
    `Vary: Cookie` on them)."""
    context, page, wire = open_wired(browser, offline_server, DESKTOP)
    try:
        assert static(wire.settle())
        sign_up_by_api(page, unique_name("weight"))
        page.reload()
        page.locator("#account-name").wait_for()
        assert from_network(static(wire.settle())) == []
    finally:
        context.close()


def test_the_thread_shows_renditions_and_the_viewer_the_original(browser, offline_server):
    context, page, wire = open_wired(browser, offline_server, DESKTOP)
    try:
        token = sign_up_by_api(page, unique_name("weight"))["csrf_token"]
        headers = {"X-CSRF-Token": token}
        conversation = page.request.post("/conversations", data={}, headers=headers).json()
        response = page.request.post(
            "/v1/generate",
            data={"prompt": "a lighthouse at night", "conv_id": conversation["id"]},
            headers=headers,
        )
        assert response.status == 200, response.text()
        image = response.json()["message"]["images"][0]
        page.reload()
        page.locator(".conv-open").first.wait_for()
        wire.settle()
        page.locator(".conv-open").first.click()
        wait_images_loaded(page, ".image-grid img", 1)
        shown = [r for r in wire.settle() if "/images/" in r["url"]]
        assert [r["url"].split(offline_server.url(""))[1] for r in shown] == [image["display_url"]]
        assert shown[0]["status"] == 200
        assert image["display_url"] == f"/images/{image['id']}/display"

        page.locator(".image-grid .tile-open").first.click()
        page.locator("#viewer-img").wait_for()
        viewed = [r["url"] for r in wire.settle() if "/images/" in r["url"]]
        assert viewed == [offline_server.url(image["url"])]
    finally:
        context.close()
