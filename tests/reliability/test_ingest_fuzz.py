"""Property-based fuzzing of `ingest_image`, the one door every upload goes
through. tests/test_images.py throws random and bit-flipped bytes at it;
this goes further, with inputs that are structurally right and lie in one
place:

- generated pictures of every accepted format and mode, with random EXIF
  (any orientation), ICC profiles, text chunks and comments: each must be
  accepted, come out upright, within the side limit, as a pixels-only PNG,
  and re-ingesting the result must give the same bytes (a fixpoint, so the
  content-addressed store deduplicates);
- pictures of formats outside the allowlist: each UnsupportedImage;
- PNG chunk surgery with valid CRCs (dropped, duplicated, reordered and
  invented chunks, any IHDR field);
- headers that lie about the size (PNG, GIF, JPEG): refused from the header
  when the claim is over the pixel limit, and quickly, never allocating it;
- splices of two files and truncations at every offset.

Only the documented exceptions may come out (InvalidImage 400,
UnsupportedImage 415, ImageTooLarge 413), with Pillow's warnings turned into
errors. `make test` runs 150 inputs per property; `make fuzz`
(HYPOTHESIS_PROFILE=fuzz) 20,000 (100,000 in all).
"""

from __future__ import annotations

import io
import random
import struct
import time
import warnings
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from app.errors import ImageTooLarge, InvalidImage, UnsupportedImage
from app.services.image_codec import ingest_image
from tests.reliability.support import FUZZ, RELIABILITY, report

EXAMPLES = 20_000 if FUZZ else 150
FUZZ_SETTINGS = settings(RELIABILITY, max_examples=EXAMPLES)
DOCUMENTED = (InvalidImage, UnsupportedImage, ImageTooLarge)
MAX_PIXELS = 4_000_000
MAX_SIDE = 64  # small, so the downscale path runs on every generated picture
PIXEL_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A lie about the size must be refused before any decoding: well under this.
MAX_SECONDS_PER_LIE = 1.0

ACCEPTED_MODES = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "GIF": ["P", "L"],
}
UNSUPPORTED = {"TIFF": "RGB", "BMP": "RGB", "ICO": "RGBA", "PCX": "RGB", "TGA": "RGB", "PPM": "RGB"}

tried: dict[str, int] = {}


