"""Image ingest and output normalisation.

Every upload passes through :func:`ingest_image` and every picture the model
returns through :func:`to_png`, so the rest of the app only ever handles one
kind of image: an upright, metadata-free PNG in RGB or RGBA. Pure Pillow; no
Flask.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ImageTooLarge, InvalidImage, UnsupportedImage
from app.i18n import _l
from app.services.decode_budget import check_jpeg_scans

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_SIDE = 4096

# The allowlist is checked against what Pillow decodes, never the filename or
# the declared content type. Only these parsers ever see uploaded bytes; MPO
# (the multi-picture JPEG some cameras write) is reached through the JPEG
# parser and keeps its first picture.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_ACCEPTED_DECODED_FORMATS = frozenset({*ACCEPTED_FORMATS, "MPO"})

# Level 4 is the knee of the size/time curve (docs/benchmarks.md, "PNG
# level"): close to level 6's and 9's size in a fraction of their time, while
# levels 1-3 double the file. Uploads are encoded once while the user waits,
# then stored and re-sent. optimize=True means zlib level 9 and more.
PNG_COMPRESS_LEVEL = 4
THUMBNAIL_QUALITY = 80

# What Pillow raises for malformed input, per its documentation and its own
# open() loop (which treats IndexError, TypeError and struct.error as "not
# this format"). Warning is here because a run with warnings turned into
# errors makes Pillow's "malformed MPO" and similar warnings exceptions.
_MALFORMED_IMAGE_ERRORS = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    TypeError,
    Warning,
)
_TOO_MANY_PIXELS_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)

# The PNG fast path of to_png (see _strip_png_metadata).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_MODES = {2: "RGB", 6: "RGBA"}  # colour type → Pillow mode, at 8 bits
# Ancillary chunks that change what Pillow decodes: a PNG with one takes the
# full path (tRNS makes RGB into RGBA; the others are APNG frames).
_PNG_PIXEL_ALTERING_CHUNKS = frozenset({b"tRNS", b"acTL", b"fcTL", b"fdAT"})
# Where Pillow finds an EXIF orientation in a PNG: an eXIf chunk, or a text
# chunk with one of these keywords (see Image.getexif).
_PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_ORIENTATION_KEYWORDS = frozenset({b"exif", b"Raw profile type exif", b"XML:com.adobe.xmp"})
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class CleanImage:
    """A sanitized image: PNG bytes with no metadata, RGB or RGBA."""

    data: bytes
    width: int
    height: int
    mime: str = "image/png"
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        # Derived here so the digest can never disagree with the bytes.
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def byte_size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class UploadHeader:
    """What an upload is, read from its header without decoding a pixel."""

    format: str
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def read_upload_header(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> UploadHeader:
    """Everything :func:`ingest_image` refuses before decoding, refused the
    same way, and the size it would decode; nothing is decoded. A request
    with several uploads reads every header first, so a bad last file is
    refused before the first one costs anything."""
    check_upload(data, max_bytes)
    with _open(data, formats=ACCEPTED_FORMATS, max_pixels=max_pixels) as image:
        return UploadHeader(image.format or "unknown", *image.size)


def ingest_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_side: int = DEFAULT_MAX_SIDE,
) -> CleanImage:
    """Validate and sanitize one uploaded image.

    Raises ImageTooLarge (413) past ``max_bytes`` or ``max_pixels``, or for a
    JPEG that would cost too much to decode (code ``image_too_complex``),
    UnsupportedImage (415) for an image format outside the allowlist, and
    InvalidImage (400) for anything that is not a complete image.
    """
    check_upload(data, max_bytes)
    image = _decode(data, formats=ACCEPTED_FORMATS, max_pixels=max_pixels, reduce_to=max_side)
    return encode_png(fit_within(image, max_side))


def check_upload(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """What can be refused without Pillow: the byte size, a JPEG's scans."""
    if len(data) > max_bytes:
        raise ImageTooLarge(
            _l(
                "The file is %(size)s; the limit is %(limit)s.",
                size=_megabytes(len(data)),
                limit=_megabytes(max_bytes),
            ),
            extra={"max_bytes": max_bytes},
        )
    check_jpeg_scans(data)


