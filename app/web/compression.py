"""gzip for text answers, when the client accepts it.

The page's HTML, its JSON (a history page is tens of KB of prompts and
URLs) and every script and stylesheet shrink to a fifth or less. Static
files are compressed once and kept (app/web/assets.py); everything else is
compressed here, after the view, when it is worth it:

- a text type (HTML, CSS, JavaScript, JSON, SVG, CSV...), never an event
  stream and never a picture (PNG, JPEG and WEBP are compressed already);
- a whole body of MIN_BYTES to MAX_BYTES: a streamed response (event streams,
  files sent by path) is left as it is;
- a client that sent ``Accept-Encoding: gzip``.

Every answer of a compressible type says ``Vary: Accept-Encoding``, so a
shared cache never hands the gzip body to a client that did not ask for it.
A strong ETag becomes weak on the compressed body (the same content, other
bytes), as nginx does. The config key ``COMPRESS_RESPONSES = False`` turns
it off (the benchmark's "before": bench/page_weight.py).
"""

from __future__ import annotations

import gzip

from flask import Flask, current_app, request

# Below this, gzip's header and the work cost more than they save.
MIN_BYTES = 1024
# Above this the body is base64 pictures (a generation's answer): PNG data
# gzip can't shrink by more than base64's quarter, at ~30 ms of CPU a MB on
# the request thread. Left as they are.
MAX_BYTES = 1024 * 1024
# Answers made per request: level 6 (zlib's default) is within a few per
# cent of 9 in a fraction of the time. Static files, compressed once, take 9.
DYNAMIC_LEVEL = 6
STATIC_LEVEL = 9
COMPRESSIBLE_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/problem+json",
        "application/xml",
        "image/svg+xml",
    }
)
NEVER = frozenset({"text/event-stream"})


def init_compression(app: Flask) -> None:
    app.config.setdefault("COMPRESS_RESPONSES", True)


def compressible(mimetype: str | None) -> bool:
    if not mimetype or mimetype in NEVER:
        return False
    return mimetype.startswith("text/") or mimetype in COMPRESSIBLE_TYPES


def accepts_gzip(req) -> bool:
    """gzip named (or `*`) with a quality above zero."""
    return req.accept_encodings["gzip"] > 0


def gzip_bytes(data: bytes, level: int = DYNAMIC_LEVEL) -> bytes:
    # mtime=0: the same input gives the same bytes (stable per-encoding ETags).
    return gzip.compress(data, compresslevel=level, mtime=0)


def compress_response(response):
    """After the view: the body gzip-compressed when type, size and the
    client allow it."""
    if not current_app.config.get("COMPRESS_RESPONSES", True):
        return response
    if not compressible(response.mimetype) or "Content-Encoding" in response.headers:
        return response
    if "accept-encoding" in response.vary:
        return response  # its view chose an encoding already (static files)
    if response.is_streamed or response.direct_passthrough:
        return response
    if response.status_code < 200 or response.status_code in (204, 206, 304):
        return response
    if "no-transform" in (response.headers.get("Cache-Control") or ""):
        return response
    length = response.calculate_content_length()
    if length is not None and length > MAX_BYTES:
        return response
    data = response.get_data()
    if not MIN_BYTES <= len(data) <= MAX_BYTES:
        return response
    response.vary.add("Accept-Encoding")
    if not accepts_gzip(request):
        return response
    packed = gzip_bytes(data)
    if len(packed) >= len(data):
        return response
    response.set_data(packed)  # Content-Length follows
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    return response
