"""Editing: the steps a prompt names, applied in order, within bounds.

At most ``MAX_EDIT_OPERATIONS`` steps run (the first ones named; the reply
says how many more were ignored). No step makes a picture with a side over
``MAX_OUTPUT_SIDE`` or more pixels than ``MAX_EDIT_PIXELS`` (or than the
input had, if that was more): a step's time and memory grow with its pixels,
so this bounds both, whatever the prompt. The clock is read between steps,
so an edit that runs past ``EDIT_TIME_BUDGET_S`` stops with a timeout instead
of holding its gate slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PIL import Image

from app.errors import InvalidInput, UpstreamError
from app.i18n import LazyList, LazyMessage, _l
from app.services import image_codec
from app.services.genai.contracts import GenerationRequest
from app.services.genai.offline.edit_ops import PixelBudget
from app.services.genai.offline.edit_parser import read_edit
from app.services.genai.offline.variants import variant

# Keep outputs within what an upload may be, so a result can be fed back in.
MAX_OUTPUT_SIDE = image_codec.DEFAULT_MAX_SIDE
MAX_EDIT_OPERATIONS = 16
# An edit may grow a picture to 4 megapixels (2048 × 2048, 16 MB as RGBA), as
# the engine's own pictures stop at 1K: a stand-in for the model, not a
# renderer. A larger upload keeps its size but cannot grow.
MAX_EDIT_PIXELS = 2048 * 2048
# Sixteen of the costliest steps at the largest size fit well inside this;
# only a loaded machine or a runaway gets near it.
EDIT_TIME_BUDGET_S = 30.0

# The reply joins English and Chinese with " / ", so this list avoids it. It
# says "N percent": a "%" in a message would read as a placeholder.
_UNDERSTOOD = _l(
    'a colour tint ("make it purple"), grayscale (black and white), sepia (vintage), invert, '
    "blur [radius], sharpen, rotate [degrees, left or right], flip (upside down), "
    "mirror (flip horizontally), brighter, darker, more or less contrast, pixelate [block size], "
    "crop square, resize N percent or WxH, border [colour] [N px]"
)


def edit(
    request: GenerationRequest,
    *,
    time_budget_s: float = EDIT_TIME_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Image.Image, LazyMessage]:
    """The edited first image, and what was done."""
    if not request.images:
        raise InvalidInput(_l("Editing needs an image."))
    stop_at = clock() + time_budget_s
    image = image_codec.decode_image(request.images[0])
    read = read_edit(request.prompt, limit=MAX_EDIT_OPERATIONS)
    if not read.operations:
        return image, _l(
            "The offline engine found no edit it understands in the prompt, so the image is "
            "returned unchanged. It understands: %(understood)s.",
            understood=_UNDERSTOOD,
        )

    image = image_codec.fit_within(image, MAX_OUTPUT_SIDE)
    budget = PixelBudget(MAX_OUTPUT_SIDE, max(MAX_EDIT_PIXELS, image.width * image.height))
    labels = []
    for done, operation in enumerate(read.operations):
        if clock() > stop_at:
            raise _out_of_time(done, len(read.operations), time_budget_s)
        applied = operation.apply(image, budget)
        image = applied.image
        if not budget.allows(image.size):  # each step clamps itself; this guards the bound
            image = image.resize(budget.fit(image.size), Image.Resampling.LANCZOS)
        labels.append(applied.label)
    reply = _l("Applied: %(steps)s", steps=LazyList(labels))
    if ignored := read.named - len(read.operations):
        reply = _l(
            "%(reply)s (%(ignored)s more ignored: an edit runs at most %(limit)s operations, "
            "the first ones named)",
            reply=reply,
            ignored=ignored,
            limit=MAX_EDIT_OPERATIONS,
        )
    if len(request.images) > 1:
        reply = _l(
            "%(reply)s (to the first of %(count)s images)", reply=reply, count=len(request.images)
        )
    return variant(request.candidate_index, image, reply)


def _out_of_time(done: int, total: int, budget_s: float) -> UpstreamError:
    return UpstreamError(
        _l(
            "The offline engine stopped after %(done)s of %(total)s edit steps: an edit may take "
            "at most %(budget_s)g s. Ask for fewer steps or a smaller picture.",
            done=done,
            total=total,
            budget_s=budget_s,
        ),
        code="upstream_timeout",
        status=504,
    )
