"""The hostile upload corpus, built in code (no binary files in the repo).

Each entry is a file an attacker, a broken client or an unlucky phone could
upload, with the answer the API documents for it:

- refused: the error shape with a documented 4xx status and code;
- accepted: 200, and every picture that comes back or is stored is a PNG of
  pixels only (no EXIF, ICC, text, comments, trailing bytes).

    python scripts/make_hostile_corpus.py OUT_DIR     # write the files to look at

tests/reliability/test_hostile_uploads.py posts each one to /v1/edit (and a
few to /v1/compose) against the app in process and against `python wsgi.py`;
tests/reliability/test_review_uploads.py and bench/hostile_uploads.py send the
costly ones (scan bombs, pictures at the pixel limits) in parallel.
"""

from __future__ import annotations

import functools
import io
import random
import re
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

BOMB_SIZE = (20_000, 10_000)  # 200 megapixels
ICC_PROFILE_BYTES = 256 * 1024
GIF_FRAMES = 1_000
MANY_FILES = 50
HUGE_BODY_BYTES = 100 * 1024 * 1024
# A progressive JPEG whose last refinement scan is repeated: every copy is a
# valid scan that costs the decoder a pass over all the coefficients.
SCAN_BOMB_SIZE = (2_000, 2_000)
SCAN_BOMB_SCANS = 2_000
# The documented limits: MAX_IMAGE_PIXELS (50 MP) is about 7071², and
# /v1/compose takes at most 14 images.
LIMIT_SIDE = 7_071
MAX_COMPOSE_IMAGES = 14


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str
    data: bytes
    status: int  # what POST /v1/edit answers
    code: str | None  # the error code, None when accepted
    why: str


