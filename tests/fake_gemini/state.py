"""What the fake records of each call, and its mutable settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedCall:
    method: str
    path: str
    model: str
    api_version: str
    headers: dict[str, str]
    body: Any
    started: float
    ended: float | None = None
    fault: str = "ok"
    status: int | None = None
    # True when the request came as a proxy would send it (absolute URL).
    proxied: bool = False


@dataclass
class State:
    """The knobs and what has been seen; guarded by FakeGemini's lock."""

    latency: float = 0.0
    image_size: tuple[int, int] = (64, 64)
    image_kb: int | None = None
    # When set, any other x-goog-api-key is answered with key_invalid().
    api_key: str | None = None
    requests: list[RecordedCall] = field(default_factory=list)
    start_times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    # Targets of CONNECT requests: an HTTPS client was told to use this server
    # as its proxy. They are refused (no TLS here) but recorded.
    proxy_tunnels: list[str] = field(default_factory=list)
