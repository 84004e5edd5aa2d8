"""What we rely on in libraries' private APIs, checked so that an upgrade that
changes one fails here, by name, rather than somewhere downstream or not at all.

One test per override or private attribute found in app/ (grep for
underscore attributes of flask_session, waitress, flask_login, flask_limiter,
flask_openapi3 and google.genai; the last three have none):

- Flask-Session: DatabaseSessionInterface and SessionPolicyMixin
  (app/web/sessions.py) implement or override `_retrieve_session_data`,
  `_upsert_session`, `_delete_session`, `_delete_expired_sessions`,
  `_get_store_id`, `_register_cleanup_app_command`, and call `_generate_sid`;
  `flask sessions cleanup` (app/cli) calls `_delete_expired_sessions`.
- waitress: app/web/server.py passes `_server=` to `waitress.serve`,
  subclasses `ErrorTask` (reading `request.error` and `request.headers`) and
  sets `HTTPChannel.error_task_class` on every listener `create_server` made.
- Flask-Login: app/web/pipeline.py reads `g._login_user` and the session's
  `_user_id`; pipeline.py and blueprints/imaging.py unwrap `current_user`
  with `_get_current_object()`.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import socket
import threading
from datetime import timedelta

import pytest
import waitress
from flask import g, session
from flask_login import current_user, login_user, logout_user
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from sqlalchemy import insert, select
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask

from app.extensions import db
from app.models import SessionRecord, User, utcnow
from app.web.server import _create_server, _JsonErrorChannel, _JsonErrorTask
from app.web.sessions import DatabaseSessionInterface

CJK = re.compile(r"[\u4e00-\u9fff]")

# ---- Flask-Session ------------------------------------------------------------

# Each hook as the library declares it and calls it: (name, parameters).
SESSION_HOOKS = [
    ("_retrieve_session_data", ["self", "store_id"]),
    ("_upsert_session", ["self", "session_lifetime", "session", "store_id"]),
    ("_delete_session", ["self", "store_id"]),
    ("_delete_expired_sessions", ["self"]),
    ("_get_store_id", ["self", "sid"]),
    ("_register_cleanup_app_command", ["self"]),
    ("_generate_sid", ["self", "session_id_length"]),
]


@pytest.mark.parametrize(("name", "parameters"), SESSION_HOOKS, ids=[n for n, _ in SESSION_HOOKS])
def test_flask_session_hook_keeps_the_signature_we_implement(name, parameters):
    library = getattr(ServerSideSessionInterface, name, None)
    assert library is not None, f"Flask-Session has no {name} any more (app/web/sessions.py)"
    assert list(inspect.signature(library).parameters) == parameters, (
        f"Flask-Session changed {name}{inspect.signature(library)}; app/web/sessions.py "
        f"implements {name}({', '.join(parameters)})"
    )
    # Our version must accept the call the library makes.
    ours = getattr(DatabaseSessionInterface, name)
    inspect.signature(ours).bind(*parameters)


def test_flask_session_constructor_takes_the_settings_we_pass():
    parameters = inspect.signature(ServerSideSessionInterface.__init__).parameters
    assert {"app", "key_prefix", "cleanup_n_requests"} <= set(parameters)


@pytest.fixture
def session_store_calls(app, monkeypatch):
    """Every call Flask-Session makes into the app's session hooks, in order."""
    interface = app.session_interface
    calls: list[tuple[str, tuple]] = []
    for name in ("_get_store_id", "_retrieve_session_data", "_upsert_session", "_delete_session"):
        original = getattr(interface, name)

        def record(*args, _name=name, _original=original):
            calls.append((_name, args))
            return _original(*args)

        monkeypatch.setattr(interface, name, record)
    return calls


def session_cookie(app, client) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None, "no session cookie was set"
    return cookie.value


def stored_ids(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(SessionRecord.id)))


def test_flask_session_saves_through_upsert_session(app, client, auth, session_store_calls):
    assert auth.signup().status_code == 201

    sid = session_cookie(app, client)
    store_id = app.session_interface._get_store_id(sid)
    upserts = [args for name, args in session_store_calls if name == "_upsert_session"]
    assert upserts, "Flask-Session's save_session no longer calls _upsert_session"
    lifetime, saved, target = upserts[-1]
    assert lifetime == app.permanent_session_lifetime
    assert isinstance(saved, ServerSideSession)
    assert saved.sid == sid
    assert target == store_id
    assert ("_get_store_id", (sid,)) in session_store_calls
    assert store_id in stored_ids(app)


