"""Engine tuning and the write-transaction helper.

SQLite: WAL (readers never block the writer), a busy timeout so writers wait
for each other instead of failing, and foreign keys on. Write transactions
start with BEGIN IMMEDIATE: a deferred transaction that reads and then writes
must upgrade its lock, and SQLite answers a contended upgrade with "database
is locked" at once, whatever the busy timeout. Taking the write lock up front
makes writers queue on the busy timeout instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.extensions import db

SQLITE_BUSY_TIMEOUT_MS = 10_000
IMMEDIATE = "nb_begin_immediate"


def configure_engine(app: Flask) -> None:
    with app.app_context():
        engine: Engine = db.engine
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let us issue BEGIN ourselves (pysqlite's own BEGIN is always deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        immediate = conn.get_execution_options().get(IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction() -> Iterator[Session]:
    """One short write transaction, committed on exit, rolled back on error.

    Ends the (read-only) transaction the request may have open first, so the
    write lock is taken at the start and held only for the writes.
    """
    session = db.session
    session.commit()
    session.connection(execution_options={IMMEDIATE: True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
