"""Conversations and their messages: the user's own only.

Someone else's conversation is indistinguishable from a missing one (404),
so ids can't be probed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update

from app.db import write_transaction
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.i18n import _l
from app.models import Conversation, Message, MessageImage, User, utcnow
from app.services import stored_images

DEFAULT_TITLE = "New conversation"
TITLE_MAX = 200
AUTO_TITLE_CHARS = 60


def encode_cursor(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *converters) -> tuple:
    """The cursor's parts, each through its converter; any fault is one 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(parts, list) or len(parts) != len(converters):
            raise ValueError
        return tuple(convert(part) for convert, part in zip(converters, parts, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(_l("Invalid cursor."), code="invalid_cursor") from None


def clean_title(title: str | None) -> str:
    title = " ".join((title or "").split())
    if not 1 <= len(title) <= TITLE_MAX:
        raise InvalidInput(_l("Title must be 1–200 characters."), code="invalid_title")
    return title


def create(user: User, title: str | None = None) -> Conversation:
    title = clean_title(title) if title and title.strip() else DEFAULT_TITLE
    now = utcnow()
    conversation = Conversation(user_id=user.id, title=title, created_at=now, updated_at=now)
    with write_transaction() as session:
        session.add(conversation)
    return conversation


def get_owned(user: User | None, conversation_id: int) -> Conversation:
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotFound()
    conversation = db.session.execute(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user.id
        )
    ).scalar_one_or_none()
    if conversation is None:
        raise NotFound()
    return conversation


@dataclass
class Page:
    items: list
    next_cursor: str | None


def list_for(user: User, *, limit: int = 50, cursor: str | None = None, q: str | None = None):
    stmt = select(Conversation).where(Conversation.user_id == user.id)
    if q and q.strip():
        pattern = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Conversation.title.ilike(f"%{pattern}%", escape="\\"))
    if cursor:
        updated_at, last_id = decode_cursor(cursor, datetime.fromisoformat, int)
        stmt = stmt.where(
            or_(
                Conversation.updated_at < updated_at,
                and_(Conversation.updated_at == updated_at, Conversation.id < last_id),
            )
        )
    stmt = stmt.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
    rows = list(db.session.execute(stmt).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.updated_at.isoformat(), last.id)
    return Page(rows, next_cursor)


def rename(user: User, conversation_id: int, title: str) -> Conversation:
    title = clean_title(title)
    conversation = get_owned(user, conversation_id)
    with write_transaction() as session:
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id, Conversation.user_id == user.id)
            .values(title=title)
        )
    conversation.title = title
    return conversation


def delete_conversation(user: User, conversation_id: int) -> None:
    """Delete the conversation, its messages, and the user's images that no
    other message of theirs uses (rows now; files once the rows are gone for
    good, unless another owner's row still uses the same file)."""
    conversation = get_owned(user, conversation_id)
    with write_transaction() as session:
        image_ids = set(
            session.execute(
                select(MessageImage.image_id)
                .join(Message, Message.id == MessageImage.message_id)
                .where(Message.conversation_id == conversation.id)
            ).scalars()
        )
        session.execute(delete(Conversation).where(Conversation.id == conversation.id))
        orphans = stored_images.delete_orphans(session, image_ids)
    session.expunge(conversation)
    stored_images.remove_files(orphans)


def list_messages(
    user: User, conversation_id: int, *, limit: int = 50, before: str | None = None
) -> Page:
    """Oldest first within the page; `next_cursor` fetches the older page."""
    conversation = get_owned(user, conversation_id)
    stmt = select(Message).where(Message.conversation_id == conversation.id)
    if before:
        (before_id,) = decode_cursor(before, int)
        stmt = stmt.where(Message.id < before_id)
    rows = list(db.session.execute(stmt.order_by(Message.id.desc()).limit(limit + 1)).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id)
    rows.reverse()
    return Page(rows, next_cursor)