def test_flask_session_loads_through_retrieve_session_data(app, client, auth, session_store_calls):
    auth.signup()
    sid = session_cookie(app, client)
    session_store_calls.clear()

    body = client.get("/me").get_json()

    assert body["authenticated"] is True, "the stored session was not read back"
    assert session_store_calls[:2] == [
        ("_get_store_id", (sid,)),
        ("_retrieve_session_data", (app.session_interface._get_store_id(sid),)),
    ], "Flask-Session's open_session no longer reads through our hooks"


def test_flask_session_deletes_through_delete_session(app, client, auth, session_store_calls):
    auth.signup()
    store_id = app.session_interface._get_store_id(session_cookie(app, client))
    session_store_calls.clear()

    assert auth.logout().status_code == 200

    assert ("_delete_session", (store_id,)) in session_store_calls, (
        "Flask-Session no longer calls _delete_session for an emptied session"
    )
    assert store_id not in stored_ids(app)


def test_flask_session_asks_us_to_register_the_cleanup_command(app):
    registered = []

    class Probe(DatabaseSessionInterface):
        def _register_cleanup_app_command(self) -> None:
            registered.append(self)

    probe = Probe(app)

    assert registered == [probe], (
        "Flask-Session no longer calls _register_cleanup_app_command for a ttl=False "
        "interface; its own cleanup command may now be registered beside ours"
    )
    assert "session_cleanup" not in app.cli.commands
    assert "sessions" in app.cli.commands


def test_flask_session_generates_ids_for_sessionless_paths(app, client, auth, session_store_calls):
    # SessionPolicyMixin answers /health with a fresh id from _generate_sid and
    # never reads the store, even with a session cookie.
    auth.signup()
    session_store_calls.clear()
    interface = app.session_interface

    sid = interface._generate_sid(interface.sid_length)

    assert isinstance(sid, str)
    assert len(sid) >= interface.sid_length
    assert client.get("/health").status_code == 200
    assert not [name for name, _ in session_store_calls if name == "_retrieve_session_data"]


def test_sessions_cleanup_removes_expired_rows_and_keeps_live_ones(app, client, auth, runner):
    auth.signup()  # a live session of a real login
    live_login = stored_ids(app)
    assert len(live_login) == 1
    table = SessionRecord.__table__
    now = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            insert(table),
            [
                {
                    "id": "expired-a-minute-ago",
                    "data": b"\x80",
                    "expiry": now - timedelta(minutes=1),
                },
                {"id": "expired-last-month", "data": b"\x80", "expiry": now - timedelta(days=30)},
                {"id": "live-for-an-hour", "data": b"\x80", "expiry": now + timedelta(hours=1)},
            ],
        )

    result = runner.invoke(args=["sessions", "cleanup"])

    assert result.exit_code == 0, result.output
    assert "removed 2 expired sessions" in result.output
    assert stored_ids(app) == live_login | {"live-for-an-hour"}
    assert client.get("/me").get_json()["authenticated"] is True
    again = runner.invoke(args=["sessions", "cleanup"])
    assert "removed 0 expired sessions" in again.output


# ---- waitress -----------------------------------------------------------------


def test_waitress_serve_still_takes_a_server_factory():
    """app/web/server.py hands waitress.serve `_server=_create_server`, a
    test shim of waitress, to put our channel class on every listener."""
    events = []

    class Server:
        def print_listen(self, format_str):
            pass

        def run(self):
            events.append("run")

    def factory(application, **settings):
        events.append((application, settings))
        return Server()

    def application(environ, start_response):
        raise AssertionError("never called")

    waitress.serve(application, _server=factory, host="127.0.0.1", port=0)

    assert events == [(application, {"host": "127.0.0.1", "port": 0}), "run"], (
        "waitress.serve no longer builds its server through _server="
    )


def test_waitress_channel_still_picks_its_error_task_by_class_attribute():
    assert HTTPChannel.error_task_class is ErrorTask
    assert issubclass(_JsonErrorChannel, HTTPChannel)
    assert _JsonErrorChannel.error_task_class is _JsonErrorTask
    # _JsonErrorTask replaces execute() and keeps ErrorTask's constructor.
    assert list(inspect.signature(ErrorTask.__init__).parameters) == ["self", "channel", "request"]
    assert list(inspect.signature(ErrorTask.execute).parameters) == ["self"]


