"""Stored images: bytes in the ImageStore (one file per content), metadata
in `images` (one row per owner and content), readable by their owner only."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.extensions import db
from app.i18n import _l
from app.models import Image, MessageImage, User
from app.services.image_files import ImageStore

THUMB_SIZE = 256
THUMB_MIME = "image/webp"
# What the thread shows: a 2K or 4K original is several MB, its 1280 px WEBP
# a few hundred KB at most (docs/benchmarks.md, "Page weight"). The original
# is still what download and the viewer fetch.
DISPLAY_SIZE = 1280
DISPLAY_MIME = "image/webp"
# cwebp's own default: a fifth smaller than 80 for a photograph at 1280 px
# (docs/benchmarks.md, "Page weight"), no visible loss at the thread's size.
DISPLAY_QUALITY = 75
# Renditions made at once: a 4K original decodes to 64 MB, and a thread's
# first view asks for a dozen together.
RENDITION_SLOTS = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    mime: str
    width: int
    height: int
    byte_size: int
    # The bytes, kept so a file removed by a concurrent clean-up can be
    # written again inside the transaction that links it.
    data: bytes = field(default=b"", repr=False, compare=False)


def store() -> ImageStore:
    return current_app.extensions["image_store"]


def init_store(app) -> None:
    app.extensions["image_store"] = ImageStore(app.config["IMAGE_DIR"])
    # False: messages name the original as display_url (the benchmark's "before").
    app.config.setdefault("IMAGE_RENDITIONS", True)


def save(clean) -> StoredImage:
    """Write a CleanImage's bytes (file first, so no row ever points to a
    missing file) and describe it for the database."""
    store().put(clean.data, clean.mime, sha256=clean.sha256)
    return StoredImage(
        clean.sha256, clean.mime, clean.width, clean.height, len(clean.data), clean.data
    )


def upsert_rows(session: Session, owner_id: int, images: Iterable[StoredImage]) -> dict[str, Image]:
    """The owner's Image row for each picture, created where missing (inside
    the caller's write transaction). Another user's row for the same bytes is
    never reused: its id would tell this owner that someone else has them."""
    wanted = {image.sha256: image for image in images}
    if not wanted:
        return {}
    lock_images(session, wanted)
    for sha256, image in wanted.items():
        # A clean-up that ran since save() may have removed the file; under
        # the lock, what is linked now is guaranteed to be on disk.
        if image.data and not store().exists(sha256, image.mime):
            store().put(image.data, image.mime, sha256=sha256)
    owned = select(Image).where(Image.user_id == owner_id, Image.sha256.in_(wanted))
    rows = {row.sha256: row for row in session.execute(owned).scalars()}
    for sha256, image in wanted.items():
        if sha256 not in rows:
            row = Image(
                user_id=owner_id,
                sha256=sha256,
                mime=image.mime,
                width=image.width,
                height=image.height,
                byte_size=image.byte_size,
            )
            session.add(row)
            rows[sha256] = row
    session.flush()
    return rows


def delete_orphans(session: Session, image_ids: Iterable[int]) -> list[str]:
    """Delete the rows of those images no message links any more; return
    their hashes so the files can go once the transaction has committed
    (remove_files keeps a file another owner's row still uses)."""
    ids = list(image_ids)
    if not ids:
        return []
    lock_images(session, session.execute(select(Image.sha256).where(Image.id.in_(ids))).scalars())
    linked = exists().where(MessageImage.image_id == Image.id)
    orphans = list(
        session.execute(select(Image.id, Image.sha256).where(Image.id.in_(ids), ~linked)).all()
    )
    if orphans:
        session.execute(delete(Image).where(Image.id.in_([row.id for row in orphans])))
    return [row.sha256 for row in orphans]


def remove_files(hashes: Iterable[str]) -> None:
    """Delete the files no row uses any more: a file is shared by every
    owner of the same picture, and a concurrent request may have linked it
    again meanwhile (both checked under the per-image lock that upsert_rows
    takes too)."""
    hashes = sorted(set(hashes))
    if not hashes:
        return
    from app.db import write_transaction

    with write_transaction() as session:
        lock_images(session, hashes)
        alive = set(session.execute(select(Image.sha256).where(Image.sha256.in_(hashes))).scalars())
        for sha256 in hashes:
            if sha256 not in alive:
                store().delete(sha256)


def lock_images(session: Session, hashes: Iterable[str]) -> None:
    """Serialise work on the same picture across processes. SQLite's write
    transactions (BEGIN IMMEDIATE) are serial already; PostgreSQL takes a
    transaction-scoped advisory lock per image, in a fixed order."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for sha256 in sorted(hashes):
        session.execute(select(func.pg_advisory_xact_lock(int(sha256[:15], 16))))


def readable_image(user: User | None, image_id: int) -> Image:
    """The image, if it is the user's own: rows exist only while a message of
    their owner links them (delete_orphans), and anonymous callers have none."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotFound()
    image = db.session.execute(
        select(Image).where(Image.id == image_id, Image.user_id == user.id)
    ).scalar_one_or_none()
    if image is None:
        raise NotFound()
    return image


def image_bytes(image: Image) -> bytes:
    data = store().get(image.sha256, image.mime)
    if data is None:
        raise NotFound(_l("The image file is missing."), code="image_missing")
    return data


def thumbnail_bytes(image: Image) -> bytes:
    """A WEBP of at most 256 px, made on first request and kept beside the
    original; from the display rendition when there is one (a 2K or 4K PNG
    takes hundreds of milliseconds to decode, its 1280 px WEBP a few)."""
    return _rendition(image, "thumb", THUMB_SIZE, THUMB_MIME, source="display")


def display_bytes(image: Image) -> bytes:
    """A WEBP of at most 1280 px, made on first request and kept beside the
    original (its file goes with it: ImageStore.delete)."""
    return _rendition(image, "display", DISPLAY_SIZE, DISPLAY_MIME, DISPLAY_QUALITY)


def _rendition(
    image: Image,
    variant: str,
    size: int,
    mime: str,
    quality: int | None = None,
    source: str | None = None,
) -> bytes:
    cached = store().get(image.sha256, mime, variant=variant)
    if cached is not None:
        return cached
    from app.services.image_codec import make_thumbnail

    with RENDITION_SLOTS:
        # Another request may have made it while this one waited.
        cached = store().get(image.sha256, mime, variant=variant)
        if cached is not None:
            return cached
        # `source`: a rendition to start from when it exists (smaller to decode).
        smaller = source and store().get(image.sha256, DISPLAY_MIME, variant=source)
        options = {} if quality is None else {"quality": quality}
        data, made = make_thumbnail(smaller or image_bytes(image), size, **options)
        store().put(data, made, variant=variant, sha256=image.sha256)
    return data
