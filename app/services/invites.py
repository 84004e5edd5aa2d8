"""Invite codes for SIGNUP_POLICY=invite: made by an admin, for one or a few
sign-ups, optionally expiring, revocable. Only the code's sha256 is kept
(like API tokens); the code is shown once, when it is made.

A use is taken by one conditional UPDATE (uses left, not revoked, not
expired), inside the sign-up's own write transaction: two sign-ups racing
for the last use can't both have it, and a sign-up that fails after taking
one (the name is taken) gives it back by rolling back.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.db import write_transaction
from app.errors import AppError, NotFound
from app.extensions import db
from app.i18n import _l
from app.models import Invite, User, utcnow

CODE_PREFIX = "nbi_"
SHOWN_PREFIX = 8  # "nbi_" and four characters: tells invites apart in a list
MAX_USES = 1000
MAX_DAYS = 365
LIST_LIMIT = 200
MAX_CODE_LENGTH = 200


class InviteRequired(
    AppError,
    code="invite_required",
    status=403,
    message=_l("Sign-up on this server needs an invite code from an administrator."),
): ...


class InviteInvalid(
    AppError,
    code="invite_invalid",
    status=403,
    message=_l("That invite code is invalid or expired."),
): ...


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def create(admin: User, uses: int = 1, expires_in_days: int | None = None) -> tuple[Invite, str]:
    code = CODE_PREFIX + secrets.token_urlsafe(12)
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    invite = Invite(
        code_hash=_digest(code),
        prefix=code[:SHOWN_PREFIX],
        created_by=admin.id,
        uses_total=uses,
        uses_left=uses,
        expires_at=expires_at,
        created_at=utcnow(),
    )
    with write_transaction() as session:
        session.add(invite)
    return invite, code


def list_all() -> list[Invite]:
    return list(
        db.session.execute(select(Invite).order_by(Invite.id.desc()).limit(LIST_LIMIT)).scalars()
    )


def state(invite: Invite) -> str:
    """active, used, expired or revoked (the first that applies, last first)."""
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and invite.expires_at <= utcnow():
        return "expired"
    return "used" if invite.uses_left <= 0 else "active"


def revoke(ref: str) -> None:
    """Revoke by the code itself or by the invite's id (the list shows ids,
    never codes). An invite already revoked, or none, is 404."""
    ref = (ref or "").strip()
    if ref.isdigit() and len(ref) <= 10:
        match = Invite.id == int(ref)
    elif ref.startswith(CODE_PREFIX) and len(ref) <= MAX_CODE_LENGTH:
        match = Invite.code_hash == _digest(ref)
    else:
        raise NotFound()
    with write_transaction() as session:
        revoked = session.execute(
            update(Invite).where(match, Invite.revoked_at.is_(None)).values(revoked_at=utcnow())
        ).rowcount
    if not revoked:
        raise NotFound()


def redeem(session: Session, code: str) -> None:
    """Take one use of the code, inside the caller's write transaction."""
    if not isinstance(code, str) or len(code) > MAX_CODE_LENGTH:
        raise InviteInvalid()
    now = utcnow()
    taken = session.execute(
        update(Invite)
        .where(
            Invite.code_hash == _digest(code),
            Invite.uses_left > 0,
            Invite.revoked_at.is_(None),
            or_(Invite.expires_at.is_(None), Invite.expires_at > now),
        )
        .values(uses_left=Invite.uses_left - 1)
    ).rowcount
    if not taken:
        raise InviteInvalid()
