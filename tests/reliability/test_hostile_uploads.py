"""Hostile uploads (scripts/make_hostile_corpus.py) through POST /v1/edit and
/v1/compose: each refused one gets its documented 4xx in the error shape and
leaves nothing behind; each accepted one comes back, and is stored, as a PNG
of pixels only. Then the whole corpus against `python wsgi.py`, whose
resident memory is sampled throughout."""

from __future__ import annotations

import base64
import io
import socket
import struct

import pytest
from PIL import Image

from tests.reliability.support import (
    RssSampler,
    http_json,
    load_script,
    multipart,
    post_raw,
    report,
    server_process,
)

corpus = load_script("make_hostile_corpus")
SAMPLES = corpus.corpus()
# Chunks a pixels-only PNG may have; text, EXIF, ICC, time, physical size,
# gamma and colour chunks all carry something other than the pixels.
PIXEL_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
# The server's resident memory may grow by this much at peak while the
# whole corpus (a 200-megapixel bomb and a 100 MB body included) goes in.
MAX_RSS_GROWTH = 150 * 1024 * 1024


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG; fails on bytes after IEND (a polyglot tail)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, kinds = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        kinds.append(kind)
        offset += 12 + length
        if kind == b"IEND":
            break
    assert offset == len(data), f"{len(data) - offset} bytes after IEND"
    return kinds


def assert_pixels_only(data: bytes) -> Image.Image:
    kinds = png_chunks(data)
    assert set(kinds) <= PIXEL_CHUNKS, kinds
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert not image.getexif()
    assert not {"icc_profile", "exif", "comment", "dpi", "gamma"} & set(image.info)
    return image


def edit(client, headers, files, *, conv_id=None, path="/v1/edit"):
    data = {"prompt": "make it purple", "files": [(io.BytesIO(b), name) for name, b in files]}
    if conv_id is not None:
        data["conv_id"] = str(conv_id)
    return client.post(path, data=data, headers=headers, content_type="multipart/form-data")


@pytest.fixture
def logged_in(client, auth):
    auth.signup()
    conv_id = client.post("/conversations", json={}, headers=auth.headers()).get_json()["id"]
    return auth.headers(), conv_id


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_each_hostile_file(client, logged_in, sample):
    headers, conv_id = logged_in
    response = edit(client, headers, [(sample.filename, sample.data)], conv_id=conv_id)
    body = response.get_json()
    assert response.status_code == sample.status, body
    messages = client.get(f"/conversations/{conv_id}/messages").get_json()["items"]
    if sample.code:
        assert body["error"] == sample.code
        assert body["message"] == body["detail"]
        assert messages == []  # nothing is written for a refused request
        return
    # Accepted: the answer and both stored pictures (input and output) are clean.
    output = assert_pixels_only(base64.b64decode(body["images"][0]))
    user_message, reply = messages
    stored_input = client.get(user_message["input_images"][0]["url"]).data
    stored_output = client.get(reply["images"][0]["url"]).data
    upright = assert_pixels_only(stored_input)
    assert_pixels_only(stored_output)
    if sample.name == "exif_orientation_6":
        assert upright.size == output.size == (40, 60)
        assert upright.getpixel((35, 5))[0] > 200  # the red corner, turned top-right


def test_fifty_files_in_one_request(client):
    files = [(f"{n}.png", corpus.small_png(n)) for n in range(corpus.MANY_FILES)]
    for path in ("/v1/edit", "/v1/compose"):
        response = edit(client, {}, files, path=path)
        assert response.status_code == 400
        assert response.get_json()["error"] == "too_many_images"


@pytest.mark.parametrize(
    ("names", "status", "code"),
    [
        (("bomb_200mp", "exif_orientation_6"), 413, "image_too_large"),
        (("exif_orientation_6", "svg"), 415, "unsupported_image"),
        (("png_zip_polyglot", "tiff"), 415, "unsupported_image"),
    ],
)
def test_one_bad_file_among_good_ones_refuses_the_compose(client, names, status, code):
    by_name = {s.name: s for s in SAMPLES}
    files = [(by_name[n].filename, by_name[n].data) for n in names]
    response = edit(client, {}, files, path="/v1/compose")
    assert response.status_code == status
    assert response.get_json()["error"] == code


@pytest.fixture
def decodes(monkeypatch):
    """Every upload decoded in this test (generation's ingest_image calls)."""
    from app.services import generation

    seen = []
    real = generation.ingest_image

    def counted(data, **limits):
        seen.append(len(data))
        return real(data, **limits)

    monkeypatch.setattr(generation, "ingest_image", counted)
    return seen


def test_fourteen_pictures_at_the_pixel_limit_are_refused_before_decoding(client, decodes):
    big = corpus.flat_png()  # 50 megapixels, within MAX_IMAGE_PIXELS on its own
    files = [(f"{n}.png", big) for n in range(corpus.MAX_COMPOSE_IMAGES)]
    response = edit(client, {}, files, path="/v1/compose")
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "request_too_large"
    assert f"{corpus.MAX_COMPOSE_IMAGES * corpus.LIMIT_SIDE**2:,}" in body["message"]
    assert decodes == []