def test_waitress_create_server_listeners_all_get_our_channel():
    def application(environ, start_response):
        raise AssertionError("never called")

    one = _create_server(application, host="127.0.0.1", port=0, threads=1)
    several = _create_server(application, listen="127.0.0.1:0 127.0.0.1:0", threads=1)
    try:
        assert one.channel_class is _JsonErrorChannel
        listeners = [item for item in several.map.values() if hasattr(item, "channel_class")]
        assert len(listeners) == 2, "waitress's MultiSocketServer no longer keeps .map"
        assert all(item.channel_class is _JsonErrorChannel for item in listeners)
    finally:
        one.close()
        several.close()


def test_waitress_parser_keeps_headers_in_upper_snake_case():
    # _JsonErrorTask picks the answer's language from request.headers.
    parser = HTTPRequestParser(Adjustments())
    parser.received(
        b"GET / HTTP/1.1\r\nHost: x\r\nAccept-Language: zh-CN\r\nCookie: lang=zh\r\n\r\n"
    )
    assert parser.completed
    assert parser.headers["ACCEPT_LANGUAGE"] == "zh-CN"
    assert parser.headers["COOKIE"] == "lang=zh"


@pytest.fixture
def waitress_server():
    """Our _create_server on a free port, serving in a thread."""

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = _create_server(
        application, host="127.0.0.1", port=0, threads=2, max_request_body_size=1024
    )
    thread = threading.Thread(target=server.run, name="contract-waitress", daemon=True)
    thread.start()
    yield server
    server.task_dispatcher.shutdown()
    server.close()
    thread.join(timeout=5)


def exchange(server, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.effective_port), timeout=5) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000,
            413,
            "payload_too_large",
        ),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "bad_request"),
    ],
    ids=["body-too-large", "malformed-header"],
)
def test_waitress_errors_answer_through_our_error_task(waitress_server, raw, status, code):
    line, headers, body = exchange(waitress_server, raw)

    assert line.split(" ")[1] == str(status), line
    assert headers["content-type"].startswith("application/json"), (
        "waitress answered with its own error task, not _JsonErrorTask"
    )
    answer = json.loads(body)
    assert set(answer) == {"error", "message", "detail"}
    assert answer["error"] == code
    assert answer["message"] == answer["detail"]


def test_waitress_error_answer_follows_accept_language(waitress_server):
    too_large = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nAccept-Language: %s\r\n\r\n"

    _, _, chinese = exchange(waitress_server, too_large % b"zh-CN")
    _, _, english = exchange(waitress_server, too_large % b"en")

    assert CJK.search(json.loads(chinese)["message"])
    assert not CJK.search(json.loads(english)["message"])


# ---- Flask-Login --------------------------------------------------------------


def test_flask_login_keeps_the_loaded_user_in_g_login_user(app, client, auth):
    """The access log names the user only if a view already loaded one, by
    reading g._login_user, so that logging never queries."""
    auth.signup()
    with app.test_request_context():
        user = db.session.get(User, auth.user["id"])
        assert "_login_user" not in g
        login_user(user)
        assert g._login_user is user

    with app.test_request_context():
        session["_user_id"] = user.get_id()
        assert "_login_user" not in g, "Flask-Login now loads the user before it is asked"
        assert current_user.is_authenticated
        assert g._login_user.id == user.id

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    access = logging.getLogger("nano_banana.access")
    access.addHandler(handler)
    try:
        assert client.get("/me").get_json()["authenticated"] is True
    finally:
        access.removeHandler(handler)
    assert any(f"user={user.id}" in record.getMessage() for record in records)


def test_flask_login_keeps_the_user_id_in_the_session_under_user_id(app, auth):
    """The CSRF check and the session lifetime look for session["_user_id"]."""
    auth.signup()
    with app.test_request_context():
        user = db.session.get(User, auth.user["id"])
        login_user(user)
        assert session["_user_id"] == user.get_id()
        logout_user()
        assert "_user_id" not in session


def test_current_user_still_unwraps_with_get_current_object(app, auth):
    auth.signup()
    with app.test_request_context():
        user = db.session.get(User, auth.user["id"])
        login_user(user)
        assert current_user._get_current_object() is user
