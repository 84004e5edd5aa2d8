"""Every error, one JSON shape: {error, message, detail}, in zh or en."""

from __future__ import annotations

import pytest


def assert_error_shape(response, status, code=None):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error", "message", "detail"}
    assert body["message"] == body["detail"] and body["message"]
    if code:
        assert body["error"] == code
    return body


def test_404_is_json(client):
    assert_error_shape(client.get("/no/such/route"), 404, "not_found")


def test_405_is_json_with_allow(client):
    response = client.put("/conversations")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_422_on_invalid_body(client):
    body = assert_error_shape(client.post("/auth/login", json={"username": 1}), 422)
    assert body["error"] == "validation_error"
    assert body["errors"]


def test_422_on_non_json_body(client):
    response = client.post("/auth/login", data="not json", content_type="text/plain")
    assert_error_shape(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("payload", "english", "chinese"),
    [
        ({"prompt": ""}, "prompt must not be empty.", "prompt 不能为空。"),
        ({}, "prompt is required.", "缺少 prompt。"),
        ({"prompt": "x", "temperature": "hot"}, "temperature must be a number.", "必须是数字"),
        ({"prompt": "x", "temperature": 3}, "temperature must be at most 2", "不能大于 2"),
        ({"prompt": "x", "top_k": 0}, "top_k must be at least 1.", "不能小于 1"),
        ({"prompt": "x", "seed": 1.5}, "seed must be a whole number.", "必须是整数"),
        # A body that is JSON but not an object: 400 before validation, in
        # tests/test_pipeline.py (test_non_object_json_bodies_are_400_...).
    ],
)
def test_validation_errors_say_what_to_fix_in_both_languages(client, payload, english, chinese):
    response = client.post("/v1/generate", json=payload)
    body = assert_error_shape(response, 422, "validation_error")
    assert english in body["message"]
    assert "GenerateBody" not in body["message"]  # no internal names
    zh = client.post("/v1/generate", json=payload, headers={"Accept-Language": "zh-CN"})
    assert chinese in zh.get_json()["message"]


def test_validation_error_counts_the_other_problems(client):
    response = client.post("/v1/generate", json={"prompt": "", "temperature": "hot", "top_k": 0})
    body = assert_error_shape(response, 422, "validation_error")
    assert body["message"].endswith("(and 2 more)")
    assert len(body["errors"]) == 3


def test_invalid_json_says_so(client):
    response = client.post("/v1/generate", data="{not json", content_type="application/json")
    body = assert_error_shape(response, 422, "validation_error")
    assert body["message"] == "The request body must be a JSON object."


def test_413_when_body_too_large(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    response = app.test_client().post(
        "/auth/login", data=b"x" * 4096, content_type="application/json"
    )
    assert_error_shape(response, 413, "payload_too_large")


def test_500_is_json_without_traceback_and_rolls_back(app, client, monkeypatch):
    from app.services import conversations

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    client.post("/auth/signup", json={"username": "alice", "password": "correct-horse-1"})
    monkeypatch.setattr(conversations, "list_for", explode)
    response = client.get("/conversations")
    body = assert_error_shape(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert body["request_id"] in body["message"]


def test_message_follows_accept_language(client):
    zh = client.get("/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_json()
    en = client.get("/nope", headers={"Accept-Language": "en-US"}).get_json()
    assert zh["message"] == "未找到。"
    assert en["message"] == "Not found."


def test_domain_errors_are_translated(client):
    response = client.post(
        "/auth/login",
        json={"username": "nobody", "password": "wrong-pass-1"},
        headers={"Accept-Language": "zh"},
    )
    assert (
        assert_error_shape(response, 401, "invalid_credentials")["message"] == "用户名或密码错误。"
    )


@pytest.mark.parametrize("path", ["/health", "/", "/conversations", "/openapi.json"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Request-ID"]


def test_refusals_carry_a_request_id_in_the_response_and_the_log(app_factory):
    import logging

    class Lines(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    app = app_factory(GENERATION_RATE_LIMIT="1/minute")
    access = Lines()
    logging.getLogger("nano_banana.access").addHandler(access)
    try:
        client = app.test_client()
        client.post("/v1/generate", json={"prompt": "x"})
        limited = client.post("/v1/generate", json={"prompt": "x"})  # the limiter's 429
        app.extensions["genai"].gate.is_full = lambda: True
        shed = client.post("/v1/generate", json={"prompt": "x"})  # the gate's early 503
    finally:
        logging.getLogger("nano_banana.access").removeHandler(access)

    assert (limited.status_code, shed.status_code) == (429, 503)
    for response in (limited, shed):
        request_id = response.headers["X-Request-ID"]
        assert len(request_id) == 16
        status = response.status_code
        assert any(
            line.startswith(f"{request_id} POST /v1/generate {status}") for line in access.lines
        )


def test_redis_outage_is_503_not_500(tmp_path):
    from app import create_app
    from app.extensions import db
    from config import TestingConfig

    class RedisAway(TestingConfig):
        DATA_DIR = str(tmp_path)
        SQLALCHEMY_DATABASE_URI = None
        REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
        PROPAGATE_EXCEPTIONS = False  # as in production: handlers answer

    app = create_app(RedisAway)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    client.set_cookie("nb_session", "some-session")
    response = client.get("/conversations")
    assert_error_shape(response, 503, "redis_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert app.test_client().get("/health").status_code == 200
    generation = app.test_client().post("/v1/generate", json={"prompt": "x"})
    assert_error_shape(generation, 503, "redis_unavailable")
