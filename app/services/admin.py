"""What an admin does to accounts: list them with their usage, promote and
demote, disable and enable, set quota overrides, reset a password, delete.

The install always keeps one enabled admin: demoting, disabling or deleting
the last one is refused (409 `last_admin`). The check locks every enabled
admin's row first (PostgreSQL; SQLite's write lock is already held), so two
admins demoting each other at once can't both succeed.

Disabling a user ends their sessions (the epoch moves on) and revokes their
API tokens in the same transaction: their next request with either is 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.db import write_transaction
from app.errors import AppError, Conflict, Forbidden, NotFound
from app.extensions import db
from app.i18n import _l
from app.models import Conversation, Image, User
from app.services import accounts, quota, stored_images, tokens, usage

EDITABLE = (
    "is_admin",
    "disabled",
    "quota_daily_images",
    "quota_monthly_images",
    "quota_monthly_usd",
)
# The admin list's quota names and the user column that overrides each.
QUOTA_COLUMNS = {
    quota.DAILY_IMAGES: "quota_daily_images",
    quota.MONTHLY_IMAGES: "quota_monthly_images",
    quota.MONTHLY_USD: "quota_monthly_usd",
}


class LastAdmin(
    AppError,
    code="last_admin",
    status=409,
    message=_l("This is the last administrator: make another one first."),
): ...


@dataclass
class UserRow:
    """A user as the admin list shows them."""

    user: User
    images_today: int
    images_month: int
    cost_month_usd: Decimal
    quota: dict[str, dict[str, Any]]


def require_admin(admin: User) -> None:
    if not getattr(admin, "is_admin", False) or getattr(admin, "disabled", True):
        raise Forbidden()


def quota_of(user: User) -> dict[str, dict[str, Any]]:
    """Each limit: the user's override (None: none), the effective value
    (None: unlimited) and the config default it falls back to."""
    effective = quota.effective_limits(user)
    defaults = quota.effective_limits(User())  # a user with no overrides
    return {
        name: {
            "override": getattr(user, column),
            "default": defaults[name],
            "effective": effective[name],
        }
        for name, column in QUOTA_COLUMNS.items()
    }


def list_users(admin: User) -> list[UserRow]:
    require_admin(admin)
    return _rows(list(db.session.execute(select(User).order_by(User.id)).scalars()))


def _rows(users: list[User]) -> list[UserRow]:
    totals = usage.user_totals([user.id for user in users])
    rows = []
    for user in users:
        figures = totals.get(user.id) or {}
        rows.append(
            UserRow(
                user=user,
                images_today=int(figures.get("images_today", 0)),
                images_month=int(figures.get("images_month", 0)),
                cost_month_usd=Decimal(figures.get("cost_month_usd", 0)),
                quota=quota_of(user),
            )
        )
    return rows


def _enabled_admins(session: Session) -> list[int]:
    return list(
        session.execute(
            select(User.id)
            .where(User.is_admin.is_(True), User.disabled.is_(False))
            .order_by(User.id)
            .with_for_update()
        ).scalars()
    )


def _locked_user(session: Session, user_id: int, *, may_remove_admin: bool) -> User:
    """The user's row, locked. When the change may leave the install without
    an admin, every enabled admin's row is locked first, always in id order
    and before the target's, so two such changes queue rather than deadlock,
    and the last-admin check reads rows nobody else can change."""
    admins = _enabled_admins(session) if may_remove_admin else []
    user = session.execute(
        select(User).where(User.id == user_id).with_for_update()
    ).scalar_one_or_none()
    if user is None:
        raise NotFound()
    if may_remove_admin and admins == [user.id]:
        raise LastAdmin()
    return user


def update_user(admin: User, user_id: int, **fields: Any) -> UserRow:
    """Change any of EDITABLE; a quota field set to None falls back to the
    config default."""
    require_admin(admin)
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    with write_transaction() as session:
        may_remove_admin = fields.get("is_admin") is False or fields.get("disabled") is True
        user = _locked_user(session, user_id, may_remove_admin=may_remove_admin)
        disabling = fields.get("disabled") is True and not user.disabled
        values = dict(fields)
        if disabling:
            values["auth_epoch"] = User.auth_epoch + 1
            tokens.revoke_all(session, user.id)
        if values:
            session.execute(update(User).where(User.id == user.id).values(**values))
    # No admin check here: the admin may just have demoted or disabled themselves.
    return _rows([db.session.get(User, user_id, populate_existing=True)])[0]


def set_password(admin: User, user_id: int, password: str) -> UserRow:
    """A new password set by an admin: the user's sessions end and their
    tokens are revoked, as when they change it themselves."""
    require_admin(admin)
    accounts.validate_password(password)
    new_hash = accounts.hash_password(password)
    with write_transaction() as session:
        user = _locked_user(session, user_id, may_remove_admin=False)
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(password_hash=new_hash, auth_epoch=User.auth_epoch + 1)
        )
        tokens.revoke_all(session, user.id)
    # No admin check here: the admin may just have demoted or disabled themselves.
    return _rows([db.session.get(User, user_id, populate_existing=True)])[0]


def delete_user(admin: User, user_id: int) -> None:
    """The user, their conversations, tokens and image rows; their files
    too, unless another owner's row still uses the same bytes."""
    require_admin(admin)
    if user_id == admin.id:
        # The request's own user would vanish under it; another admin can.
        raise Conflict(
            _l("You can't delete your own account. Another administrator can."),
            code="cannot_delete_self",
        )
    with write_transaction() as session:
        user = _locked_user(session, user_id, may_remove_admin=True)
        hashes = list(
            session.execute(select(Image.sha256).where(Image.user_id == user.id)).scalars()
        )
        stored_images.lock_images(session, hashes)
        # In this order: messages (and their image links) go with the
        # conversations, then nothing links the image rows any more.
        session.execute(delete(Conversation).where(Conversation.user_id == user.id))
        session.execute(delete(Image).where(Image.user_id == user.id))
        session.execute(delete(User).where(User.id == user.id))
        # SQLite may give a later user the same id: they start from zero.
        quota.forget_user(session, user.id)
    session.expunge(user)
    stored_images.remove_files(hashes)
