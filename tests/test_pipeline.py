"""The request pipeline (app/web/pipeline.py): its order, load shedding before
the session store, unusable JSON refused before any limiter or view, request
ids, log lines that can't be forged, cache headers, Retry-After."""

from __future__ import annotations

import itertools
import json
import logging
import threading

import pytest
from sqlalchemy import event

from app.errors import AppError
from app.extensions import db, limiter
from app.logs import CONTINUATION, SafeFormatter, escape_controls
from app.web import pipeline
from tests.support.auth import AuthActions

NON_OBJECTS = [
    '"{\\"username\\": \\"alice\\", \\"password\\": \\"x\\"}"',
    "[1, 2]",
    "3",
    "null",
    "true",
]
JSON_ROUTES = ["/auth/login", "/auth/signup", "/v1/generate", "/conversations"]


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == code
    assert body["message"] == body["detail"] and body["message"]
    return body


class AccessLines(logging.Handler):
    """The access log's lines, formatted as app.log formats them."""

    def __init__(self):
        super().__init__()
        self.setFormatter(SafeFormatter("%(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))

    def __enter__(self):
        logging.getLogger("nano_banana.access").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("nano_banana.access").removeHandler(self)


@pytest.fixture
def alice(app):
    client = app.test_client()
    actions = AuthActions(client)
    assert actions.signup("alice").status_code == 201
    return client, actions


# ---- the order is the declared list --------------------------------------


def test_hooks_run_in_the_declared_order_with_the_limiter_in_its_slot(app):
    hooks = app.before_request_funcs[None]
    ours = [hook for hook in hooks if hook in pipeline.BEFORE_VIEW]
    assert ours == [step for step in pipeline.BEFORE_VIEW if step is not pipeline.EXTENSION_HOOKS]
    names = [hook.__name__ for hook in hooks]
    limit_check = names.index("_check_request_limit")
    assert names.index("refuse_unusable_json") < limit_check
    assert limit_check < names.index("enforce_session_lifetime")
    assert names[0] == "start_request"


def test_install_refuses_a_second_time_and_before_the_extensions(app):
    from flask import Flask

    with pytest.raises(RuntimeError, match="already installed"):
        pipeline.install(app, shed_endpoints=[])
    with pytest.raises(RuntimeError, match="limiter"):
        pipeline.install(Flask("bare"), shed_endpoints=[])


def test_a_hook_of_ours_registered_outside_the_list_stops_the_start(monkeypatch):
    from app import create_app

    def stray_hook():
        pass

    real_install = pipeline.install

    def install_after_a_stray_hook(app, **kwargs):
        app.before_request(stray_hook)
        real_install(app, **kwargs)

    monkeypatch.setattr(pipeline, "install", install_after_a_stray_hook)
    with pytest.raises(RuntimeError, match="stray_hook"):
        create_app("testing")


# ---- shedding before the session store -------------------------------------


@pytest.fixture
def store_access(app, monkeypatch):
    """Counts of session store opens and saves, and of database statements."""
    counts = {"open": 0, "save": 0, "sql": 0}
    interface = app.session_interface
    real_open, real_save = interface.open_session, interface.save_session

    def counting_open(*args, **kwargs):
        counts["open"] += 1
        return real_open(*args, **kwargs)

    def counting_save(*args, **kwargs):
        counts["save"] += 1
        return real_save(*args, **kwargs)

    monkeypatch.setattr(interface, "open_session", counting_open)
    monkeypatch.setattr(interface, "save_session", counting_save)

    def count_sql(*args):
        counts["sql"] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count_sql)
    yield counts
    event.remove(engine, "before_cursor_execute", count_sql)


def test_a_shed_request_with_a_session_cookie_never_touches_the_session_store(
    app, alice, store_access
):
    client, actions = alice
    # The same request with the gate open does read the store: the counters
    # see what they are meant to see.
    client.get("/me")
    assert store_access["open"] == 1 and store_access["sql"] >= 1

    app.extensions["genai"].gate.is_full = lambda: True
    before = dict(store_access)
    with AccessLines() as access:
        response = client.post(
            "/v1/generate",
            json={"prompt": "x"},
            headers=actions.headers(**{"Accept-Language": "zh-CN"}),
        )

    body = assert_error(response, 503, "busy")
    assert store_access == before
    assert int(response.headers["Retry-After"]) >= 1
    assert "请稍后重试" in body["message"]
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 16
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    (line,) = [line for line in access.lines if request_id in line]
    assert f"{request_id} POST /v1/generate 503 " in line and "ms user=-" in line


def test_shedding_takes_only_generations_and_only_while_the_gate_is_full(app, alice):
    client, actions = alice
    gate = app.extensions["genai"].gate
    generate = client.post("/v1/generate", json={"prompt": "x"}, headers=actions.headers())
    assert generate.status_code == 200
    gate.is_full = lambda: True
    assert client.get("/v1/models").status_code == 200
    assert client.get("/conversations").status_code == 200
    for path in ("/v1/generate", "/v1/edit", "/v1/compose"):
        assert_error(client.post(path, headers=actions.headers()), 503, "busy")


def test_generations_past_the_gates_places_are_shed_before_they_reach_it(app_factory):
    """A burst's first requests spend a while on their way to the gate; the
    ones right behind them are refused at the door, not let through to be
    refused by the gate after the whole slow path."""
    app = app_factory(GENAI_MAX_CONCURRENT=1, GENAI_MAX_QUEUE=1)
    door = app.wsgi_app
    inner, inside, release = door.wsgi_app, threading.Semaphore(0), threading.Event()

    arrivals = itertools.count()

    def on_the_way(environ, start_response):
        if next(arrivals) < 2:  # the first two take their time; any later one goes straight on
            inside.release()
            release.wait(10)
        return inner(environ, start_response)

    door.wsgi_app = on_the_way
    answers = []

    def generate():
        answers.append(app.test_client().post("/v1/generate", json={"prompt": "x"}).status_code)

    first = [threading.Thread(target=generate) for _ in range(2)]
    for thread in first:
        thread.start()
    assert inside.acquire(timeout=10) and inside.acquire(timeout=10)
    try:
        assert not app.extensions["genai"].gate.is_full()  # neither has reached it
        third = app.test_client().post("/v1/generate", json={"prompt": "x"})
        assert_error(third, 503, "busy")
        assert int(third.headers["Retry-After"]) >= 1
    finally:
        release.set()
        for thread in first:
            thread.join(10)
    assert answers == [200, 200]
    again = app.test_client().post("/v1/generate", json={"prompt": "x"})
    assert again.status_code == 200  # both left: their places are free again


def test_a_shed_answer_is_the_answer_flask_gives_for_the_same_refusal(app_factory, monkeypatch):
    """Written outside Flask, it still matches what the error handler and
    finish_request make of the same Busy: shape, language, headers, CORS."""
    from app.errors import Busy
    from app.services import generation

    app = app_factory(ALLOWED_ORIGINS=["https://app.example"])
    gate = app.extensions["genai"].gate
    gate.retry_after = lambda: 3

    def refused(**kwargs):
        raise Busy(retry_after=3)

    monkeypatch.setattr(generation, "run", refused)
    headers = {"Accept-Language": "zh-CN", "Origin": "https://app.example"}
    by_flask = app.test_client().post("/v1/generate", json={"prompt": "x"}, headers=headers)
    gate.is_full = lambda: True
    shed = app.test_client().post("/v1/generate", json={"prompt": "x"}, headers=headers)

    assert shed.status_code == by_flask.status_code == 503
    assert shed.get_data() == by_flask.get_data()  # same bytes: shape, order, UTF-8
    same = [
        "Content-Type",
        "Retry-After",
        "Cache-Control",
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "X-Frame-Options",
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Credentials",
        "Access-Control-Expose-Headers",
    ]
    assert {name: shed.headers.get(name) for name in same} == {
        name: by_flask.headers.get(name) for name in same
    }
    assert shed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert shed.headers["Vary"] == "Origin"  # Flask adds Cookie: it read the session; no-store
    assert shed.headers["Retry-After"] == "3"


def test_a_shed_answer_follows_the_lang_cookie_and_defaults_to_english(app):
    app.extensions["genai"].gate.is_full = lambda: True
    client = app.test_client()
    english = client.post("/v1/generate", json={"prompt": "x"})
    assert "Try again shortly" in assert_error(english, 503, "busy")["message"]
    client.set_cookie("lang", "zh")
    chinese = client.post("/v1/generate", json={"prompt": "x"})
    assert "请稍后重试" in assert_error(chinese, 503, "busy")["message"]


def test_a_shed_answer_names_english_without_a_chinese_request(app):
    app.extensions["genai"].gate.is_full = lambda: True
    response = app.test_client().post("/v1/generate", json={"prompt": "x"})
    assert "Try again shortly" in assert_error(response, 503, "busy")["message"]


# ---- unusable JSON: before any limiter or view ----------------------------


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("body", NON_OBJECTS)
def test_non_object_json_bodies_are_400_before_any_limiter_or_view(app, route, body):
    response = app.test_client().post(route, data=body, content_type="application/json")
    message = assert_error(response, 400, "invalid_json")["message"]
    assert message == "The request body must be a JSON object."
    zh = app.test_client().post(
        route, data=body, content_type="application/json", headers={"Accept-Language": "zh"}
    )
    assert zh.get_json()["message"] == "请求体必须是 JSON 对象。"


def test_a_login_as_a_json_string_is_not_counted_in_any_bucket(app_factory):
    app = app_factory(LOGIN_RATE_LIMIT="2/minute", LOGIN_USER_RATE_LIMIT="2/minute")
    client = app.test_client()
    AuthActions(app.test_client()).signup("alice")
    limiter.reset()
    as_string = json.dumps(json.dumps({"username": "alice", "password": "wrong-pass-1"}))
    for _ in range(5):
        response = client.post("/auth/login", data=as_string, content_type="application/json")
        assert_error(response, 400, "invalid_json")
    # Neither the address's nor the username's bucket was touched.
    assert AuthActions(client).login("alice").status_code == 200


@pytest.mark.parametrize("route", ["/auth/login", "/auth/signup", "/v1/generate"])
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"username": ' + "[" * 100_000,
        '{"prompt": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
    ids=["brackets", "inside-an-object", "valid-objects", "valid-arrays"],
)
def test_json_nested_past_the_stack_is_400_not_recursion_error(app, route, body):
    response = app.test_client().post(route, data=body, content_type="application/json")
    assert assert_error(response, 400, "invalid_json")["message"] == (
        "The request is nested too deeply."
    )


