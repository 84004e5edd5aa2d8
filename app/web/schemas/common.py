"""Request and response models (pydantic). They validate input and generate
the OpenAPI document; views turn ORM objects into them here, in one place."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from flask import current_app, url_for
from pydantic import BaseModel, ConfigDict, Field

from app.models import Conversation, Image, Message, User


class Schema(BaseModel):
    """Every request and response model.

    flask-openapi3 calls `model_json_schema()` on every request that has a
    query or a form, to see how to read each field: CPU on every request for
    a result that never changes once the class exists (docs/benchmarks.md,
    "JSON schemas built once"). It is built once per class and argument set;
    each caller gets its own copy, so none can change what another reads.
    """

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> dict[str, Any]:
        try:
            key = (cls, args, tuple(sorted(kwargs.items())))
            cached = _SCHEMAS.get(key)
        except TypeError:  # an unhashable argument: build it, as pydantic would
            return super().model_json_schema(*args, **kwargs)
        if cached is None:
            cached = _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(cached)


_SCHEMAS: dict[tuple, dict[str, Any]] = {}


# Id columns are INTEGER: 32-bit on PostgreSQL, which answers a larger
# parameter with "integer out of range" (a 500). Refuse them before SQL does.
MAX_ID = 2**31 - 1


class ErrorOut(Schema):
    error: str = Field(description="Stable error code")
    message: str = Field(description="Human text in the caller's language")
    detail: str = Field(description="Same as message (earlier clients read `detail`)")


class FieldError(Schema):
    loc: list[str]
    msg: str
    type: str


class ValidationErrorOut(ErrorOut):
    errors: list[FieldError] | None = Field(
        None, description="What is wrong with which field (request validation)"
    )


def error_responses(*statuses: int) -> dict[int, type[BaseModel]]:
    """The documented error answers of an API blueprint: all in the one error
    shape; 422 (request validation) also lists the fields."""
    return {status: ErrorOut for status in statuses} | {422: ValidationErrorOut}


# ---- accounts ---------------------------------------------------------------


class Credentials(Schema):
    model_config = ConfigDict(
        json_schema_extra={"example": {"username": "alice", "password": "s3cret-pass"}}
    )

    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class PasswordChange(Schema):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class UserOut(Schema):
    id: int
    username: str
    is_admin: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id, username=user.username, is_admin=user.is_admin, created_at=user.created_at
        )


class SessionOut(Schema):
    authenticated: bool
    user: UserOut | None = None
    csrf_token: str | None = Field(
        None, description="Send as X-CSRF-Token on cookie-authenticated writes"
    )


class OkOut(Schema):
    ok: bool = True


class TokenCreate(Schema):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret; shown only once")


class TokenListOut(Schema):
    items: list[TokenOut]


class TokenPath(Schema):
    token_id: int = Field(ge=1, le=MAX_ID)


# ---- conversations ----------------------------------------------------------


class ConversationCreate(Schema):
    title: str | None = Field(None, max_length=400)


class ConversationPatch(Schema):
    title: str = Field(max_length=400)


class ConversationPath(Schema):
    conv_id: int = Field(ge=1, le=MAX_ID)


class ConversationListQuery(Schema):
    limit: int = Field(30, ge=1, le=100)
    cursor: str | None = Field(None, max_length=500)
    q: str | None = Field(None, max_length=200, description="Title filter")


class MessageListQuery(Schema):
    limit: int = Field(30, ge=1, le=200)
    before: str | None = Field(None, max_length=500, description="Cursor for older messages")


class ImageRef(Schema):
    id: int
    url: str = Field(description="The original (download, full-size viewer)")
    thumb_url: str = Field(description="WEBP, long side at most 256 px")
    display_url: str = Field(description="WEBP, long side at most 1280 px: what the thread shows")
    width: int
    height: int
    mime: str
    byte_size: int

    @classmethod
    def of(cls, image: Image) -> ImageRef:
        url = url_for("conversations.get_image", image_id=image.id)
        display = url
        if current_app.config.get("IMAGE_RENDITIONS", True):
            display = url_for("conversations.get_display", image_id=image.id)
        return cls(
            id=image.id,
            url=url,
            thumb_url=url_for("conversations.get_thumbnail", image_id=image.id),
            display_url=display,
            width=image.width,
            height=image.height,
            mime=image.mime,
            byte_size=image.byte_size,
        )


class ConversationOut(Schema):
    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    last_prompt: str | None = None
    last_image_id: int | None = None
    last_image_thumb_url: str | None = None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        thumb = None
        if conversation.last_image_id:
            thumb = url_for("conversations.get_thumbnail", image_id=conversation.last_image_id)
        return cls(
            id=conversation.id,
            title=conversation.title,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
            message_count=conversation.message_count,
            last_prompt=conversation.last_prompt,
            last_image_id=conversation.last_image_id,
            last_image_thumb_url=thumb,
        )


class ConversationPageOut(Schema):
    items: list[ConversationOut]
    next_cursor: str | None = None


class MessageError(Schema):
    code: str
    message: str | None = None


class MessageOut(Schema):
    id: int
    conversation_id: int
    role: str
    kind: str
    prompt: str | None = None
    texts: list[str] = []
    params: dict[str, Any] = {}
    model: str | None = None
    finish_reasons: list[str] = []
    usage: dict[str, int] = {}
    duration_ms: int | None = None
    error: MessageError | None = None
    images: list[ImageRef] = []
    input_images: list[ImageRef] = []
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        usage = {
            key: value
            for key, value in (
                ("prompt_tokens", message.prompt_tokens),
                ("output_tokens", message.output_tokens),
                ("total_tokens", message.total_tokens),
            )
            if value is not None
        }
        links = message.image_links
        return cls(
            id=message.id,
            conversation_id=message.conversation_id,
            role=message.role,
            kind=message.kind,
            prompt=message.prompt,
            texts=message.texts or [],
            params=message.params or {},
            model=message.model,
            finish_reasons=message.finish_reasons or [],
            usage=usage,
            duration_ms=message.duration_ms,
            error=MessageError(code=message.error_code, message=message.error_message)
            if message.error_code
            else None,
            images=[ImageRef.of(link.image) for link in links if link.role == "output"],
            input_images=[ImageRef.of(link.image) for link in links if link.role == "input"],
            created_at=message.created_at,
        )


class MessagePageOut(Schema):
    items: list[MessageOut]
    next_cursor: str | None = None


class ImagePath(Schema):
    image_id: int = Field(ge=1, le=MAX_ID)


# ---- health -----------------------------------------------------------------


class HealthOut(Schema):
    status: str
    version: str
    provider: str


class ReadyOut(Schema):
    status: str
    database: str