def ingest(data: bytes):
    """ingest_image with Pillow's warnings as errors; only documented
    exceptions may leave it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return ingest_image(data, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, offset = [], len(SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        out.append((data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return out


def png_from(parts: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        for kind, data in parts
    )
    return SIGNATURE + body


def assert_clean(clean, expected_size=None) -> None:
    kinds = [kind for kind, _ in chunks(clean.data)]
    assert clean.data.startswith(SIGNATURE)
    assert set(kinds) <= PIXEL_CHUNKS, kinds
    assert kinds[-1] == b"IEND"
    with Image.open(io.BytesIO(clean.data)) as image:
        assert image.mode in ("RGB", "RGBA")
        assert image.size == (clean.width, clean.height)
    assert max(clean.width, clean.height) <= MAX_SIDE
    if expected_size is not None:
        # fit_within's arithmetic; +-1 for JPEG's draft scaling first.
        width, height = expected_size
        scale = min(1.0, MAX_SIDE / max(width, height))
        expected = (max(1, round(width * scale)), max(1, round(height * scale)))
        assert abs(clean.width - expected[0]) <= 1, (clean.width, clean.height, expected)
        assert abs(clean.height - expected[1]) <= 1, (clean.width, clean.height, expected)


def noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    bands = {"1": 1, "L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "I;16": 2}[mode]
    raw = random.Random(seed).randbytes(size[0] * size[1] * bands)
    if mode == "1":
        return Image.frombytes("L", size, raw).convert("1")
    if mode == "P":
        return Image.frombytes("L", size, raw).convert("P")
    return Image.frombytes(mode, size, raw)


@st.composite
def pictures(draw, formats: dict):
    fmt = draw(st.sampled_from(sorted(formats)))
    modes = formats[fmt]
    mode = draw(st.sampled_from(modes if isinstance(modes, list) else [modes]))
    size = (draw(st.integers(1, 160)), draw(st.integers(1, 160)))
    if fmt == "ICO":
        size = (min(size[0], 64), min(size[1], 64))
    image = noise(mode, size, draw(st.integers(0, 2**16)))
    options: dict = {}
    orientation = 1
    if fmt in ("PNG", "JPEG", "WEBP") and draw(st.booleans()):
        orientation = draw(st.integers(1, 8))
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif[0x010F] = draw(st.text(max_size=40))  # Make
        exif[0x0131] = "x" * draw(st.integers(0, 4000))  # Software
        options["exif"] = exif.tobytes()
    if fmt in ("PNG", "JPEG", "WEBP") and mode not in ("1", "I;16") and draw(st.booleans()):
        options["icc_profile"] = draw(st.binary(max_size=70_000))
    if fmt == "PNG" and draw(st.booleans()):
        info = PngImagePlugin.PngInfo()
        for key, value in draw(st.dictionaries(st.text("abcXYZ", min_size=1), st.text())).items():
            info.add_itxt(key, value, zip=draw(st.booleans()))
        options["pnginfo"] = info
    if fmt == "JPEG":
        options["quality"] = draw(st.integers(1, 95))
        if draw(st.booleans()):
            options["comment"] = draw(st.binary(max_size=2000))
        options["progressive"] = draw(st.booleans())
    if fmt == "GIF" and draw(st.booleans()):
        frames = [noise(mode, size, seed) for seed in range(draw(st.integers(1, 5)))]
        options.update(save_all=True, append_images=frames, loop=0)
    if fmt == "WEBP":
        options["lossless"] = draw(st.booleans())
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    upright = size if orientation < 5 else (size[1], size[0])
    return fmt, upright, buffer.getvalue()


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried():
    """After the module: how many inputs the properties tried (a figure for
    docs/reliability.md, printed with `pytest -s`; not a test of its own)."""
    yield
    if tried:
        report("ingest_fuzz", inputs=sum(tried.values()), **tried)


def _count(name: str) -> None:
    tried[name] = tried.get(name, 0) + 1


@FUZZ_SETTINGS
@given(pictures(ACCEPTED_MODES))
def test_every_good_picture_is_accepted_upright_and_bare(picture):
    _count("good_pictures")
    _, upright, data = picture
    clean = ingest(data)
    assert_clean(clean, upright)
    # A fixpoint: the stored picture, uploaded again, is the same file.
    assert ingest(clean.data).data == clean.data


@FUZZ_SETTINGS
@given(pictures(UNSUPPORTED))
def test_formats_outside_the_allowlist_are_unsupported(picture):
    _count("unsupported_formats")
    with pytest.raises(UnsupportedImage):
        ingest(picture[2])


SEED_PNG = io.BytesIO()
Image.new("RGB", (24, 16), (10, 200, 30)).save(SEED_PNG, "PNG")
SEED_CHUNKS = chunks(SEED_PNG.getvalue())


@st.composite
def png_surgery(draw):
    parts = list(SEED_CHUNKS)
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.sampled_from(["drop", "duplicate", "swap", "invent", "ihdr", "idat"]))
        index = draw(st.integers(0, len(parts) - 1)) if parts else 0
        if operation == "drop" and parts:
            parts.pop(index)
        elif operation == "duplicate" and parts:
            parts.insert(index, parts[index])
        elif operation == "swap" and len(parts) > 1:
            other = draw(st.integers(0, len(parts) - 1))
            parts[index], parts[other] = parts[other], parts[index]
        elif operation == "invent":
            kind = draw(st.binary(min_size=4, max_size=4))
            parts.insert(index, (kind, draw(st.binary(max_size=300))))
        elif operation == "ihdr":
            width, height = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
            fields = [draw(st.integers(0, 255)) for _ in range(5)]
            if draw(st.booleans()):  # keep the declared size plausible
                width, height = draw(st.integers(1, 3000)), draw(st.integers(1, 3000))
            ihdr = struct.pack(">IIBBBBB", width, height, *fields)
            parts = [(b"IHDR", ihdr) if kind == b"IHDR" else (kind, data) for kind, data in parts]
        elif operation == "idat":
            raw = draw(st.binary(max_size=2000))
            parts = [
                (kind, zlib.compress(raw) if kind == b"IDAT" else data) for kind, data in parts
            ]
    return png_from(parts)


@FUZZ_SETTINGS
@given(png_surgery())
def test_png_chunk_surgery_gives_a_clean_image_or_a_documented_error(data):
    _count("png_surgery")
    try:
        clean = ingest(data)
    except DOCUMENTED:
        return
    assert_clean(clean)


def _small(fmt: str) -> bytes:
    buffer = io.BytesIO()
    image = noise("RGB", (8, 8), 3)
    image.convert("P" if fmt == "GIF" else "RGB").save(buffer, fmt)
    return buffer.getvalue()


def lie_about_size(fmt: str, width: int, height: int) -> bytes:
    data = bytearray(_small(fmt))
    if fmt == "PNG":
        parts = chunks(bytes(data))
        rest = parts[0][1][8:]
        parts[0] = (b"IHDR", struct.pack(">II", width, height) + rest)
        return png_from(parts)
    if fmt == "GIF":
        struct.pack_into("<HH", data, 6, width, height)  # logical screen
        descriptor = data.index(b"\x2c")  # image descriptor
        struct.pack_into("<HH", data, descriptor + 5, width, height)
        return bytes(data)
    sof = data.index(b"\xff\xc0")  # JPEG baseline frame header
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


SIZE_LIMITS = {"PNG": 2**31 - 1, "GIF": 2**16 - 1, "JPEG": 2**16 - 1}


@st.composite
def size_lies(draw):
    fmt = draw(st.sampled_from(sorted(SIZE_LIMITS)))
    top = SIZE_LIMITS[fmt]
    side = st.one_of(st.integers(1, top), st.integers(1, 5000))
    return fmt, draw(side), draw(side)


@FUZZ_SETTINGS
@given(size_lies())
def test_a_header_that_lies_about_the_size_is_refused_quickly(lie):
    _count("size_lies")
    fmt, width, height = lie
    data = lie_about_size(fmt, width, height)
    started = time.perf_counter()
    try:
        clean = ingest(data)
    except ImageTooLarge:
        assert width * height > MAX_PIXELS
    except (InvalidImage, UnsupportedImage):
        assert width * height <= MAX_PIXELS or fmt == "GIF"
    else:
        assert_clean(clean)
    assert time.perf_counter() - started < MAX_SECONDS_PER_LIE


SEEDS = [picture for picture in (_small(fmt) for fmt in ("PNG", "GIF", "JPEG", "WEBP"))]


@FUZZ_SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.sampled_from(SEEDS),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_splices_and_truncations_give_a_clean_image_or_a_documented_error(a, b, cut, join):
    _count("splices")
    data = a[: int(len(a) * cut)] + b[int(len(b) * join) :]
    try:
        clean = ingest(data)
    except DOCUMENTED:
        return
    assert_clean(clean)
