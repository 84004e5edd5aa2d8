"""Who is calling. ProxyFix (set up in the factory from TRUSTED_PROXY_COUNT)
has already rewritten remote_addr when proxies are trusted; with none trusted
X-Forwarded-For is never read, so it cannot be spoofed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import g, request

if TYPE_CHECKING:  # app.extensions imports this module: no models at import time
    from app.models import User
    from app.services.quota import Caller


def client_address() -> str:
    return request.remote_addr or "unknown"


def current_caller(user: User | None) -> Caller:
    """Who a generation is for and who pays: `user` (the door's answer to
    "who is logged in"), the API token it came with, the address, and the
    request id the ledger rows carry."""
    from app.services.quota import Caller

    return Caller(
        user=user,
        token_id=g.get("api_token_id") if user is not None else None,
        address=client_address(),
        request_id=g.get("request_id"),
    )
