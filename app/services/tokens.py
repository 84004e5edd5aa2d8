"""Personal API tokens: `nb_<random>`; only the sha256 is stored, so a
leaked database doesn't leak usable tokens. The secret is shown once.

A token's name is unique among its owner's active tokens, so the owner can
tell which one to revoke. Creating, listing and revoking tokens is for a
logged-in browser session only (app/blueprints/auth.py): a leaked token must
not be able to mint another that outlives it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.i18n import _l
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
        raise InvalidInput(_l("Token name must be 1–100 characters."))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:10], token_hash=_digest(secret))
    name_taken = Conflict(
        _l("You already have an active token with that name."),
        code="token_name_taken",
    )
    try:
        with write_transaction() as session:
            names = (
                session.execute(
                    select(ApiToken.name).where(
                        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
                    )
                )
                .scalars()
                .all()
            )
            if name in names:
                raise name_taken
            if len(names) >= MAX_TOKENS_PER_USER:
                raise InvalidInput(
                    _l(
                        "At most %(max_tokens_per_user)s active tokens.",
                        max_tokens_per_user=MAX_TOKENS_PER_USER,
                    ),
                    code="too_many_tokens",
                )
            session.add(token)
    except IntegrityError:
        # Two creations with one name at once: the partial unique index decides.
        raise name_taken from None
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


def revoke_all(session: Session, user_id: int) -> int:
    """Revoke every active token of a user, inside the caller's write
    transaction (a password change)."""
    return session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount


def authenticate(secret: str) -> User | None:
    token = authenticate_token(secret)
    return token.user if token is not None else None


def authenticate_token(secret: str) -> ApiToken | None:
    """The active token of an enabled user this secret is, or None."""
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
            # The owner was seen too (the admin list's "last seen").
            session.execute(update(User).where(User.id == token.user_id).values(last_seen_at=now))
    return token
