"""Candidates after the first of an edit or a compose.

The first candidate is exactly what the prompt asked; the others are that
plus one named, gentle variation each, the way a model's candidates differ,
so asking for several is never N copies.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageFilter

from app.i18n import LazyMessage, _l
from app.services.genai.offline.edit_ops import colour_only

_VARIANTS: tuple[tuple[LazyMessage, Callable[[Image.Image], Image.Image]], ...] = (
    # Tone-neutral first: a black-and-white edit stays black and white in
    # the usual 2–4 candidates; the colour shifts come last.
    (_l("a little brighter"), lambda rgb: ImageEnhance.Brightness(rgb).enhance(1.1)),
    (_l("a little more contrast"), lambda rgb: ImageEnhance.Contrast(rgb).enhance(1.15)),
    (_l("a little softer"), lambda rgb: rgb.filter(ImageFilter.GaussianBlur(1))),
    (_l("a little warmer"), lambda rgb: _shift_balance(rgb, (1.06, 1.0, 0.92))),
    (_l("a little cooler"), lambda rgb: _shift_balance(rgb, (0.92, 1.0, 1.08))),
)


def _shift_balance(rgb: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    channels = [
        channel.point(lambda value, gain=gain: min(255, round(value * gain)))
        for channel, gain in zip(rgb.split(), gains, strict=True)
    ]
    return Image.merge("RGB", channels)


def variant(
    index: int, picture: Image.Image, reply: LazyMessage
) -> tuple[Image.Image, LazyMessage]:
    """Candidate ``index`` (0-based) of ``picture``, with its reply."""
    if not index:
        return picture, reply
    how, transform = _VARIANTS[(index - 1) % len(_VARIANTS)]
    return (
        colour_only(transform)(picture),
        _l("%(reply)s. Variant %(number)s: %(how)s.", reply=reply, number=index + 1, how=how),
    )
