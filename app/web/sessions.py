"""Server-side sessions.

With REDIS_URL, Flask-Session's own Redis backend. Without it, sessions live
in the app database through `DatabaseSessionInterface`: Flask-Session's
interface (sid generation, regeneration, cookies, msgspec serialisation) over
our migrated `sessions` table. We don't use Flask-Session's SQLAlchemy
backend because it creates its table outside migrations at start-up and
commits the request's ORM session when saving; here every session write is
its own short Core transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import SessionRecord, utcnow

# Paths that must never touch the session store (liveness, static files).
SESSIONLESS_PREFIXES = ("/health", "/static/")


class SessionlessPathsMixin:
    """Shared by both backends: no store access for liveness and static
    files, and a Secure cookie whenever the request came over HTTPS (as
    ProxyFix reports it behind trusted proxies), not only when configured."""

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import request

        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request):
        if request.path.startswith(SESSIONLESS_PREFIXES):
            return self.session_class(sid=self._generate_sid(self.sid_length), permanent=True)
        return super().open_session(app, request)


class DatabaseSessionInterface(SessionlessPathsMixin, ServerSideSessionInterface):
    ttl = False  # expired rows are removed by `flask sessions cleanup`

    def __init__(self, app: Flask) -> None:
        super().__init__(app, key_prefix="", cleanup_n_requests=None)

    def _register_cleanup_app_command(self) -> None:
        # The CLI group in app/cli/__init__.py owns the cleanup command.
        pass

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

    def _delete_expired_sessions(self) -> int:
        table = SessionRecord.__table__
        with db.engine.begin() as conn:
            return conn.execute(delete(table).where(table.c.expiry <= utcnow())).rowcount


def init_sessions(app: Flask) -> None:
    if app.config.get("REDIS_URL"):
        from flask_session.redis import RedisSessionInterface
        from redis import Redis

        class RedisSessions(SessionlessPathsMixin, RedisSessionInterface):
            pass

        app.session_interface = RedisSessions(
            app, client=Redis.from_url(app.config["REDIS_URL"]), key_prefix="nb:session:"
        )
    else:
        app.session_interface = DatabaseSessionInterface(app)
