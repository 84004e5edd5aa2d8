"""Review, issue 18 point 10: images are one row per owner.

Identical pictures used to share one row with a global id, so uploading
someone else's picture, or asking the deterministic offline engine the same
prompt, returned their image id: a confirmed guess. Now each owner has rows of
their own; the file on disk is shared and lives while any owner's row uses it.
Ids stay sequential (they count every user's rows, as conversation ids do),
but a caller only ever reads their own: someone else's id is the same 404 as
a missing one. Anonymous callers get their images back and nothing is stored.

The upgrade test runs on PostgreSQL too when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade
from sqlalchemy import func, select, text
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import Conversation, Image
from app.web.server import upgrade_database
from tests.support.app import make_app
from tests.support.auth import PASSWORD, AuthActions
from tests.support.images import png_bytes

PROMPT = "a lighthouse at dusk, oil painting"


def signup(app, name):
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup(name).status_code == 201
    conv = client.post("/conversations", json={"title": name}, headers=auth.headers())
    return client, auth, conv.get_json()["id"]


def generate(client, auth, conv_id, prompt=PROMPT):
    response = client.post(
        "/v1/generate", json={"prompt": prompt, "conv_id": conv_id}, headers=auth.headers()
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return base64.b64decode(body["images"][0]), body["image_ids"][0]


def input_image_ids(client, conv_id) -> list[int]:
    messages = client.get(f"/conversations/{conv_id}/messages").get_json()["items"]
    return [image["id"] for message in messages for image in message["input_images"]]


def image_files(app) -> list:
    return sorted(p for p in app.extensions["image_store"].root.rglob("*") if p.is_file())


def assert_private(reader, own_id, foreign_id):
    assert reader.get(f"/images/{own_id}").status_code == 200
    for path in (f"/images/{foreign_id}", f"/images/{foreign_id}/thumb"):
        response = reader.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"] == "not_found"


def test_the_same_offline_prompt_gives_two_users_different_ids(app):
    alice, alice_auth, alice_conv = signup(app, "alice")
    bob, bob_auth, bob_conv = signup(app, "bob")

    alice_picture, alice_id = generate(alice, alice_auth, alice_conv)
    bob_picture, bob_id = generate(bob, bob_auth, bob_conv)

    assert alice_picture == bob_picture  # the engine is deterministic
    assert alice_id != bob_id
    assert_private(alice, alice_id, bob_id)
    assert_private(bob, bob_id, alice_id)
    assert len([p for p in image_files(app) if ".thumb." not in p.name]) == 1  # one shared file


def test_uploading_someone_elses_picture_gives_a_new_id(app):
    alice, alice_auth, alice_conv = signup(app, "alice")
    bob, bob_auth, bob_conv = signup(app, "bob")
    _, alice_id = generate(alice, alice_auth, alice_conv)
    stored = alice.get(f"/images/{alice_id}").data

    response = bob.post(
        "/v1/edit",
        data={
            "prompt": "grayscale",
            "conv_id": str(bob_conv),
            "files": [(io.BytesIO(stored), "x.png")],
        },
        headers=bob_auth.headers(),
        content_type="multipart/form-data",
    )

    assert response.status_code == 200, response.get_json()
    (uploaded_id,) = input_image_ids(bob, bob_conv)
    assert uploaded_id != alice_id
    assert bob.get(f"/images/{uploaded_id}").data == stored
    assert_private(bob, uploaded_id, alice_id)
    by_id = bob.post(
        "/v1/edit",
        data={"prompt": "grayscale", "source_image_ids": str(alice_id)},
        headers=bob_auth.headers(),
        content_type="multipart/form-data",
    )
    assert by_id.status_code == 404 and by_id.get_json()["error"] == "image_not_found"


def test_deleting_a_conversation_keeps_the_file_another_user_still_uses(app):
    alice, alice_auth, alice_conv = signup(app, "alice")
    bob, bob_auth, bob_conv = signup(app, "bob")
    picture, alice_id = generate(alice, alice_auth, alice_conv)
    _, bob_id = generate(bob, bob_auth, bob_conv)
    thumb = bob.get(f"/images/{bob_id}/thumb").data
    alice.get(f"/images/{alice_id}/thumb")
    files = image_files(app)
    assert len(files) == 2  # the picture and its thumbnail, shared

    deleted = alice.delete(f"/conversations/{alice_conv}", headers=alice_auth.headers())

    assert deleted.status_code == 204
    assert alice.get(f"/images/{alice_id}").status_code == 404
    assert bob.get(f"/images/{bob_id}").data == picture
    assert bob.get(f"/images/{bob_id}/thumb").data == thumb
    assert image_files(app) == files

    deleted = bob.delete(f"/conversations/{bob_conv}", headers=bob_auth.headers())
    assert deleted.status_code == 204
    assert image_files(app) == []


def test_anonymous_callers_store_no_image(app, client):
    generated = client.post("/v1/generate", json={"prompt": PROMPT, "conv_id": 1})
    edited = client.post(
        "/v1/edit",
        data={"prompt": "grayscale", "files": [(io.BytesIO(png_bytes()), "x.png")]},
        content_type="multipart/form-data",
    )
    for response in (generated, edited):
        assert response.status_code == 200
        assert response.get_json()["image_ids"] == []
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Image)).scalar() == 0
    assert image_files(app) == []


# ---- the upgrade: shared rows become per-owner rows --------------------------

ALICE, BOB, CAROL = 1, 2, 3
A, B, C, D = (png_bytes(color) for color in ((10, 0, 0), (0, 20, 0), (0, 0, 30), (40, 40, 0)))
# Before: one row per picture. Alice used A first, Bob then uploaded it; Bob
# made D first, Alice then uploaded it; B is Bob's alone; nothing uses C; an
# empty conversation of Carol's names A as its thumbnail (the code never did
# that: a thumbnail is a picture of the conversation).
MESSAGES = [  # id, conversation, role, created_at, [(link role, position, image id)]
    (1, 10, "user", "2025-01-01 10:00:00", []),
    (2, 10, "assistant", "2025-01-01 10:00:01", [("output", 0, 1)]),
    (3, 20, "user", "2025-01-02 10:00:00", [("input", 0, 1)]),
    (4, 20, "assistant", "2025-01-02 10:00:01", [("output", 0, 4), ("output", 1, 2)]),
    (5, 10, "user", "2025-01-03 10:00:00", [("input", 0, 4)]),
    (6, 10, "assistant", "2025-01-03 10:00:01", [("output", 0, 1)]),
]
CONVERSATIONS = [
    (10, ALICE, 4, 4),
    (20, BOB, 1, 2),
    (30, CAROL, 1, 0),
]  # id, user, last image, count


@pytest.fixture
def migrated_app(tmp_path):
    """An app whose database is built by the migrations, left empty after
    (so the next test's create_all builds it again)."""
    app = make_app(tmp_path)

    def empty():
        with app.app_context():
            db.drop_all()
            db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
            db.session.commit()

    empty()
    yield app
    empty()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    app.extensions["genai"].close()


def seed_version_one(app):
    store = app.extensions["image_store"]
    shas = {image_id: store.put(data) for image_id, data in enumerate((A, B, C, D), start=1)}
    password = generate_password_hash(PASSWORD, method=app.config["PASSWORD_HASH_METHOD"])
    stamp = "2025-01-01 00:00:00"
    rows = [
        *(
            (
                "INSERT INTO users (id, username, username_key, password_hash, created_at,"
                " is_admin, disabled, auth_epoch)"
                " VALUES (:id, :name, :name, :hash, :ts, false, false, 0)",
                {"id": user, "name": name, "hash": password},
            )
            for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"))
        ),
        *(
            (
                "INSERT INTO images (id, sha256, mime, width, height, byte_size, created_at)"
                " VALUES (:id, :sha, 'image/png', 32, 24, 100, :ts)",
                {"id": image_id, "sha": sha},
            )
            for image_id, sha in shas.items()
        ),
        *(
            (
                "INSERT INTO conversations (id, user_id, title, created_at, updated_at,"
                " message_count, last_prompt, last_image_id)"
                " VALUES (:id, :user, 'old', :ts, :ts, :count, 'p', :last)",
                {"id": cid, "user": user, "last": last, "count": count},
            )
            for cid, user, last, count in CONVERSATIONS
        ),
    ]
    for message_id, cid, role, created, links in MESSAGES:
        rows.append(
            (
                "INSERT INTO messages (id, conversation_id, role, kind, prompt, texts, params,"
                " finish_reasons, created_at)"
                " VALUES (:id, :cid, :role, 'generate', 'p', '[]', '{}', '[]', :created)",
                {"id": message_id, "cid": cid, "role": role, "created": created},
            )
        )
        rows.extend(
            (
                "INSERT INTO message_images (message_id, role, position, image_id)"
                " VALUES (:message, :role, :position, :image)",
                {"message": message_id, "role": link, "position": position, "image": image},
            )
            for link, position, image in links
        )
    with app.app_context():
        for statement, params in rows:
            db.session.execute(text(statement), {"ts": stamp, **params})
        if db.engine.dialect.name == "postgresql":  # explicit ids leave the sequences behind
            for table in ("users", "images", "conversations", "messages"):
                db.session.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT MAX(id) FROM {table}))")
                )
        db.session.commit()
    return shas


