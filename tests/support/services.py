"""Local services a test needs (Redis, PostgreSQL, Chromium): skip when one is
missing on a developer's machine, fail in CI where it must be there."""

from __future__ import annotations

import os

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