def test_invalid_json_is_still_the_views_validation_error(client):
    response = client.post("/v1/generate", data="{not json", content_type="application/json")
    assert_error(response, 422, "validation_error")


def test_a_json_object_passes_on_to_validation(client):
    response = client.post("/v1/generate", json={"prompt": ""})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("path", ["/v1/edit", "/v1/compose"])
def test_a_form_field_nested_past_the_stack_is_400(client, path):
    response = client.post(path, data={"prompt": "[" * 100_000}, content_type="multipart/form-data")
    assert_error(response, 400, "invalid_json")


def test_a_form_field_with_some_brackets_is_left_to_validation(client):
    prompt = "[" * 200 + "a banana" + "]" * 200
    response = client.post("/v1/edit", data={"prompt": prompt}, content_type="multipart/form-data")
    assert_error(response, 400, "not_enough_images")  # the prompt was fine; no image was sent


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ("", False),
        ("a banana", False),
        ("[" * 256, False),
        ("[" * 257, True),
        ("[]" * 100_000, False),
        ("[" * 300 + "]" * 300, True),
        ("{" * 200 + "[" * 57 + "]" * 57 + "}" * 200, True),
        ("][" * 300, False),
    ],
)
def test_nesting_depth_is_measured_as_a_decoder_would_recurse(text, deeper):
    assert pipeline.nested_deeper_than(text, 256) is deeper


