"""The imaging API on the offline engine: contract, uploads, persistence."""

from __future__ import annotations

import io
import os

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message
from tests.support.images import bomb_png, decode, exif_rotated_jpeg, marked_png, png_bytes, tiff


def files(*blobs, name="image.png"):
    return [(io.BytesIO(blob), name) for blob in blobs]


def test_generate_returns_seed_compatible_shape(client):
    response = client.post("/v1/generate", json={"prompt": "a yellow banana", "seed": 7})
    assert response.status_code == 200
    body = response.get_json()
    assert {"images", "texts", "model", "image_ids", "warnings"} <= set(body)
    assert len(body["images"]) == 1
    image = decode(body["images"][0])
    assert image.format == "PNG"
    assert body["model"] == "gemini-3.1-flash-image"
    assert body["texts"] and "offline" in body["texts"][0].lower()


def test_candidate_count_is_clamped(client):
    many = client.post("/v1/generate", json={"prompt": "banana", "candidate_count": 9}).get_json()
    assert len(many["images"]) == 6
    assert len(set(many["images"])) == 6  # each candidate differs
    none = client.post("/v1/generate", json={"prompt": "banana", "candidate_count": 0}).get_json()
    assert len(none["images"]) == 1


def test_aspect_ratio_is_honoured(client):
    body = client.post("/v1/generate", json={"prompt": "sky", "aspect_ratio": "16:9"}).get_json()
    image = decode(body["images"][0])
    assert abs(image.width / image.height - 16 / 9) < 0.02


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"prompt": "x", "model": "gemini-1.5-flash"}, "unknown_model"),
        ({"prompt": "x", "aspect_ratio": "7:3"}, "invalid_aspect_ratio"),
        (
            {"prompt": "x", "model": "gemini-2.5-flash-image", "image_size": "2K"},
            "invalid_image_size",
        ),
        ({"prompt": "   "}, "empty_prompt"),
    ],
)
def test_bad_options_are_400(client, payload, code):
    response = client.post("/v1/generate", json=payload)
    assert response.status_code == 400
    assert response.get_json()["error"] == code


def test_unknown_model_lists_valid_ones(client):
    body = client.post("/v1/generate", json={"prompt": "x", "model": "nope"}).get_json()
    assert "gemini-3.1-flash-image" in body["message"]
    assert "gemini-2.5-flash-image" in body["valid_models"]


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt": "x", "temperature": 3},
        {"prompt": "x", "top_p": 1.5},
        {"prompt": "x", "top_k": 0},
        {"prompt": "x", "seed": 2**40},
        {"prompt": "x", "max_output_tokens": 0},
        {"prompt": ""},
        {},
        {"prompt": "x", "conv_id": 2**70},
    ],
)
def test_out_of_range_parameters_are_422(client, payload):
    response = client.post("/v1/generate", json=payload)
    assert response.status_code == 422
    assert response.get_json()["error"] == "validation_error"


def test_models_catalog(client):
    body = client.get("/v1/models").get_json()
    assert body["provider"] == "offline"
    assert body["default_model"] == "gemini-3.1-flash-image"
    ids = [model["id"] for model in body["models"]]
    assert ids == ["gemini-3.1-flash-image", "gemini-2.5-flash-image", "gemini-3-pro-image"]
    labels = {model["id"]: model["label"] for model in body["models"]}
    assert labels["gemini-3.1-flash-image"] == "Nano Banana 2"


def test_models_catalog_follows_config(app_factory):
    app = app_factory(
        GENAI_MODELS=["gemini-2.5-flash-image", "my-relay-model"], DEFAULT_MODEL="my-relay-model"
    )
    body = app.test_client().get("/v1/models").get_json()
    assert [m["id"] for m in body["models"]] == ["gemini-2.5-flash-image", "my-relay-model"]
    assert body["default_model"] == "my-relay-model"