def test_request_pixels_count_every_upload(app_factory):
    client = app_factory(MAX_REQUEST_PIXELS=24 * 16 * 3).test_client()
    three = [(f"{n}.png", corpus.small_png(n)) for n in range(3)]  # 24 × 16 each
    assert edit(client, {}, three, path="/v1/compose").status_code == 200
    response = edit(client, {}, [*three, ("4.png", corpus.small_png(4))], path="/v1/compose")
    assert (response.status_code, response.get_json()["error"]) == (413, "request_too_large")


def test_a_bad_last_file_is_refused_before_the_first_is_decoded(client, decodes):
    by_name = {s.name: s for s in SAMPLES}
    for bad in ("jpeg_scan_bomb", "svg", "bomb_200mp"):
        files = [("a.png", corpus.small_png(1)), (by_name[bad].filename, by_name[bad].data)]
        response = edit(client, {}, files, path="/v1/compose")
        assert response.status_code == by_name[bad].status, bad
        assert response.get_json()["error"] == by_name[bad].code
    assert decodes == []


def test_uploads_beyond_the_decode_slots_and_queue_are_busy(app_factory, monkeypatch):
    from app.services import generation, image_codec

    app = app_factory(DECODE_CONCURRENCY=1, DECODE_MAX_QUEUE=0)
    with app.app_context():
        slots = generation._decode_slots()
    opened = []
    real_open = image_codec.Image.open
    monkeypatch.setattr(
        image_codec.Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k)
    )
    with slots.hold():  # another request is decoding
        response = edit(app.test_client(), {}, [("a.png", corpus.small_png(1))])
    assert opened == []  # Pillow sees uploads only inside a slot, headers included
    assert response.status_code == 503
    assert response.get_json()["error"] == "busy"
    assert int(response.headers["Retry-After"]) >= 1
    assert edit(app.test_client(), {}, [("a.png", corpus.small_png(1))]).status_code == 200


def test_hundred_megabyte_body_in_process(client):
    body = b"x" * corpus.HUGE_BODY_BYTES
    response = client.post("/v1/edit", data=body, content_type="multipart/form-data; boundary=zzz")
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def send_huge_body(port: int, size: int) -> tuple[int, bytes]:
    """Stream `size` bytes of body at the server until it answers or drops
    us; (bytes sent, the raw answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            (
                "POST /v1/edit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: multipart/form-data; boundary=zzz\r\n"
                f"Content-Length: {size}\r\n\r\n"
            ).encode()
        )
        chunk, sent = b"x" * 65536, 0
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # refused mid-body: the answer is already waiting
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except OSError:
            pass
    return sent, answer


@pytest.mark.slow
def test_corpus_against_the_real_server(tmp_path):
    with server_process(tmp_path / "server") as server:
        status, body, _ = http_json(
            "POST", server.url("/auth/signup"), {"username": "alice", "password": "pw-123456789"}
        )
        assert status == 201
        answers = {}
        with RssSampler(server.process.pid) as memory:
            for sample in SAMPLES:
                data, content_type = multipart(
                    {"prompt": "make it purple"}, [("files", sample.filename, sample.data)]
                )
                status, body, _ = post_raw(server.url("/v1/edit"), data, content_type)
                answers[sample.name] = (status, body)
                assert status == sample.status, (sample.name, body)
                if sample.code:
                    assert body["error"] == sample.code
                else:
                    assert_pixels_only(base64.b64decode(body["images"][0]))
            many = [("files", f"{n}.png", corpus.small_png(n)) for n in range(corpus.MANY_FILES)]
            data, content_type = multipart({"prompt": "x"}, many)
            status, body, _ = post_raw(server.url("/v1/compose"), data, content_type)
            assert (status, body["error"]) == (400, "too_many_images")
            sent, answer = send_huge_body(server.port, corpus.HUGE_BODY_BYTES)
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b"application/json" in head
        assert b'"error": "payload_too_large"' in payload
        assert b"max_body" not in payload  # waitress's limits stay private
        assert sent < corpus.HUGE_BODY_BYTES  # refused long before the end
        assert http_json("GET", server.url("/health"))[0] == 200
        growth = memory.peak - memory.start
        report(
            "hostile_uploads",
            files=len(SAMPLES) + corpus.MANY_FILES + 1,
            rss_start_mb=round(memory.start / 2**20),
            rss_peak_mb=round(memory.peak / 2**20),
            rss_end_mb=round(memory.end / 2**20),
            huge_body_bytes_sent_before_413=sent,
        )
        assert growth < MAX_RSS_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MB"
        log = server.app_log()
    assert "Traceback" not in log
