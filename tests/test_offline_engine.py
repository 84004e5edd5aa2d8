"""The offline engine (app/services/genai/offline/): no key, no network,
deterministic, and it does what the prompt names, within bounds whatever the
prompt."""

from __future__ import annotations

import io
import random
import re
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, ImageStat

from app.errors import InvalidInput, UpstreamError
from app.i18n import translate
from app.services.genai.contracts import GenerationOptions, GenerationRequest
from app.services.genai.offline import (
    COLOURS,
    MAX_EDIT_OPERATIONS,
    OfflineProvider,
    edit_ops,
    edit_parser,
    edit_words,
    editor,
    parse_edit_operations,
)
from app.services.genai.offline.edit_ops import (
    Blur,
    Border,
    Brightness,
    Contrast,
    CropSquare,
    Flip,
    Grayscale,
    Invert,
    Mirror,
    Pixelate,
    Resize,
    Rotate,
    Sepia,
    Sharpen,
    Tint,
)
from app.services.genai.offline.edit_parser import read_edit

RED = (255, 0, 0)
GREY = (128, 128, 128)
MARKER = 8  # side of the red square painted in the top-left corner
MAX_PROMPT = 20_000  # the longest prompt the API accepts


# --- helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def provider():
    engine = OfflineProvider()
    yield engine
    engine.close()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def run(provider, kind, prompt, *inputs: Image.Image, **fields) -> tuple[Image.Image, str]:
    request = request_of(
        kind=kind,
        prompt=prompt,
        model="offline-test",
        images=tuple(png(i) for i in inputs),
        **fields,
    )
    result = provider.generate(request)
    assert len(result.images) == 1 and len(result.texts) == 1
    return decode(result.images[0].data), result.texts[0]


def marked(size=(60, 40)) -> Image.Image:
    """Grey with a red square in the top-left corner, to follow geometry."""
    image = Image.new("RGB", size, GREY)
    ImageDraw.Draw(image).rectangle((0, 0, MARKER - 1, MARKER - 1), fill=RED)
    return image


def marker_corner(image: Image.Image) -> str:
    width, height = image.size
    inset = MARKER // 2
    corners = {
        "top-left": (inset, inset),
        "top-right": (width - 1 - inset, inset),
        "bottom-left": (inset, height - 1 - inset),
        "bottom-right": (width - 1 - inset, height - 1 - inset),
    }
    red = [name for name, xy in corners.items() if is_reddish(image.getpixel(xy))]
    assert len(red) == 1, red
    return red[0]


def is_reddish(pixel) -> bool:
    r, g, b = pixel[:3]
    return r > 180 and g < 90 and b < 90