def test_edit_applies_named_operation(client):
    response = client.post(
        "/v1/edit",
        data={"prompt": "make it grayscale", "files": files(png_bytes((200, 40, 40)))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    image = decode(response.get_json()["images"][0]).convert("RGB")
    r, g, b = image.getpixel((5, 5))
    assert r == g == b


def test_numeric_prompt_in_form_stays_text(client):
    response = client.post(
        "/v1/edit",
        data={"prompt": "1984", "files": files(png_bytes())},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200


def test_compose_needs_two_images(client):
    response = client.post(
        "/v1/compose",
        data={"prompt": "tile them", "files": files(png_bytes())},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "not_enough_images"
    two = [png_bytes(size=(48, 32)), png_bytes((10, 10, 200), size=(48, 32))]
    response = client.post(
        "/v1/compose",
        data={"prompt": "tile them side by side", "files": files(*two)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    image = decode(response.get_json()["images"][0])
    assert image.width >= 2 * 48 - 1


def test_edit_without_image_is_400(client):
    response = client.post(
        "/v1/edit", data={"prompt": "grayscale"}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "not_enough_images"


@pytest.mark.parametrize(
    ("blob", "status", "code"),
    [
        (png_bytes()[:60], 400, "invalid_image"),
        (b"", 400, "invalid_image"),
        (os.urandom(2048), 400, "invalid_image"),
        (b"<html><body>not a png</body></html>", 400, "invalid_image"),
        (tiff(), 415, "unsupported_image"),
        (bomb_png(), 413, "image_too_large"),
    ],
    ids=["truncated", "empty", "random", "html", "tiff", "bomb"],
)
def test_hostile_uploads_are_4xx(client, blob, status, code):
    response = client.post(
        "/v1/edit",
        data={"prompt": "grayscale", "files": files(blob)},
        content_type="multipart/form-data",
    )
    assert response.status_code == status
    assert response.get_json()["error"] == code


def test_too_many_images_for_the_model(client):
    response = client.post(
        "/v1/compose",
        data={
            "prompt": "tile",
            "model": "gemini-2.5-flash-image",
            "files": files(*[png_bytes((i, i, i)) for i in range(4)]),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "too_many_images"


def test_oversize_body_is_413(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=100_000)
    response = app.test_client().post(
        "/v1/edit",
        data={"prompt": "grayscale", "files": files(os.urandom(200_000))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_exif_rotated_jpeg_comes_out_upright_without_exif(client):
    response = client.post(
        "/v1/edit",
        data={"prompt": "make it brighter", "files": files(exif_rotated_jpeg(), name="p.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    image = decode(response.get_json()["images"][0])
    assert image.size == (40, 60)
    assert not image.getexif()
    assert "exif" not in image.info and "icc_profile" not in image.info


# ---- persistence ------------------------------------------------------------


@pytest.fixture
def conversation(client, auth):
    auth.signup()
    return client.post("/conversations", json={}, headers=auth.headers()).get_json()


def test_generate_then_edit_result_by_id_is_kept_in_history(client, auth, conversation):
    cid = conversation["id"]
    first = client.post(
        "/v1/generate",
        json={"prompt": "a yellow banana", "conv_id": cid, "seed": 3},
        headers=auth.headers(),
    )
    assert first.status_code == 200
    body = first.get_json()
    assert body["conversation_id"] == cid and len(body["image_ids"]) == 1
    result_id = body["image_ids"][0]

    second = client.post(
        "/v1/edit",
        data={"prompt": "rotate 90", "source_image_ids": str(result_id), "conv_id": str(cid)},
        headers=auth.headers(),
        content_type="multipart/form-data",
    )
    assert second.status_code == 200, second.get_json()
    edited_id = second.get_json()["image_ids"][0]

    messages = client.get(f"/conversations/{cid}/messages").get_json()["items"]
    assert [(m["role"], m["kind"]) for m in messages] == [
        ("user", "generate"),
        ("assistant", "generate"),
        ("user", "edit"),
        ("assistant", "edit"),
    ]
    assert messages[2]["input_images"][0]["id"] == result_id
    assert messages[3]["images"][0]["id"] == edited_id
    for image in (messages[1]["images"][0], messages[3]["images"][0]):
        served = client.get(image["url"])
        assert served.status_code == 200 and served.data.startswith(b"\x89PNG")
    # the edit rotated the generated square: served bytes match the response
    assert decode(second.get_json()["images"][0]).size == (1024, 1024)


def test_the_options_asked_are_recorded_with_the_turn(client, auth, conversation):
    cid = conversation["id"]
    asked = {
        "model": "gemini-2.5-flash-image",
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 32,
        "candidate_count": 2,
        "seed": 3,
        "max_output_tokens": 2048,
        "aspect_ratio": "16:9",
    }
    response = client.post(
        "/v1/generate",
        json={"prompt": "a banana", "conv_id": cid, **asked},
        headers=auth.headers(),
    )
    assert response.status_code == 200, response.get_json()
    user_turn = client.get(f"/conversations/{cid}/messages").get_json()["items"][0]
    # What was asked, as asked: unset options left out, nothing else added.
    assert user_turn["params"] == asked


def test_a_text_option_sent_as_a_number_in_a_form_stays_text(client):
    # flask-openapi3 JSON-decodes form fields: `model=2` arrives as 2.
    response = client.post(
        "/v1/edit",
        data={"prompt": "grayscale", "model": "2", "files": files(png_bytes())},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "unknown_model"


def test_someone_elses_conversation_is_404_and_nothing_written(client, auth, conversation, app):
    other = app.test_client()
    token = other.post(
        "/auth/signup", json={"username": "mallory", "password": "correct-horse-9"}
    ).get_json()["csrf_token"]
    response = other.post(
        "/v1/generate",
        json={"prompt": "mine", "conv_id": conversation["id"]},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 404
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Message)).scalar() == 0


def test_source_image_of_another_user_is_404(client, auth, conversation, app):
    body = client.post(
        "/v1/generate",
        json={"prompt": "banana", "conv_id": conversation["id"]},
        headers=auth.headers(),
    ).get_json()
    other = app.test_client()
    response = other.post(
        "/v1/edit",
        data={"prompt": "grayscale", "source_image_ids": str(body["image_ids"][0])},
        content_type="multipart/form-data",
    )
    assert response.status_code == 404
    assert response.get_json()["error"] == "image_not_found"


def test_anonymous_calls_store_nothing(client, app):
    response = client.post("/v1/generate", json={"prompt": "banana", "conv_id": 1})
    assert response.status_code == 200
    body = response.get_json()
    assert body["image_ids"] == [] and body["conversation_id"] is None
    assert body["warnings"][0]["code"] == "not_saved"
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Message)).scalar() == 0


def test_failed_call_is_recorded_in_history(app_factory):
    app = app_factory(GENAI_PROVIDER="gemini", GOOGLE_API_KEY=None)
    client = app.test_client()
    csrf = client.post(
        "/auth/signup", json={"username": "alice", "password": "correct-horse-1"}
    ).get_json()["csrf_token"]
    cid = client.post("/conversations", json={}, headers={"X-CSRF-Token": csrf}).get_json()["id"]
    response = client.post(
        "/v1/generate", json={"prompt": "banana", "conv_id": cid}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 503
    assert response.get_json()["error"] == "provider_not_configured"
    messages = client.get(f"/conversations/{cid}/messages").get_json()["items"]
    assert messages[-1]["error"]["code"] == "provider_not_configured"


def test_edit_rotates_marked_image(client):
    response = client.post(
        "/v1/edit",
        data={"prompt": "rotate 90", "files": files(marked_png())},
        content_type="multipart/form-data",
    )
    image = decode(response.get_json()["images"][0])
    assert image.size == (40, 60)


def test_generation_rate_limit_per_caller(app_factory):
    app = app_factory(GENERATION_RATE_LIMIT="2/minute")
    client = app.test_client()
    statuses = [
        client.post("/v1/generate", json={"prompt": "banana"}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    # another address has its own allowance
    other = client.post(
        "/v1/generate", json={"prompt": "banana"}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert other.status_code == 200


def test_nano_cli_generates_and_edits(runner, tmp_path):
    out = tmp_path / "out.png"
    result = runner.invoke(
        args=["nano", "generate", "a yellow banana", "-o", str(out), "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    edited = tmp_path / "edited.png"
    result = runner.invoke(args=["nano", "edit", "grayscale", str(out), "-o", str(edited)])
    assert result.exit_code == 0, result.output
    from PIL import Image

    r, g, b = Image.open(edited).convert("RGB").getpixel((10, 10))
    assert r == g == b


def test_nano_cli_refuses_an_option_out_of_range(runner, tmp_path):
    out = tmp_path / "out.png"
    result = runner.invoke(args=["nano", "generate", "x", "-o", str(out), "--seed", str(2**40)])
    assert result.exit_code == 2
    assert "seed" in result.output
    assert not out.exists()


def test_inputs_past_the_upstream_request_cap_are_413(client, monkeypatch):
    from PIL import Image

    from app.services import generation

    def noise() -> bytes:
        buffer = io.BytesIO()
        Image.frombytes("RGB", (80, 80), os.urandom(80 * 80 * 3)).save(buffer, "PNG")
        return buffer.getvalue()

    monkeypatch.setattr(generation, "UPSTREAM_REQUEST_LIMIT", 20_000)
    response = client.post(
        "/v1/compose",
        data={"prompt": "tile", "files": files(noise(), noise())},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_too_large"


@pytest.mark.parametrize("route", ["/v1/edit", "/v1/compose"])
def test_edit_and_compose_with_a_json_body_say_to_send_a_form(client, route):
    response = client.post(route, json={"prompt": "make it blue", "source_image_ids": [1]})
    assert response.status_code == 415
    body = response.get_json()
    assert body["error"] == "unsupported_media_type"
    assert "multipart/form-data" in body["message"]
    zh = client.post(route, json={"prompt": "x"}, headers={"Accept-Language": "zh"})
    assert "multipart/form-data" in zh.get_json()["message"] and "提交" in zh.get_json()["message"]


def test_offline_text_follows_the_language_the_caller_names(client):
    def text(headers):
        body = client.post("/v1/generate", json={"prompt": "a banana"}, headers=headers)
        return body.get_json()["texts"][0]

    chinese = text({"Accept-Language": "zh-CN,zh;q=0.9"})
    english = text({"Accept-Language": "en-GB"})
    both = text({})  # a bare script named no language: it gets both halves

    assert "离线引擎" in chinese and "Offline engine" not in chinese
    assert "Offline engine" in english and "离线引擎" not in english
    assert both == f"{english} / {chinese}"


def test_not_saved_warning_is_translated(client):
    body = client.post(
        "/v1/generate",
        json={"prompt": "a banana", "conv_id": 1},
        headers={"Accept-Language": "zh"},
    ).get_json()
    assert body["warnings"] == [
        {"code": "not_saved", "message": "未保存到对话：登录后才会保留历史记录。"}
    ]
