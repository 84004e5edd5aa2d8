"""Server text from one catalogue (app/i18n.py): which language a caller
gets, rendering without a request, and readable UTF-8 Chinese in every
error answer, waitress's own included."""

from __future__ import annotations

import importlib
import pkgutil
import re
import socket
import threading

import pytest

import app as app_package
from app.errors import AppError, InvalidInput, NotFound
from app.i18n import (
    LazyList,
    _l,
    language_from_headers,
    named_language,
    select_locale,
    translate,
    translate_or_both,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
UTF8 = "application/json; charset=utf-8"


# ---- which language -----------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "cookie", "language"),
    [
        ("zh-CN,zh;q=0.9", None, "zh"),
        ("zh-TW", None, "zh"),
        ("en-US,en;q=0.9", None, "en"),
        ("fr-FR, zh;q=0.5", None, "zh"),  # the best one we speak
        ("zh", "en", "zh"),  # the header comes first
        ("en", "zh", "en"),
        (None, "zh", "zh"),  # then the page's cookie
        (None, "en", "en"),
        ("fr", "zh", "zh"),  # a header naming none of ours defers to the cookie
        ("fr", None, "en"),  # ... or means English
        (None, "klingon", None),  # an unknown cookie names nothing
        (None, None, None),  # a bare script
    ],
)
def test_language_is_the_header_then_the_cookie(accept_language, cookie, language):
    assert language_from_headers(accept_language, cookie) == language


def test_the_request_picks_the_locale_flask_babel_uses(app):
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert select_locale() == "zh_Hans"
        assert str(NotFound().message) == "未找到。"
    with app.test_request_context(headers={"Cookie": "lang=zh"}):
        assert (named_language(), select_locale()) == ("zh", "zh_Hans")
    with app.test_request_context():
        assert (named_language(), select_locale()) == (None, "en")
        assert str(NotFound().message) == "Not found."


def test_without_a_request_the_locale_is_english(app):
    with app.app_context():
        assert select_locale() is None  # Flask-Babel's default: en
        assert str(NotFound().message) == "Not found."
    assert str(NotFound().message) == "Not found."  # no app context at all


def test_error_answers_follow_the_header_then_the_cookie(client):
    client.set_cookie("lang", "zh")
    assert client.get("/nope").get_json()["message"] == "未找到。"
    english = client.get("/nope", headers={"Accept-Language": "en-GB"})
    assert english.get_json()["message"] == "Not found."


# ---- rendering without a request ----------------------------------------------


def test_translate_needs_no_request_or_app_context():
    message = _l("Image %(image_id)s does not exist or is not yours.", image_id=7)
    assert translate(message, "zh") == "图片 7 不存在或不属于你。"
    assert (
        translate(message, "zh_Hans") == translate(message, "zh-CN") == "图片 7 不存在或不属于你。"
    )
    assert translate(message, "en") == "Image 7 does not exist or is not yours."
    assert translate(message, None) == "Image 7 does not exist or is not yours."


def test_a_value_that_is_a_message_is_rendered_in_the_same_language():
    outer = _l("%(message)s (and %(more)s more)", message=_l("Not found."), more=2)
    assert translate(outer, "zh") == "未找到。（另有 2 处问题）"
    assert translate(outer, "en") == "Not found. (and 2 more)"


def test_text_outside_the_catalogue_is_kept_as_it_is():
    assert translate("The model said: 香蕉", "en") == "The model said: 香蕉"
    assert translate(_l("No such text in the catalogue."), "zh") == "No such text in the catalogue."


def test_both_languages_when_the_caller_named_none():
    message = _l("The prompt is empty.")
    assert translate_or_both(message, None) == "The prompt is empty. / 提示词不能为空。"
    assert translate_or_both(message, "zh") == "提示词不能为空。"
    assert translate_or_both("same text", None) == "same text"


def test_errors_keep_code_and_status_and_render_in_any_language():
    error = InvalidInput(_l("Invalid cursor."), code="invalid_cursor")
    assert (error.code, error.status) == ("invalid_cursor", 400)
    assert (error.text("en"), error.text("zh")) == ("Invalid cursor.", "无效的分页游标。")
    assert str(error) == "Invalid cursor."  # logs and tracebacks read English
    assert NotFound().text("zh") == "未找到。" and NotFound.status == 404


def test_an_error_takes_one_message_not_a_pair():
    # The English/Chinese pair of the old code is gone: the catalogue holds
    # the Chinese.
    with pytest.raises(TypeError):
        InvalidInput("English text.", "中文文本。")
    assert not hasattr(InvalidInput(), "message_zh")


def test_a_list_is_joined_in_the_language_it_is_rendered_in():
    steps = LazyList([_l("grayscale"), _l("sharpen"), "1:1"])
    message = _l("Applied: %(steps)s", steps=steps)
    assert translate(message, "en") == "Applied: grayscale, sharpen, 1:1"
    assert translate(message, "zh") == "已应用：黑白、锐化、1:1"
    assert translate_or_both(steps, None) == "grayscale, sharpen, 1:1 / 黑白、锐化、1:1"


def test_a_list_follows_the_request_language(app):
    message = _l("Applied: %(steps)s", steps=LazyList([_l("grayscale"), _l("sharpen")]))
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert str(message) == "已应用：黑白、锐化"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert str(message) == "Applied: grayscale, sharpen"


