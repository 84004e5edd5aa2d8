"""Refusing generations while the gate is full, as WSGI middleware.

Flask opens the session when it pushes the request context, before any
before_request hook, so a refusal made in a hook has already read the session
store (a database query or a Redis call) for every browser request that
carries a cookie. A burst of refusals is cheap only if that is skipped: this
layer sees the request before Flask does, and a refusal never enters Flask
(the pipeline's refuse_busy writes it from the WSGI environ).

"Full" counts the generations this process already has in flight, not only
those the gate holds: a burst's first requests spend milliseconds (session,
limits, validation, uploads) before they reach the gate, and requests right
behind them would otherwise see room, take the whole slow path and be
refused by the gate itself, holding threads and the CPU the quick refusals
need. No more generations than the gate has slots and queue places are let
in at once; the gate still decides across processes (RedisGate).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from flask import Flask
from redis.exceptions import RedisError


class ShedWhenGateFull:
    def __init__(
        self,
        app: Flask,
        wsgi_app: Callable,
        endpoints: Iterable[str],
        refuse: Callable,
    ) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.endpoints = frozenset(endpoints)
        self.refuse = refuse
        self._paths: frozenset[str] | None = None
        self._lock = threading.Lock()
        self._in_flight = 0

    def __call__(self, environ, start_response):
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO") not in self.paths()
            or _wants_job(environ)
        ):
            return self.wsgi_app(environ, start_response)
        gate = self.app.extensions["genai"].gate
        if not self._enter(gate):
            return self.refuse(self.app, environ, start_response, gate.retry_after())
        try:
            # Generation answers are whole when the app returns them: the gate
            # is behind them. (A streamed one would leave on its close().)
            return self.wsgi_app(environ, start_response)
        finally:
            self._leave()

    def _enter(self, gate) -> bool:
        with self._lock:
            if self._in_flight >= gate.max_concurrent + gate.max_queue:
                return False
            self._in_flight += 1
        try:
            full = _is_full(gate)
        except BaseException:
            self._leave()
            raise
        if full:
            self._leave()
        return not full

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def paths(self) -> frozenset[str]:
        """The generation routes' paths, read from the url map on first use
        (the blueprints may be registered after this layer is installed)."""
        if self._paths is None:
            self._paths = frozenset(
                rule.rule
                for rule in self.app.url_map.iter_rules()
                if rule.endpoint in self.endpoints
            )
        return self._paths


def _wants_job(environ) -> bool:
    """A request for a background job (`Prefer: respond-async`) waits in the
    job queue, not in a thread: it is accepted while the gate is full. (A
    loose match; the view parses the header and runs it synchronously if it
    did not really ask.)"""
    return "respond-async" in environ.get("HTTP_PREFER", "").lower()


def _is_full(gate) -> bool:
    try:
        return gate.is_full()
    except RedisError:
        return False  # can't tell: the app answers, and reports the outage itself
