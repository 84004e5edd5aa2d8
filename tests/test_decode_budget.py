"""What decoding uploads may cost (app/services/decode_budget.py): JPEG scans
counted from the markers, pixels summed over a request, and the decode slots
with their bounded queue."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from app.errors import Busy, ImageTooLarge
from app.services import image_codec
from app.services.decode_budget import (
    DECODE_RETRY_AFTER_S,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    DecodeSlots,
    check_jpeg_scans,
    check_request_pixels,
)
from app.services.image_codec import ingest_image, read_upload_header
from tests.reliability.support import load_script

corpus = load_script("make_hostile_corpus")


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def noise(size=(200, 120)) -> Image.Image:
    return Image.effect_noise(size, 60).convert("RGB")


@pytest.mark.parametrize(
    ("options", "mode", "scans"),
    [
        ({}, "RGB", 1),
        ({"progressive": True}, "RGB", 10),
        ({"progressive": True}, "L", 6),
        ({"progressive": True, "restart_marker_blocks": 1}, "RGB", 10),
        ({"restart_marker_blocks": 1}, "RGB", 1),
    ],
)
def test_scans_are_counted_from_the_markers(options, mode, scans):
    assert check_jpeg_scans(jpeg(noise().convert(mode), **options)) == scans


def test_other_formats_have_no_scans():
    buffer = io.BytesIO()
    noise().save(buffer, "PNG")
    assert check_jpeg_scans(buffer.getvalue()) == 0
    assert check_jpeg_scans(b"") == 0


def test_as_many_scans_as_the_limit_are_decoded():
    data = corpus.scan_bomb_jpeg((64, 64), MAX_JPEG_SCANS)
    assert check_jpeg_scans(data) == MAX_JPEG_SCANS
    assert ingest_image(data).width == 64


def test_one_scan_past_the_limit_is_refused_before_pillow_opens_it(monkeypatch):
    data = corpus.scan_bomb_jpeg((64, 64), MAX_JPEG_SCANS + 1)

    def never(*args, **kwargs):
        raise AssertionError("Pillow was handed a scan bomb")

    monkeypatch.setattr(image_codec.Image, "open", never)
    for ingest in (ingest_image, read_upload_header):
        with pytest.raises(ImageTooLarge) as refused:
            ingest(data)
        assert refused.value.code == "image_too_complex"
        assert refused.value.status == 413
        assert str(MAX_JPEG_SCANS) in refused.value.text("en")
        # The nested "more than N scans" is rendered in the outer message's language.
        assert f"超过 {MAX_JPEG_SCANS} 个扫描" in refused.value.text("zh")


def test_the_scans_a_ten_megabyte_upload_could_hold_are_refused_in_milliseconds():
    data = corpus.scan_bomb_jpeg((256, 256), 130_000)
    started = time.process_time()
    with pytest.raises(ImageTooLarge):
        check_jpeg_scans(data)
    # The walk stops at the 65th scan; a decode would take minutes.
    assert time.process_time() - started < 0.5


def test_fill_bytes_before_markers_are_skipped():
    data = jpeg(noise(), progressive=True)
    padded = data.replace(b"\xff\xda", b"\xff\xff\xff\xda").replace(b"\xff\xc4", b"\xff\xff\xc4")
    assert check_jpeg_scans(padded) == 10
    assert ingest_image(padded).width == 200


def test_a_flood_of_empty_segments_is_refused():
    data = jpeg(noise())
    comments = b"\xff\xfe\x00\x02" * (MAX_JPEG_SEGMENTS + 1)
    with pytest.raises(ImageTooLarge) as refused:
        check_jpeg_scans(data[:2] + comments + data[2:])
    assert refused.value.code == "image_too_complex"


def test_what_follows_the_first_picture_is_not_walked():
    """An MPO's (or a polyglot's) later pictures are never decoded."""
    data = jpeg(noise()) + corpus.scan_bomb_jpeg((64, 64), MAX_JPEG_SCANS * 2)
    assert check_jpeg_scans(data) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8",
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xda\x00",
        b"\xff\xd8\x00\x00garbage",
        b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00 no end",
    ],
)
def test_malformed_jpegs_are_left_to_pillow(data):
    assert check_jpeg_scans(data) <= 1


def test_request_pixels_add_up_to_the_limit():
    assert check_request_pixels([(100, 50), (50, 100)], 10_000) == 10_000
    with pytest.raises(ImageTooLarge) as refused:
        check_request_pixels([(100, 50), (50, 100), (1, 1)], 10_000)
    assert refused.value.code == "request_too_large"
    assert refused.value.extra == {"max_request_pixels": 10_000}
    assert "10,001" in refused.value.text("en") and "10,001" in refused.value.text("zh")


def test_read_upload_header_decodes_nothing():
    data = corpus.flat_png()
    started = time.process_time()
    header = read_upload_header(data)
    assert (header.format, header.size) == ("PNG", (corpus.LIMIT_SIDE, corpus.LIMIT_SIDE))
    assert time.process_time() - started < 0.2  # a decode takes seconds


def hold_in_thread(slots: DecodeSlots, release: threading.Event) -> threading.Thread:
    entered = threading.Event()

    def hold():
        with slots.hold():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert entered.wait(5)
    return thread


def test_slots_bound_how_many_decode_at_once():
    slots = DecodeSlots(concurrency=2, max_waiting=0, wait_s=5)
    release = threading.Event()
    holders = [hold_in_thread(slots, release) for _ in range(2)]
    with pytest.raises(Busy) as refused, slots.hold():
        pass
    assert refused.value.status == 503
    assert refused.value.retry_after == DECODE_RETRY_AFTER_S
    release.set()
    for thread in holders:
        thread.join(5)
    with slots.hold():
        pass


def test_a_waiter_gets_the_slot_when_it_is_released():
    slots = DecodeSlots(concurrency=1, max_waiting=1, wait_s=5)
    release = threading.Event()
    holder = hold_in_thread(slots, release)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    with slots.hold():
        waited = time.monotonic() - started
    holder.join(5)
    assert 0.1 < waited < 4


def test_the_queue_is_bounded_and_so_is_the_wait():
    slots = DecodeSlots(concurrency=1, max_waiting=1, wait_s=0.3)
    release = threading.Event()
    holder = hold_in_thread(slots, release)
    outcomes = []

    def wait_for_a_turn():
        started = time.monotonic()
        try:
            with slots.hold():
                outcomes.append("decoded")
        except Busy:
            outcomes.append(("busy", time.monotonic() - started))

    waiter = threading.Thread(target=wait_for_a_turn)
    waiter.start()
    deadline = time.monotonic() + 5
    while slots.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(Busy), slots.hold():  # the one queue place is taken: refused at once
        pass
    assert time.monotonic() - started < 1.0  # not the 10 s queue timeout
    waiter.join(5)
    [(outcome, waited)] = outcomes
    assert outcome == "busy" and 0.25 < waited < 2
    assert slots.waiting == 0
    release.set()
    holder.join(5)


def test_a_failed_decode_gives_its_slot_back():
    slots = DecodeSlots(concurrency=1, max_waiting=0, wait_s=0)
    with pytest.raises(ValueError), slots.hold():
        raise ValueError("corrupt")
    with slots.hold():
        pass
