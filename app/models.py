"""Database models (SQLAlchemy 2.x typed declarative)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    # casefolded username: uniqueness that ignores case on every backend
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    # UTS #39 skeleton (app/services/usernames.py): no two names look alike
    confusable_key: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on password change: sessions carry the epoch they were made
    # under, so every older session stops working at once.
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # Per-user quota overrides set by an admin; None means the config default.
    quota_daily_images: Mapped[int | None] = mapped_column(Integer)
    quota_monthly_images: Mapped[int | None] = mapped_column(Integer)
    quota_monthly_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    # Written at most once a minute per user (login, session, token use).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def get_id(self) -> str:
        return f"{self.id}:{self.auth_epoch}"

    @property
    def is_active(self) -> bool:
        return not self.disabled


class Conversation(db.Model):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Kept up to date with each turn so the list needs one query, not one per row.
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_prompt: Mapped[str | None] = mapped_column(Text)
    last_image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True
    )


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    kind: Mapped[str] = mapped_column(String(16))  # generate | edit | compose
    prompt: Mapped[str | None] = mapped_column(Text)
    texts: Mapped[list[str]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100))
    finish_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    image_links: Mapped[list[MessageImage]] = relationship(
        order_by="(MessageImage.role, MessageImage.position)",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class Image(db.Model):
    """One user's picture. Each owner has a row of their own, so an id names
    nobody else's picture and the same bytes give two users two ids; the
    bytes live once in the ImageStore under their sha256, whoever owns them."""

    __tablename__ = "images"
    __table_args__ = (
        # sha256 first: the same index answers "is any row still using this file".
        UniqueConstraint("sha256", "user_id", name="uq_images_sha256_user_id"),
        Index("ix_images_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageImage(db.Model):
    """Ordered link from a message to its input and output images."""

    __tablename__ = "message_images"
    __table_args__ = (Index("ix_message_images_image_id", "image_id"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8), primary_key=True)  # input | output
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"))

    image: Mapped[Image] = relationship(lazy="joined")


class ApiToken(db.Model):
    """Personal API token: only its sha256 is stored; the secret is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_user_id", "user_id"),
        # Names tell a user's active tokens apart; a revoked one frees its name.
        Index(
            "uq_api_tokens_user_id_active_name",
            "user_id",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class Invite(db.Model):
    """A sign-up code an admin made (SIGNUP_POLICY=invite): only its sha256
    is stored, the code is shown once. `uses_left` is taken one at a time by
    a conditional UPDATE, so two sign-ups racing for the last use can't both
    have it."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The code's first characters: enough to tell invites apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uses_total: Mapped[int] = mapped_column(Integer)
    uses_left: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SetupCode(db.Model):
    """The one-time code that makes the first admin (app/services/setup.py):
    one row per process that printed one, sha256 only, all deleted together
    when an admin is made."""

    __tablename__ = "setup_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SessionRecord(db.Model):
    """Server-side session storage when Redis is not configured."""

    __tablename__ = "sessions"

    # sha256 of the cookie's session id, never the id itself: a copy of the
    # database (a backup) holds no session anyone can resume.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expiry: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class UsageRecord(db.Model):
    """One upstream attempt (app/services/ledger.py): retries are rows of
    their own. Written by the generation service only; the usage views read it."""

    __tablename__ = "usage_ledger"
    __table_args__ = (Index("ix_usage_ledger_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    anon_address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # generate | edit | compose
    model: Mapped[str] = mapped_column(String(100))
    image_size: Mapped[str | None] = mapped_column(String(10))  # as asked: 1K, 2K, 4K
    images: Mapped[int] = mapped_column(Integer, default=0)  # returned
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))
    billed: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(64))  # "ok" or the error code
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # 1-based, per image


class QuotaCounter(db.Model):
    """What one subject ("user:7", "addr:203.0.113.9", "install") has used
    and holds reserved in one period ("d:2026-12-05", "m:2026-12")
    (app/services/quota.py). Money in micro-dollars: exact integer
    arithmetic in the conditional UPDATE on every backend."""

    __tablename__ = "quota_counters"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    used_images: Mapped[int] = mapped_column(Integer, default=0)
    reserved_images: Mapped[int] = mapped_column(Integer, default=0)
    used_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)


class QuotaReservation(db.Model):
    """Images and estimated cost held on some counters until the request
    settles or releases them; a crashed process's are swept at expiry."""

    __tablename__ = "quota_reservations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # [[subject, period], ...]: the counters holding this reservation.
    counters: Mapped[list] = mapped_column(JSON)
    images: Mapped[int] = mapped_column(Integer)
    micro_usd: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Job(db.Model):
    """A generation run by a worker (app/services/jobs.py): what the request
    held, so any process can run it, and again after a restart; its state,
    its result or error. `revision` grows with every change event streams
    report; `answered` says an upstream call of it got an answer, after which
    it is never run again (docs/reliability.md, "Jobs")."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    address: Mapped[str | None] = mapped_column(String(64))  # the caller's, as the ledger has it
    request_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # generate | edit | compose
    status: Mapped[str] = mapped_column(String(16))  # queued | running | succeeded | ...
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(100))
    # options, language, input images (files under the job's folder), warnings
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
