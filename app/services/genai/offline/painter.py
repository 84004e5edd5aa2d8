"""Generation: a landscape painted from the colours the prompt names and the seed.

Every random choice comes from a SHA-256 of the request, never from the global
generator or the clock, so the same request always gives the same picture.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Iterable

from PIL import Image, ImageDraw

from app.errors import InvalidInput
from app.i18n import N_, LazyList, LazyMessage, _l
from app.services.genai.contracts import GenerationRequest
from app.services.genai.offline.colours import (
    BLACK,
    COLOUR_PATTERN,
    RGB,
    WHITE,
    NamedColour,
    colour_named,
    mix,
)

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "3:4": (3, 4),
    "4:3": (4, 3),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "9:16": (9, 16),
    "16:9": (16, 9),
    "21:9": (21, 9),
    # Nano Banana 2's extra-wide and extra-tall formats
    "1:4": (1, 4),
    "4:1": (4, 1),
    "1:8": (1, 8),
    "8:1": (8, 1),
}
IMAGE_SIZES: dict[str, int] = {"1K": 1024, "2K": 2048, "4K": 4096}
# Painting and PNG-encoding a 4K picture with Pillow takes seconds, and the
# offline picture is a stand-in for the real model, so it stops at 1K.
OFFLINE_MAX_SIDE = 1024


# Used when the prompt names no colour: (name, sky top, horizon, land).
_PALETTES: tuple[tuple[LazyMessage, RGB, RGB, RGB], ...] = (
    (_l("dawn"), (70, 90, 160), (255, 190, 150), (60, 70, 110)),
    (_l("ocean"), (20, 60, 120), (120, 200, 230), (20, 90, 110)),
    (_l("meadow"), (110, 170, 220), (230, 240, 210), (50, 110, 60)),
    (_l("dusk"), (40, 30, 80), (240, 120, 90), (50, 35, 70)),
    (_l("desert"), (90, 150, 210), (250, 220, 170), (200, 140, 80)),
    (_l("night"), (10, 15, 40), (50, 60, 120), (15, 20, 35)),
)
_NIGHT_WORDS = re.compile(r"(?<![A-Za-z])(?:night|stars?|starry)(?![A-Za-z])|夜|星", re.IGNORECASE)
_BANANA_WORDS = re.compile(r"banana|香蕉", re.IGNORECASE)


def generate(request: GenerationRequest) -> tuple[Image.Image, LazyMessage]:
    ratio = request.options.aspect_ratio or "1:1"
    if ratio not in ASPECT_RATIOS:
        raise _unsupported(
            N_("Unsupported aspect ratio %(value)r. Use one of %(valid)s."), ratio, ASPECT_RATIOS
        )
    size_name = request.options.image_size or "1K"
    if size_name not in IMAGE_SIZES:
        raise _unsupported(
            N_("Unsupported image size %(value)r. Use one of %(valid)s."), size_name, IMAGE_SIZES
        )
    long_side = min(IMAGE_SIZES[size_name], OFFLINE_MAX_SIDE)
    ratio_w, ratio_h = ASPECT_RATIOS[ratio]
    if ratio_w >= ratio_h:
        size = (long_side, round(long_side * ratio_h / ratio_w))
    else:
        size = (round(long_side * ratio_w / ratio_h), long_side)

    rng = random.Random(_request_digest(request))
    named = _distinct_colours(request.prompt)
    picture, palette = _paint_scene(request.prompt, named, size, rng)

    if request.options.seed is not None:
        seed = _l("seed %(seed)s", seed=request.options.seed)
    else:
        seed = _l("seed taken from the prompt")
    reply = _l(
        "Offline engine: painted a %(width)s×%(height)s picture (%(ratio)s) from the prompt; "
        "%(palette)s; %(seed)s. No API key or network was used.",
        width=size[0],
        height=size[1],
        ratio=ratio,
        palette=palette,
        seed=seed,
    )
    if IMAGE_SIZES[size_name] > OFFLINE_MAX_SIDE:
        reply = _l(
            "%(reply)s %(size)s was requested; the offline engine draws at most "
            "%(max_side)s px on the long side.",
            reply=reply,
            size=size_name,
            max_side=OFFLINE_MAX_SIDE,
        )
    return picture, reply


def _unsupported(template: str, value: str, valid: Iterable[str]) -> InvalidInput:
    return InvalidInput(_l(template, value=value, valid=LazyList(valid)))


def _request_digest(request: GenerationRequest) -> bytes:
    digest = hashlib.sha256()
    fields = (
        request.kind,
        request.prompt,
        str(request.options.seed),
        str(request.candidate_index),
        request.model,
        request.options.aspect_ratio or "",
        request.options.image_size or "",
    )
    for text in fields:
        encoded = text.encode()
        # Length-prefixed so that neighbouring fields cannot run together.
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    for data in request.images:
        digest.update(hashlib.sha256(data).digest())
    return digest.digest()


def _distinct_colours(prompt: str) -> list[NamedColour]:
    found: list[NamedColour] = []
    for match in COLOUR_PATTERN.finditer(prompt):
        colour = colour_named(match.group())
        if colour not in found:
            found.append(colour)
    return found


def _paint_scene(
    prompt: str, named: list[NamedColour], size: tuple[int, int], rng: random.Random
) -> tuple[Image.Image, LazyMessage]:
    if named:
        top, horizon, land = _scene_colours([colour.rgb for colour in named])
        palette = _l("colours: %(colours)s", colours=LazyList(colour.label for colour in named))
    else:
        name, top, horizon, land = rng.choice(_PALETTES)
        palette = _l("no colour named, so the %(palette)s palette", palette=name)
    top, horizon, land = (_jitter(colour, rng) for colour in (top, horizon, land))
    width, height = size

    picture = _vertical_gradient(
        size, [(0.0, top), (0.68, horizon), (1.0, mix(horizon, WHITE, 0.3))]
    )
    draw = ImageDraw.Draw(picture, "RGBA")
    short_side = min(width, height)
    if _NIGHT_WORDS.search(prompt):
        for _ in range(90):
            x, y = rng.uniform(0, width), rng.uniform(0, height * 0.55)
            radius = rng.uniform(0.6, 1.8) * short_side / 512
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), (255, 255, 240, 220))
    _paint_sun(draw, size, horizon, rng)
    for _ in range(rng.randint(2, 5)):
        _paint_cloud(draw, size, rng)
    for layer, haze in enumerate((0.55, 0.3, 0.0)):
        _paint_hills(draw, size, mix(land, horizon, haze), layer, rng)
    if _BANANA_WORDS.search(prompt):
        _paint_banana(draw, size, rng)
    return picture, palette


def _scene_colours(named: list[RGB]) -> tuple[RGB, RGB, RGB]:
    """Sky top, horizon and land from the colours in the order they were named."""
    if len(named) == 1:
        (only,) = named
        return mix(only, BLACK, 0.3), mix(only, WHITE, 0.55), mix(only, BLACK, 0.55)
    if len(named) == 2:
        return named[0], mix(named[1], WHITE, 0.3), mix(named[1], BLACK, 0.5)
    return named[0], named[1], mix(named[2], BLACK, 0.3)


def _jitter(colour: RGB, rng: random.Random) -> RGB:
    # Small per-seed shifts, so that seeds differ even when the layout rhymes.
    r, g, b = (min(255, max(0, channel + rng.randint(-12, 12))) for channel in colour)
    return r, g, b


def _vertical_gradient(size: tuple[int, int], stops: list[tuple[float, RGB]]) -> Image.Image:
    height = size[1]
    rows = bytearray()
    for y in range(height):
        position = y / max(1, height - 1)
        for (start, start_colour), (end, end_colour) in itertools.pairwise(stops):
            if position <= end:
                amount = (position - start) / (end - start)
                # Ease in and out so the bands meet without a visible seam.
                rows.extend(mix(start_colour, end_colour, amount * amount * (3 - 2 * amount)))
                break
    # One column, stretched sideways: far cheaper than painting every pixel.
    return Image.frombytes("RGB", (1, height), bytes(rows)).resize(size, Image.Resampling.NEAREST)


def _paint_sun(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], horizon: RGB, rng: random.Random
) -> None:
    width, height = size
    x, y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.18, 0.42) * height
    radius = rng.uniform(0.06, 0.1) * min(width, height)
    glow = mix(horizon, (255, 245, 220), 0.6)
    for ring in range(5, 0, -1):
        reach = radius * (1 + 0.4 * ring)
        draw.ellipse((x - reach, y - reach, x + reach, y + reach), (*glow, 16 + 4 * (5 - ring)))
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), (*mix(glow, WHITE, 0.5), 255))


def _paint_cloud(draw: ImageDraw.ImageDraw, size: tuple[int, int], rng: random.Random) -> None:
    width, height = size
    x, y = rng.uniform(0, width), rng.uniform(0.08, 0.45) * height
    scale = rng.uniform(0.04, 0.08) * width
    for _ in range(rng.randint(3, 5)):
        dx, dy = rng.uniform(-1.6, 1.6) * scale, rng.uniform(-0.4, 0.4) * scale
        rx, ry = rng.uniform(0.8, 1.4) * scale, rng.uniform(0.4, 0.7) * scale
        draw.ellipse((x + dx - rx, y + dy - ry, x + dx + rx, y + dy + ry), (255, 255, 255, 46))


def _paint_hills(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], colour: RGB, layer: int, rng: random.Random
) -> None:
    width, height = size
    base = height * (0.64 + 0.1 * layer)
    amplitude = height * (0.08 - 0.015 * layer)
    # Three octaves of sine, each faster and fainter: a ridge, not a zigzag.
    waves = [
        (rng.uniform(0.8, 2.2) * octave, rng.uniform(0, math.tau), 0.6 / octave)
        for octave in (1, 2, 3)
    ]

    def ridge(x: int) -> float:
        swell = sum(
            weight * math.sin(cycles * math.tau * x / width + phase)
            for cycles, phase, weight in waves
        )
        return base - amplitude * swell

    step = max(4, width // 128)
    outline = [(x, ridge(x)) for x in range(0, width + step, step)]
    draw.polygon([(0, height), *outline, (width, height)], fill=(*colour, 255))


def _paint_banana(draw: ImageDraw.ImageDraw, size: tuple[int, int], rng: random.Random) -> None:
    width, height = size
    reach = min(width, height) * rng.uniform(0.22, 0.3)
    x, y = width * rng.uniform(0.35, 0.65), height * 0.62
    thickness = max(3, round(reach * 0.28))
    box = (x - reach, y - reach, x + reach, y + reach)
    # The lower arc of a circle, drawn thick, reads as a banana.
    draw.arc(box, 30, 150, fill=(250, 212, 60, 255), width=thickness)
    # A stem at one end and a small dark tip at the other.
    for angle, nub in ((150, thickness * 0.3), (30, thickness * 0.18)):
        tip_x = x + (reach - thickness / 2) * math.cos(math.radians(angle))
        tip_y = y + (reach - thickness / 2) * math.sin(math.radians(angle))
        draw.ellipse((tip_x - nub, tip_y - nub, tip_x + nub, tip_y + nub), (110, 75, 35, 255))
