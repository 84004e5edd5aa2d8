"""Serving with waitress (`python wsgi.py`, `make run`, Docker).

Thread count: a generation holds its thread for the whole upstream call, and
so does each caller waiting in the gate's queue. The pool is sized so that
with every slot and queue place taken there are still threads for /health,
login and history.
"""

from __future__ import annotations

import logging

from flask import Flask

SPARE_THREADS = 8


def thread_count(config) -> int:
    if config.get("THREADS"):
        return int(config["THREADS"])
    return int(config["GENAI_MAX_CONCURRENT"]) + int(config["GENAI_MAX_QUEUE"]) + SPARE_THREADS


def upgrade_database(app: Flask) -> None:
    """Apply migrations at start, so an upgrade never needs a manual step."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()


def serve(app: Flask) -> None:
    from waitress import serve as waitress_serve

    upgrade_database(app)
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
    waitress_serve(
        app,
        host=config["HOST"],
        port=int(config["PORT"]),
        threads=threads,
        # The body is refused before it is read when it can't be accepted.
        max_request_body_size=int(config["MAX_CONTENT_LENGTH"]) + 64 * 1024,
        # Idle keep-alive connections are closed after this; a generation in
        # progress isn't idle.
        channel_timeout=120,
        # A home server behind a tunnel: a bounded number of sockets.
        connection_limit=max(100, threads * 8),
        ident="nano-banana",
    )
