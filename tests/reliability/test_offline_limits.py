"""Hostile edit prompts on the offline engine (issue 18, point 1), against
`python wsgi.py`: prompts of the maximum length built to make the parser
backtrack or rescan answer in seconds, not minutes; prompts that grow the
picture step after step stay within the pixel budget, with the server's peak
resident memory sampled throughout; and two hostile edits at once leave the
gate free for everyone else's generations.

Timings are regression guards, far above what the parser needs
(bench/offline_parser.py measures it)."""

from __future__ import annotations

import base64
import io
import random
import threading
import time

import pytest
from PIL import Image

from tests.reliability.support import (
    RssSampler,
    http_json,
    multipart,
    post_raw,
    report,
    server_process,
)

MAX_PROMPT = 20_000  # the longest prompt the API accepts
# A hostile prompt took 87 s of CPU before; its whole request now takes
# milliseconds of parsing plus a few steps on a 64 px picture.
PARSE_HEAVY_REQUEST_S = 5.0
# The worst growing prompt runs 16 costly steps at the 4-megapixel budget;
# the engine stops an edit at 30 s (a 504) on a machine far slower than this one.
GROWTH_REQUEST_S = 30.0
MAX_RSS_GROWTH = 256 * 1024 * 1024
MAX_EDIT_PIXELS = 2048 * 2048


def fill(unit: str, length: int = MAX_PROMPT) -> str:
    return (unit * (length // len(unit) + 1))[:length]


def random_mix(seed: int) -> str:
    words = [
        "描边", "边框", "红", "1", "像素", "px", "，", " ", "  ", "\n", "旋转", "45", "度",
        "border", " and ", "rotate", "blur 100", "black and white", "resize 400%", "grey",
    ]  # fmt: skip
    rng = random.Random(seed)
    return "".join(rng.choice(words) for _ in range(MAX_PROMPT))[:MAX_PROMPT]


# Each built to hit one way the old parser went super-linear.
PARSE_HEAVY = {
    "the issue's 描边1像素, (15 KB)": "描边1像素," * (15 * 1024 // 14),
    "描边1像素, to the maximum": fill("描边1像素,"),
    "a colour and 20,000 spaces": "red" + " " * (MAX_PROMPT - 3),
    "grey and spaces": "grey" + " " * (MAX_PROMPT - 4),
    "spaces before 旋转": " " * (MAX_PROMPT - 2) + "旋转",
    "borders with no clause break": fill("边框"),
    "colours then borders": "红" * 10_000 + "描边" * 5_000,
    "a digit run": "边框" + "1" * (MAX_PROMPT - 2),
    "a random mix": random_mix(1),
}
# Each built to grow the picture at every step it can.
GROWTH = {
    "the issue's sixteen 512 px borders": "add a 512 px border, " * 16,
    "the issue's twelve rotate 45": "rotate 45, " * 12,
    "512 px borders to the maximum": fill("512 px border, "),
    "resize, rotate, blur, frame": fill("resize to 4096x4096, rotate 45, blur 100, 512px border, "),
}


def small_png() -> bytes:
    rng = random.Random(64)
    image = Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def edit(server, prompt: str, png: bytes) -> tuple[int, dict, float]:
    """POST /v1/edit as an anonymous caller: (status, body, seconds)."""
    body, content_type = multipart({"prompt": prompt}, [("files", "in.png", png)])
    started = time.monotonic()
    status, answer, _ = post_raw(
        server.url("/v1/edit"), body, content_type, {"Accept-Language": "en"}, timeout=180
    )
    return status, answer, time.monotonic() - started


def picture(answer: dict) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(answer["images"][0])))
    image.load()
    return image


@pytest.mark.slow
def test_hostile_prompts_against_the_real_server(tmp_path):
    png = small_png()
    with server_process(tmp_path / "server") as server:
        slowest_parse = 0.0
        for name, prompt in PARSE_HEAVY.items():
            assert len(prompt) <= MAX_PROMPT
            status, answer, seconds = edit(server, prompt, png)
            assert status == 200, (name, answer)
            assert seconds < PARSE_HEAVY_REQUEST_S, (name, seconds)
            slowest_parse = max(slowest_parse, seconds)

        sizes, slowest_growth = {}, 0.0
        with RssSampler(server.process.pid) as memory:
            for name, prompt in GROWTH.items():
                status, answer, seconds = edit(server, prompt, png)
                assert status == 200, (name, answer)
                assert seconds < GROWTH_REQUEST_S, (name, seconds)
                slowest_growth = max(slowest_growth, seconds)
                width, height = sizes[name] = picture(answer).size
                assert width * height <= MAX_EDIT_PIXELS, (name, width, height)
                assert max(width, height) <= 4096
                if len(prompt) > 1000:
                    assert "more ignored: an edit runs at most 16 operations" in answer["texts"][0]
        growth = memory.peak - memory.start
        report(
            "offline_limits",
            slowest_parse_heavy_request_s=round(slowest_parse, 2),
            slowest_growth_request_s=round(slowest_growth, 2),
            rss_start_mb=round(memory.start / 2**20),
            rss_peak_mb=round(memory.peak / 2**20),
            largest_output=max(sizes.values(), key=lambda size: size[0] * size[1]),
        )
        assert growth < MAX_RSS_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MB"
        log = server.app_log()
    assert "Traceback" not in log


@pytest.mark.slow
def test_two_hostile_edits_leave_room_for_everyone_else(tmp_path):
    """The issue: two such requests held both gate slots, so every other
    generation answered 503 for two minutes."""
    png = small_png()
    hostile = [fill("描边1像素,"), "红" * 10_000 + "描边" * 5_000]
    with server_process(tmp_path / "server", GENAI_MAX_CONCURRENT="2") as server:
        answers = {}

        def send(index: int, prompt: str) -> None:
            answers[index] = edit(server, prompt, png)

        threads = [
            threading.Thread(target=send, args=(index, prompt))
            for index, prompt in enumerate(hostile)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # both hostile edits hold their slots now, or are done
        started = time.monotonic()
        status, body, _ = http_json(
            "POST", server.url("/v1/generate"), {"prompt": "a yellow banana"}, timeout=60
        )
        waited = time.monotonic() - started
        for thread in threads:
            thread.join(timeout=120)
        assert status == 200, body
        assert waited < PARSE_HEAVY_REQUEST_S, waited
        assert [answers[index][0] for index in range(len(hostile))] == [200, 200]
        report("offline_limits_gate", generate_after_two_hostile_edits_s=round(waited, 2))
