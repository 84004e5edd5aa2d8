"""Benchmark of issue 17 point 13: what the chat page weighs on the wire.

    .venv/bin/python bench/page_weight.py            # before and after, one table
    .venv/bin/python bench/page_weight.py --runs 3 --json /tmp/weight.json

``make bench`` runs the same scenario through bench/run.py (rows W1-W4).

One user with one conversation of 20 turns, each a 2048 × 2048 result
stored through the services (a PNG of 6-7 MB with texture and grain, near a
real 2K Gemini picture: a flat drawing would flatter every format), served
by ``python wsgi.py`` (after) and by bench/page_weight_app.py, the same app
with its page-weight features off (before: the page names /static/...,
nothing is compressed, the thread shows the originals). Chromium (Debian's,
through Playwright) at 1440 × 900, the Chrome DevTools Protocol's Network
events counting the bytes that crossed the wire (``encodedDataLength``:
headers and body as sent, compressed or not):

- W1 first load: a new visitor, empty cache, ``/`` until the network is
  idle; and the same for the logged-in user (the sidebar and its thumbnail).
- W2 opening the conversation: a click in the sidebar until every image the
  thread loads (they load lazily: those in or near the viewport) is in.
- W3 repeat visit: a reload of the page with the conversation open. Counted
  from the server's own access log: requests for static files (each one a
  revalidation: a 304, or a 200 where nothing changed), and for the
  thread's images (private: revalidated on every use by design, a 304 each).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from servers import App  # noqa: E402

TURNS = 20
SIDE = 2048
PASSWORD = "bench-password-123"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DESKTOP = {"width": 1440, "height": 900}
VARIANTS = (("before", "bench/page_weight_app.py"), ("after", "wsgi.py"))
STATIC_PATH = re.compile(r" GET (/assets/|/static/|/docs/assets/)\S* (\d{3}) ")
IMAGE_PATH = re.compile(r" GET /images/\d+(?:/\w+)? (\d{3}) ")
IDLE_MS = 500


# ---- the history ------------------------------------------------------------------

_PICTURES: dict[int, bytes] = {}


def photo_like(seed: int, side: int = SIDE) -> bytes:
    """A deterministic PNG with what photographs have and drawings lack:
    colour fields, shapes with soft edges, texture at two scales and a
    little grain."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    rng = random.Random(seed)

    def noise(n: int, sigma: float) -> Image.Image:
        return Image.merge("RGB", [Image.effect_noise((n, n), sigma) for _ in range(3)])

    field = Image.new("RGB", (6, 6))
    field.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(36)])
    image = field.resize((side, side), Image.Resampling.BICUBIC)
    shapes = image.copy()
    draw = ImageDraw.Draw(shapes)
    for _ in range(80):
        x, y, r = rng.randrange(side), rng.randrange(side), rng.randrange(side // 60, side // 6)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    image = Image.blend(image, shapes.filter(ImageFilter.GaussianBlur(side / 500)), 0.7)
    for scale, sigma in ((32, 30), (4, 10)):
        texture = noise(side // scale, sigma).resize((side, side), Image.Resampling.BICUBIC)
        image = ImageChops.add(image, texture, 1, -128)
    image = ImageChops.add(image, noise(side, 2), 1, -128)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=4)  # as the app stores PNGs
    return buffer.getvalue()


def picture(seed: int) -> bytes:
    if seed not in _PICTURES:  # made once per process, reused by every run
        _PICTURES[seed] = photo_like(seed)
    return _PICTURES[seed]


def sign_up(app: App, username: str) -> tuple[dict[str, str], int]:
    """The user's session cookie and their conversation's id."""
    client = app.client()
    response = client.request(
        "POST", "/auth/signup", body={"username": username, "password": PASSWORD}
    )
    if response.status != 201:
        raise RuntimeError(f"signup failed: {response.status} {response.body[:200]!r}")
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    conversation = client.request("POST", "/conversations", body={"title": "twenty turns"}).json()
    cookies = dict(client.cookies)
    client.close()
    return cookies, conversation["id"]


def store_history(app: App, username: str, conv_id: int, turns: int = TURNS) -> int:
    """Record `turns` finished turns through the services, in this process,
    on the server's own database and image folder; the bytes stored."""
    from app import create_app
    from app.extensions import db
    from app.models import User
    from app.services import conversations, stored_images

    data_dir = app.workdir / "data"
    seeder = create_app(
        {
            "DATA_DIR": str(data_dir),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'app.db'}",
            "SECRET_KEY": "bench-secret-key",
            "LOG_DIR": str(app.workdir / "seed-logs"),
            "REDIS_URL": None,
            "GENAI_PROVIDER": "offline",
            "JOB_WORKERS": -1,
        }
    )
    stored = 0
    with seeder.test_request_context():
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
        for turn in range(turns):
            data = picture(turn)
            clean = SimpleNamespace(
                data=data,
                mime="image/png",
                width=SIDE,
                height=SIDE,
                sha256=hashlib.sha256(data).hexdigest(),
            )
            record = conversations.TurnRecord(
                kind="generate",
                prompt=f"turn {turn + 1}: a street market at dusk, photographed",
                params={"image_size": "2K"},
                inputs=[],
                outputs=[stored_images.save(clean)],
                texts=["Here is the picture."],
                model="gemini-3-pro-image-preview",
                finish_reasons=["STOP"],
            )
            conversations.record_turn(user, conv_id, record)
            stored += len(data)
        db.session.remove()
        db.engine.dispose()
    seeder.extensions["genai"].close()
    return stored


