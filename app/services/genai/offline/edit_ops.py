"""The edit steps of the offline engine, one small value class each.

A step holds only what the prompt settled (a colour, an angle, a width), so
two parses of one prompt compare equal. ``apply`` does the step within a
``PixelBudget``: a step that would grow the picture past the budget is
clamped before it allocates anything (resize and border aim smaller, a
rotation shrinks its input first), never cut down afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from app.i18n import LazyMessage, _l
from app.services.genai.offline.colours import NamedColour

Size = tuple[int, int]

MAX_BORDER_PX = 512
MAX_BLUR_RADIUS = 100.0


@dataclass(frozen=True)
class PixelBudget:
    """The largest picture an edit may make: no side over ``max_side``, no
    more than ``max_pixels`` in all."""

    max_side: int
    max_pixels: int

    def allows(self, size: tuple[float, float]) -> bool:
        return max(size) <= self.max_side and size[0] * size[1] <= self.max_pixels

    def scale_for(self, size: tuple[float, float]) -> float:
        """The scale (at most 1) that brings ``size`` within the budget."""
        width, height = max(1.0, size[0]), max(1.0, size[1])
        return min(
            1.0, self.max_side / max(width, height), math.sqrt(self.max_pixels / (width * height))
        )

    def fit(self, size: Size) -> Size:
        """``size`` scaled down, keeping its shape, until it fits."""
        width, height = max(1, size[0]), max(1, size[1])
        if self.allows((width, height)):
            return width, height
        scale = self.scale_for((width, height))
        fitted = (max(1, round(width * scale)), max(1, round(height * scale)))
        if self.allows(fitted):
            return fitted
        return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


@dataclass(frozen=True)
class Applied:
    image: Image.Image
    label: LazyMessage  # what was done, for the reply


class EditOperation:
    """One step a prompt names. Subclasses are frozen dataclasses."""

    name: ClassVar[str]

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        raise NotImplementedError


def colour_only(
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


def _shrink_until(
    image: Image.Image, budget: PixelBudget, grown: Callable[[Size], tuple[float, float]]
) -> tuple[Image.Image, bool]:
    """``image``, shrunk first if a step that makes ``grown(size)`` of it
    would pass the budget; and whether it was. The size is worked out, never
    allocated, until it fits."""
    if budget.allows(grown(image.size)):
        return image, False
    scale = budget.scale_for(grown(image.size))
    while True:
        size = (max(1, math.floor(image.width * scale)), max(1, math.floor(image.height * scale)))
        if budget.allows(grown(size)) or size == (1, 1):
            break
        scale *= 0.99  # the step's own rounding (a border's fixed width) needs a little more
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), True


def _turned_size(size: Size, clockwise: float) -> tuple[int, int]:
    """At least the canvas ``Image.rotate(expand=True)`` makes: the turned
    corners' span, rounded outwards (a pixel), with a pixel to spare for
    floating point."""
    radians = math.radians(clockwise)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    width, height = size
    return (
        math.ceil(width * cos + height * sin) + 2,
        math.ceil(width * sin + height * cos) + 2,
    )


def _clamped(label: LazyMessage, budget: PixelBudget) -> LazyMessage:
    return _l(
        "%(step)s (picture scaled down to stay within %(max_side)s px a side and "
        "%(megapixels)s megapixels)",
        step=label,
        max_side=budget.max_side,
        megapixels=f"{budget.max_pixels / 1_000_000:.3g}",
    )


@dataclass(frozen=True)
class Tint(EditOperation):
    colour: NamedColour
    name: ClassVar[str] = "tint"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        rgb = self.colour.rgb
        wash = colour_only(lambda im: Image.blend(im, Image.new("RGB", im.size, rgb), 0.4))
        return Applied(wash(image), _l("%(colour)s tint", colour=self.colour.label))


_GRAY = colour_only(lambda rgb: ImageOps.grayscale(rgb).convert("RGB"))
# Endpoints with red > green > blue keep that order at every grey level.
_SEPIA = colour_only(
    lambda rgb: ImageOps.colorize(
        ImageOps.grayscale(rgb), black=(45, 30, 15), mid=(165, 120, 80), white=(255, 240, 205)
    )
)
_INVERT = colour_only(ImageOps.invert)
_SHARPEN = colour_only(
    lambda rgb: rgb.filter(ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2))
)


@dataclass(frozen=True)
class Grayscale(EditOperation):
    name: ClassVar[str] = "grayscale"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        return Applied(_GRAY(image), _l("grayscale"))


@dataclass(frozen=True)
class Sepia(EditOperation):
    name: ClassVar[str] = "sepia"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        return Applied(_SEPIA(image), _l("sepia"))


@dataclass(frozen=True)
class Invert(EditOperation):
    name: ClassVar[str] = "invert"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        return Applied(_INVERT(image), _l("invert"))


@dataclass(frozen=True)
class Blur(EditOperation):
    radius: float | None = None  # None: scaled to the picture
    name: ClassVar[str] = "blur"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        # Scaled to the picture so "blur" looks alike at 512 px and 4096 px.
        radius = self.radius if self.radius else max(2.0, max(image.size) / 256)
        radius = min(radius, MAX_BLUR_RADIUS)
        if image.mode == "RGBA":
            # Premultiplied, so transparent pixels do not bleed dark fringes.
            blurred = image.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        else:
            blurred = image.filter(ImageFilter.GaussianBlur(radius))
        return Applied(blurred, _l("blur (radius %(radius)g)", radius=radius))


@dataclass(frozen=True)
class Sharpen(EditOperation):
    name: ClassVar[str] = "sharpen"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        return Applied(_SHARPEN(image), _l("sharpen"))


_RIGHT_ANGLE_TURNS = {
    90: Image.Transpose.ROTATE_270,  # Pillow's names count counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Rotate(EditOperation):
    degrees: float  # clockwise, as photo apps mean by "rotate"; negative turns left
    name: ClassVar[str] = "rotate"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        clockwise = self.degrees % 360
        clamped = False
        if clockwise == 0:
            turned = image
        elif clockwise in _RIGHT_ANGLE_TURNS:
            turned = image.transpose(_RIGHT_ANGLE_TURNS[int(clockwise)])
        else:
            image, clamped = _shrink_until(
                image, budget, lambda size: _turned_size(size, clockwise)
            )
            # Other angles grow the canvas; its new corners stay transparent
            # rather than inventing a colour.
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            turned = rgba.rotate(-clockwise, Image.Resampling.BICUBIC, expand=True)
        if self.degrees < 0:
            label = _l("rotate %(angle)s counter-clockwise", angle=f"{-self.degrees:g}°")
        else:
            label = _l("rotate %(angle)s clockwise", angle=f"{self.degrees:g}°")
        return Applied(turned, _clamped(label, budget) if clamped else label)


@dataclass(frozen=True)
class Flip(EditOperation):
    name: ClassVar[str] = "flip"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        return Applied(ImageOps.flip(image), _l("flip vertically"))


@dataclass(frozen=True)
class Mirror(EditOperation):
    name: ClassVar[str] = "mirror"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        return Applied(ImageOps.mirror(image), _l("mirror (flip horizontally)"))


@dataclass(frozen=True)
class Brightness(EditOperation):
    brighter: bool
    name: ClassVar[str] = "brightness"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        factor = 1.3 if self.brighter else 0.7
        adjusted = colour_only(lambda rgb: ImageEnhance.Brightness(rgb).enhance(factor))(image)
        return Applied(adjusted, _l("brighter") if self.brighter else _l("darker"))


@dataclass(frozen=True)
class Contrast(EditOperation):
    less: bool
    name: ClassVar[str] = "contrast"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        factor = 0.65 if self.less else 1.5
        adjusted = colour_only(lambda rgb: ImageEnhance.Contrast(rgb).enhance(factor))(image)
        return Applied(adjusted, _l("less contrast") if self.less else _l("more contrast"))


@dataclass(frozen=True)
class Pixelate(EditOperation):
    block: int | None = None  # None: scaled to the picture
    name: ClassVar[str] = "pixelate"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        block = self.block if self.block else max(4, round(max(image.size) / 64))
        block = max(2, min(block, max(image.size)))
        # reduce() averages exact block×block cells from the top-left corner,
        # so the enlarged blocks line up with the grid of the original.
        small = image.reduce(block)
        # Enlarged straight to the picture's size: the last row and column of
        # blocks are cut, and no larger canvas is ever allocated.
        pixelated = small.resize(
            image.size,
            Image.Resampling.NEAREST,
            box=(0, 0, image.width / block, image.height / block),
        )
        return Applied(pixelated, _l("pixelate (%(block)s px blocks)", block=block))


@dataclass(frozen=True)
class CropSquare(EditOperation):
    name: ClassVar[str] = "crop"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        return Applied(square, _l("crop to a %(side)s×%(side)s square", side=side))


@dataclass(frozen=True)
class Resize(EditOperation):
    """To an exact ``size``, or by ``scale``; the budget caps either."""

    size: Size | None = None
    scale: float = 1.0
    name: ClassVar[str] = "resize"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        wanted = self.size or (round(image.width * self.scale), round(image.height * self.scale))
        size = budget.fit(wanted)
        resized = image.resize(size, Image.Resampling.LANCZOS)
        return Applied(resized, _l("resize to %(width)s×%(height)s", width=size[0], height=size[1]))


@dataclass(frozen=True)
class Border(EditOperation):
    colour: NamedColour
    width: int | None = None  # None: scaled to the picture, times ``weight``
    weight: float = 1.0
    name: ClassVar[str] = "border"

    def apply(self, image: Image.Image, budget: PixelBudget) -> Applied:
        width = self.width if self.width else max(2, round(min(image.size) * 0.04 * self.weight))
        # Even around a single pixel, the frame must fit the budget.
        widest = min(budget.max_side, math.isqrt(budget.max_pixels)) - 1
        width = min(width, MAX_BORDER_PX, widest // 2)
        image, clamped = _shrink_until(
            image, budget, lambda size: (size[0] + 2 * width, size[1] + 2 * width)
        )
        fill = (*self.colour.rgb, 255) if image.mode == "RGBA" else self.colour.rgb
        framed = ImageOps.expand(image, border=width, fill=fill)
        label = _l("%(colour)s border (%(width)s px)", colour=self.colour.label, width=width)
        return Applied(framed, _clamped(label, budget) if clamped else label)