def colourful(size=(64, 48), seed=3) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def grey_ramp(size=(64, 48)) -> Image.Image:
    """Left-to-right grey ramp from 40 to 215: room to move either way."""
    ramp = (
        Image.linear_gradient("L")
        .rotate(90, expand=True)
        .transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    )
    return ramp.resize(size).point(lambda value: 40 + value * 175 // 255).convert("RGB")


def checkerboard(size=64, cell=8) -> Image.Image:
    image = Image.new("RGB", (size, size), (30, 30, 30))
    draw = ImageDraw.Draw(image)
    for y in range(0, size, cell):
        for x in range((y // cell % 2) * cell, size, 2 * cell):
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(220, 220, 220))
    return image


def soft_checkerboard() -> Image.Image:
    return checkerboard().filter(ImageFilter.GaussianBlur(2))


def edge_strength(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).stddev[0]


def mean(image: Image.Image) -> list[float]:
    return ImageStat.Stat(image.convert("RGB")).mean


def spread(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L")).stddev[0]


def bands_equal(image: Image.Image) -> bool:
    r, g, b = image.convert("RGB").split()
    return (
        ImageChops.difference(r, g).getbbox() is None
        and ImageChops.difference(g, b).getbbox() is None
    )


def block_size_from(text: str) -> int:
    return int(re.search(r"pixelate \((\d+) px blocks\)", text).group(1))


def blocks_are_uniform(image: Image.Image, block: int) -> bool:
    for top in range(0, image.height, block):
        for left in range(0, image.width, block):
            cell = image.crop(
                (left, top, min(left + block, image.width), min(top + block, image.height))
            )
            low, high = zip(*cell.getextrema(), strict=True)
            if low != high:
                return False
    return True


def png_chunk_types(data: bytes) -> list[bytes]:
    kinds, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


# --- generate ----------------------------------------------------------------


def request_of(**fields) -> GenerationRequest:
    """A request from request fields and option fields named together."""
    options = {name: fields.pop(name) for name in list(fields) if name in OPTION_NAMES}
    return GenerationRequest(**fields, options=GenerationOptions(**options))


# `model` is the request's own (the resolved id), not the option.
OPTION_NAMES = frozenset(GenerationOptions.model_fields) - frozenset(GenerationRequest.model_fields)


def generate_request(**fields) -> GenerationRequest:
    defaults = {
        "kind": "generate",
        "prompt": "a calm lake at dawn",
        "model": "offline-test",
        "seed": 42,
    }
    return request_of(**{**defaults, **fields})


def test_same_request_gives_identical_bytes(provider):
    first = provider.generate(generate_request())
    second = provider.generate(generate_request())
    assert first.images[0].data == second.images[0].data
    assert first.texts == second.texts


def test_different_seed_gives_different_bytes(provider):
    first = provider.generate(generate_request(seed=1))
    second = provider.generate(generate_request(seed=2))
    assert first.images[0].data != second.images[0].data


def test_candidate_index_gives_different_bytes(provider):
    first = provider.generate(generate_request(candidate_index=0))
    second = provider.generate(generate_request(candidate_index=1))
    assert first.images[0].data != second.images[0].data


@pytest.mark.parametrize(
    ("kind", "prompt", "count"),
    [("edit", "make it sepia", 1), ("compose", "blend them", 2)],
)
def test_edit_and_compose_candidates_differ_and_the_first_is_exact(provider, kind, prompt, count):
    inputs = [colourful(seed=n) for n in range(count)]
    candidates = [
        run(provider, kind, prompt, *inputs, candidate_index=index, language="en")
        for index in range(6)
    ]
    exact, exact_text = run(provider, kind, prompt, *inputs, language="en")

    assert candidates[0][0].tobytes() == exact.tobytes()  # candidate 1: what was asked
    assert "Variant" not in candidates[0][1] and candidates[0][1] == exact_text
    assert len({image.tobytes() for image, _ in candidates}) == 6  # never N copies
    for number, (_, text) in enumerate(candidates[1:], start=2):
        assert text.startswith(exact_text) and f"Variant {number}:" in text
    # Deterministic like everything else the engine makes.
    again, _ = run(provider, kind, prompt, *inputs, candidate_index=3, language="en")
    assert again.tobytes() == candidates[3][0].tobytes()


def test_black_and_white_candidates_stay_black_and_white(provider):
    for index in range(4):  # the usual 1–4 candidates
        image, _ = run(provider, "edit", "black and white", colourful(), candidate_index=index)
        red, green, blue = image.convert("RGB").split()
        assert red.tobytes() == green.tobytes() == blue.tobytes()


def test_an_edit_it_does_not_understand_returns_every_candidate_unchanged(provider):
    source = colourful()
    for index in range(3):
        image, text = run(provider, "edit", "make it more cinematic", source, candidate_index=index)
        assert image.convert("RGB").tobytes() == source.tobytes()
        assert "Variant" not in text


def test_missing_seed_is_still_deterministic(provider):
    first = provider.generate(generate_request(seed=None))
    second = provider.generate(generate_request(seed=None))
    assert first.images[0].data == second.images[0].data


@pytest.mark.parametrize(
    "ratio", ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
)
def test_aspect_ratio_sets_the_shape(provider, ratio):
    image, text = run(provider, "generate", "hills", aspect_ratio=ratio)
    ratio_w, ratio_h = map(int, ratio.split(":"))
    assert max(image.size) == 1024
    assert image.width / image.height == pytest.approx(ratio_w / ratio_h, rel=0.01)
    assert f"({ratio})" in text


def test_default_is_square_1k(provider):
    image, _ = run(provider, "generate", "hills")
    assert image.size == (1024, 1024)


@pytest.mark.parametrize("size_name", ["2K", "4K"])
def test_large_sizes_are_capped_and_the_text_says_so(provider, size_name):
    image, text = run(provider, "generate", "hills", image_size=size_name, aspect_ratio="16:9")
    assert image.size == (1024, 576)
    assert f"{size_name} was requested" in text
    assert "1024" in text


@pytest.mark.parametrize(
    ("prompt", "dominant"),
    [("a red sky", 0), ("红色的天空", 0), ("a green meadow", 1), ("蓝色的海", 2), ("a banana", 0)],
)
def test_named_colour_paints_the_sky(provider, prompt, dominant):
    image, _ = run(provider, "generate", prompt)
    top_band = mean(image.crop((0, 0, image.width, 40)))
    assert top_band[dominant] == max(top_band)


def test_colours_are_named_in_the_text(provider):
    _, text = run(provider, "generate", "a purple and gold sunset / 紫色")
    assert "purple" in text and "gold" in text
    assert "紫色" in text and "金色" in text


@pytest.mark.parametrize(
    "fields", [{"aspect_ratio": "7:3"}, {"image_size": "8K"}], ids=["ratio", "size"]
)
def test_unknown_ratio_or_size_is_invalid_input(provider, fields):
    with pytest.raises(InvalidInput):
        provider.generate(generate_request(**fields))


def test_result_metadata(provider):
    result = provider.generate(generate_request(prompt="x" * 40))
    assert provider.name == "offline"
    assert result.finish_reason == "STOP"
    assert result.model == "offline-test"
    assert result.usage == {"prompt_tokens": 11, "output_tokens": 0, "total_tokens": 11}
    assert result.images[0].mime == "image/png"
    assert set(png_chunk_types(result.images[0].data)) <= {b"IHDR", b"IDAT", b"IEND"}


def test_generating_1024_square_is_fast(provider):
    # A regression guard, not a benchmark: it takes ~30 ms on an idle machine;
    # best of three under a bound that a loaded CI runner still meets.
    request = generate_request(prompt="a banana under a starry night sky", image_size="1K")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        provider.generate(request)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.4


# --- edit: one test per operation, English and Chinese -------------------------


def _rotated_clockwise(before, after, text):
    assert after.size == (before.height, before.width)
    assert marker_corner(after) == "top-right"


def _rotated_counter_clockwise(before, after, text):
    assert after.size == (before.height, before.width)
    assert marker_corner(after) == "bottom-left"


def _rotated_half_turn(before, after, text):
    assert after.size == before.size
    assert marker_corner(after) == "bottom-right"


def _rotated_45(before, after, text):
    assert after.width > before.width and after.height > before.height
    assert after.mode == "RGBA"
    assert after.getpixel((0, 0))[3] == 0  # new corners are transparent


def _flipped(before, after, text):
    assert after.size == before.size
    assert marker_corner(after) == "bottom-left"


def _mirrored(before, after, text):
    assert after.size == before.size
    assert marker_corner(after) == "top-right"


def _grey(before, after, text):
    assert bands_equal(after)
    assert not bands_equal(before)


def _inverted(before, after, text):
    assert after.tobytes() == ImageOps.invert(before).tobytes()


def _sepia(before, after, text):
    for x in range(0, after.width, 7):
        r, g, b = after.getpixel((x, after.height // 2))
        assert r > g > b


def _purple(before, after, text):
    red, green, blue = mean(after)
    assert red > green + 10 and blue > green + 10
    assert blue > red


def _brighter(before, after, text):
    assert sum(mean(after)) > sum(mean(before)) + 30


def _darker(before, after, text):
    assert sum(mean(after)) < sum(mean(before)) - 30


def _more_contrast(before, after, text):
    assert spread(after) > spread(before) * 1.2


def _less_contrast(before, after, text):
    assert spread(after) < spread(before) * 0.8


def _blurred(before, after, text):
    assert edge_strength(after) < edge_strength(before) * 0.7


def _sharpened(before, after, text):
    assert edge_strength(after) > edge_strength(before) * 1.2


def _pixelated(before, after, text):
    block = block_size_from(text)
    assert block >= 2
    assert after.size == before.size
    assert blocks_are_uniform(after, block)


def _pixelated_8(before, after, text):
    assert block_size_from(text) == 8
    assert blocks_are_uniform(after, 8)


def _square(before, after, text):
    assert after.size == (min(before.size),) * 2


def _half(before, after, text):
    assert after.size == (before.width // 2, before.height // 2)


def _exactly_30_by_20(before, after, text):
    assert after.size == (30, 20)


def _red_border(before, after, text):
    border = (after.width - before.width) // 2
    assert border >= 2
    assert after.height - before.height == 2 * border
    for xy in [(0, 0), (after.width - 1, after.height // 2), (after.width // 2, after.height - 1)]:
        assert is_reddish(after.getpixel(xy))


def _white_border_10(before, after, text):
    assert after.size == (before.width + 20, before.height + 20)
    assert after.getpixel((0, 0)) == (250, 250, 250)
    assert after.getpixel((10, 10)) == before.getpixel((0, 0))


EDITS = [
    # prompt, input, check, label the English text must name, label in Chinese
    ("make it black and white", colourful, _grey, "grayscale", "黑白"),
    ("grayscale", colourful, _grey, "grayscale", "黑白"),
    ("变成黑白照片", colourful, _grey, "grayscale", "黑白"),
    ("灰度", colourful, _grey, "grayscale", "黑白"),
    ("invert the colours", colourful, _inverted, "invert", "反色"),
    ("反色", colourful, _inverted, "invert", "反色"),
    ("sepia", grey_ramp, _sepia, "sepia", "复古"),
    ("vintage look", grey_ramp, _sepia, "sepia", "复古"),
    ("复古怀旧风", grey_ramp, _sepia, "sepia", "复古"),
    ("make it purple", grey_ramp, _purple, "purple tint", "紫色"),
    ("紫色", grey_ramp, _purple, "purple tint", "紫色"),
    ("blur", checkerboard, _blurred, "blur", "模糊"),
    ("blur 5", checkerboard, _blurred, "blur (radius 5)", "模糊（半径 5）"),
    ("模糊", checkerboard, _blurred, "blur", "模糊"),
    ("sharpen", soft_checkerboard, _sharpened, "sharpen", "锐化"),
    ("锐化一下", soft_checkerboard, _sharpened, "sharpen", "锐化"),
    ("rotate 90", marked, _rotated_clockwise, "rotate 90° clockwise", "顺时针旋转 90°"),
    ("rotate right", marked, _rotated_clockwise, "rotate 90° clockwise", "顺时针旋转 90°"),
    ("旋转90度", marked, _rotated_clockwise, "rotate 90° clockwise", "顺时针旋转 90°"),
    ("rotate left", marked, _rotated_counter_clockwise, "counter-clockwise", "逆时针旋转 90°"),
    ("逆时针旋转90度", marked, _rotated_counter_clockwise, "counter-clockwise", "逆时针"),
    ("rotate 180 degrees", marked, _rotated_half_turn, "rotate 180°", "旋转 180°"),
    ("rotate 45", marked, _rotated_45, "rotate 45°", "旋转 45°"),
    ("flip", marked, _flipped, "flip vertically", "上下翻转"),
    ("turn it upside down", marked, _flipped, "flip vertically", "上下翻转"),
    ("上下翻转", marked, _flipped, "flip vertically", "上下翻转"),
    ("mirror", marked, _mirrored, "mirror", "镜像"),
    ("flip horizontally", marked, _mirrored, "mirror", "镜像"),
    ("镜像", marked, _mirrored, "mirror", "镜像"),
    ("左右翻转", marked, _mirrored, "mirror", "镜像"),
    ("make it brighter", grey_ramp, _brighter, "brighter", "变亮"),
    ("lighten", grey_ramp, _brighter, "brighter", "变亮"),
    ("更亮一点", grey_ramp, _brighter, "brighter", "变亮"),
    ("变亮", grey_ramp, _brighter, "brighter", "变亮"),
    ("darker", grey_ramp, _darker, "darker", "变暗"),
    ("darken", grey_ramp, _darker, "darker", "变暗"),
    ("更暗", grey_ramp, _darker, "darker", "变暗"),
    ("变暗", grey_ramp, _darker, "darker", "变暗"),
    ("more contrast", grey_ramp, _more_contrast, "more contrast", "增强对比度"),
    ("提高对比度", grey_ramp, _more_contrast, "more contrast", "增强对比度"),
    ("less contrast", grey_ramp, _less_contrast, "less contrast", "降低对比度"),
    ("降低对比度", grey_ramp, _less_contrast, "less contrast", "降低对比度"),
    ("pixelate", colourful, _pixelated, "pixelate", "像素化"),
    ("pixelate 8", colourful, _pixelated_8, "pixelate (8 px blocks)", "像素化（8 像素方块）"),
    ("mosaic", colourful, _pixelated, "pixelate", "像素化"),
    ("像素化", colourful, _pixelated, "pixelate", "像素化"),
    ("马赛克 8", colourful, _pixelated_8, "pixelate (8 px blocks)", "像素化"),
    ("crop square", marked, _square, "crop to a 40×40 square", "正方形"),
    ("裁剪成正方形", marked, _square, "crop", "正方形"),
    ("resize 50%", marked, _half, "resize to 30×20", "缩放至 30×20"),
    ("scale to 50%", marked, _half, "resize to 30×20", "缩放至 30×20"),
    ("缩放 50%", marked, _half, "resize to 30×20", "缩放至 30×20"),
    ("缩小一半", marked, _half, "resize to 30×20", "缩放至 30×20"),
    ("resize to 30x20", colourful, _exactly_30_by_20, "resize to 30×20", "缩放至 30×20"),
    ("add a red border", marked, _red_border, "red border", "红色边框"),
    ("border in red", marked, _red_border, "red border", "红色边框"),
    ("加一个红色边框", marked, _red_border, "red border", "红色边框"),
    ("frame 10px", marked, _white_border_10, "white border (10 px)", "白色边框（10 像素）"),
]


@pytest.mark.parametrize(
    ("prompt", "make_input", "check", "label_en", "label_zh"),
    EDITS,
    ids=[edit[0] for edit in EDITS],
)
def test_edit_operation_changes_pixels_as_named(
    provider, prompt, make_input, check, label_en, label_zh
):
    before = make_input()
    after, text = run(provider, "edit", prompt, before)
    check(before, after.convert("RGBA") if after.mode == "RGBA" else after.convert("RGB"), text)
    english, chinese = text.split(" / ", 1)
    assert english.startswith("Applied: ") and label_en in english
    assert chinese.startswith("已应用：") and label_zh in chinese


def test_operations_apply_in_prompt_order(provider):
    border_then_grey, _ = run(provider, "edit", "add a red border, then black and white", marked())
    grey_then_border, _ = run(provider, "edit", "black and white, then add a red border", marked())
    assert bands_equal(border_then_grey)
    assert is_reddish(grey_then_border.getpixel((0, 0)))


def test_text_lists_every_applied_operation(provider):
    _, text = run(provider, "edit", "先变成黑白，再顺时针旋转90度", marked())
    assert text == "Applied: grayscale, rotate 90° clockwise / 已应用：黑白、顺时针旋转 90°"


def test_colour_operations_keep_alpha(provider):
    before = Image.new("RGBA", (20, 20), (200, 100, 50, 255))
    before.putpixel((0, 0), (200, 100, 50, 0))
    after, _ = run(provider, "edit", "grayscale and sharpen", before)
    assert after.mode == "RGBA"
    assert after.getpixel((0, 0))[3] == 0
    assert after.getpixel((10, 10))[3] == 255


def test_unrecognised_edit_returns_the_image_and_says_what_is_understood(provider):
    before = colourful()
    after, text = run(provider, "edit", "turn this into a watercolour painting", before)
    assert after.tobytes() == before.tobytes()
    english, chinese = text.split(" / ", 1)
    assert "understands" in english and "rotate" in english and "border" in english
    assert "支持" in chinese and "旋转" in chinese and "边框" in chinese


def test_edit_is_deterministic(provider):
    request = GenerationRequest(
        kind="edit", prompt="sepia, rotate 45", model="m", images=(png(colourful()),)
    )
    assert provider.generate(request).images[0].data == provider.generate(request).images[0].data


def test_edit_without_an_image_is_invalid_input(provider):
    with pytest.raises(InvalidInput):
        provider.generate(GenerationRequest(kind="edit", prompt="blur", model="m"))


def test_edit_output_stays_within_4096(provider):
    after, _ = run(provider, "edit", "resize 400%", Image.new("RGB", (2000, 10)))
    assert after.size == (4096, 20)


# --- edit: reading long and hostile prompts ----------------------------------------

NAMED_RED, NAMED_BLUE, NAMED_WHITE = COLOURS["red"], COLOURS["blue"], COLOURS["white"]
# Clauses whose meaning is known, to build prompts whose reading is known.
CLAUSES = [
    ("make it black and white", Grayscale()),
    ("灰度", Grayscale()),
    ("vintage look", Sepia()),
    ("复古", Sepia()),
    ("invert the colours", Invert()),
    ("反色", Invert()),
    ("flip it horizontally", Mirror()),
    ("镜像", Mirror()),
    ("turn it upside down", Flip()),
    ("上下翻转", Flip()),
    ("rotate 90", Rotate(90.0)),
    ("rotate by 30 degrees to the left", Rotate(-30.0)),
    ("逆时针旋转45度", Rotate(-45.0)),
    ("向右转", Rotate(90.0)),
    ("blur 3", Blur(3.0)),
    ("模糊", Blur(None)),
    ("sharpen", Sharpen()),
    ("锐化", Sharpen()),
    ("brighter", Brightness(brighter=True)),
    ("变暗", Brightness(brighter=False)),
    ("less contrast", Contrast(less=True)),
    ("提高对比度", Contrast(less=False)),
    ("pixelate 8", Pixelate(8)),
    ("马赛克", Pixelate(None)),
    ("crop square", CropSquare()),
    ("裁剪成正方形", CropSquare()),
    ("resize 50%", Resize(scale=0.5)),
    ("resize to 30x20", Resize(size=(30, 20))),
    ("缩小一半", Resize(scale=0.5)),
    ("add a thick red border", Border(NAMED_RED, None, 2.0)),
    ("frame 10px", Border(NAMED_WHITE, 10, 1.0)),
    ("加一个蓝色边框", Border(NAMED_BLUE, None, 1.0)),
    ("make it purple", Tint(COLOURS["purple"])),
    ("金黄色", Tint(COLOURS["gold"])),
]
BREAKS = [", ", "，", "; ", ". ", " then ", "然后", "\n", "、", " and ", "再"]
# Any run of these reads as one space (a newline would end a clause).
SPACES = ["", " ", "   ", "\t", "\u3000", "\xa0", " " * 300]


@st.composite
def known_prompts(draw):
    """(prompt, the operations it names): clauses joined by clause breaks,
    with runs of whitespace around them and English in any case."""
    picked = draw(st.lists(st.sampled_from(CLAUSES), min_size=1, max_size=40))
    parts = []
    for index, (words, _) in enumerate(picked):
        if index:
            parts += (draw(st.sampled_from(SPACES)), draw(st.sampled_from(BREAKS)))
            parts.append(draw(st.sampled_from(SPACES)))
        parts.append(words.upper() if draw(st.booleans()) else words)
    return "".join(parts), [operation for _, operation in picked]


@settings(max_examples=300, deadline=None)
@given(known_prompts())
def test_prompts_of_known_clauses_read_as_those_operations(case):
    prompt, named = case
    assert parse_edit_operations(prompt) == named
    read = read_edit(prompt, limit=MAX_EDIT_OPERATIONS)
    assert read.operations == named[:MAX_EDIT_OPERATIONS]
    assert read.named == len(named)


def repeated(unit: str, length: int = MAX_PROMPT) -> tuple[str, int]:
    """`unit` as many whole times as fit in `length` characters, and how many."""
    times = length // len(unit)
    return unit * times, times


HOSTILE = [
    # the prompt, at the maximum length: one 1 px border per clause
    ("描边1像素,", [Border(NAMED_WHITE, 1, 1.0)]),
    ("描边1像素，", [Border(NAMED_WHITE, 1, 1.0)]),
    ("512 px border, ", [Border(NAMED_WHITE, 512, 1.0)]),
    ("border and ", [Border(NAMED_WHITE, None, 1.0)]),
    ("rotate 45, ", [Rotate(45.0)]),
    ("旋转45度", [Rotate(45.0)]),
    ("add a thick red border, ", [Border(NAMED_RED, None, 2.0)]),
    ("黑白", [Grayscale()]),
    ("紫色", [Tint(COLOURS["purple"])]),
    ("red, ", [Tint(NAMED_RED)]),
    ("描边", [Border(NAMED_WHITE, None, 1.0)]),
    ("resize 400% ", [Resize(scale=4.0)]),
    ("pixelate 2 and ", [Pixelate(2)]),
    ("降低对比度", [Contrast(less=True)]),
    ("flip horizontally then ", [Mirror()]),
    ("black and white and red and ", [Grayscale(), Tint(NAMED_RED)]),
]


@pytest.mark.parametrize(("unit", "named"), HOSTILE, ids=[unit for unit, _ in HOSTILE])
def test_a_clause_repeated_to_the_maximum_length_reads_every_time(unit, named):
    prompt, times = repeated(unit)
    read = read_edit(prompt, limit=MAX_EDIT_OPERATIONS)
    assert read.named == len(named) * times
    assert read.operations == (named * MAX_EDIT_OPERATIONS)[:MAX_EDIT_OPERATIONS]


@pytest.mark.parametrize(
    ("prompt", "named", "first"),
    [
        # each border takes the nearest colour not yet taken, on either side
        ("红" * 10_000 + "描边" * 5_000, 10_000, [Tint(NAMED_RED)] * 16),
        ("描边" * 5_000 + "红" * 10_000, 10_000, [Border(NAMED_RED, None, 1.0)] * 16),
        ("边框" * 10_000, 10_000, [Border(NAMED_WHITE, None, 1.0)] * 16),
        # long runs of one character: nothing to backtrack over
        ("red" + " " * (MAX_PROMPT - 3), 1, [Tint(NAMED_RED)]),
        ("grey" + " " * (MAX_PROMPT - 4), 1, [Tint(COLOURS["gray"])]),
        (" " * (MAX_PROMPT - 2) + "旋转", 1, [Rotate(90.0)]),
        ("旋转" + "\n" * (MAX_PROMPT - 2), 1, [Rotate(90.0)]),
        ("对比" + " \t" * (MAX_PROMPT // 2 - 1), 1, [Contrast(less=False)]),
        ("1" * MAX_PROMPT, 0, []),
        ("，" * MAX_PROMPT, 0, []),
        (" and" * (MAX_PROMPT // 4), 0, []),
        # numbers far past any bound are clamped, not read digit by digit
        ("边框" + "9" * (MAX_PROMPT - 4) + "px", 1, [Border(NAMED_WHITE, 512, 1.0)]),
        ("旋转" + "1" * (MAX_PROMPT - 2), 1, [Rotate(1e9)]),
        ("pixelate " + "9" * (MAX_PROMPT - 9), 1, [Pixelate(10**9)]),
        ("resize " + "9" * (MAX_PROMPT - 8) + "%", 1, [Resize(scale=1e7)]),
    ],
    ids=lambda value: value[:12] if isinstance(value, str) else None,
)
def test_hostile_prompts_at_the_maximum_length_read_as_named(prompt, named, first):
    assert len(prompt) <= MAX_PROMPT
    read = read_edit(prompt, limit=MAX_EDIT_OPERATIONS)
    assert read.named == named
    assert read.operations == first


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        # the nearest colour in the border's clause; the earlier one on a tie
        ("红 描边蓝", [Border(NAMED_RED, None, 1.0), Tint(NAMED_BLUE)]),
        ("红  描边蓝", [Tint(NAMED_RED), Border(NAMED_BLUE, None, 1.0)]),
        ("blue sky, and a red frame 5px", [Tint(NAMED_BLUE), Border(NAMED_RED, 5, 1.0)]),
        # a break inside another operation's words ends no clause
        ("black and white border", [Grayscale(), Border(NAMED_WHITE, None, 1.0)]),
        (
            "red, black and white border",
            [Tint(NAMED_RED), Grayscale(), Border(NAMED_WHITE, None, 1.0)],
        ),
        ("red black and white border", [Grayscale(), Border(NAMED_RED, None, 1.0)]),
    ],
)
def test_a_border_takes_the_nearest_colour_of_its_clause(prompt, named):
    assert parse_edit_operations(prompt) == named


def test_reading_ignores_case_and_the_length_of_whitespace():
    prompt = "Rotate  by 30\tDEGREES to the LEFT,\u3000add a THICK Red border"
    assert parse_edit_operations(prompt) == [Rotate(-30.0), Border(NAMED_RED, None, 2.0)]
    # İ, ı, K (Kelvin) and ſ match i, k and s when ignoring case, as before
    assert parse_edit_operations("ſepia, pin\u212a") == [Sepia(), Tint(COLOURS["pink"])]


def test_an_english_word_inside_another_word_is_not_read():
    assert parse_edit_operations("unfreddy bordered stars") == []
    assert parse_edit_operations("请blur一下") == [Blur(None)]


def test_no_pattern_matches_an_empty_string():
    # The reader skips empty matches; none should exist for it to skip.
    patterns = [pattern for rule in edit_parser._RULES for pattern in rule.patterns]
    for words in [*patterns, edit_words.BORDER, edit_words.CLAUSE_BREAK, edit_words.COLOUR]:
        assert words.pattern.match("") is None, words.pattern.pattern


# --- edit: bounds ---------------------------------------------------------------------


def english_text(provider, prompt, image, **fields):
    return run(provider, "edit", prompt, image, language="en", **fields)


def test_operations_past_the_cap_are_ignored_and_the_reply_says_so(provider):
    prompt = ", ".join(["invert"] * (MAX_EDIT_OPERATIONS + 4))
    after, text = english_text(provider, prompt, colourful())
    assert text.count("invert") == MAX_EDIT_OPERATIONS
    assert "(4 more ignored" in text and str(MAX_EDIT_OPERATIONS) in text
    assert after.tobytes() == colourful().tobytes()  # an even number of inversions
    _, chinese = run(provider, "edit", prompt, colourful(), language="zh")
    assert "另有 4 项被忽略" in chinese and "invert" not in chinese


def test_sixteen_operations_are_not_capped(provider):
    prompt = ", ".join(["invert"] * MAX_EDIT_OPERATIONS)
    _, text = english_text(provider, prompt, colourful())
    assert "ignored" not in text


@pytest.fixture
def small_budget(monkeypatch):
    """A 64 px / 3000 pixel budget, so that the bounds show on small pictures."""
    monkeypatch.setattr(editor, "MAX_OUTPUT_SIDE", 64)
    monkeypatch.setattr(editor, "MAX_EDIT_PIXELS", 3000)
    return edit_ops.PixelBudget(64, 3000)


@pytest.mark.parametrize(
    "prompt",
    [
        "add a 512 px border, " * 16,
        "rotate 45, " * 12,
        "resize to 4096x4096",
        "resize 400%, rotate 30, border 20px",
        "旋转45度" * 16,
    ],
)
def test_growing_steps_stay_within_the_pixel_budget(provider, small_budget, prompt):
    after, _ = english_text(provider, prompt, colourful((40, 30)))
    assert small_budget.allows(after.size), after.size
    assert after.width * after.height > 1500  # clamped to the budget, not to nothing


def test_an_input_larger_than_the_budget_keeps_its_size_but_cannot_grow(provider, small_budget):
    before = colourful((60, 60))  # 3600 pixels, over the 3000 of the budget
    same, _ = english_text(provider, "invert", before)
    assert same.size == (60, 60)
    framed, text = english_text(provider, "border 5px", before)
    assert framed.width * framed.height <= 3600 and max(framed.size) <= 64
    assert "scaled down to stay within 64 px a side and 0.0036 megapixels" in text


def spy(monkeypatch, owner, name, calls):
    original = getattr(owner, name)

    def record(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args[0].size, result.size))
        return result

    monkeypatch.setattr(owner, name, record)


@pytest.mark.parametrize(
    ("operation", "owner", "name"),
    [
        (Rotate(45.0), Image.Image, "rotate"),
        (Rotate(-10.0), Image.Image, "rotate"),
        (Border(NAMED_RED, 40, 1.0), ImageOps, "expand"),
        (Border(NAMED_RED, None, 2.0), ImageOps, "expand"),
    ],
    ids=["rotate 45", "rotate -10", "border 40", "thick border"],
)
def test_a_growing_step_shrinks_its_input_before_it_allocates(monkeypatch, operation, owner, name):
    calls = []
    spy(monkeypatch, owner, name, calls)
    budget = edit_ops.PixelBudget(max_side=100, max_pixels=6000)
    applied = operation.apply(colourful((90, 70)), budget)
    ((given, made),) = calls
    assert budget.allows(made), made  # what the step itself allocated fits
    assert given[0] * given[1] < 90 * 70  # because its input was shrunk first
    assert applied.image.size == made
    assert "scaled down" in translate(applied.label, "en")
    assert "已缩小" in translate(applied.label, "zh")


@pytest.mark.parametrize(
    "size",
    [(1, 1), (3, 1), (1, 4000), (97, 13), (640, 480)],
    ids=lambda size: "x".join(map(str, size)),
)
@pytest.mark.parametrize("degrees", [1.0, 30.0, 45.0, 89.9, 135.0, 333.3])
def test_rotation_never_passes_the_budget(size, degrees):
    budget = edit_ops.PixelBudget(max_side=300, max_pixels=20_000)
    image = Image.new("RGB", size, GREY)
    if not budget.allows(size):
        image = image.resize(budget.fit(size))
    turned = Rotate(degrees).apply(image, budget).image
    assert budget.allows(turned.size), turned.size


def test_resize_and_pixel_budget_agree_on_a_long_thin_picture():
    budget = edit_ops.PixelBudget(max_side=4096, max_pixels=2048 * 2048)
    assert budget.fit((8000, 40)) == (4096, 20)  # the side binds
    assert budget.fit((8000, 8000)) == (2048, 2048)  # the pixel count binds
    assert budget.fit((0, 0)) == (1, 1)


@pytest.mark.parametrize(
    ("prompt", "label"),
    [
        ("resize " + "9" * 400 + "%", "resize to 2364×1773"),  # was OverflowError: a 500
        ("pixelate " + "9" * 5000, "pixelate (64 px blocks)"),  # was int()'s 4300-digit limit
        ("border " + "9" * 5000 + "px", "white border (512 px)"),
        ("rotate " + "9" * 400, "rotate 1e+09° clockwise"),  # was NaN degrees
    ],
    ids=["resize", "pixelate", "border", "rotate"],
)
def test_numbers_past_every_bound_are_clamped(provider, prompt, label):
    after, text = english_text(provider, prompt, colourful())
    assert label in text
    assert after.width * after.height <= editor.MAX_EDIT_PIXELS


def test_an_edit_that_runs_out_of_time_stops_between_steps():
    ticks = iter(range(100))
    request = GenerationRequest(
        kind="edit", prompt="invert, invert, invert, invert", model="m", images=(png(colourful()),)
    )
    with pytest.raises(UpstreamError) as raised:
        # The clock reads 0 at the start, then one second more at each step.
        editor.edit(request, time_budget_s=2.5, clock=lambda: next(ticks))
    error = raised.value
    assert (error.code, error.status, error.retryable) == ("upstream_timeout", 504, False)
    assert "after 2 of 4 edit steps" in error.text("en")
    assert "4 个编辑步骤中的 2 个" in error.text("zh")


def test_provider_passes_its_time_budget_to_the_edit():
    impatient = OfflineProvider(edit_time_budget_s=-1)
    with pytest.raises(UpstreamError):
        impatient.generate(
            GenerationRequest(kind="edit", prompt="invert", model="m", images=(png(colourful()),))
        )


# --- compose -------------------------------------------------------------------


def solid(colour, size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.mark.parametrize("prompt", ["put them side by side", "并排放在一起"])
def test_compose_side_by_side_makes_a_row(provider, prompt):
    image, text = run(provider, "compose", prompt, solid(RED), solid((0, 0, 255)), solid(GREY))
    assert image.size == (120, 30)
    assert is_reddish(image.getpixel((5, 15)))
    assert image.getpixel((45, 15)) == (0, 0, 255)
    assert "tile" in text and "拼接" in text


@pytest.mark.parametrize("prompt", ["make a grid", "拼接", "a collage"])
def test_compose_tile_makes_a_grid(provider, prompt):
    image, _ = run(provider, "compose", prompt, solid(RED), solid((0, 0, 255)), solid(GREY))
    assert image.size == (80, 60)  # 2 × 2 cells, the last one empty
    assert image.getpixel((60, 45)) == (255, 255, 255)


def test_compose_tile_fits_other_sizes_into_the_first_cell(provider):
    image, _ = run(provider, "compose", "tile", solid(RED), solid((0, 0, 255), (80, 30)))
    assert image.size == (80, 30)
    assert image.getpixel((60, 15)) == (0, 0, 255)
    assert image.getpixel((60, 2)) == (255, 255, 255)  # letterboxed


def test_compose_without_a_keyword_tiles_and_says_so(provider):
    image, text = run(provider, "compose", "these two", solid(RED), solid((0, 0, 255)))
    assert image.size == (80, 30)
    assert "by default" in text and "默认拼接" in text


@pytest.mark.parametrize("prompt", ["blend them", "mix the two", "混合", "融合这两张图"])
def test_compose_blend_averages_at_the_first_size(provider, prompt):
    image, text = run(provider, "compose", prompt, solid(RED), solid((0, 0, 255), (10, 10)))
    assert image.size == (40, 30)
    red, green, blue = image.getpixel((20, 15))
    assert abs(red - 128) <= 2 and green == 0 and abs(blue - 128) <= 2
    assert "blend" in text and "混合" in text


@pytest.mark.parametrize(
    "prompt", ["use the style of the last image", "换成第二张的色调", "风格迁移"]
)
def test_compose_palette_moves_the_last_images_colours_onto_the_first(provider, prompt):
    target = grey_ramp()
    source = colourful(seed=5).point(lambda value: value // 3)  # dark and noisy
    source = Image.merge(
        "RGB", [source.getchannel(0).point(lambda v: v + 160), *source.split()[1:]]
    )
    image, text = run(provider, "compose", prompt, target, solid(GREY), source)
    assert image.size == target.size
    for produced, wanted in zip(mean(image), mean(source), strict=True):
        assert produced == pytest.approx(wanted, abs=6)
    assert "palette of image 3" in text and "色调" in text


def test_compose_needs_two_images(provider):
    with pytest.raises(InvalidInput):
        provider.generate(
            GenerationRequest(kind="compose", prompt="tile", model="m", images=(png(solid(RED)),))
        )
