"""Image ingest and output normalisation (app/services/image_codec.py).

Every image is made in code; nothing binary is committed. The fuzz tests run
300 examples by default; `HYPOTHESIS_PROFILE=fuzz` (or
`--hypothesis-profile=fuzz`) runs 100,000.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import tracemalloc
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageDraw, ImageFile

from app.errors import ImageTooLarge, InvalidImage, UnsupportedImage
from app.services.image_codec import (
    CleanImage,
    ingest_image,
    make_thumbnail,
    to_png,
)

settings.register_profile(
    "fuzz",
    max_examples=100_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZING = (
    os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" or settings.get_current_profile_name() == "fuzz"
)
fuzz_settings = (
    settings.get_profile("fuzz")
    if FUZZING
    else settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORIENTATION = 0x0112
RED = (255, 0, 0)
WHITE = (255, 255, 255)


# --- helpers -----------------------------------------------------------------


def encode(image: Image.Image, format_name: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def noisy_image(size=(64, 48), seed=1) -> Image.Image:
    """Busy content, so truncating the encoded file cuts through image data."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data.startswith(PNG_SIGNATURE)
    kinds, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


def psd_bytes(width=4, height=4) -> bytes:
    """A minimal RGB Photoshop file (Pillow reads PSD but cannot write it)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    empty_sections = struct.pack(">III", 0, 0, 0)  # colour mode, resources, layers
    raw_pixels = struct.pack(">H", 0) + bytes(width * height * 3)
    return header + empty_sections + raw_pixels


def is_reddish(pixel) -> bool:
    r, g, b = pixel[:3]
    return r > 180 and g < 90 and b < 90


def is_whiteish(pixel) -> bool:
    return min(pixel[:3]) > 200


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    """A 20000×10000 (200-megapixel) 1-bit PNG that compresses to ~25 KB.

    Written chunk by chunk: Pillow would need 200 MB to build it in memory.
    """
    width, height = 20_000, 10_000
    row = b"\x00" * (1 + width // 8)  # filter byte + 1 bit per pixel
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


# --- what is refused ---------------------------------------------------------


def test_truncated_png_is_invalid():
    # A process-wide switch that would turn truncation into grey pixels.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = encode(noisy_image(), "PNG")
    with pytest.raises(InvalidImage):
        ingest_image(data[: len(data) // 2])


def test_truncated_jpeg_is_invalid():
    data = encode(noisy_image(), "JPEG", quality=90)
    with pytest.raises(InvalidImage):
        ingest_image(data[: len(data) // 2])


def test_zero_bytes_are_invalid():
    with pytest.raises(InvalidImage):
        ingest_image(b"")


def test_random_bytes_are_invalid():
    with pytest.raises(InvalidImage):
        ingest_image(random.Random(1234).randbytes(4096))


def test_html_is_invalid():
    page = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
    with pytest.raises(InvalidImage):
        ingest_image(page)


def test_svg_is_unsupported_not_corrupt():
    svg = (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10" fill="red"/></svg>'
    )
    with pytest.raises(UnsupportedImage) as refused:
        ingest_image(svg)
    assert refused.value.extra["format"] == "SVG"


@pytest.mark.parametrize(
    ("format_name", "data"),
    [
        ("TIFF", encode(Image.new("RGB", (8, 8), RED), "TIFF")),
        ("BMP", encode(Image.new("RGB", (8, 8), RED), "BMP")),
        ("ICO", encode(Image.new("RGB", (16, 16), RED), "ICO")),
        ("PSD", psd_bytes()),
    ],
)
def test_other_formats_pillow_reads_are_unsupported(format_name, data):
    assert Image.open(io.BytesIO(data)).format == format_name  # the sample is what it claims
    with pytest.raises(UnsupportedImage) as caught:
        ingest_image(data)
    assert caught.value.status == 415
    assert caught.value.extra["format"] == format_name


def test_file_over_the_byte_limit_is_too_large():
    data = encode(noisy_image(), "PNG")
    with pytest.raises(ImageTooLarge) as caught:
        ingest_image(data, max_bytes=len(data) - 1)
    assert caught.value.status == 413


@pytest.mark.parametrize("pillow_guard", ["on", "off"])
def test_decompression_bomb_is_refused_from_its_header(bomb_png, monkeypatch, pillow_guard):
    if pillow_guard == "off":
        # Our own header check must hold even if someone disables Pillow's.
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    # tracemalloc does not see Pillow's C pixel buffers; its arena counts do.
    buffers_before = Image.core.get_stats()["new_count"]
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLarge) as caught:
            ingest_image(bomb_png)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024
    assert Image.core.get_stats()["new_count"] == buffers_before
    assert "50,000,000 pixels" in caught.value.text("en")
    assert caught.value.extra["max_pixels"] == 50_000_000


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageTooLarge) as caught:
        ingest_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=9_999)
    assert "100×100" in caught.value.text("en")


# --- what comes out ------------------------------------------------------------


def test_clean_image_is_png_with_matching_digest():
    clean = ingest_image(encode(Image.new("RGB", (30, 20), RED), "JPEG"))
    assert isinstance(clean, CleanImage)
    assert clean.data.startswith(PNG_SIGNATURE)
    assert (clean.width, clean.height, clean.mime) == (30, 20, "image/png")
    assert clean.byte_size == len(clean.data)
    assert clean.sha256 == hashlib.sha256(clean.data).hexdigest()


@pytest.mark.parametrize("format_name", ["PNG", "JPEG", "WEBP", "GIF"])
def test_accepted_formats_become_png(format_name):
    clean = ingest_image(encode(Image.new("RGB", (30, 20), RED), format_name))
    image = decode(clean.data)
    assert (image.format, image.size) == ("PNG", (30, 20))
    assert is_reddish(image.getpixel((15, 10)))


def test_exif_orientation_is_applied_and_exif_dropped():
    stored = Image.new("RGB", (40, 20), WHITE)
    ImageDraw.Draw(stored).rectangle((0, 0, 9, 9), fill=RED)  # marker at top-left
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90° clockwise to display"
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    clean = ingest_image(data)

    upright = decode(clean.data)
    assert upright.size == (20, 40)
    assert is_reddish(upright.getpixel((15, 4)))  # top-left went to top-right
    assert is_whiteish(upright.getpixel((4, 4)))
    assert "exif" not in upright.info
    assert len(upright.getexif()) == 0


def test_icc_profile_comment_and_exif_are_stripped():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    big_profile = srgb + b"\x00" * 200_000  # spans several APP2 segments
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"  # Make
    data = encode(
        noisy_image(),
        "JPEG",
        icc_profile=big_profile,
        exif=exif.tobytes(),
        comment=b"secret comment",
    )
    assert decode(data).info["icc_profile"] == big_profile  # the input really has them

    clean = ingest_image(data)

    output = decode(clean.data)
    for key in ("icc_profile", "exif", "comment", "dpi"):
        assert key not in output.info
    assert output.text == {}
    assert set(png_chunk_types(clean.data)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert b"secret comment" not in clean.data
    assert b"Camera Maker" not in clean.data


def test_png_text_chunks_are_stripped():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "someone")
    info.add_text("prompt", "a long hidden prompt", zip=True)
    data = encode(Image.new("RGB", (8, 8), RED), "PNG", pnginfo=info, dpi=(300, 300))
    clean = ingest_image(data)
    assert set(png_chunk_types(clean.data)) <= {b"IHDR", b"IDAT", b"IEND"}


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (20, 20), colour) for colour in (RED, (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3

    clean = ingest_image(data)

    output = decode(clean.data)
    assert getattr(output, "n_frames", 1) == 1
    assert is_reddish(output.getpixel((10, 10)))
    assert b"acTL" not in clean.data  # not an animated PNG either


def test_mpo_is_read_as_its_first_picture():
    pictures = [Image.new("RGB", (20, 20), RED), Image.new("RGB", (20, 20), (0, 0, 255))]
    data = encode(pictures[0], "MPO", save_all=True, append_images=pictures[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"

    output = decode(ingest_image(data).data)

    assert is_reddish(output.getpixel((10, 10)))


def test_png_zip_polyglot_is_accepted_without_the_zip():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("payload.txt", "MARKER-inside-the-zip")
    polyglot = encode(Image.new("RGB", (16, 16), RED), "PNG") + archive.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(polyglot))

    clean = ingest_image(polyglot)

    assert decode(clean.data).size == (16, 16)
    assert b"PK\x03\x04" not in clean.data
    assert b"MARKER-inside-the-zip" not in clean.data
    assert not zipfile.is_zipfile(io.BytesIO(clean.data))


def test_large_image_is_downscaled_to_the_max_side():
    clean = ingest_image(encode(Image.new("RGB", (5000, 2500), RED), "PNG", compress_level=1))
    assert (clean.width, clean.height) == (4096, 2048)


def test_max_side_is_configurable():
    clean = ingest_image(encode(Image.new("RGB", (300, 100)), "PNG"), max_side=150)
    assert (clean.width, clean.height) == (150, 50)


def test_alpha_is_kept():
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 255, 0))
    output = decode(ingest_image(encode(image, "PNG")).data)
    assert output.mode == "RGBA"
    assert output.getpixel((0, 0))[3] == 0
    assert output.getpixel((5, 5)) == (255, 0, 0, 255)


def test_opaque_image_has_no_alpha_channel():
    output = decode(ingest_image(encode(Image.new("RGB", (10, 10), RED), "PNG")).data)
    assert output.mode == "RGB"


def test_palette_transparency_becomes_alpha():
    image = Image.new("P", (10, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    output = decode(ingest_image(encode(image, "PNG", transparency=0)).data)
    assert output.mode == "RGBA"
    assert output.getpixel((0, 0))[3] == 0
    assert output.getpixel((5, 5)) == (255, 0, 0, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    image = Image.new("I;16", (2, 1))
    image.putpixel((0, 0), 65535)
    image.putpixel((1, 0), 32896)  # 128 × 257
    output = decode(ingest_image(encode(image, "PNG")).data)
    assert output.getpixel((0, 0)) == (255, 255, 255)
    assert output.getpixel((1, 0)) == (128, 128, 128)


def test_sixteen_bit_grey_keeps_its_transparent_value():
    image = Image.new("I;16", (2, 1))
    image.putpixel((0, 0), 1000)
    image.putpixel((1, 0), 1001)  # scales to the same 8-bit grey, stays opaque
    output = decode(ingest_image(encode(image, "PNG", transparency=1000)).data)
    assert output.mode == "RGBA"
    assert [output.getpixel((x, 0))[3] for x in range(2)] == [0, 255]


def test_cmyk_jpeg_becomes_rgb():
    output = decode(ingest_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")).data)
    assert output.mode == "RGB"
    assert is_reddish(output.getpixel((4, 4)))


def test_to_png_reads_any_format_pillow_reads():
    clean = to_png(encode(Image.new("RGB", (12, 8), RED), "TIFF"))
    output = decode(clean.data)
    assert (output.format, output.size) == ("PNG", (12, 8))


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n"])
def test_to_png_raises_invalid_image_for_garbage(data):
    with pytest.raises(InvalidImage):
        to_png(data)


def test_to_png_turns_too_many_pixels_into_invalid_image():
    with pytest.raises(InvalidImage):
        to_png(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=100)


def test_to_png_strips_metadata_from_a_png():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", "hidden words")
    source = Image.new("RGBA", (12, 8), (255, 0, 0, 128))
    data = encode(source, "PNG", pnginfo=info, icc_profile=b"\x00" * 300, dpi=(72, 72))
    clean = to_png(data)
    assert set(png_chunk_types(clean.data)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert decode(clean.data).tobytes() == source.tobytes()


def test_to_png_applies_the_orientation_of_a_png():
    stored = Image.new("RGB", (40, 20), WHITE)
    ImageDraw.Draw(stored).rectangle((0, 0, 9, 9), fill=RED)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    upright = decode(to_png(encode(stored, "PNG", exif=exif.tobytes())).data)
    assert upright.size == (20, 40)
    assert is_reddish(upright.getpixel((15, 4)))
    assert "exif" not in upright.info


def test_thumbnail_is_webp_within_the_size():
    png = ingest_image(encode(Image.new("RGBA", (600, 300), (255, 0, 0, 128)), "PNG")).data
    thumbnail, mime = make_thumbnail(png, size=128)
    assert mime == "image/webp"
    image = decode(thumbnail)
    assert (image.format, image.size) == ("WEBP", (128, 64))
    assert image.mode == "RGBA"


def test_thumbnail_never_upscales():
    thumbnail, _ = make_thumbnail(encode(Image.new("RGB", (40, 20)), "PNG"))
    assert decode(thumbnail).size == (40, 20)


# --- hostile input never escapes as anything but the three errors -------------

EXPECTED_FAILURES = (InvalidImage, UnsupportedImage, ImageTooLarge)
FUZZ_MAX_PIXELS = 4_000_000  # keeps each example cheap; the code path is the same


def _seed_files() -> list[bytes]:
    small = noisy_image((16, 12), seed=7)
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    frames = [small, small.transpose(Image.Transpose.ROTATE_180)]
    return [
        encode(small, "PNG"),
        encode(small.convert("RGBA"), "PNG", interlace=1),
        encode(small.convert("P"), "PNG", transparency=3),
        encode(small.convert("I;16"), "PNG"),
        encode(small, "JPEG", exif=exif.tobytes()),
        encode(small, "JPEG", progressive=True, icc_profile=b"\x00" * 600),
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        encode(small, "WEBP", quality=60),
        encode(small.convert("RGBA"), "WEBP", lossless=True),
        encode(frames[0], "MPO", save_all=True, append_images=frames[1:]),
    ]


SEED_FILES = _seed_files()


def _with_fixed_png_crcs(data: bytes) -> bytes:
    """Recompute chunk CRCs so the mutation reaches the decoder, not the CRC check."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    out, offset = bytearray(PNG_SIGNATURE), len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        out += png_chunk(kind, body) if len(body) == length else data[offset:]
        offset += 12 + length
    return bytes(out)


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED_FILES)))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    result = bytes(data)
    return _with_fixed_png_crcs(result) if draw(st.booleans()) else result


def _ingest_or_expected_failure(data: bytes) -> None:
    try:
        clean = ingest_image(data, max_pixels=FUZZ_MAX_PIXELS)
    except EXPECTED_FAILURES:
        return
    assert clean.data.startswith(PNG_SIGNATURE)
    assert clean.width >= 1 and clean.height >= 1


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@fuzz_settings
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_clean_image_or_a_known_error(data):
    _ingest_or_expected_failure(data)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@fuzz_settings
@given(mutated_images())
def test_mutated_images_give_a_clean_image_or_a_known_error(data):
    _ingest_or_expected_failure(data)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@fuzz_settings
@given(mutated_images())
def test_to_png_of_mutated_images_gives_a_clean_png_or_invalid_image(data):
    try:
        clean = to_png(data, max_pixels=FUZZ_MAX_PIXELS)
    except InvalidImage:
        return
    assert set(png_chunk_types(clean.data)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert decode(clean.data).size == (clean.width, clean.height)
