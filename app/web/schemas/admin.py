"""Request and response models of the first-admin setup, invite sign-up and
the admin's user and invite management."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field

from app.models import Invite
from app.services import invites
from app.services.admin import UserRow
from app.web.schemas.common import MAX_ID, Credentials, Schema

# Quota overrides: a count or dollars an admin types; beyond this is a typo.
MAX_QUOTA_IMAGES = 10_000_000
MAX_QUOTA_USD = Decimal("1000000")


class SignupIn(Credentials):
    invite_code: str | None = Field(
        None, max_length=200, description="Needed when the signup policy is `invite`"
    )


class SetupStatusOut(Schema):
    needed: bool = Field(description="No admin yet: the setup code is in the server log")
    signup_policy: Literal["open", "invite", "closed"]


class SetupIn(Schema):
    setup_code: str = Field(max_length=100)
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


# ---- users ------------------------------------------------------------------


class UserPath(Schema):
    user_id: int = Field(ge=1, le=MAX_ID)


class UserPatch(Schema):
    """Any of the fields; a quota set to null falls back to the default."""

    model_config = ConfigDict(extra="forbid")

    is_admin: bool | None = None
    disabled: bool | None = None
    quota_daily_images: int | None = Field(None, ge=0, le=MAX_QUOTA_IMAGES)
    quota_monthly_images: int | None = Field(None, ge=0, le=MAX_QUOTA_IMAGES)
    quota_monthly_usd: Decimal | None = Field(
        None, ge=0, le=MAX_QUOTA_USD, max_digits=12, decimal_places=4
    )

    def changes(self) -> dict:
        """The fields the request named (null included); is_admin and
        disabled can't be null."""
        fields = {name: getattr(self, name) for name in self.model_fields_set}
        return {
            name: value
            for name, value in fields.items()
            if value is not None or name.startswith("quota_")
        }


class PasswordSet(Schema):
    password: str = Field(max_length=256)


class QuotaLimitOut(Schema):
    override: float | int | None = Field(description="The user's own limit; null: the default")
    default: float | int | None = Field(description="The configured default; null: unlimited")
    effective: float | int | None = Field(description="What applies; null: unlimited")


class UserQuotaOut(Schema):
    daily_images: QuotaLimitOut
    monthly_images: QuotaLimitOut
    monthly_usd: QuotaLimitOut


class AdminUserOut(Schema):
    id: int
    username: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    last_seen_at: datetime | None = None
    images_today: int
    images_month: int
    cost_month_usd: float
    quota: UserQuotaOut

    @classmethod
    def of(cls, row: UserRow) -> AdminUserOut:
        user = row.user
        return cls(
            id=user.id,
            username=user.username,
            is_admin=user.is_admin,
            disabled=user.disabled,
            created_at=user.created_at,
            last_seen_at=user.last_seen_at,
            images_today=row.images_today,
            images_month=row.images_month,
            cost_month_usd=round(float(row.cost_month_usd), 4),
            quota=UserQuotaOut(
                **{
                    name: QuotaLimitOut(**{k: _number(v) for k, v in limit.items()})
                    for name, limit in row.quota.items()
                }
            ),
        )


class AdminUserListOut(Schema):
    items: list[AdminUserOut]


def _number(value):
    """Money as a JSON number rounded to 4 places; counts as they are."""
    if value is None or isinstance(value, int):
        return value
    return round(float(value), 4)


# ---- invites ----------------------------------------------------------------


class InviteCreate(Schema):
    model_config = ConfigDict(extra="forbid")

    uses: int = Field(1, ge=1, le=invites.MAX_USES, description="How many sign-ups it allows")
    expires_in_days: int | None = Field(
        None, ge=1, le=invites.MAX_DAYS, description="null: never expires"
    )


class InviteOut(Schema):
    id: int
    prefix: str = Field(description="The code's first characters, to tell invites apart")
    uses_total: int
    uses_left: int
    state: Literal["active", "used", "expired", "revoked"]
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime

    @classmethod
    def of(cls, invite: Invite) -> InviteOut:
        return cls(
            id=invite.id,
            prefix=invite.prefix,
            uses_total=invite.uses_total,
            uses_left=invite.uses_left,
            state=invites.state(invite),
            expires_at=invite.expires_at,
            revoked_at=invite.revoked_at,
            created_at=invite.created_at,
        )


class InviteCreatedOut(InviteOut):
    code: str = Field(description="The invite code; shown only once")
    uses: int = Field(description="Same as uses_total")


class InviteListOut(Schema):
    items: list[InviteOut]


class InvitePath(Schema):
    code: str = Field(
        min_length=1, max_length=200, description="The invite code, or the invite's id"
    )