@dataclass
class TurnRecord:
    """What one generation produced (or how it failed), ready to store."""

    kind: str
    prompt: str
    params: dict
    inputs: list[stored_images.StoredImage]
    outputs: list[stored_images.StoredImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    duration_ms: int | None = None
    error_code: str | None = None
    error_message: str | None = None


def failed_turn(user: User | None, conversation_id: int, reply_id: int) -> tuple[int, ...]:
    """The ids of a failed turn of the user's conversation (its prompt and
    its failed reply), for a retry to replace; NotFound otherwise."""
    conversation = get_owned(user, conversation_id)
    reply = db.session.execute(
        select(Message.id).where(
            Message.id == reply_id,
            Message.conversation_id == conversation.id,
            Message.role == "assistant",
            Message.error_code.is_not(None),
        )
    ).scalar_one_or_none()
    if reply is None:
        raise NotFound(
            _l("Message %(id)s is not a failed reply in this conversation.", id=reply_id),
            code="retry_not_found",
        )
    asked = db.session.execute(
        select(Message.id)
        .where(
            Message.conversation_id == conversation.id,
            Message.role == "user",
            Message.id < reply,
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return (reply,) if asked is None else (asked, reply)


def record_turn(
    user: User, conversation_id: int, turn: TurnRecord, replaces: tuple[int, ...] = ()
) -> tuple[Message, Message]:
    """Write the user's message and the assistant's reply in one transaction,
    and bump the conversation's counters with an atomic UPDATE (no
    read-modify-write, so concurrent turns lose nothing). `replaces` names a
    failed turn this one tries again (failed_turn): it goes in the same
    transaction, so a retry is one turn however often it is tried."""
    conversation = get_owned(user, conversation_id)
    now = utcnow()
    orphans: list[str] = []
    with write_transaction() as session:
        images = stored_images.upsert_rows(
            session, conversation.user_id, turn.inputs + turn.outputs
        )
        user_message = Message(
            conversation_id=conversation.id,
            role="user",
            kind=turn.kind,
            prompt=turn.prompt,
            params=turn.params,
            texts=[],
            finish_reasons=[],
            created_at=now,
        )
        reply = Message(
            conversation_id=conversation.id,
            role="assistant",
            kind=turn.kind,
            prompt=None,
            params={},
            texts=turn.texts,
            model=turn.model,
            finish_reasons=turn.finish_reasons,
            prompt_tokens=turn.usage.get("prompt_tokens"),
            output_tokens=turn.usage.get("output_tokens"),
            total_tokens=turn.usage.get("total_tokens"),
            duration_ms=turn.duration_ms,
            error_code=turn.error_code,
            error_message=turn.error_message,
            created_at=now,
        )
        session.add_all([user_message, reply])
        session.flush()
        for message, role, message_images in (
            (user_message, "input", turn.inputs),
            (reply, "output", turn.outputs),
        ):
            session.add_all(
                MessageImage(
                    message_id=message.id,
                    role=role,
                    position=position,
                    image_id=images[stored.sha256].id,
                )
                for position, stored in enumerate(message_images)
            )
        removed = _remove_messages(session, conversation.id, replaces) if replaces else ([], 0)
        orphans, count = removed
        values: dict = {
            "updated_at": now,
            "message_count": Conversation.message_count + 2 - count,
            "last_prompt": turn.prompt[:500],
        }
        if turn.outputs:
            values["last_image_id"] = images[turn.outputs[-1].sha256].id
        session.execute(
            update(Conversation).where(Conversation.id == conversation.id).values(values)
        )
        # A conversation still named by default takes its first prompt as title.
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id, Conversation.title == DEFAULT_TITLE)
            .values(title=_auto_title(turn.prompt))
        )
    session.refresh(user_message)
    session.refresh(reply)
    stored_images.remove_files(orphans)
    return user_message, reply


def _remove_messages(session, conversation_id: int, ids) -> tuple[list[str], int]:
    """Delete these messages of the conversation (those still there), and
    the rows of images nothing links any more; the files' hashes to remove
    after the commit, and how many messages went."""
    ids = list(ids)
    image_ids = set(
        session.execute(select(MessageImage.image_id).where(MessageImage.message_id.in_(ids)))
        .scalars()
        .all()
    )
    gone = session.execute(
        delete(Message).where(Message.id.in_(ids), Message.conversation_id == conversation_id)
    ).rowcount
    return stored_images.delete_orphans(session, image_ids), gone


def _auto_title(prompt: str) -> str:
    title = " ".join(prompt.split())
    if len(title) > AUTO_TITLE_CHARS:
        title = title[: AUTO_TITLE_CHARS - 1] + "…"
    return title or DEFAULT_TITLE


def owned_messages(user: User | None, message_ids) -> dict[int, Message]:
    """The user's messages among `message_ids` (a job's result names its turn)."""
    ids = [message_id for message_id in message_ids if message_id is not None]
    if not ids or user is None or not getattr(user, "is_authenticated", False):
        return {}
    rows = db.session.execute(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.id.in_(ids), Conversation.user_id == user.id)
    ).scalars()
    return {message.id: message for message in rows}
