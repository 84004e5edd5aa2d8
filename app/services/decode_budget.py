"""What decoding uploads may cost, and how many decode at once.

Decoding is the one step of a request whose CPU and memory a stranger
chooses: a progressive JPEG pays a full pass over its coefficients for every
scan it carries, and a small PNG can declare fifty megapixels. So the cost is
read from the file's structure before any pixel is decoded (scans of a JPEG,
pixels of every upload of the request), and the decoding itself runs in a
few slots with a short, bounded queue in front of them: past that, the
request is refused at once, busy, and the threads stay free for everyone
else. Pure Python; no Flask.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from app.errors import Busy, ImageTooLarge
from app.i18n import LazyMessage, _l

# libjpeg's default progressive script writes 10 scans (6 for greyscale);
# mozjpeg's optimised scripts stay in the same range. Each scan costs one
# pass over the whole image's coefficients (docs/reliability.md has the
# figures of bench/hostile_uploads.py), and a repeated 75-byte
# refinement scan is valid JPEG: a 10 MB upload could hold some 130,000.
MAX_JPEG_SCANS = 64
# Markers between the start of the file and its end: a camera JPEG has a
# dozen or two, a progressive one with tables per scan well under 200.
# Bounding them bounds this walk (and Pillow's own header loop) too.
MAX_JPEG_SEGMENTS = 1024
# Seconds a client told "busy" waits before trying again: about one decode
# of a large upload.
DECODE_RETRY_AFTER_S = 5

_JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (C4 DHT, C8 JPG and CC DAC share the range).
_SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC)})
_SOF_MARKERS |= frozenset(range(0xCD, 0xD0))
_SOS, _EOI = 0xDA, 0xD9
# Markers with no length field: TEM and the restart markers.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
# Where a scan's entropy-coded data ends: a 0xFF that is neither a stuffed
# zero nor a restart marker (fill bytes 0xFF 0xFF included).
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def check_jpeg_scans(data: bytes) -> int:
    """The number of scans in the first picture of a JPEG (0 for anything
    else); ImageTooLarge, code ``image_too_complex``, past MAX_JPEG_SCANS or
    MAX_JPEG_SEGMENTS.

    Only markers are read: a regular expression skips each scan's data, so
    a 10 MB file is walked in milliseconds. Anything malformed ends the walk
    without a verdict; Pillow then says what is wrong with it.
    """
    if not data.startswith(_JPEG_SOI):
        return 0
    size = len(data)
    offset, scans, segments = 2, 0, 0
    while offset < size and data[offset] == 0xFF:
        while offset < size and data[offset] == 0xFF:
            offset += 1  # fill bytes before a marker
        if offset >= size:
            break
        marker = data[offset]
        offset += 1
        if marker == _EOI:
            break  # an MPO's later pictures are never decoded
        if marker in _STANDALONE_MARKERS:
            continue
        if offset + 2 > size:
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_complex(_l("more than %(count)s segments", count=f"{MAX_JPEG_SEGMENTS:,}"))
        end = offset + int.from_bytes(data[offset : offset + 2], "big")
        if marker != _SOS:
            offset = end
            continue
        scans += 1
        if scans > MAX_JPEG_SCANS:
            raise _too_complex(
                _l(
                    "more than %(count)s scans (an ordinary progressive JPEG has about 10)",
                    count=MAX_JPEG_SCANS,
                )
            )
        found = _ENTROPY_END.search(data, end)
        if found is None:
            break  # truncated in the scan's data
        offset = found.start()
    return scans


def check_request_pixels(sizes: Sequence[tuple[int, int]], max_pixels: int) -> int:
    """The pixels every upload of one request will decode to, from their
    headers; ImageTooLarge, code ``request_too_large``, past ``max_pixels``."""
    total = sum(width * height for width, height in sizes)
    if total > max_pixels:
        raise ImageTooLarge(
            _l(
                "The %(count)s images add up to %(total)s pixels; one request may carry "
                "%(max_pixels)s. Send fewer or smaller images.",
                count=len(sizes),
                total=f"{total:,}",
                max_pixels=f"{max_pixels:,}",
            ),
            code="request_too_large",
            extra={"max_request_pixels": max_pixels},
        )
    return total


class DecodeSlots:
    """At most ``concurrency`` requests decode their uploads at once, at most
    ``max_waiting`` more wait for a slot, each at most ``wait_s`` seconds;
    anyone else is refused at once with Busy (503 and Retry-After).

    Peak decoding memory is then about ``concurrency`` times one upload at
    the pixel limit: 4 bytes a pixel decoded, plus the resize's intermediate
    and result, about 7.5 bytes a pixel in all (370 MB at 50 megapixels).
    The threads held by uploads are at most ``concurrency + max_waiting``.
    """

    def __init__(self, concurrency: int, max_waiting: int, wait_s: float) -> None:
        self.concurrency = max(1, concurrency)
        self.max_waiting = max(0, max_waiting)
        self.wait_s = max(0.0, wait_s)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            self._wait_for_a_slot()
        try:
            yield
        finally:
            self._slots.release()

    def _wait_for_a_slot(self) -> None:
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise _busy()
            self._waiting += 1
        try:
            acquired = self._slots.acquire(timeout=self.wait_s)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise _busy()


def _too_complex(what: LazyMessage) -> ImageTooLarge:
    return ImageTooLarge(
        _l(
            "The JPEG has %(what)s; decoding it would take too long. "
            "Save it again as an ordinary JPEG or a PNG.",
            what=what,
        ),
        code="image_too_complex",
        extra={"max_jpeg_scans": MAX_JPEG_SCANS},
    )


def _busy() -> Busy:
    return Busy(
        _l("The server is busy reading other uploads. Try again in a few seconds."),
        retry_after=DECODE_RETRY_AFTER_S,
    )