# ---- request ids -------------------------------------------------------------


def test_a_client_request_id_is_ignored_without_trusted_proxies(client):
    response = client.get("/health", headers={"X-Request-ID": "mine-123"})
    assert response.headers["X-Request-ID"] != "mine-123"
    assert len(response.headers["X-Request-ID"]) == 16


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-1.2_3", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("with space", False),
        ("id\r\nX-Injected: 1", False),
        ("id\nforged", False),
        ("ünïcode", False),
    ],
)
def test_a_request_id_from_a_trusted_proxy_is_kept_only_in_a_safe_form(app_factory, sent, kept):
    app = app_factory(TRUSTED_PROXY_COUNT=1)
    environ = {"HTTP_X_REQUEST_ID": sent}  # past the test client's header checks
    response = app.test_client().get("/health", environ_overrides=environ)
    echoed = response.headers["X-Request-ID"]
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 16 and echoed.isalnum()


# ---- log lines that can't be forged -----------------------------------------


def test_a_path_with_a_newline_stays_on_its_access_log_line(client):
    with AccessLines() as access:
        client.get("/nope%0a2030-01-01 00:00:00,000 INFO nano_banana.access: forged%0d%1b[2J")
    (line,) = access.lines
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "/nope\\n2030-01-01" in line and "\\r\\x1b[2J" in line


