"""The pictures the fake sends: deterministic, seeded by the request."""

from __future__ import annotations

import functools
import io
import random

from PIL import Image


@functools.lru_cache(maxsize=32)
def render_png(width: int, height: int, seed: int, image_kb: int | None) -> bytes:
    """A deterministic PNG. With ``image_kb``, random noise of about that size
    (noise does not compress), for benchmarks that need realistic payloads."""
    if image_kb:
        side = max(8, int((image_kb * 1024 / 3) ** 0.5))
        noise = random.Random(seed).randbytes(side * side * 3)
        image = Image.frombytes("RGB", (side, side), noise)
        compress_level = 1
    else:
        # A gradient whose colour depends on the seed, so callers can tell
        # answers to different requests apart.
        tint = seed % 256
        gradient_x = (
            Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((width, height))
        )
        gradient_y = Image.linear_gradient("L").resize((width, height))
        image = Image.merge("RGB", (gradient_x, gradient_y, Image.new("L", (width, height), tint)))
        compress_level = 6
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