def _all_error_classes() -> list[type[AppError]]:
    for module in pkgutil.walk_packages(app_package.__path__, "app."):
        importlib.import_module(module.name)
    found, todo = [], [AppError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return [cls for cls in found if cls.__module__.startswith("app.")]


@pytest.mark.parametrize("error_class", _all_error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_class_has_a_chinese_message(error_class):
    assert CJK.search(translate(error_class.message, "zh"))
    assert not CJK.search(translate(error_class.message, "en"))


def test_every_http_error_has_a_chinese_message():
    from app.web.errors import HTTP_MESSAGES

    for _code, message in HTTP_MESSAGES.values():
        assert CJK.search(translate(message, "zh")), message.msgid


# ---- readable UTF-8 -----------------------------------------------------------

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def _assert_readable_chinese(response, status, code):
    assert response.status_code == status
    assert response.headers["Content-Type"] == UTF8
    raw = response.get_data()
    assert b"\\u" not in raw  # no escaped characters
    body = response.get_json()
    assert body["error"] == code
    assert CJK.search(body["message"]) and body["detail"] == body["message"]
    assert body["message"].encode() in raw  # the very UTF-8 bytes
    return body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/no/such/route", {}, 404, "not_found"),
        ("put", "/conversations", {}, 405, "method_not_allowed"),
        ("get", "/conversations", {}, 401, "unauthorized"),
        ("post", "/v1/generate", {"json": {"prompt": "x", "top_k": 0}}, 422, "validation_error"),
        ("post", "/v1/edit", {"json": {"prompt": "x"}}, 415, "unsupported_media_type"),
    ],
)
def test_a_chinese_caller_reads_utf8_chinese_in_errors(client, method, path, kwargs, status, code):
    response = getattr(client, method)(path, headers=ZH, **kwargs)
    _assert_readable_chinese(response, status, code)


def test_a_value_in_a_chinese_error_is_placed_by_the_translation(client):
    body = _assert_readable_chinese(
        client.post("/v1/edit", json={"prompt": "x"}, headers=ZH), 415, "unsupported_media_type"
    )
    assert body["message"].startswith("/v1/edit 需要以 multipart/form-data 提交")


def test_utf8_chinese_for_domain_errors_of_a_logged_in_user(client, auth):
    auth.signup()
    no_csrf = client.post("/conversations", json={"title": "x"}, headers=ZH)
    _assert_readable_chinese(no_csrf, 400, "csrf_failed")
    missing = client.get("/conversations/999", headers=ZH)
    _assert_readable_chinese(missing, 404, "not_found")
    cursor = client.get("/conversations?cursor=not-a-cursor", headers=ZH)
    assert _assert_readable_chinese(cursor, 400, "invalid_cursor")["message"] == "无效的分页游标。"


def test_utf8_chinese_when_limited_shed_or_broken(app_factory, monkeypatch):
    app = app_factory(GENERATION_RATE_LIMIT="1/minute", MAX_CONTENT_LENGTH=4096)
    client = app.test_client()
    client.post("/v1/generate", json={"prompt": "x"})
    _assert_readable_chinese(
        client.post("/v1/generate", json={"prompt": "x"}, headers=ZH), 429, "rate_limited"
    )
    big = client.post("/auth/login", data=b"x" * 8192, content_type="application/json", headers=ZH)
    _assert_readable_chinese(big, 413, "payload_too_large")

    from app.services import conversations

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(conversations, "clean_title", explode)
    other = app.test_client()
    other.post("/auth/signup", json={"username": "carol", "password": "correct-horse-1"})
    me = other.get("/me").get_json()
    broken = other.post(
        "/conversations", json={"title": "x"}, headers={**ZH, "X-CSRF-Token": me["csrf_token"]}
    )
    body = _assert_readable_chinese(broken, 500, "internal_error")
    assert body["request_id"] in body["message"]

    app.extensions["genai"].gate.is_full = lambda: True
    _assert_readable_chinese(
        app.test_client().post("/v1/generate", json={"prompt": "x"}, headers=ZH), 503, "busy"
    )


def test_json_answers_are_utf8_and_say_so(client):
    response = client.get("/health")
    assert response.headers["Content-Type"] == UTF8
    assert response.mimetype == "application/json"


def test_the_hand_built_imaging_answer_is_utf8_chinese(client):
    response = client.post("/v1/generate", json={"prompt": "香蕉", "conv_id": 1}, headers=ZH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == UTF8
    warning = "未保存到对话：登录后才会保留历史记录。"
    assert warning.encode() in response.get_data()
    assert response.get_json()["warnings"][0] == {"code": "not_saved", "message": warning}


# ---- waitress's own answers -------------------------------------------------------


@pytest.fixture
def waitress_server(app):
    """The app behind waitress as `python wsgi.py` serves it (our channel
    class), with a 1 KiB body limit so waitress itself refuses."""
    from app.web.server import _create_server

    server = _create_server(app, host="127.0.0.1", port=0, max_request_body_size=1024, threads=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server
    server.close()
    thread.join(5)


def _raw_post(port: int, headers: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + headers.encode()
            + b"Content-Length: 100000\r\n\r\n"
            + b"x" * 2048
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_waitress_refusals_are_utf8_in_the_callers_language(waitress_server):
    port = waitress_server.effective_port
    head, _, body = _raw_post(port, "Accept-Language: zh-CN\r\n").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Content-Type: application/json; charset=utf-8" in head
    assert (
        body
        == '{"error": "payload_too_large", "message": "请求体过大。", "detail": "请求体过大。"}'.encode()
    )

    _, _, body = _raw_post(port, "Cookie: lang=zh\r\n").partition(b"\r\n\r\n")
    assert "请求体过大。".encode() in body
    _, _, body = _raw_post(port, "").partition(b"\r\n\r\n")
    assert b'"message": "The request body is too large."' in body