def test_every_control_character_is_escaped():
    controls = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]))
    escaped = escape_controls(f"a{controls}b")
    assert escaped.isprintable() and escaped.startswith("a\\x00") and escaped.endswith("\\u2029b")
    assert escape_controls("你好 tab\there") == "你好 tab\\there"


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_record():
    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad\nINFO forged record")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), None)
        record.exc_info = sys.exc_info()
    first, *rest = formatter.format(record).split("\n")
    assert first == "ERROR failed a\\nb"
    assert rest and all(line.startswith(CONTINUATION) for line in rest)
    assert f"{CONTINUATION}INFO forged record" in rest


def test_the_record_other_handlers_see_is_left_as_it_was():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s", ("b\nc",), None)
    SafeFormatter("%(message)s").format(record)
    assert record.getMessage() == "a b\nc"


# ---- cache headers -------------------------------------------------------------


def test_authenticated_json_is_not_stored(alice):
    client, actions = alice
    token = client.post("/auth/tokens", json={"name": "t"}, headers=actions.headers())
    for response in (
        client.get("/me"),
        client.get("/auth/tokens"),
        client.get("/conversations"),
        client.post("/conversations", json={}, headers=actions.headers()),
        token,
    ):
        assert response.status_code in (200, 201)
        assert response.headers["Cache-Control"] == "no-store"


def test_only_json_is_marked_no_store(client):
    response = client.get("/static/js/i18n.js")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"  # Flask's own, for static files


# ---- Retry-After on every 429 and 503 ----------------------------------------


def test_every_429_and_503_says_when_to_come_back(app_factory, monkeypatch):
    app = app_factory(GENERATION_RATE_LIMIT="1/minute")
    client = app.test_client()
    client.post("/v1/generate", json={"prompt": "x"})
    limited = client.post("/v1/generate", json={"prompt": "x"})
    assert_error(limited, 429, "rate_limited")

    from app.services import stored_images

    def unavailable(*args, **kwargs):
        raise AppError(code="down", status=503)  # no retry_after

    monkeypatch.setattr(stored_images, "readable_image", unavailable)
    actions = AuthActions(client)
    actions.signup("bob")
    silent = client.get("/images/1")
    assert_error(silent, 503, "down")

    app.extensions["genai"].gate.is_full = lambda: True
    shed = client.post("/v1/generate", json={"prompt": "x"})
    assert_error(shed, 503, "busy")

    for response in (limited, silent, shed):
        assert int(response.headers["Retry-After"]) >= 1
    assert silent.headers["Retry-After"] == str(pipeline.DEFAULT_RETRY_AFTER_S)


def test_a_json_body_past_a_megabyte_is_refused_before_it_is_parsed(client):
    body = b'{"prompt": "' + b"a" * (1024 * 1024) + b'"}'
    response = client.post("/v1/generate", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