# ---- the browser ----------------------------------------------------------------------


class NetworkLog:
    """The Network events of one page (Chrome DevTools Protocol): what each
    request cost on the wire."""

    def __init__(self, page) -> None:
        self.requests: dict[str, dict] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.send("Network.enable")
        self.cdp = cdp
        self.page = page
        self.last_event = time.monotonic()

    def wait_idle(self, idle_ms: int = IDLE_MS, timeout_s: float = 60) -> None:
        """Until nothing has been in flight for idle_ms: lazy images start
        after layout, and a click is no navigation (Playwright's
        `networkidle` only follows navigations)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(50)  # lets the events in
            pending = [r for r in self.requests.values() if not r["done"]]
            if not pending and time.monotonic() - self.last_event >= idle_ms / 1000:
                return
        raise TimeoutError(f"still loading: {[r['url'] for r in pending]}")

    def _sent(self, event) -> None:
        self.last_event = time.monotonic()
        if event["request"]["url"].startswith("data:"):
            return
        self.requests[event["requestId"]] = {
            "url": event["request"]["url"],
            "bytes": 0,
            "status": None,
            "cached": False,
            "encoding": None,
            "done": False,
        }

    def _response(self, event) -> None:
        entry = self.requests.get(event["requestId"])
        if entry is None:
            return
        response = event["response"]
        headers = {name.lower(): value for name, value in response["headers"].items()}
        entry["status"] = response["status"]
        # What had arrived when the headers were read: the status line and headers.
        entry["header_bytes"] = int(response.get("encodedDataLength") or 0)
        entry["encoding"] = headers.get("content-encoding")
        entry["type"] = headers.get("content-type", "")
        if response.get("fromDiskCache") or response.get("fromPrefetchCache"):
            entry["cached"] = True

    def _finished(self, event) -> None:
        self.last_event = time.monotonic()
        entry = self.requests.get(event["requestId"])
        if entry is not None:
            entry["bytes"] = int(event["encodedDataLength"])
            entry["done"] = True

    def _failed(self, event) -> None:
        self.last_event = time.monotonic()
        entry = self.requests.get(event["requestId"])
        if entry is not None:
            entry["done"] = True
            entry["failed"] = event.get("errorText", "failed")

    def _from_cache(self, event) -> None:
        entry = self.requests.get(event["requestId"])
        if entry is not None:
            entry["cached"] = True

    def take(self) -> list[dict]:
        taken = list(self.requests.values())
        self.requests.clear()
        return taken


# --dump: every request of every phase, printed.
DUMP = False


def summary(requests: list[dict], phase: str = "") -> dict:
    if DUMP:
        print(f"-- {phase}")
        for r in requests:
            where = "cache" if r["cached"] else f"{r['bytes']:>9} B"
            print(f"   {r['status']} {where} {r['encoding'] or '-':>4} {r['url']}")
    wire = [r for r in requests if not r["cached"]]
    images = [r for r in wire if "/images/" in r["url"]]
    return {
        "kb": round(sum(r["bytes"] for r in wire) / 1024, 1),
        "header_kb": round(sum(r.get("header_bytes", 0) for r in wire) / 1024, 1),
        "requests": len(wire),
        "gzip": sum(1 for r in wire if r["encoding"] == "gzip"),
        "image_requests": len(images),
        "image_kb": round(sum(r["bytes"] for r in images) / 1024, 1),
        "display_requests": sum(1 for r in images if r["url"].endswith("/display")),
    }


def access_log(app: App) -> list[str]:
    path = app.workdir / "logs" / "app.log"
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def measure(script: str, browser) -> dict:
    app = App(env={"GENAI_PROVIDER": "offline"}, script=script)
    figures: dict = {}
    try:
        app.start()
        username = f"weight{os.getpid()}{int(time.time() * 1000) % 100000}"
        cookies, conv_id = sign_up(app, username)
        figures["stored_mb"] = round(store_history(app, username, conv_id) / 1e6, 1)
        base = f"http://127.0.0.1:{app.port}"

        # W1: a new visitor.
        context = browser.new_context(base_url=base, viewport=DESKTOP)
        page = context.new_page()
        network = NetworkLog(page)
        page.goto("/")
        page.locator("body.ready").wait_for(state="attached")
        network.wait_idle()
        figures.update(
            {f"first_{k}": v for k, v in summary(network.take(), f"{script} first").items()}
        )
        context.close()

        # W1 again for a browser that asks for Chinese: the page loads the
        # active language's strings only, and the Chinese table is the larger.
        context = browser.new_context(base_url=base, viewport=DESKTOP, locale="zh-CN")
        page = context.new_page()
        network = NetworkLog(page)
        page.goto("/")
        page.locator("body.ready").wait_for(state="attached")
        network.wait_idle()
        figures["first_zh_kb"] = summary(network.take(), f"{script} first_zh")["kb"]
        context.close()

        # W1 logged in, W2 the conversation, W3 the repeat visit.
        context = browser.new_context(base_url=base, viewport=DESKTOP)
        context.add_cookies(
            [{"name": name, "value": value, "url": base} for name, value in cookies.items()]
        )
        page = context.new_page()
        network = NetworkLog(page)
        page.goto("/")
        page.locator("body.ready").wait_for(state="attached")
        network.wait_idle()
        figures.update(
            {
                f"user_first_{k}": v
                for k, v in summary(network.take(), f"{script} user_first").items()
            }
        )

        started = time.monotonic()
        page.locator(".conv-open").first.click()  # the user's one conversation
        page.locator(".image-grid img").first.wait_for()
        network.wait_idle()
        figures["conv_s"] = round(network.last_event - started, 2)
        figures.update(
            {f"conv_{k}": v for k, v in summary(network.take(), f"{script} conv").items()}
        )
        figures["conv_tiles"] = page.locator(".image-grid img").count()

        seen = len(access_log(app))
        page.reload()
        page.locator("body.ready").wait_for(state="attached")
        page.locator(".image-grid img").first.wait_for()
        network.wait_idle()
        figures.update(
            {f"repeat_{k}": v for k, v in summary(network.take(), f"{script} repeat").items()}
        )
        time.sleep(0.3)  # the access log line is written after the answer
        lines = access_log(app)[seen:]
        static = [m.group(2) for line in lines if (m := STATIC_PATH.search(line))]
        images = [m.group(1) for line in lines if (m := IMAGE_PATH.search(line))]
        figures["repeat_static_requests"] = len(static)
        figures["repeat_static_304"] = static.count("304")
        figures["repeat_image_requests"] = len(images)
        figures["repeat_image_304"] = images.count("304")
        context.close()
    finally:
        app.stop()
    return figures


def page_weight(opts=None) -> dict:
    """Before and after, in one flat dict of figures (``before_first_kb``...)."""
    from playwright.sync_api import sync_playwright

    figures: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for label, script in VARIANTS:
                for key, value in measure(script, browser).items():
                    figures[f"{label}_{key}"] = value
        finally:
            browser.close()
    return figures


# ---- standalone ------------------------------------------------------------------------

ROWS = [
    ("first_kb", "W1 first load, new visitor: transferred", "KB", ("<", 80)),
    ("first_header_kb", "W1 first load, new visitor: of which headers", "KB", None),
    ("first_requests", "W1 first load, new visitor: requests", "count", None),
    ("first_gzip", "W1 first load, new visitor: answers gzipped", "count", None),
    ("first_zh_kb", "W1 first load, new visitor, Chinese browser: transferred", "KB", ("<", 80)),
    ("user_first_kb", "W1 first load, logged in: transferred", "KB", None),
    ("conv_kb", "W2 opening the 20-turn conversation: transferred", "KB", ("<", 2048)),
    ("conv_image_requests", "W2 opening it: images fetched (lazy)", "count", None),
    ("conv_image_kb", "W2 opening it: of which images", "KB", None),
    ("conv_s", "W2 opening it: click to the last byte in", "s", None),
    ("repeat_static_requests", "W3 repeat visit: static files asked for again", "count", ("==", 0)),
    ("repeat_static_304", "W3 repeat visit: of which 304", "count", None),
    ("repeat_image_304", "W3 repeat visit: private images revalidated (304)", "count", None),
    ("repeat_kb", "W3 repeat visit: transferred", "KB", None),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--dump", action="store_true", help="print every request of each phase")
    args = parser.parse_args(argv)
    global DUMP
    DUMP = args.dump
    runs = []
    for run in range(args.runs):
        figures = page_weight()
        runs.append(figures)
        print(f"run {run + 1}/{args.runs}: {json.dumps(figures)}", flush=True)
    print("\n| figure | unit | before | after | goal (after) |\n|---|---|---|---|---|")
    for key, label, unit, goal in ROWS:
        before = statistics.median(r[f"before_{key}"] for r in runs)
        after = statistics.median(r[f"after_{key}"] for r in runs)
        target = f"{goal[0]} {goal[1]}" if goal else ""
        print(f"| {label} | {unit} | {before:g} | {after:g} | {target} |")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
