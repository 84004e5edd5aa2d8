"""Server-side sessions.

With REDIS_URL, Flask-Session's own Redis backend. Without it, sessions live
in the app database through `DatabaseSessionInterface`: Flask-Session's
interface (sid generation, regeneration, cookies, msgspec serialisation) over
our migrated `sessions` table. We don't use Flask-Session's SQLAlchemy
backend because it creates its table outside migrations at start-up and
commits the request's ORM session when saving; here every session write is
its own short Core transaction.

Both backends store a session under the sha256 of its id, as API tokens are
stored: the cookie is the only copy of the id, so a copy of the store (a
backup, a Redis dump) resumes no one's session. A request with a bearer token
has no session at all: the token says who it is, and nothing is written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import datetime, timedelta

from flask import Flask, request
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.extensions import db
from app.models import SessionRecord, utcnow
from app.web.pipeline import bearer_secret

log = logging.getLogger(__name__)

# Paths that must never touch the session store (liveness, static files).
SESSIONLESS_PREFIXES = ("/health", "/static/")


def stored_session_id(sid: str) -> str:
    """What the store keeps in place of a session id."""
    return hashlib.sha256(sid.encode()).hexdigest()


def uses_session(req) -> bool:
    return not req.path.startswith(SESSIONLESS_PREFIXES) and bearer_secret(req) is None


class SessionPolicyMixin:
    """Shared by both backends: ids stored hashed; no store access for
    liveness, static files and bearer-token requests; a Secure cookie
    whenever the request came over HTTPS (as ProxyFix reports it behind
    trusted proxies), not only when configured."""

    def _get_store_id(self, sid: str) -> str:
        return self.key_prefix + stored_session_id(sid)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request):
        if not uses_session(request):
            return self.session_class(sid=self._generate_sid(self.sid_length), permanent=True)
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: ServerSideSession, response) -> None:
        if uses_session(request):  # a token request keeps nothing and sets no cookie
            super().save_session(app, session, response)


class DatabaseSessionInterface(SessionPolicyMixin, ServerSideSessionInterface):
    """Expired rows are removed by the server itself: at most once every
    `cleanup_interval_s` per process, by the request that saves a session
    when one is due, a bounded batch at a time (`flask sessions cleanup`
    removes them all at once). Several processes doing it is harmless: the
    delete is idempotent."""

    ttl = False
    cleanup_interval_s = 600
    cleanup_batch = 500

    def __init__(self, app: Flask) -> None:
        super().__init__(app, key_prefix="", cleanup_n_requests=None)
        self._cleanup_lock = threading.Lock()
        self._next_cleanup = 0.0

    def _register_cleanup_app_command(self) -> None:
        # The CLI group in app/cli/__init__.py owns the cleanup command.
        pass

    def save_session(self, app: Flask, session: ServerSideSession, response) -> None:
        super().save_session(app, session, response)
        if uses_session(request) and self._cleanup_due():
            try:
                removed = self._delete_expired_sessions(limit=self.cleanup_batch)
            except SQLAlchemyError:
                log.warning("expired session cleanup failed", exc_info=True)
                return
            if removed >= self.cleanup_batch:
                self._next_cleanup = 0.0  # a backlog: the next request takes another batch

    def _cleanup_due(self) -> bool:
        now = time.monotonic()
        with self._cleanup_lock:
            if now < self._next_cleanup:
                return False
            self._next_cleanup = now + self.cleanup_interval_s
            return True

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        table = SessionRecord.__table__
        with db.engine.connect() as conn:
            row = conn.execute(
                select(table.c.data, table.c.expiry).where(table.c.id == store_id)
            ).first()
        if row is None:
            return None
        # UTCDateTime hands back an aware datetime on every backend.
        if row.expiry <= utcnow():
            self._delete_session(store_id)
            return None
        return self.serializer.decode(bytes(row.data))

    def _delete_session(self, store_id: str) -> None:
        table = SessionRecord.__table__
        with db.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.id == store_id))

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        table = SessionRecord.__table__
        data = self.serializer.encode(session)
        expiry: datetime = utcnow() + session_lifetime
        refresh = update(table).where(table.c.id == store_id).values(data=data, expiry=expiry)
        # Update first: the common case. Two threads creating the same new
        # session both miss the update; the loser of the insert race updates.
        with db.engine.begin() as conn:
            if conn.execute(refresh).rowcount:
                return
        try:
            with db.engine.begin() as conn:
                conn.execute(insert(table).values(id=store_id, data=data, expiry=expiry))
        except IntegrityError:
            with db.engine.begin() as conn:
                conn.execute(refresh)

    def _delete_expired_sessions(self, limit: int | None = None) -> int:
        table = SessionRecord.__table__
        expired = table.c.expiry <= utcnow()
        if limit is not None:
            expired = table.c.id.in_(select(table.c.id).where(expired).limit(limit))
        with db.engine.begin() as conn:
            return conn.execute(delete(table).where(expired)).rowcount


def init_sessions(app: Flask) -> None:
    if app.config.get("REDIS_URL"):
        from flask_session.redis import RedisSessionInterface
        from redis import Redis

        class RedisSessions(SessionPolicyMixin, RedisSessionInterface):
            pass

        app.session_interface = RedisSessions(
            app, client=Redis.from_url(app.config["REDIS_URL"]), key_prefix="nb:session:"
        )
    else:
        app.session_interface = DatabaseSessionInterface(app)
