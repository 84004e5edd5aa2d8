"""Serving with waitress (`python wsgi.py`, `make run`, Docker).

Thread count: a generation holds its thread for the whole upstream call, and
so does each caller waiting in the gate's queue. The pool is sized so that
with every slot and queue place taken there are still threads for /health,
login and history.

Nothing here is POSIX-only: the same `python wsgi.py` runs on Windows.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

SPARE_THREADS = 8
# Room for multipart boundaries and headers on top of MAX_CONTENT_LENGTH, so a
# body Flask would accept is never cut off by waitress first, and one Flask
# would refuse gets Flask's JSON 413 rather than waitress's plain-text one.
BODY_SLACK_BYTES = 64 * 1024
# An idle keep-alive connection is closed after this; a connection with a
# request in progress is never idle (waitress only reaps channels with no
# request), so a long generation is not cut.
CHANNEL_TIMEOUT_S = 120
# Responses up to this size stay in memory (see serve()).
OUTBUF_OVERFLOW_BYTES = 8 * 1024 * 1024


def thread_count(config) -> int:
    """Generations in the gate and its queue, the open job event streams
    (each holds a thread while open), and spare threads for everything else."""
    if config.get("THREADS"):
        return int(config["THREADS"])
    return (
        int(config["GENAI_MAX_CONCURRENT"])
        + int(config["GENAI_MAX_QUEUE"])
        + int(config["JOB_STREAMS_MAX"])
        + SPARE_THREADS
    )


def connection_limit(config, threads: int) -> int:
    """Eight sockets per request thread (keep-alive connections idle between
    requests), but one per event-stream thread: a stream is one long request
    on its own connection. Well under the usual 1,024 open files."""
    streams = int(config["JOB_STREAMS_MAX"])
    return max(100, (threads - streams) * 8 + streams)


@contextmanager
def _loggers_kept() -> Iterator[None]:
    """Alembic's env.py calls logging.config.fileConfig(), which disables
    every logger that already exists — ours (access log, app.log) included.
    Put their state back once the migration is done."""
    manager = logging.Logger.manager
    existing = {
        name: logger.disabled
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        for name, disabled in existing.items():
            logging.getLogger(name).disabled = disabled


# Any constant both processes agree on: the key of the PostgreSQL advisory
# lock held while migrating ("nb-migr" in ASCII).
MIGRATION_LOCK_KEY = 0x6E622D6D69677200


@contextmanager
def _migration_lock(app: Flask) -> Iterator[None]:
    """Several processes started at once (behind a proxy) each migrate at
    start. On PostgreSQL they take turns under a session-level advisory lock,
    held on a connection of its own: the first applies the migrations, the
    next finds the database at head and does nothing. SQLite needs no lock:
    its writers already queue on the database file."""
    from sqlalchemy import text

    from app.extensions import db

    if db.engine.dialect.name != "postgresql":
        yield
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()


def upgrade_database(app: Flask, revision: str = "head") -> None:
    """Apply migrations at start, so an upgrade never needs a manual step."""
    from flask_migrate import upgrade

    with app.app_context(), _loggers_kept(), _migration_lock(app):
        upgrade(revision=revision)


def announce_setup_code(app: Flask) -> None:
    """While no admin exists, a one-time setup code in the log (app/services/setup.py)."""
    from app.services import setup

    with app.app_context():
        setup.announce()


def _stop_on_terminate() -> None:
    """`docker stop` and service managers send SIGTERM (Windows' Ctrl+Break:
    SIGBREAK). As PID 1 in a container Python would ignore SIGTERM, and
    elsewhere it would die on the spot; instead take the same path as Ctrl+C:
    waitress stops accepting, gives running requests a few seconds, returns."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread

    def stop(signum, _frame):
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGBREAK"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, stop)


def serve(app: Flask) -> None:
    from waitress import serve as waitress_serve

    upgrade_database(app)
    announce_setup_code(app)
    config = app.config
    threads = thread_count(config)
    logging.getLogger("waitress").setLevel(logging.INFO)
    app.logger.info(
        "serving on http://%s:%s with %d threads, provider %s",
        config["HOST"],
        config["PORT"],
        threads,
        app.extensions["genai"].provider_name,
    )
    _stop_on_terminate()
    # Job workers start with the server: jobs queued before a restart run now.
    app.extensions["job_runner"].ensure_started()
    try:
        waitress_serve(
            app,
            host=config["HOST"],
            port=int(config["PORT"]),
            threads=threads,
            # The body is refused before it is read when it can't be accepted.
            max_request_body_size=int(config["MAX_CONTENT_LENGTH"]) + BODY_SLACK_BYTES,
            channel_timeout=CHANNEL_TIMEOUT_S,
            # A home server behind a tunnel: a bounded number of sockets.
            connection_limit=connection_limit(config, threads),
            ident="nano-banana",
            # A 1 MB picture is a 1.4 MB base64 response: keep it in memory
            # rather than spill it through a temporary file (waitress's
            # default overflow is 1 MB).
            outbuf_overflow=OUTBUF_OVERFLOW_BYTES,
            # Reading ahead lets waitress notice a client that hung up while
            # its request runs (environ["waitress.client_disconnected"]):
            # an event stream whose page is gone ends instead of holding a thread.
            channel_request_lookahead=1,
            # ProxyFix (app/__init__.py) is the one mechanism that reads
            # X-Forwarded-*: waitress must pass those headers through when
            # proxies are trusted, and strips them (its default) otherwise.
            clear_untrusted_proxy_headers=int(config["TRUSTED_PROXY_COUNT"]) == 0,
            _server=_create_server,
        )
    finally:
        _shut_down(app)


class _JsonErrorTask(ErrorTask):
    """waitress answers a few faults itself, before the app sees the request:
    a body past max_request_body_size (a 100 MB upload), a malformed request,
    headers too large. Those answers get the one JSON error shape too, and
    keep waitress's internals (its limits) to itself."""

    def execute(self):
        from app.i18n import JSON_MIMETYPE, language_from_cookie_header, translate
        from app.web.errors import HTTP_MESSAGES

        error = self.request.error
        fallback = HTTP_MESSAGES[500 if error.code >= 500 else 400]
        code, message = HTTP_MESSAGES.get(error.code, fallback)
        # waitress's parsed headers (what it got of them): "ACCEPT_LANGUAGE"…
        headers = getattr(self.request, "headers", None) or {}
        language = language_from_cookie_header(
            headers.get("ACCEPT_LANGUAGE"), headers.get("COOKIE")
        )
        text = translate(message, language)
        body = json.dumps(
            {"error": code, "message": text, "detail": text}, ensure_ascii=False
        ).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", JSON_MIMETYPE))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonErrorChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


def _create_server(app, **settings):
    server = create_server(app, **settings)
    # One listening socket, or several (a host name with IPv4 and IPv6).
    for listener in [server, *getattr(server, "map", {}).values()]:
        if hasattr(listener, "channel_class"):
            listener.channel_class = _JsonErrorChannel
    return server


def _shut_down(app: Flask) -> None:
    from app.extensions import db

    app.logger.info("stopped")
    # Running jobs stay "running" until their lease runs out; the next start
    # runs again those the upstream never answered (docs/reliability.md).
    app.extensions["job_runner"].stop(timeout=5)
    with app.app_context():
        db.engine.dispose()
    app.extensions["genai"].close()
    for handler in app.logger.handlers:
        handler.flush()
