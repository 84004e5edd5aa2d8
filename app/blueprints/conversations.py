"""Conversations, their messages, and the stored images they show."""

from __future__ import annotations

from flask import make_response, request
from flask_openapi3 import APIBlueprint, Tag

from app.services import conversations, stored_images
from app.web.pipeline import require_user
from app.web.schemas.common import (
    ConversationCreate,
    ConversationListQuery,
    ConversationOut,
    ConversationPageOut,
    ConversationPatch,
    ConversationPath,
    ErrorOut,
    ImagePath,
    MessageListQuery,
    MessageOut,
    MessagePageOut,
    error_responses,
)

bp = APIBlueprint(
    "conversations",
    __name__,
    abp_tags=[Tag(name="conversations")],
    abp_responses=error_responses(400, 401, 404, 413),
)

# Revalidated on every use (the ETag makes that a 304): a private picture
# must not stay readable from the cache of a shared computer after logout.
PRIVATE_REVALIDATE = "private, no-cache"


@bp.post("/conversations", responses={201: ConversationOut, 401: ErrorOut})
def create_conversation(body: ConversationCreate):
    """Start a conversation."""
    conversation = conversations.create(require_user(), body.title)
    return ConversationOut.of(conversation).model_dump(mode="json"), 201


@bp.get("/conversations", responses={200: ConversationPageOut, 401: ErrorOut})
def list_conversations(query: ConversationListQuery):
    """The caller's conversations, most recently active first."""
    page = conversations.list_for(require_user(), limit=query.limit, cursor=query.cursor, q=query.q)
    return ConversationPageOut(
        items=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor
    ).model_dump(mode="json")


@bp.get("/conversations/<int:conv_id>", responses={200: ConversationOut, 404: ErrorOut})
def get_conversation(path: ConversationPath):
    """One conversation."""
    conversation = conversations.get_owned(require_user(), path.conv_id)
    return ConversationOut.of(conversation).model_dump(mode="json")


@bp.patch("/conversations/<int:conv_id>", responses={200: ConversationOut, 404: ErrorOut})
def rename_conversation(path: ConversationPath, body: ConversationPatch):
    """Rename (title trimmed, 1..200 characters)."""
    conversation = conversations.rename(require_user(), path.conv_id, body.title)
    return ConversationOut.of(conversation).model_dump(mode="json")


@bp.delete("/conversations/<int:conv_id>", responses={204: None, 404: ErrorOut})
def delete_conversation(path: ConversationPath):
    """Delete the conversation, its messages and the images only it used."""
    conversations.delete_conversation(require_user(), path.conv_id)
    return "", 204


@bp.get("/conversations/<int:conv_id>/messages", responses={200: MessagePageOut, 404: ErrorOut})
def list_messages(path: ConversationPath, query: MessageListQuery):
    """Messages, oldest first; `next_cursor` (as `before`) fetches older ones."""
    page = conversations.list_messages(
        require_user(), path.conv_id, limit=query.limit, before=query.before
    )
    return MessagePageOut(
        items=[MessageOut.of(m) for m in page.items], next_cursor=page.next_cursor
    ).model_dump(mode="json")


def _image_response(data: bytes, mime: str, etag: str):
    if etag in request.if_none_match:
        response = make_response("", 304)
    else:
        response = make_response(data)
        response.headers["Content-Type"] = mime
    response.set_etag(etag)
    response.headers["Cache-Control"] = PRIVATE_REVALIDATE
    return response


@bp.get("/images/<int:image_id>", responses={200: None, 304: None, 404: ErrorOut})
def get_image(path: ImagePath):
    """Image bytes, for the owner of a message that uses the image."""
    image = stored_images.readable_image(require_user(), path.image_id)
    # The content hash is the strong ETag; checked before reading the file.
    if image.sha256 in request.if_none_match:
        return _image_response(b"", image.mime, image.sha256)
    return _image_response(stored_images.image_bytes(image), image.mime, image.sha256)


@bp.get("/images/<int:image_id>/thumb", responses={200: None, 304: None, 404: ErrorOut})
def get_thumbnail(path: ImagePath):
    """A small WEBP preview (long side 256 px)."""
    image = stored_images.readable_image(require_user(), path.image_id)
    etag = f"{image.sha256}-t"
    if etag in request.if_none_match:
        return _image_response(b"", stored_images.THUMB_MIME, etag)
    return _image_response(stored_images.thumbnail_bytes(image), stored_images.THUMB_MIME, etag)


@bp.get("/images/<int:image_id>/display", responses={200: None, 304: None, 404: ErrorOut})
def get_display(path: ImagePath):
    """The image as the thread shows it: WEBP, long side at most 1280 px
    (never enlarged). The original stays at /images/{id}, for download and
    the full-size viewer."""
    image = stored_images.readable_image(require_user(), path.image_id)
    etag = f"{image.sha256}-d"
    if etag in request.if_none_match:
        return _image_response(b"", stored_images.DISPLAY_MIME, etag)
    return _image_response(stored_images.display_bytes(image), stored_images.DISPLAY_MIME, etag)
