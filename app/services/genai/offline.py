"""The offline engine: a Provider that needs no API key and no network.

``generate`` paints a landscape from the colours the prompt names and the
seed; ``edit`` applies the operations the prompt names, in the order it names
them, in English or Chinese; ``compose`` tiles, blends or moves the palette
between the inputs. The same request always gives the same bytes: every
random choice comes from a SHA-256 of the request, never from the global
generator or the clock.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps, ImageStat

from app.errors import InvalidInput
from app.services import image_codec
from app.services.genai.contracts import GenerationRequest, ProviderImage, ProviderResult

RGB = tuple[int, int, int]

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
# Edits may grow an image (resize 400 %, borders, rotation); keep outputs
# within what an upload may be, so a result can be fed back in.
MAX_OUTPUT_SIDE = image_codec.DEFAULT_MAX_SIDE


class OfflineProvider:
    name = "offline"

    def generate(
        self,
        request: GenerationRequest,
        before_send: Callable[[], None] | None = None,
        after_send: Callable[[], None] | None = None,
    ) -> ProviderResult:
        # The gate paces the offline engine too, so limits behave the same
        # with and without a key; its "request" is on the wire at once.
        if before_send is not None:
            before_send()
        if after_send is not None:
            after_send()
        if request.kind == "generate":
            picture, en, zh = _generate(request)
        elif request.kind == "edit":
            picture, en, zh = _edit(request)
        elif request.kind == "compose":
            picture, en, zh = _compose(request)
        else:
            raise InvalidInput(
                f"Unknown request kind {request.kind!r}.", f"未知的请求类型 {request.kind!r}。"
            )
        png = image_codec.encode_png(picture)
        prompt_tokens = len(request.prompt) // 4 + 1
        return ProviderResult(
            images=[ProviderImage(data=png.data, mime=png.mime)],
            texts=[_say(request, en, zh)],
            finish_reason="STOP",
            usage={
                "prompt_tokens": prompt_tokens,
                "output_tokens": 0,
                "total_tokens": prompt_tokens,
            },
            model=request.model,
        )

    def close(self) -> None:
        """Nothing to release: no client, no connection."""


# --- colours ---------------------------------------------------------------


@dataclass(frozen=True)
class NamedColour:
    en: str
    zh: str
    rgb: RGB


COLOURS: dict[str, NamedColour] = {
    colour.en: colour
    for colour in (
        NamedColour("red", "红色", (220, 50, 47)),
        NamedColour("orange", "橙色", (245, 140, 40)),
        NamedColour("yellow", "黄色", (250, 212, 60)),
        NamedColour("green", "绿色", (70, 170, 90)),
        NamedColour("cyan", "青色", (40, 190, 200)),
        NamedColour("blue", "蓝色", (50, 110, 220)),
        NamedColour("purple", "紫色", (140, 70, 190)),
        NamedColour("pink", "粉色", (240, 130, 170)),
        NamedColour("white", "白色", (250, 250, 250)),
        NamedColour("black", "黑色", (20, 20, 24)),
        NamedColour("gray", "灰色", (128, 128, 128)),
        NamedColour("brown", "棕色", (140, 90, 50)),
        NamedColour("gold", "金色", (212, 175, 55)),
    )
}
_COLOUR_SYNONYMS = {
    "grey": "gray",
    "golden": "gold",
    "violet": "purple",
    "teal": "cyan",
    "banana": "yellow",
    "粉红": "pink",
    "金黄": "gold",
    "天蓝": "blue",
    "香蕉": "yellow",
    "红": "red",
    "橙": "orange",
    "黄": "yellow",
    "绿": "green",
    "青": "cyan",
    "蓝": "blue",
    "紫": "purple",
    "粉": "pink",
    "白": "white",
    "黑": "black",
    "灰": "gray",
    "棕": "brown",
    "褐": "brown",
    "金": "gold",
}
# "Banana" colours a generated picture but is an object, not a tint, in an edit.
_OBJECT_COLOUR_WORDS = {"banana", "香蕉"}
_EN_COLOUR_WORDS = "|".join(
    sorted(
        [*COLOURS, *(word for word in _COLOUR_SYNONYMS if word.isascii())], key=len, reverse=True
    )
)
_ZH_COLOUR_WORDS = "|".join(
    sorted((word for word in _COLOUR_SYNONYMS if not word.isascii()), key=len, reverse=True)
)
_COLOUR_PATTERN = re.compile(
    rf"(?<![A-Za-z])(?:{_EN_COLOUR_WORDS})(?![A-Za-z])|(?:{_ZH_COLOUR_WORDS})色?",
    re.IGNORECASE,
)


def _colour_named(word: str) -> NamedColour:
    word = word.lower().removesuffix("色")
    return COLOURS[_COLOUR_SYNONYMS.get(word, word)]


def _mix(a: RGB, b: RGB, amount: float) -> RGB:
    """``a`` moved ``amount`` (0..1) of the way towards ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * amount),
        round(a[1] + (b[1] - a[1]) * amount),
        round(a[2] + (b[2] - a[2]) * amount),
    )