def to_png(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> CleanImage:
    """Normalise an image the upstream model returned (any format Pillow reads).

    Every failure, an oversized picture included, is an InvalidImage: the
    caller only needs to know the model's output was unusable.
    """
    stripped = _strip_png_metadata(data, max_pixels=max_pixels)
    if stripped is not None:
        return stripped
    try:
        image = decode_image(data, max_pixels=max_pixels)
    except ImageTooLarge as exc:
        raise InvalidImage(exc.message, extra=exc.extra) from exc
    return encode_png(image)


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode any format Pillow reads into a loaded, upright RGB/RGBA image
    whose ``info`` is empty. Raises InvalidImage or ImageTooLarge."""
    return _decode(data, formats=None, max_pixels=max_pixels, reduce_to=None)


def encode_png(image: Image.Image) -> CleanImage:
    """Encode as PNG carrying pixels only: no EXIF, ICC, text or timing chunks."""
    image = _to_rgb_or_rgba(image)
    if image.info:
        # The PNG writer falls back to info for the ICC profile and
        # transparency; a bare copy guarantees nothing rides along.
        image = image.copy()
        image.info = {}
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return CleanImage(data=buffer.getvalue(), width=image.width, height=image.height)


def _strip_png_metadata(data: bytes, *, max_pixels: int) -> CleanImage | None:
    """The fast path of :func:`to_png`: an upstream PNG that is already what
    :func:`encode_png` would make (8-bit RGB or RGBA, not interlaced, upright)
    keeps its pixel chunks byte for byte and loses every other chunk, instead
    of a decode and re-encode (tens of milliseconds for a 1 MB picture).

    Returns None, meaning "take the full path", for anything else or anything
    doubtful. Pillow verifies the original (its chunks before the pixels are
    parsed, every CRC checked; all of it is read when a chunk may carry an
    EXIF orientation), and the result is verified by a full decode.
    """
    parsed = _png_pixel_chunks(data, max_pixels)
    if parsed is None:
        return None
    stripped, (width, height), mode, may_rotate = parsed
    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as original:
            original.verify()
        if may_rotate:
            with Image.open(io.BytesIO(data), formats=("PNG",)) as original:
                original.load()  # text chunks after the pixels are read here
                if original.getexif().get(_ORIENTATION_TAG, 1) != 1:
                    return None
        result = Image.open(io.BytesIO(stripped), formats=("PNG",))
        result.load()
    except (*_MALFORMED_IMAGE_ERRORS, *_TOO_MANY_PIXELS_ERRORS):
        return None  # the full path decodes it again and says what is wrong
    if result.size != (width, height) or result.mode != mode or result.info:
        return None
    return CleanImage(data=stripped, width=width, height=height)


def _png_pixel_chunks(data: bytes, max_pixels: int):
    """Walk the chunks of a PNG at the byte level (their CRCs are left to
    Pillow's verify). For a PNG the fast path can take: (signature + IHDR +
    IDAT... + IEND, size, mode, whether a chunk may carry an EXIF
    orientation); otherwise None."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    view = memoryview(data)
    kept: list[memoryview | bytes] = [_PNG_SIGNATURE]
    offset = len(_PNG_SIGNATURE)
    size = mode = None
    may_rotate = idat_seen = idat_done = False
    chunks_seen = 0
    while offset + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 12 + length
        if end > len(data):
            return None
        if not kind.isalpha():
            return None
        if kind == b"IHDR":
            if size is not None or length != 13:
                return None
            width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(
                ">IIBBBBB", data, offset + 8
            )
            if depth != 8 or colour not in _PNG_COLOUR_MODES or compression or filtering:
                return None
            if interlace or not (0 < width * height <= max_pixels):
                return None
            size, mode = (width, height), _PNG_COLOUR_MODES[colour]
        elif size is None:
            return None  # IHDR must come first
        elif kind == b"IDAT":
            if idat_done:
                return None  # IDAT chunks must be consecutive
            idat_seen = True
        elif kind == b"IEND":
            if not idat_seen:
                return None
            if len(kept) == chunks_seen + 1 and end == len(data):
                return bytes(data), size, mode, may_rotate  # nothing to drop: no copy
            kept.append(view[offset:end])
            return b"".join(kept), size, mode, may_rotate
        elif not kind[0] & 0x20 or kind in _PNG_PIXEL_ALTERING_CHUNKS:
            return None  # PLTE or another critical chunk; transparency; animation
        elif kind == b"eXIf" or (
            kind in _PNG_TEXT_CHUNKS
            and bytes(view[offset + 8 : offset + 8 + min(length, 80)]).partition(b"\0")[0]
            in _PNG_ORIENTATION_KEYWORDS
        ):
            may_rotate = True
        if idat_seen and kind != b"IDAT":
            idat_done = True
        if kind in (b"IHDR", b"IDAT"):
            kept.append(view[offset:end])
        chunks_seen += 1
        offset = end
    return None  # no IEND


def make_thumbnail(
    png: bytes, size: int = 256, quality: int = THUMBNAIL_QUALITY
) -> tuple[bytes, str]:
    """A WEBP copy whose long side is at most ``size`` (never upscaled): the
    thumbnails, and the display-sized renditions the thread shows."""
    if size < 1:
        raise ValueError("thumbnail size must be at least 1 pixel")
    image = decode_image(png)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality)
    return buffer.getvalue(), "image/webp"


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """Downscale (LANCZOS) so the long side is at most ``max_side``."""
    width, height = image.size
    long_side = max(width, height)
    if long_side <= max_side:
        return image
    scale = max_side / long_side
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap=3 shrinks in two steps, which is much faster for big
    # reductions; Pillow documents it as indistinguishable from a single
    # LANCZOS pass in most cases.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _decode(
    data: bytes,
    *,
    formats: tuple[str, ...] | None,
    max_pixels: int,
    reduce_to: int | None,
) -> Image.Image:
    image = _open(data, formats=formats, max_pixels=max_pixels)
    width, height = image.size
    try:
        if reduce_to:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; draft keeps
            # the long side >= reduce_to, so quality is decided by the
            # LANCZOS resize that follows, and memory drops with the scale.
            image.draft(None, (reduce_to, reduce_to))
        # load() raises on truncated data only while the process-wide
        # ImageFile.LOAD_TRUNCATED_IMAGES keeps its default, False. Nothing in
        # this app may set it; tests/test_images.py fails if anything does.
        image.load()
        _apply_exif_orientation(image)
        clean = _to_rgb_or_rgba(image)
    except _TOO_MANY_PIXELS_ERRORS as exc:
        raise _too_many_pixels(max_pixels, width, height) from exc
    except _MALFORMED_IMAGE_ERRORS as exc:
        raise InvalidImage() from exc
    clean.info = {}
    return clean