def picture_of_each_use(app, owner: bool = True) -> dict:
    """(message, role, position) and ("thumbnail", conversation) → the
    sha256 of the picture, with its row's owner unless `owner` is false."""
    who = "i.user_id" if owner else "NULL"
    with app.app_context():
        links = db.session.execute(
            text(
                f"SELECT mi.message_id, mi.role, mi.position, {who}, i.sha256"
                " FROM message_images mi JOIN images i ON i.id = mi.image_id"
            )
        ).all()
        thumbnails = db.session.execute(
            text(
                f"SELECT c.id, {who}, i.sha256 FROM conversations c"
                " JOIN images i ON i.id = c.last_image_id"
            )
        ).all()
        db.session.rollback()
    uses = {(m, role, position): (user, sha) for m, role, position, user, sha in links}
    uses.update({("thumbnail", cid): (user, sha) for cid, user, sha in thumbnails})
    return uses if owner else {use: sha for use, (_, sha) in uses.items()}


def image_rows(app) -> dict[int, tuple]:
    with app.app_context():
        rows = db.session.execute(select(Image.id, Image.user_id, Image.sha256)).all()
        db.session.rollback()
    return {image_id: (owner, sha) for image_id, owner, sha in rows}


def test_upgrade_gives_each_owner_their_own_rows_and_keeps_every_message_image(migrated_app):
    app = migrated_app
    upgrade_database(app, revision="0001")
    shas = seed_version_one(app)
    owner_of_conversation = {cid: user for cid, user, _, _ in CONVERSATIONS}
    message_conversation = {m[0]: m[1] for m in MESSAGES}
    before = picture_of_each_use(app, owner=False)

    upgrade_database(app)  # what `python wsgi.py` does at start

    with app.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []  # the migrations build what the models describe

    after = picture_of_each_use(app)
    kept = {use: sha for use, sha in before.items() if use != ("thumbnail", 30)}
    assert {use: sha for use, (_, sha) in after.items()} == kept  # no message lost a picture
    for use, (owner, _) in after.items():
        cid = use[1] if use[0] == "thumbnail" else message_conversation[use[0]]
        assert owner == owner_of_conversation[cid], use
    rows = image_rows(app)
    # The first user of a picture keeps its row and id; nothing keeps C.
    assert {rows[1], rows[2], rows[4]} == {(ALICE, shas[1]), (BOB, shas[2]), (BOB, shas[4])}
    assert 3 not in rows
    copies = {row for image_id, row in rows.items() if image_id > 4}
    assert copies == {(BOB, shas[1]), (ALICE, shas[4])}
    with app.app_context():
        assert db.session.get(Conversation, 30).last_image_id is None  # Carol's foreign thumbnail
        db.session.rollback()
    with app.app_context():
        created = dict(
            db.session.execute(select(Image.user_id, Image.created_at).where(Image.id > 4)).all()
        )
        db.session.rollback()
    # dated by the owner's own first use, which says nothing of anyone else's
    assert created[BOB].replace(tzinfo=None) == datetime(2025, 1, 2, 10)
    assert created[ALICE].replace(tzinfo=None) == datetime(2025, 1, 3, 10)

    bob = app.test_client()
    assert (
        bob.post("/auth/login", json={"username": "bob", "password": PASSWORD}).status_code == 200
    )
    messages = bob.get("/conversations/20/messages").get_json()["items"]
    (uploaded,) = messages[0]["input_images"]
    assert uploaded["id"] > 4 and bob.get(uploaded["url"]).data == A
    assert [bob.get(image["url"]).data for image in messages[1]["images"]] == [D, B]
    assert bob.get("/images/1").status_code == 404  # Alice's, though Bob has the same picture

    with app.app_context():
        downgrade(revision="0001")
    with app.app_context():
        merged = db.session.execute(text("SELECT id, sha256 FROM images ORDER BY id")).all()
        db.session.rollback()
    assert [tuple(row) for row in merged] == [(1, shas[1]), (2, shas[2]), (4, shas[4])]
    assert picture_of_each_use(app, owner=False) == kept
