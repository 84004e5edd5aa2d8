"""Size and encode time of one PNG at each zlib level: the figures behind
PNG_COMPRESS_LEVEL in app/services/image_codec.py.

    .venv/bin/python bench/png_levels.py
    .venv/bin/python bench/png_levels.py --megapixels 12

Two pictures: photo-like (smooth gradients with sensor-like noise) and flat
generated art (large areas of one colour). Prints, per level, the bytes and
the median encode time of three runs.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time

from PIL import Image, ImageDraw, ImageFilter

LEVELS = (1, 3, 4, 6, 9)


def photo_like(side: int) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    noise = Image.effect_noise((side, side), 24).convert("RGB")
    return Image.blend(gradient, noise, 0.25).filter(ImageFilter.GaussianBlur(0.6))


def flat_art(side: int) -> Image.Image:
    picture = Image.new("RGB", (side, side), (250, 220, 80))
    draw = ImageDraw.Draw(picture)
    rng = random.Random(7)
    for _ in range(40):
        x, y = rng.randrange(side), rng.randrange(side)
        r = rng.randrange(side // 20, side // 5)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return picture


def encode(picture: Image.Image, level: int) -> tuple[int, float]:
    timings, size = [], 0
    for _ in range(3):
        buffer = io.BytesIO()
        started = time.perf_counter()
        picture.save(buffer, format="PNG", compress_level=level)
        timings.append(time.perf_counter() - started)
        size = buffer.tell()
    return size, statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=3.0)
    side = int((parser.parse_args().megapixels * 1e6) ** 0.5)
    for name, picture in (("photo-like", photo_like(side)), ("flat art", flat_art(side))):
        print(f"{name}, {side}x{side}")
        for level in LEVELS:
            size, seconds = encode(picture, level)
            print(f"  level {level}: {size / 1e6:6.2f} MB  {seconds * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
