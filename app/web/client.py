"""Who is calling. ProxyFix (set up in the factory from TRUSTED_PROXY_COUNT)
has already rewritten remote_addr when proxies are trusted; with none trusted
X-Forwarded-For is never read, so it cannot be spoofed."""

from __future__ import annotations

from flask import request


def client_address() -> str:
    return request.remote_addr or "unknown"