_WHITE: RGB = (255, 255, 255)
_BLACK: RGB = (0, 0, 0)


# --- generate ----------------------------------------------------------------

# Used when the prompt names no colour: (name, 名称, sky top, horizon, land).
_PALETTES: tuple[tuple[str, str, RGB, RGB, RGB], ...] = (
    ("dawn", "黎明", (70, 90, 160), (255, 190, 150), (60, 70, 110)),
    ("ocean", "海洋", (20, 60, 120), (120, 200, 230), (20, 90, 110)),
    ("meadow", "草地", (110, 170, 220), (230, 240, 210), (50, 110, 60)),
    ("dusk", "黄昏", (40, 30, 80), (240, 120, 90), (50, 35, 70)),
    ("desert", "沙漠", (90, 150, 210), (250, 220, 170), (200, 140, 80)),
    ("night", "夜晚", (10, 15, 40), (50, 60, 120), (15, 20, 35)),
)
_NIGHT_WORDS = re.compile(r"(?<![A-Za-z])(?:night|stars?|starry)(?![A-Za-z])|夜|星", re.IGNORECASE)
_BANANA_WORDS = re.compile(r"banana|香蕉", re.IGNORECASE)


def _say(request: GenerationRequest, en: str, zh: str) -> str:
    """The engine's reply in the caller's language; both when it named none
    (a script that never sent Accept-Language still reads either half)."""
    if request.language == "zh":
        return zh
    if request.language == "en":
        return en
    return f"{en} / {zh}"


def _generate(request: GenerationRequest) -> tuple[Image.Image, str, str]:
    ratio = request.aspect_ratio or "1:1"
    if ratio not in ASPECT_RATIOS:
        raise InvalidInput(
            f"Unsupported aspect ratio {ratio!r}. Use one of {', '.join(ASPECT_RATIOS)}.",
            f"不支持的宽高比 {ratio!r}，可选：{'、'.join(ASPECT_RATIOS)}。",
        )
    size_name = request.image_size or "1K"
    if size_name not in IMAGE_SIZES:
        raise InvalidInput(
            f"Unsupported image size {size_name!r}. Use one of {', '.join(IMAGE_SIZES)}.",
            f"不支持的图片尺寸 {size_name!r}，可选：{'、'.join(IMAGE_SIZES)}。",
        )
    long_side = min(IMAGE_SIZES[size_name], OFFLINE_MAX_SIDE)
    ratio_w, ratio_h = ASPECT_RATIOS[ratio]
    if ratio_w >= ratio_h:
        size = (long_side, round(long_side * ratio_h / ratio_w))
    else:
        size = (round(long_side * ratio_w / ratio_h), long_side)

    rng = random.Random(_request_digest(request))
    named = _distinct_colours(request.prompt)
    picture, palette_en, palette_zh = _paint_scene(request.prompt, named, size, rng)

    seed_en = f"seed {request.seed}" if request.seed is not None else "seed taken from the prompt"
    seed_zh = f"种子 {request.seed}" if request.seed is not None else "种子取自提示词"
    en = (
        f"Offline engine: painted a {size[0]}×{size[1]} picture ({ratio}) from the prompt; "
        f"{palette_en}; {seed_en}. No API key or network was used."
    )
    zh = (
        f"离线引擎：根据提示词绘制了 {size[0]}×{size[1]} 的图片（{ratio}）；"
        f"{palette_zh}；{seed_zh}。未使用 API 密钥或网络。"
    )
    if IMAGE_SIZES[size_name] > OFFLINE_MAX_SIDE:
        en += (
            f" {size_name} was requested; the offline engine draws at most "
            f"{OFFLINE_MAX_SIDE} px on the long side."
        )
        zh += f"请求的尺寸为 {size_name}，离线引擎的长边最多绘制 {OFFLINE_MAX_SIDE} 像素。"
    return picture, en, zh


