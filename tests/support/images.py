"""Images made in code (no binary files in the repo).

`png_bytes` is the one plain-picture factory of the tests, the browser tests
and the benchmarks; the others are pictures with a purpose (a marker to see
rotations, an EXIF orientation, a decompression bomb).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image


def png_bytes(color=(200, 180, 40), size=(32, 24), mode="RGB") -> bytes:
    """A PNG of one colour (an RGB tuple or a name Pillow knows)."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def marked_png(size=(60, 40)) -> bytes:
    """Yellow with a red block in the top-left corner, to see rotations."""
    image = Image.new("RGB", size, (230, 200, 40))
    image.paste((255, 0, 0), (0, 0, 10, 10))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """Stored 60x40 landscape with orientation 6: displayed upright it is 40x60."""
    image = Image.new("RGB", (60, 40), (30, 120, 220))
    image.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "SecretCam"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buffer, "TIFF")
    return buffer.getvalue()


def bomb_png(width=20000, height=10000) -> bytes:
    """A 200-megapixel 1-bit PNG of a few dozen KB, written chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image
