"""Parity check of to_png's PNG fast path against the full decode + re-encode.

Mutates small PNGs (RGB, RGBA, text chunks, eXIf and XMP orientations, no
compression) byte by byte, truncates some, fixes their CRCs up or not, and
checks that the fast path (``to_png``) and the full path
(``encode_png(decode_image(...))``) accept and refuse the same inputs and give
identical pixels for the accepted ones; then times both on 1 MB of noise.

    .venv/bin/python bench/png_fast_path_check.py --cases 30000
"""

from __future__ import annotations

import argparse
import io
import random
import struct
import sys
import time
import warnings
import zlib
from pathlib import Path

from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.errors import AppError
from app.services.image_codec import decode_image, encode_png, to_png

ORIENTATION = 0x0112


def encode(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def seeds() -> list[bytes]:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "someone")
    text.add_text("prompt", "hidden", zip=True)
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt(
        "XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="1"/></x:xmpmeta>'
    )
    upright, rotated = Image.Exif(), Image.Exif()
    upright[ORIENTATION], rotated[ORIENTATION] = 1, 6
    return [
        encode(noise((16, 12), 1)),
        encode(noise((16, 12), 2).convert("RGBA")),
        encode(noise((20, 10), 3), pnginfo=text),
        encode(noise((9, 9), 4), compress_level=0),
        encode(noise((12, 10), 5), exif=upright.tobytes()),
        encode(noise((12, 10), 6), pnginfo=xmp),
        encode(noise((12, 10), 7), exif=rotated.tobytes()),
    ]


def with_fixed_crcs(data: bytes) -> bytes:
    out, offset = bytearray(data[:8]), 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if len(body) == length:
            out += data[offset : offset + 8] + body + struct.pack(">I", zlib.crc32(kind + body))
        else:
            out += data[offset:]
        offset += 12 + length
    return bytes(out)


def outcome(convert, data: bytes):
    try:
        return convert(data)
    except AppError as error:
        return type(error).__name__


def full_path(data: bytes):
    return encode_png(decode_image(data))


def check(cases: int) -> int:
    rng = random.Random(1)
    originals = seeds()
    counts = {"both_accepted": 0, "both_refused": 0, "mismatch": 0}
    for _ in range(cases):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(0, 6)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        mutated = bytes(data)
        if rng.random() < 0.8:
            mutated = with_fixed_crcs(mutated)
        fast, full = outcome(to_png, mutated), outcome(full_path, mutated)
        if isinstance(fast, str) and isinstance(full, str):
            counts["both_refused"] += 1
        elif isinstance(fast, str) or isinstance(full, str):
            counts["mismatch"] += 1
        else:
            a, b = Image.open(io.BytesIO(fast.data)), Image.open(io.BytesIO(full.data))
            same = (a.mode, a.size, a.tobytes()) == (b.mode, b.size, b.tobytes())
            counts["both_accepted" if same else "mismatch"] += 1
    print(counts)
    return counts["mismatch"]


def timing(repeats: int = 15) -> None:
    side = int((1024 * 1024 / 3) ** 0.5)
    png = encode(noise((side, side), 0), compress_level=1)
    for name, convert in (("fast path (to_png)", to_png), ("full path", full_path)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            convert(png)
            times.append(time.perf_counter() - started)
        print(f"{name}: {sorted(times)[repeats // 2] * 1000:.1f} ms median, {len(png)} B PNG")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=30000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    mismatches = check(args.cases)
    timing()
    sys.exit(1 if mismatches else 0)
