"""Local services a test needs (Redis, PostgreSQL, Chromium): skip when one is
missing on a developer's machine, fail in CI where it must be there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def require_service(name: str) -> None:
    """Skip when a local service is missing, except in CI (NB_REQUIRE_SERVICES=1),
    where a missing service is a failure."""
    if os.environ.get("NB_REQUIRE_SERVICES"):
        pytest.fail(f"{name} is required in CI but not available")
    pytest.skip(f"{name} not available")


def connect_redis(url: str):
    """A client for a local Redis, or a skip (a failure in CI) when none answers."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(url)
    try:
        client.ping()
    except RedisConnectionError:
        client.close()
        require_service("Redis")
    return client


PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards, for tests that start
    processes of their own (the main suite's `test` database is left alone).
    Yields its SQLAlchemy URL."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError:
        require_service("PostgreSQL")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