def _request_digest(request: GenerationRequest) -> bytes:
    digest = hashlib.sha256()
    fields = (
        request.kind,
        request.prompt,
        str(request.seed),
        str(request.candidate_index),
        request.model,
        request.aspect_ratio or "",
        request.image_size or "",
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
    for match in _COLOUR_PATTERN.finditer(prompt):
        colour = _colour_named(match.group())
        if colour not in found:
            found.append(colour)
    return found


def _paint_scene(
    prompt: str, named: list[NamedColour], size: tuple[int, int], rng: random.Random
) -> tuple[Image.Image, str, str]:
    if named:
        top, horizon, land = _scene_colours([colour.rgb for colour in named])
        palette_en = "colours: " + ", ".join(colour.en for colour in named)
        palette_zh = "颜色：" + "、".join(colour.zh for colour in named)
    else:
        name_en, name_zh, top, horizon, land = rng.choice(_PALETTES)
        palette_en = f"no colour named, so the {name_en} palette"
        palette_zh = f"未指定颜色，使用“{name_zh}”配色"
    top, horizon, land = (_jitter(colour, rng) for colour in (top, horizon, land))
    width, height = size

    picture = _vertical_gradient(
        size, [(0.0, top), (0.68, horizon), (1.0, _mix(horizon, _WHITE, 0.3))]
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
        _paint_hills(draw, size, _mix(land, horizon, haze), layer, rng)
    if _BANANA_WORDS.search(prompt):
        _paint_banana(draw, size, rng)
    return picture, palette_en, palette_zh


def _scene_colours(named: list[RGB]) -> tuple[RGB, RGB, RGB]:
    """Sky top, horizon and land from the colours in the order they were named."""
    if len(named) == 1:
        (only,) = named
        return _mix(only, _BLACK, 0.3), _mix(only, _WHITE, 0.55), _mix(only, _BLACK, 0.55)
    if len(named) == 2:
        return named[0], _mix(named[1], _WHITE, 0.3), _mix(named[1], _BLACK, 0.5)
    return named[0], named[1], _mix(named[2], _BLACK, 0.3)


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
                rows.extend(_mix(start_colour, end_colour, amount * amount * (3 - 2 * amount)))
                break
    # One column, stretched sideways: far cheaper than painting every pixel.
    return Image.frombytes("RGB", (1, height), bytes(rows)).resize(size, Image.Resampling.NEAREST)


def _paint_sun(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], horizon: RGB, rng: random.Random
) -> None:
    width, height = size
    x, y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.18, 0.42) * height
    radius = rng.uniform(0.06, 0.1) * min(width, height)
    glow = _mix(horizon, (255, 245, 220), 0.6)
    for ring in range(5, 0, -1):
        reach = radius * (1 + 0.4 * ring)
        draw.ellipse((x - reach, y - reach, x + reach, y + reach), (*glow, 16 + 4 * (5 - ring)))
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), (*_mix(glow, _WHITE, 0.5), 255))


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


# --- edit ------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    image: Image.Image
    label_en: str
    label_zh: str


@dataclass(frozen=True)
class EditOperation:
    """One operation found in a prompt; ``apply`` also says what it did."""

    name: str
    apply: Callable[[Image.Image], Applied]


def _english(words: str) -> str:
    # Letters-only boundaries: \b would fail next to Chinese text ("请blur一下").
    return rf"(?<![A-Za-z])(?:{words})(?![A-Za-z])"


_NUMBER = r"\d+(?:\.\d+)?"
_IT = r"(?:\s+(?:it|this|the\s+(?:image|picture|photo)))?"


def _colour_only(
    transform: Callable[[Image.Image], Image.Image],
) -> Callable[[Image.Image], Image.Image]:
    """Run a colour transform on RGB and carry the alpha channel over untouched."""

    def apply(image: Image.Image) -> Image.Image:
        if image.mode != "RGBA":
            return transform(image.convert("RGB"))
        result = transform(image.convert("RGB"))
        result.putalpha(image.getchannel("A"))
        return result

    return apply


def _tint(colour: NamedColour) -> EditOperation:
    def apply(image: Image.Image) -> Applied:
        wash = _colour_only(
            lambda rgb: Image.blend(rgb, Image.new("RGB", rgb.size, colour.rgb), 0.4)
        )
        return Applied(wash(image), f"{colour.en} tint", f"{colour.zh}色调")

    return EditOperation("tint", apply)


def _grayscale(_: re.Match[str]) -> EditOperation:
    gray = _colour_only(lambda rgb: ImageOps.grayscale(rgb).convert("RGB"))
    return EditOperation("grayscale", lambda image: Applied(gray(image), "grayscale", "黑白"))


def _sepia(_: re.Match[str]) -> EditOperation:
    # Endpoints with red > green > blue keep that order at every grey level.
    tone = _colour_only(
        lambda rgb: ImageOps.colorize(
            ImageOps.grayscale(rgb), black=(45, 30, 15), mid=(165, 120, 80), white=(255, 240, 205)
        )
    )
    return EditOperation("sepia", lambda image: Applied(tone(image), "sepia", "复古棕褐色"))


def _invert(_: re.Match[str]) -> EditOperation:
    invert = _colour_only(ImageOps.invert)
    return EditOperation("invert", lambda image: Applied(invert(image), "invert", "反色"))


def _blur(match: re.Match[str]) -> EditOperation:
    requested = match.group("n")

    def apply(image: Image.Image) -> Applied:
        # Scaled to the picture so "blur" looks alike at 512 px and 4096 px.
        radius = float(requested) if requested else max(2.0, max(image.size) / 256)
        radius = min(radius, 100.0)
        if image.mode == "RGBA":
            # Premultiplied, so transparent pixels do not bleed dark fringes.
            blurred = image.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        else:
            blurred = image.filter(ImageFilter.GaussianBlur(radius))
        return Applied(blurred, f"blur (radius {radius:g})", f"模糊（半径 {radius:g}）")

    return EditOperation("blur", apply)