# ---------------------------------------------------------------- builders


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _picture(size=(64, 48)) -> Image.Image:
    """Not flat, so truncation cuts real image data."""
    rng = random.Random(size[0] * 7919 + size[1])
    image = Image.new("RGB", size)
    image.putdata(
        [
            (x * 4 % 256, y * 5 % 256, rng.randrange(256))
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    return image


@functools.lru_cache(maxsize=1)
def bomb_png() -> bytes:
    """20,000 x 10,000 8-bit grey, all black: 200 megapixels (200 MB decoded)
    in a few hundred KB. Written chunk by chunk; Pillow never holds it."""
    width, height = BOMB_SIZE
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def truncated_png() -> bytes:
    data = _save(_picture((256, 256)), "PNG")
    return data[: len(data) // 2]


def truncated_jpeg() -> bytes:
    data = _save(_picture((256, 256)), "JPEG", quality=90)
    return data[: len(data) // 2]


def random_bytes() -> bytes:
    return random.Random(1234).randbytes(64 * 1024)


def png_zip_polyglot() -> bytes:
    """A valid PNG with a ZIP archive (holding a script) appended: a PNG to
    image parsers, a ZIP to unzip. What we keep must be the PNG only."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return _save(_picture(), "PNG") + archive.getvalue()


def many_frame_gif() -> bytes:
    """1,000 distinct 64 x 64 frames (a dot walking across a grey ramp)."""
    base = Image.linear_gradient("L").resize((64, 64))
    frames = []
    for n in range(GIF_FRAMES):
        frame = base.copy()
        frame.putpixel((n % 64, n // 64 % 64), 255 - n % 256)
        frames.append(frame.convert("P"))
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)


def exif_orientation_6() -> bytes:
    """60 x 40 stored, displayed 40 x 60 (rotate 90 clockwise), red corner
    top-left of the stored pixels, camera make and GPS in the EXIF."""
    image = Image.new("RGB", (60, 40), (30, 120, 220))
    image.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0)}  # GPS IFD
    return _save(image, "JPEG", exif=exif.tobytes(), quality=95)


def icc_and_comment_jpeg() -> bytes:
    """A 256 KB ICC profile (split over APP2 markers) and a JPEG comment."""
    profile = b"\x00" * 128 + random.Random(5).randbytes(ICC_PROFILE_BYTES - 128)
    return _save(
        _picture(),
        "JPEG",
        icc_profile=profile,
        comment=b"secret comment: " + b"A" * 60_000,
        quality=90,
    )


def psd() -> bytes:
    """A minimal Photoshop file (Pillow reads PSD but we don't accept it)."""
    width, height, channels = 16, 8, 3
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, height, width, 8, 3)
    sections = struct.pack(">I", 0) * 3  # colour mode data, resources, layers
    pixels = struct.pack(">H", 0) + bytes(width * height * channels)  # raw planes
    return header + sections + pixels


def tiff() -> bytes:
    return _save(_picture(), "TIFF")


def ico() -> bytes:
    return _save(_picture((32, 32)), "ICO")


def svg() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" '
        b'height="64"><script>alert(1)</script><rect width="64" height="64" fill="red"/></svg>'
    )


def html_named_png() -> bytes:
    return b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def small_png(n: int = 0) -> bytes:
    return _save(Image.new("RGB", (24, 16), (n * 5 % 256, 80, 160)), "PNG")


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(start, marker, end) of each segment of a JPEG up to EOI; a scan's
    segment runs to the end of its entropy-coded data."""
    scan_end = re.compile(rb"\xff[^\x00\xd0-\xd7]")
    offset, segments = 2, []
    while offset < len(data):
        marker = data[offset + 1]
        if marker == 0xD9:
            segments.append((offset, marker, offset + 2))
            break
        end = offset + 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        if marker == 0xDA:
            end = scan_end.search(data, end).start()
        segments.append((offset, marker, end))
        offset = end
    return segments


def progressive_jpeg(size=(64, 48)) -> bytes:
    """An ordinary progressive JPEG (libjpeg's script: 10 scans)."""
    return _save(_picture(size), "JPEG", progressive=True, quality=85)


def scan_bomb_jpeg(size=SCAN_BOMB_SIZE, scans: int = SCAN_BOMB_SCANS) -> bytes:
    """A flat progressive JPEG with its last scan (a refinement scan) repeated
    until it has `scans` scans: about 75 bytes a scan, so 2,000 scans at
    7000² fit in 378 KB and take libjpeg about a minute."""
    data = _save(Image.new("RGB", size, (120, 130, 140)), "JPEG", progressive=True, quality=75)
    segments = _jpeg_segments(data)
    sos = [(start, end) for start, marker, end in segments if marker == 0xDA]
    start, end = sos[-1]
    eoi = segments[-1][0]
    return data[:eoi] + data[start:end] * (scans - len(sos)) + data[eoi:]


@functools.lru_cache(maxsize=2)
def flat_png(side: int = LIMIT_SIDE) -> bytes:
    """side × side RGB in one colour: at 7071², 50 megapixels (200 MB
    decoded) in about 160 KB."""
    return _save(Image.new("RGB", (side, side), (10, 200, 30)), "PNG")


# ---------------------------------------------------------------- the corpus


def corpus() -> list[Sample]:
    """Single-file uploads and what POST /v1/edit must answer."""
    return [
        Sample(
            "bomb_200mp",
            "bomb.png",
            bomb_png(),
            413,
            "image_too_large",
            "200 MP: refused from the header",
        ),
        Sample("truncated_png", "cut.png", truncated_png(), 400, "invalid_image", "half a PNG"),
        Sample("truncated_jpeg", "cut.jpg", truncated_jpeg(), 400, "invalid_image", "half a JPEG"),
        Sample("zero_bytes", "empty.png", b"", 400, "invalid_image", "an empty file"),
        Sample("random_bytes", "noise.png", random_bytes(), 400, "invalid_image", "64 KB of noise"),
        Sample(
            "html_as_png", "page.png", html_named_png(), 400, "invalid_image", "HTML named .png"
        ),
        Sample("svg", "vector.svg", svg(), 415, "unsupported_image", "SVG with a script"),
        Sample("psd", "layers.psd", psd(), 415, "unsupported_image", "Photoshop"),
        Sample("tiff", "scan.tiff", tiff(), 415, "unsupported_image", "TIFF"),
        Sample("ico", "favicon.ico", ico(), 415, "unsupported_image", "Windows icon"),
        Sample(
            "jpeg_scan_bomb",
            "scans.jpg",
            scan_bomb_jpeg(),
            413,
            "image_too_complex",
            f"{SCAN_BOMB_SCANS:,} scans: refused from its markers",
        ),
        Sample(
            "progressive_jpeg",
            "progressive.jpg",
            progressive_jpeg(),
            200,
            None,
            "accepted; an ordinary progressive JPEG",
        ),
        Sample(
            "png_zip_polyglot",
            "poly.png",
            png_zip_polyglot(),
            200,
            None,
            "accepted; the ZIP tail is dropped",
        ),
        Sample(
            "gif_1000_frames",
            "anim.gif",
            many_frame_gif(),
            200,
            None,
            "accepted; first frame only",
        ),
        Sample(
            "exif_orientation_6",
            "phone.jpg",
            exif_orientation_6(),
            200,
            None,
            "accepted; turned upright, EXIF dropped",
        ),
        Sample(
            "icc_and_comment",
            "profile.jpg",
            icc_and_comment_jpeg(),
            200,
            None,
            "accepted; profile and comment dropped",
        ),
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-5].strip())
        print("usage: python scripts/make_hostile_corpus.py OUT_DIR")
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for sample in corpus():
        (out / f"{sample.name}__{sample.filename}").write_bytes(sample.data)
        expected = sample.code or "accepted"
        print(f"{sample.name:20} {len(sample.data):>10,} B  -> {sample.status} {expected}")
    for n in range(MANY_FILES):
        (out / f"many_{n:02}.png").write_bytes(small_png(n))
    print(f"{'many_files':20} {MANY_FILES:>10} files -> 400 too_many_images")
    print(
        f"{'huge_body':20} {HUGE_BODY_BYTES:>10,} B  -> 413 payload_too_large (sent, not written)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
