"""Personal API tokens: `nb_<random>`; only the sha256 is stored, so a
leaked database doesn't leak usable tokens. The secret is shown once."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from app.db import write_transaction
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.models import ApiToken, User, utcnow

TOKEN_PREFIX = "nb_"
MAX_TOKENS_PER_USER = 50
# Writing last_used_at on every call would make each API call a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(user: User, name: str) -> tuple[ApiToken, str]:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("Token name must be 1–100 characters.", "令牌名称须为 1–100 个字符。")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:10], token_hash=_digest(secret))
    with write_transaction() as session:
        count = len(
            session.execute(
                select(ApiToken.id).where(
                    ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
                )
            ).all()
        )
        if count >= MAX_TOKENS_PER_USER:
            raise InvalidInput(
                f"At most {MAX_TOKENS_PER_USER} active tokens.",
                f"最多 {MAX_TOKENS_PER_USER} 个有效令牌。",
                code="too_many_tokens",
            )
        session.add(token)
    return token, secret


def list_for(user: User) -> list[ApiToken]:
    return list(
        db.session.execute(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id.desc())
        ).scalars()
    )


def revoke(user: User, token_id: int) -> None:
    with write_transaction() as session:
        revoked = session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                ApiToken.user_id == user.id,
                ApiToken.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        ).rowcount
    if not revoked:
        raise NotFound()


def authenticate(secret: str) -> User | None:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == _digest(secret))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None or token.user.disabled:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        with write_transaction() as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            )
    return token.user