def _sharpen(_: re.Match[str]) -> EditOperation:
    sharpen = _colour_only(
        lambda rgb: rgb.filter(ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2))
    )
    return EditOperation("sharpen", lambda image: Applied(sharpen(image), "sharpen", "锐化"))


_COUNTER_CLOCKWISE = re.compile(r"left|counter|anti|ccw|逆|左", re.IGNORECASE)
_RIGHT_ANGLE_TURNS = {
    90: Image.Transpose.ROTATE_270,  # Pillow's names count counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def _rotate(match: re.Match[str]) -> EditOperation:
    degrees = float(match.group("deg")) if match.group("deg") else 90.0
    direction = match.group("dir") or ""
    if _COUNTER_CLOCKWISE.search(direction):
        degrees = -degrees
    # Clockwise, as photo apps mean by "rotate"; normalised into [0, 360).
    clockwise = degrees % 360

    def apply(image: Image.Image) -> Applied:
        if clockwise == 0:
            turned = image
        elif clockwise in _RIGHT_ANGLE_TURNS:
            turned = image.transpose(_RIGHT_ANGLE_TURNS[int(clockwise)])
        else:
            # Other angles grow the canvas; its new corners stay transparent
            # rather than inventing a colour.
            turned = image.convert("RGBA").rotate(-clockwise, Image.Resampling.BICUBIC, expand=True)
        if degrees < 0:
            shown = f"{-degrees:g}°"
            return Applied(turned, f"rotate {shown} counter-clockwise", f"逆时针旋转 {shown}")
        shown = f"{degrees:g}°"
        return Applied(turned, f"rotate {shown} clockwise", f"顺时针旋转 {shown}")

    return EditOperation("rotate", apply)


def _flip(_: re.Match[str]) -> EditOperation:
    return EditOperation(
        "flip", lambda image: Applied(ImageOps.flip(image), "flip vertically", "上下翻转")
    )


def _mirror(_: re.Match[str]) -> EditOperation:
    return EditOperation(
        "mirror",
        lambda image: Applied(
            ImageOps.mirror(image), "mirror (flip horizontally)", "镜像（左右翻转）"
        ),
    )


def _brightness(
    factor: float, en: str, zh: str, name: str
) -> Callable[[re.Match[str]], EditOperation]:
    adjust = _colour_only(lambda rgb: ImageEnhance.Brightness(rgb).enhance(factor))
    return lambda _: EditOperation(name, lambda image: Applied(adjust(image), en, zh))


def _contrast(match: re.Match[str]) -> EditOperation:
    less = bool(match.group("less"))
    factor = 0.65 if less else 1.5
    adjust = _colour_only(lambda rgb: ImageEnhance.Contrast(rgb).enhance(factor))
    en, zh = ("less contrast", "降低对比度") if less else ("more contrast", "增强对比度")
    return EditOperation("contrast", lambda image: Applied(adjust(image), en, zh))


def _pixelate(match: re.Match[str]) -> EditOperation:
    requested = match.group("n")

    def apply(image: Image.Image) -> Applied:
        block = int(requested) if requested else max(4, round(max(image.size) / 64))
        block = max(2, min(block, max(image.size)))
        # reduce() averages exact block×block cells from the top-left corner,
        # so the enlarged blocks line up with the grid of the original.
        small = image.reduce(block)
        cells = small.resize((small.width * block, small.height * block), Image.Resampling.NEAREST)
        pixelated = cells.crop((0, 0, image.width, image.height))
        return Applied(pixelated, f"pixelate ({block} px blocks)", f"像素化（{block} 像素方块）")

    return EditOperation("pixelate", apply)


def _crop_square(_: re.Match[str]) -> EditOperation:
    def apply(image: Image.Image) -> Applied:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        return Applied(square, f"crop to a {side}×{side} square", f"裁剪为 {side}×{side} 正方形")

    return EditOperation("crop", apply)


_SHRINK_WORDS = re.compile(r"shrink|down|缩小|一半|half", re.IGNORECASE)
_ENLARGE_WORDS = re.compile(r"enlarge|up|放大|倍|double", re.IGNORECASE)


def _resize(match: re.Match[str]) -> EditOperation:
    groups = match.groupdict()
    words = match.group()

    def apply(image: Image.Image) -> Applied:
        if groups.get("w") and groups.get("h"):
            size = (int(groups["w"]), int(groups["h"]))
        else:
            if groups.get("pct"):
                scale = float(groups["pct"]) / 100
            elif groups.get("factor"):
                scale = float(groups["factor"])
            elif _ENLARGE_WORDS.search(words) and not _SHRINK_WORDS.search(words):
                scale = 2.0
            else:
                scale = 0.5
            size = (round(image.width * scale), round(image.height * scale))
        size = _clamp_size(size)
        resized = image.resize(size, Image.Resampling.LANCZOS)
        return Applied(resized, f"resize to {size[0]}×{size[1]}", f"缩放至 {size[0]}×{size[1]}")

    return EditOperation("resize", apply)


def _clamp_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = max(1, size[0]), max(1, size[1])
    long_side = max(width, height)
    if long_side > MAX_OUTPUT_SIDE:
        width = max(1, round(width * MAX_OUTPUT_SIDE / long_side))
        height = max(1, round(height * MAX_OUTPUT_SIDE / long_side))
    return width, height


def _border(colour: NamedColour, width_px: int | None, weight: float) -> EditOperation:
    def apply(image: Image.Image) -> Applied:
        width = width_px if width_px else max(2, round(min(image.size) * 0.04 * weight))
        width = min(width, 512)
        fill = (*colour.rgb, 255) if image.mode == "RGBA" else colour.rgb
        framed = ImageOps.expand(image, border=width, fill=fill)
        return Applied(
            framed, f"{colour.en} border ({width} px)", f"{colour.zh}边框（{width} 像素）"
        )

    return EditOperation("border", apply)


@dataclass(frozen=True)
class _Rule:
    patterns: tuple[re.Pattern[str], ...]
    build: Callable[[re.Match[str]], EditOperation]


def _rule(build: Callable[[re.Match[str]], EditOperation], *patterns: str) -> _Rule:
    return _Rule(tuple(re.compile(pattern, re.IGNORECASE) for pattern in patterns), build)


# Earlier rules win where matches overlap: "flip horizontally" is a mirror,
# not a flip; "black and white" is grayscale, not two tints.
_RULES: tuple[_Rule, ...] = (
    _rule(
        _grayscale,
        _english(
            r"gr[ae]y\s*-?\s*scale|black\s*(?:and|&|-)\s*white|b\s*&\s*w|monochrome|desaturated?"
        ),
        r"黑白|灰度|去色",
    ),
    _rule(
        _sepia,
        _english(r"sepia|vintage|retro|old[\s-]+(?:photo|photograph|film)"),
        r"复古|怀旧|老照片|做旧|泛黄",
    ),
    _rule(
        _invert,
        _english(r"(?:invert(?:ed)?|inverse|negative)(?:\s+(?:the\s+)?colou?rs?)?"),
        r"反色|反相|负片|颜色反转",
    ),
    _rule(
        _mirror,
        _english(
            r"mirror(?:ed)?|flip(?:ped)?"
            + _IT
            + r"\s+(?:horizontally|horizontal|sideways|left[\s-]+(?:to|and)[\s-]+right)"
            r"|horizontal(?:ly)?\s+flip"
        ),
        r"镜像|左右翻转|水平翻转",
    ),
    _rule(
        _flip,
        _english(
            r"flip(?:ped)?"
            + _IT
            + r"(?:\s+(?:vertically|vertical|upside[\s-]+down|top[\s-]+to[\s-]+bottom))?"
            r"|upside[\s-]+down|vertical(?:ly)?\s+flip"
        ),
        r"上下翻转|垂直翻转|上下颠倒|倒过来|颠倒|翻转",
    ),
    _rule(
        _rotate,
        _english(
            r"rotat(?:e|ed|ion)"
            + _IT
            + rf"(?:\s+by)?(?:\s*(?P<deg>-?{_NUMBER})\s*(?:°|degrees?|deg)?)?"
            r"(?:\s*(?:to\s+the\s+)?(?P<dir>left|right|clockwise|counter[\s-]?clockwise|anti[\s-]?clockwise|ccw|cw))?"
        ),
        rf"(?P<dir>逆时针|顺时针|向左|向右)?\s*旋转\s*(?P<deg>-?{_NUMBER})?\s*(?:度|°)?",
        rf"(?P<dir>向?[左右])转\s*(?:(?P<deg>{_NUMBER})\s*(?:度|°))?",
    ),
    _rule(
        _blur,
        _english(
            r"(?:blur(?:red|ry)?|soften|defocus(?:ed)?)"
            + r"(?:\s+(?:it|this|the\s+(?:image|picture|photo|background)))?"
            + rf"(?:\s+(?:by|with\s+radius|radius))?(?:\s*(?P<n>{_NUMBER})(?:\s*px)?)?"
        ),
        rf"(?:模糊|虚化)(?:处理|一下|效果)?\s*(?P<n>{_NUMBER})?",
    ),
    _rule(
        _sharpen,
        _english(r"sharpen(?:ed)?|sharper|crisper|deblur|unblur"),
        r"锐化|更清晰|变清晰|清晰一点|清晰化",
    ),
    _rule(
        _brightness(1.3, "brighter", "变亮", "brighter"),
        _english(
            r"bright(?:en|er)|lighten|lighter|more\s+bright|(?:increase|raise)\s+(?:the\s+)?brightness"
        ),
        r"更亮|变亮|提亮|调亮|亮一点|亮一些|加亮|增加亮度|提高亮度",
    ),
    _rule(
        _brightness(0.7, "darker", "变暗", "darker"),
        _english(r"dark(?:en|er)|dimmer|(?:decrease|reduce|lower)\s+(?:the\s+)?brightness"),
        r"更暗|变暗|调暗|暗一点|暗一些|压暗|降低亮度|减少亮度",
    ),
    _rule(
        _contrast,
        _english(
            r"(?:(?P<less>less|lower|low|reduce[ds]?|decrease[ds]?|soft(?:er)?)\s+(?:the\s+)?)?contrast"
        ),
        r"(?P<less>降低|减少|减小|减弱)?\s*对比度?",
    ),
    _rule(
        _pixelate,
        _english(
            r"(?:pixel(?:ate|ated|ation|i[sz]e|i[sz]ed)|mosaic)"
            + _IT
            + r"(?:\s+(?:with\s+)?(?:blocks?\s+(?:of\s+)?|block\s+size\s+)?(?P<n>\d+)(?:\s*px)?)?"
        ),
        r"(?:像素化|马赛克|打码)\s*(?P<n>\d+)?",
    ),
    _rule(
        _crop_square,
        _english(
            r"crop(?:ped)?"
            + _IT
            + r"(?:\s+(?:(?:in)?to\s+|as\s+)?(?:a\s+)?square)?|square\s+crop|square"
        ),
        r"(?:裁剪|裁切)(?:成|为)?(?:正方形)?|正方形",
    ),
    _rule(
        _resize,
        _english(
            r"(?:resize|rescale|scale|shrink|enlarge|downscale|upscale)"
            + _IT
            + r"(?:\s+(?:down|up))?(?:\s+(?:to|by))?"
            + rf"(?:\s*(?:(?P<pct>{_NUMBER})\s*[%％]|(?P<w>\d+)\s*[x×*]\s*(?P<h>\d+)|(?P<factor>{_NUMBER})\s*[x×]))?"
            + r"|(?:half|double)\s+(?:the\s+)?size"
        ),
        rf"(?:缩放|缩小|放大|调整大小|调整尺寸|改变大小)\s*(?:到|至|为|成)?\s*"
        rf"(?:(?P<pct>{_NUMBER})\s*[%％]|(?P<w>\d+)\s*[x×*]\s*(?P<h>\d+)|一半|两倍|一倍|2\s*倍)?",
    ),
)
_BORDER_PATTERN = re.compile(
    _english(r"border|frame[ds]?") + r"|边框|相框|画框|加框|描边", re.IGNORECASE
)
_CLAUSE_BREAK = re.compile(
    r"[,;.!?\n，。；！？、]|" + _english(r"and|then|also|plus") + r"|然后|接着|之后|并且|再|和|并",
    re.IGNORECASE,
)
_BORDER_WIDTH = re.compile(r"(\d+)\s*(?:px|pixels?|像素)", re.IGNORECASE)
_THICK = re.compile(_english(r"thick|wide|heavy") + r"|粗|宽", re.IGNORECASE)
_THIN = re.compile(_english(r"thin|narrow|fine") + r"|细|窄", re.IGNORECASE)

# The reply joins English and Chinese with " / ", so these lists avoid it.
_UNDERSTOOD_EN = (
    'a colour tint ("make it purple"), grayscale (black and white), sepia (vintage), invert, '
    "blur [radius], sharpen, rotate [degrees, left or right], flip (upside down), "
    "mirror (flip horizontally), brighter, darker, more or less contrast, pixelate [block size], "
    "crop square, resize N% or WxH, border [colour] [N px]"
)
_UNDERSTOOD_ZH = (
    "颜色色调（如“紫色”）、黑白（灰度）、复古（怀旧）、反色、模糊 [半径]、锐化、旋转 [角度、向左或向右]、"
    "上下翻转、镜像（左右翻转）、变亮、变暗、增强或降低对比度、像素化（马赛克）[方块大小]、"
    "裁剪为正方形、缩放 N% 或 宽x高、边框 [颜色] [N 像素]"
)


def parse_edit_operations(prompt: str) -> list[EditOperation]:
    """The operations a prompt names, in the order it names them."""
    claimed: list[tuple[int, int]] = []
    found: list[tuple[int, EditOperation]] = []
    for rule in _RULES:
        for pattern in rule.patterns:
            for match in pattern.finditer(prompt):
                if match.end() > match.start() and not _overlaps(match.span(), claimed):
                    claimed.append(match.span())
                    found.append((match.start(), rule.build(match)))

    borders = [
        match for match in _BORDER_PATTERN.finditer(prompt) if not _overlaps(match.span(), claimed)
    ]
    claimed.extend(match.span() for match in borders)
    for match in borders:
        found.append((match.start(), _border_from_clause(prompt, match, claimed)))

    for match in _COLOUR_PATTERN.finditer(prompt):
        if match.group().lower().removesuffix("色") in _OBJECT_COLOUR_WORDS:
            continue
        if not _overlaps(match.span(), claimed):
            found.append((match.start(), _tint(_colour_named(match.group()))))

    found.sort(key=lambda item: item[0])
    return [operation for _, operation in found]


def _overlaps(span: tuple[int, int], claimed: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in claimed)


def _border_from_clause(
    prompt: str, keyword: re.Match[str], claimed: list[tuple[int, int]]
) -> EditOperation:
    """A border takes its colour and width from its own clause ("a thick red
    border", "边框用蓝色"), and claims that colour so it is not also a tint."""
    start, end = _clause_around(prompt, keyword, claimed)
    colour_match = min(
        (
            match
            for match in _COLOUR_PATTERN.finditer(prompt, start, end)
            if not _overlaps(match.span(), claimed)
            and match.group().lower().removesuffix("色") not in _OBJECT_COLOUR_WORDS
        ),
        key=lambda match: abs(match.start() - keyword.start()),
        default=None,
    )
    colour = COLOURS["white"]
    if colour_match:
        claimed.append(colour_match.span())
        colour = _colour_named(colour_match.group())
    clause = prompt[start:end]
    width_match = _BORDER_WIDTH.search(clause)
    weight = 2.0 if _THICK.search(clause) else 0.5 if _THIN.search(clause) else 1.0
    return _border(colour, int(width_match.group(1)) if width_match else None, weight)


def _clause_around(
    prompt: str, keyword: re.Match[str], claimed: list[tuple[int, int]]
) -> tuple[int, int]:
    start, end = 0, len(prompt)
    for separator in _CLAUSE_BREAK.finditer(prompt):
        if _overlaps(separator.span(), claimed):
            continue  # inside another operation's words, e.g. "black and white"
        if separator.end() <= keyword.start():
            start = separator.end()
        elif separator.start() >= keyword.end():
            end = separator.start()
            break
    return start, end


def _edit(request: GenerationRequest) -> tuple[Image.Image, str, str]:
    if not request.images:
        raise InvalidInput("Editing needs an image.", "编辑需要上传一张图片。")
    image = image_codec.decode_image(request.images[0])
    operations = parse_edit_operations(request.prompt)
    if not operations:
        en = (
            "The offline engine found no edit it understands in the prompt, so the image is "
            f"returned unchanged. It understands: {_UNDERSTOOD_EN}."
        )
        zh = f"离线引擎未在提示词中识别到可执行的编辑，图片原样返回。支持：{_UNDERSTOOD_ZH}。"
        return image, en, zh

    labels_en, labels_zh = [], []
    for operation in operations:
        applied = operation.apply(image)
        image = applied.image
        labels_en.append(applied.label_en)
        labels_zh.append(applied.label_zh)
    image = image_codec.fit_within(image, MAX_OUTPUT_SIDE)
    en = "Applied: " + ", ".join(labels_en)
    zh = "已应用：" + "，".join(labels_zh)
    if len(request.images) > 1:
        en += f" (to the first of {len(request.images)} images)"
        zh += f"（仅编辑了 {len(request.images)} 张图片中的第一张）"
    return _variant(request.candidate_index, image, en, zh)


# The first candidate of an edit or a compose is exactly what the prompt
# asked; the others are that plus one named, gentle variation each, the way
# a model's candidates differ, so asking for several is never N copies.
_VARIANTS: tuple[tuple[str, str, Callable[[Image.Image], Image.Image]], ...] = (
    # Tone-neutral first: a black-and-white edit stays black and white in
    # the usual 2–4 candidates; the colour shifts come last.
    ("a little brighter", "略亮", lambda rgb: ImageEnhance.Brightness(rgb).enhance(1.1)),
    ("a little more contrast", "对比度略高", lambda rgb: ImageEnhance.Contrast(rgb).enhance(1.15)),
    ("a little softer", "略柔和", lambda rgb: rgb.filter(ImageFilter.GaussianBlur(1))),
    ("a little warmer", "略暖", lambda rgb: _shift_balance(rgb, (1.06, 1.0, 0.92))),
    ("a little cooler", "略冷", lambda rgb: _shift_balance(rgb, (0.92, 1.0, 1.08))),
)


def _shift_balance(rgb: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    channels = [
        channel.point(lambda value, gain=gain: min(255, round(value * gain)))
        for channel, gain in zip(rgb.split(), gains, strict=True)
    ]
    return Image.merge("RGB", channels)


def _variant(index: int, picture: Image.Image, en: str, zh: str) -> tuple[Image.Image, str, str]:
    if not index:
        return picture, en, zh
    how_en, how_zh, transform = _VARIANTS[(index - 1) % len(_VARIANTS)]
    number = index + 1
    return (
        _colour_only(transform)(picture),
        f"{en}. Variant {number}: {how_en}.",
        f"{zh}。变体 {number}：{how_zh}。",
    )


# --- compose ---------------------------------------------------------------

# Most specific intent first: "blend in the style of" asks for a style.
_STYLE_WORDS = re.compile(
    _english(r"style|palette|colou?r\s+scheme|look") + r"|风格|色调|配色|画风", re.IGNORECASE
)
_BLEND_WORDS = re.compile(
    _english(r"blend|mix|merge|fuse|overlay") + r"|混合|融合|叠加", re.IGNORECASE
)
_ROW_WORDS = re.compile(
    _english(r"side\s+by\s+side|horizontal(?:ly)?|in\s+a\s+row") + r"|并排|横向|左右", re.IGNORECASE
)
_COLUMN_WORDS = re.compile(
    _english(r"stack(?:ed)?|vertical(?:ly)?|on\s+top\s+of\s+each\s+other|in\s+a\s+column")
    + r"|竖排|纵向|上下",
    re.IGNORECASE,
)
_TILE_WORDS = re.compile(
    _english(r"tile[ds]?|grid|collage|side\s+by\s+side|stack(?:ed)?") + r"|拼接|拼图|并排|网格",
    re.IGNORECASE,
)


def _compose(request: GenerationRequest) -> tuple[Image.Image, str, str]:
    if len(request.images) < 2:
        raise InvalidInput("Composing needs at least two images.", "合成至少需要两张图片。")
    inputs = [image_codec.decode_image(data) for data in request.images]
    prompt = request.prompt
    count = len(inputs)
    if _STYLE_WORDS.search(prompt):
        picture = _transfer_palette(inputs[0], inputs[-1])
        en = f"Composed: palette of image {count} transferred onto image 1"
        zh = f"已合成：将第 {count} 张图片的色调迁移到第 1 张"
    elif _BLEND_WORDS.search(prompt):
        picture = _blend(inputs)
        en = f"Composed: blend of {count} images, equal weights"
        zh = f"已合成：{count} 张图片等比例混合"
    else:
        columns = (
            count
            if _ROW_WORDS.search(prompt)
            else 1
            if _COLUMN_WORDS.search(prompt)
            else math.ceil(math.sqrt(count))
        )
        picture = _tile(inputs, columns)
        rows = math.ceil(count / columns)
        en = f"Composed: tile of {count} images ({columns}×{rows} grid)"
        zh = f"已合成：拼接 {count} 张图片（{columns}×{rows} 网格）"
        if (
            not _TILE_WORDS.search(prompt)
            and not _ROW_WORDS.search(prompt)
            and not _COLUMN_WORDS.search(prompt)
        ):
            en += "; no layout named, so tiled by default"
            zh += "；未指定方式，默认拼接"
    return _variant(
        request.candidate_index, image_codec.fit_within(picture, MAX_OUTPUT_SIDE), en, zh
    )


def _common_mode(inputs: list[Image.Image]) -> str:
    return "RGBA" if any(image.mode == "RGBA" for image in inputs) else "RGB"


def _tile(inputs: list[Image.Image], columns: int) -> Image.Image:
    """Every image fitted, centred, into a cell the size of the first."""
    rows = math.ceil(len(inputs) / columns)
    cell_w, cell_h = inputs[0].size
    # Shrink the cells rather than the sheet afterwards: one resample each.
    scale = min(1.0, MAX_OUTPUT_SIDE / max(cell_w * columns, cell_h * rows))
    cell_w, cell_h = max(1, int(cell_w * scale)), max(1, int(cell_h * scale))
    mode = _common_mode(inputs)
    background = (0, 0, 0, 0) if mode == "RGBA" else _WHITE
    sheet = Image.new(mode, (cell_w * columns, cell_h * rows), background)
    for index, image in enumerate(inputs):
        fitted = ImageOps.contain(image.convert(mode), (cell_w, cell_h), Image.Resampling.LANCZOS)
        column, row = index % columns, index // columns
        sheet.paste(
            fitted,
            (
                column * cell_w + (cell_w - fitted.width) // 2,
                row * cell_h + (cell_h - fitted.height) // 2,
            ),
        )
    return sheet


def _blend(inputs: list[Image.Image]) -> Image.Image:
    mode = _common_mode(inputs)
    result = inputs[0].convert(mode)
    for count, image in enumerate(inputs[1:], start=2):
        layer = image.convert(mode).resize(result.size, Image.Resampling.LANCZOS)
        # A running average: the k-th image weighs 1/k, so all end up equal.
        result = Image.blend(result, layer, 1 / count)
    return result


def _transfer_palette(target: Image.Image, source: Image.Image) -> Image.Image:
    """Give ``target`` the per-channel mean and spread of ``source`` (Reinhard
    colour transfer, in RGB: Pillow has no Lab conversion without ImageCms)."""
    target_stats = ImageStat.Stat(target.convert("RGB"))
    source_stats = ImageStat.Stat(source.convert("RGB"))
    channels = []
    for index, channel in enumerate(target.convert("RGB").split()):
        spread = (
            source_stats.stddev[index] / target_stats.stddev[index]
            if target_stats.stddev[index]
            else 1.0
        )
        # A flat target would turn its faint noise into glare; cap the gain.
        spread = min(spread, 4.0)
        shift = source_stats.mean[index] - target_stats.mean[index] * spread
        channels.append(
            channel.point([min(255, max(0, round(value * spread + shift))) for value in range(256)])
        )
    result = Image.merge("RGB", channels)
    if target.mode == "RGBA":
        result.putalpha(target.getchannel("A"))
    return result
