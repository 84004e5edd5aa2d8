"""Composing several pictures: tile them, blend them, or move the last one's
palette onto the first, as the prompt asks (tiling when it names none)."""

from __future__ import annotations

import math
import re

from PIL import Image, ImageOps, ImageStat

from app.errors import InvalidInput
from app.i18n import LazyMessage, _l
from app.services import image_codec
from app.services.genai.contracts import GenerationRequest
from app.services.genai.offline.colours import WHITE
from app.services.genai.offline.variants import variant

# Keep outputs within what an upload may be, so a result can be fed back in.
MAX_OUTPUT_SIDE = image_codec.DEFAULT_MAX_SIDE


def _english(words: str) -> str:
    # Letters-only boundaries: \b would fail next to Chinese text ("请blend一下").
    return rf"(?<![A-Za-z])(?:{words})(?![A-Za-z])"


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


def compose(request: GenerationRequest) -> tuple[Image.Image, LazyMessage]:
    if len(request.images) < 2:
        raise InvalidInput(_l("Composing needs at least two images."))
    inputs = [image_codec.decode_image(data) for data in request.images]
    prompt = request.prompt
    count = len(inputs)
    if _STYLE_WORDS.search(prompt):
        picture = _transfer_palette(inputs[0], inputs[-1])
        reply = _l("Composed: palette of image %(count)s transferred onto image 1", count=count)
    elif _BLEND_WORDS.search(prompt):
        picture = _blend(inputs)
        reply = _l("Composed: blend of %(count)s images, equal weights", count=count)
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
        reply = _l(
            "Composed: tile of %(count)s images (%(columns)s×%(rows)s grid)",
            count=count,
            columns=columns,
            rows=rows,
        )
        if (
            not _TILE_WORDS.search(prompt)
            and not _ROW_WORDS.search(prompt)
            and not _COLUMN_WORDS.search(prompt)
        ):
            reply = _l("%(reply)s; no layout named, so tiled by default", reply=reply)
    return variant(request.candidate_index, image_codec.fit_within(picture, MAX_OUTPUT_SIDE), reply)


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
    background = (0, 0, 0, 0) if mode == "RGBA" else WHITE
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
