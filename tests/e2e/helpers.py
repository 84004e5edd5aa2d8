"""What the browser tests share: page actions and checks."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.support.images import png_bytes

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
PASSWORD = "correct-horse-1"


def goto_ready(page, path: str = "/") -> None:
    page.goto(path)
    page.locator("body.ready").wait_for(state="attached")


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def png_file(tmp_path: Path, name: str, color: tuple[int, int, int], size=(96, 72)) -> Path:
    """A PNG on disk, for the page's file input."""
    path = tmp_path / name
    path.write_bytes(png_bytes(color, size))
    return path


def sign_up_in_page(page, username: str, password: str = PASSWORD) -> None:
    page.locator("#login-btn").click()
    page.locator("#tab-signup").click()
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill(password)
    page.locator("#auth-submit").click()
    page.locator("#account-name").filter(has_text=username).wait_for()


def sign_up_by_api(page, username: str, password: str = PASSWORD) -> dict:
    """Sign up through the page's own cookie jar (faster than the dialog)."""
    response = page.request.post("/auth/signup", data={"username": username, "password": password})
    assert response.status == 201, response.text()
    return response.json()


def image_loaded(locator) -> bool:
    return locator.evaluate("img => img.complete && img.naturalWidth > 0")


def wait_images_loaded(page, selector: str, count: int, timeout_s: float = 15) -> None:
    """Wait until `count` images matching `selector` have decoded pixels."""
    deadline = time.monotonic() + timeout_s
    locator = page.locator(selector)
    while time.monotonic() < deadline:
        if locator.count() >= count and all(
            image_loaded(locator.nth(i)) for i in range(locator.count())
        ):
            return
        page.wait_for_timeout(100)
    loaded = [image_loaded(locator.nth(i)) for i in range(locator.count())]
    raise AssertionError(f"{selector}: wanted {count} loaded images, have {loaded}")


def no_horizontal_overflow(page) -> None:
    widths = page.evaluate(
        "() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
        " view: window.innerWidth})"
    )
    assert widths["doc"] <= widths["view"], widths
    assert widths["body"] <= widths["view"], widths


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let transitions (theme, toasts) settle
    page.screenshot(path=str(SCREENSHOTS / name))