def _open(data: bytes, *, formats: tuple[str, ...] | None, max_pixels: int) -> Image.Image:
    """The image with its header read and nothing decoded; refused here,
    before any allocation, when it is not one we accept or is too large."""
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except _TOO_MANY_PIXELS_ERRORS as exc:
        # Pillow's own global bomb guard fired while reading the header.
        raise _too_many_pixels(max_pixels) from exc
    except UnidentifiedImageError as exc:
        other_format = _identify_other_format(data) if formats is not None else None
        if other_format:
            raise _unsupported(other_format) from exc
        raise InvalidImage() from exc
    except _MALFORMED_IMAGE_ERRORS as exc:
        raise InvalidImage() from exc

    if formats is not None and image.format not in _ACCEPTED_DECODED_FORMATS:
        raise _unsupported(image.format or "unknown")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage()
    # The header is all that has been read so far: refuse before allocating.
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels, width, height)
    return image


def _identify_other_format(data: bytes) -> str | None:
    """The name of a format outside the allowlist that Pillow recognises.

    This pass only chooses between 415 and 400 and never loads pixels, so
    whatever any parser raises simply means "not an image we recognise".
    """
    if _looks_like_svg(data):
        return "SVG"
    try:
        with Image.open(io.BytesIO(data)) as other:
            return other.format or "unknown"
    except _TOO_MANY_PIXELS_ERRORS:
        return "unknown"
    except Exception:
        return None


_SVG_ROOT = re.compile(rb"<svg[\s>]", re.IGNORECASE)


def _looks_like_svg(data: bytes) -> bool:
    """An SVG is a picture, just not one we accept: say so (415) rather than
    calling it corrupt. Pillow has no SVG reader; the root element tells."""
    head = data[:4096].lstrip()
    return head.startswith((b"<?xml", b"<svg", b"<!DOCTYPE svg")) and bool(_SVG_ROOT.search(head))


def _apply_exif_orientation(image: Image.Image) -> None:
    # Phone pictures re-saved by other apps often carry a damaged EXIF block;
    # their pixels are fine, so keep them and lose only the rotation hint.
    with contextlib.suppress(*_MALFORMED_IMAGE_ERRORS):
        ImageOps.exif_transpose(image, in_place=True)


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    target = "RGBA" if image.has_transparency_data else "RGB"
    if image.mode == target:
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        return _sixteen_bit_grey_to_rgb(image)
    if image.mode == "La":
        # Premultiplied grey has no direct route to RGBA; un-premultiply first.
        image = image.convert("LA")
    return image.convert(target)


def _sixteen_bit_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit grey (as PNG stores it) scaled to 8 bits; Pillow's own
    conversion clips everything above 255 to white."""
    wide = image.convert("I")
    grey = wide.point([round(value / 257) for value in range(65536)], "L")
    transparent = image.info.get("transparency")
    if not isinstance(transparent, int):
        return Image.merge("RGB", (grey, grey, grey))
    # tRNS names one 16-bit value; match it before scaling merges neighbours.
    alpha = wide.point([0 if value == transparent else 255 for value in range(65536)], "L")
    return Image.merge("RGBA", (grey, grey, grey, alpha))


def _too_many_pixels(
    max_pixels: int, width: int | None = None, height: int | None = None
) -> ImageTooLarge:
    if width and height:
        message = _l(
            "The image is %(width)s×%(height)s (%(pixels)s pixels); the limit is "
            "%(max_pixels)s pixels.",
            width=width,
            height=height,
            pixels=f"{width * height:,}",
            max_pixels=f"{max_pixels:,}",
        )
    else:
        message = _l(
            "The image has more than the limit of %(max_pixels)s pixels.",
            max_pixels=f"{max_pixels:,}",
        )
    return ImageTooLarge(message, extra={"max_pixels": max_pixels})


def _unsupported(format_name: str) -> UnsupportedImage:
    return UnsupportedImage(
        _l("%(format)s images are not supported. Use PNG, JPEG, WEBP or GIF.", format=format_name),
        extra={"format": format_name},
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
