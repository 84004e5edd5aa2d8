"""Conversations, messages and images: ownership, pagination, cascades."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Image, Message, MessageImage
from tests.support.auth import AuthActions


@pytest.fixture
def alice(client, auth):
    auth.signup("alice", "correct-horse-1")
    return auth


def create(client, auth, title=None):
    body = {"title": title} if title is not None else {}
    response = client.post("/conversations", json=body, headers=auth.headers())
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_and_list(client, alice):
    first = create(client, alice, "Bananas")
    second = create(client, alice)
    assert first["title"] == "Bananas"
    assert second["title"] == "New conversation"
    items = client.get("/conversations").get_json()["items"]
    assert [item["id"] for item in items] == [second["id"], first["id"]]
    assert items[0]["message_count"] == 0 and items[0]["last_image_thumb_url"] is None


def test_conversation_routes_need_login(client):
    assert client.get("/conversations").status_code == 401
    assert client.post("/conversations", json={}).status_code == 401


def test_rename_trims_and_validates(client, alice):
    conv = create(client, alice)
    response = client.patch(
        f"/conversations/{conv['id']}", json={"title": "  Sunny   days  "}, headers=alice.headers()
    )
    assert response.status_code == 200
    assert response.get_json()["title"] == "Sunny days"
    for bad in ["   ", "x" * 201]:
        response = client.patch(
            f"/conversations/{conv['id']}", json={"title": bad}, headers=alice.headers()
        )
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_title"


def test_list_is_cursor_paginated_newest_activity_first(client, alice, seed_turn):
    ids = [create(client, alice, f"c{i}")["id"] for i in range(7)]
    # Activity in the oldest conversation moves it to the top.
    seed_turn(alice.user["id"], ids[0])
    seen, cursor = [], None
    while True:
        url = "/conversations?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [ids[0], *reversed(ids[1:])]


def test_list_item_carries_last_prompt_and_thumbnail(client, alice, seed_turn):
    conv = create(client, alice)
    seeded = seed_turn(alice.user["id"], conv["id"], prompt="a yellow banana")
    item = client.get("/conversations").get_json()["items"][0]
    assert item["message_count"] == 2
    assert item["last_prompt"] == "a yellow banana"
    assert item["title"] == "a yellow banana"  # first prompt names a default-titled chat
    assert item["last_image_thumb_url"] == f"/images/{seeded.image_id}/thumb"
    thumb = client.get(item["last_image_thumb_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp"


def test_title_filter(client, alice):
    create(client, alice, "Banana split")
    create(client, alice, "Apple pie")
    create(client, alice, "100% banana")
    titles = [i["title"] for i in client.get("/conversations?q=banana").get_json()["items"]]
    assert sorted(titles) == ["100% banana", "Banana split"]
    assert [i["title"] for i in client.get("/conversations?q=%25").get_json()["items"]] == [
        "100% banana"
    ]


def test_messages_oldest_first_and_paginated_backwards(client, alice, seed_turn):
    conv = create(client, alice)
    for i in range(5):
        seed_turn(alice.user["id"], conv["id"], prompt=f"turn {i}", color=(i * 40, 10, 10))
    page = client.get(f"/conversations/{conv['id']}/messages?limit=4").get_json()
    prompts = [m["prompt"] for m in page["items"] if m["role"] == "user"]
    assert prompts == ["turn 3", "turn 4"]
    older = client.get(
        f"/conversations/{conv['id']}/messages?limit=4&before={page['next_cursor']}"
    ).get_json()
    assert [m["prompt"] for m in older["items"] if m["role"] == "user"] == ["turn 1", "turn 2"]
    rest = client.get(
        f"/conversations/{conv['id']}/messages?limit=4&before={older['next_cursor']}"
    ).get_json()
    assert [m["prompt"] for m in rest["items"] if m["role"] == "user"] == ["turn 0"]
    assert rest["next_cursor"] is None


def test_messages_reference_images_by_url_not_base64(client, alice, seed_turn):
    conv = create(client, alice)
    seeded = seed_turn(alice.user["id"], conv["id"])
    messages = client.get(f"/conversations/{conv['id']}/messages").get_json()["items"]
    reply = messages[-1]
    assert reply["role"] == "assistant"
    image = reply["images"][0]
    assert image == {
        "id": seeded.image_id,
        "url": f"/images/{seeded.image_id}",
        "thumb_url": f"/images/{seeded.image_id}/thumb",
        "display_url": f"/images/{seeded.image_id}/display",
        "width": 32,
        "height": 24,
        "mime": "image/png",
        "byte_size": image["byte_size"],
    }
    assert len(str(messages)) < 3000


def test_image_is_revalidated_with_strong_etag(client, alice, seed_turn):
    conv = create(client, alice)
    seeded = seed_turn(alice.user["id"], conv["id"])
    response = client.get(f"/images/{seeded.image_id}")
    assert response.status_code == 200
    assert response.data.startswith(b"\x89PNG")
    assert response.headers["Cache-Control"] == "private, no-cache"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get(f"/images/{seeded.image_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    thumb = client.get(f"/images/{seeded.image_id}/thumb")
    again = client.get(
        f"/images/{seeded.image_id}/thumb", headers={"If-None-Match": thumb.headers["ETag"]}
    )
    assert again.status_code == 304


def test_other_users_get_404_on_every_route(client, alice, seed_turn, app):
    conv = create(client, alice, "private")
    seeded = seed_turn(alice.user["id"], conv["id"])
    bob = app.test_client()
    response = bob.post("/auth/signup", json={"username": "bob", "password": "correct-horse-2"})
    headers = {"X-CSRF-Token": response.get_json()["csrf_token"]}
    cid, iid = conv["id"], seeded.image_id
    attempts = [
        bob.get(f"/conversations/{cid}"),
        bob.get(f"/conversations/{cid}/messages"),
        bob.patch(f"/conversations/{cid}", json={"title": "mine now"}, headers=headers),
        bob.delete(f"/conversations/{cid}", headers=headers),
        bob.get(f"/images/{iid}"),
        bob.get(f"/images/{iid}/thumb"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.request.path
        assert response.get_json()["error"] == "not_found"
    # and alice still has everything
    assert client.get(f"/conversations/{cid}").get_json()["title"] == "private"
    assert bob.get("/conversations").get_json()["items"] == []


def test_anonymous_cannot_read_images(client, alice, seed_turn, app):
    conv = create(client, alice)
    seeded = seed_turn(alice.user["id"], conv["id"])
    assert app.test_client().get(f"/images/{seeded.image_id}").status_code == 401


def test_missing_and_huge_ids_are_404_or_422_never_500(client, alice):
    assert client.get("/conversations/999999").status_code == 404
    for path in ["/conversations/99999999999999999999999", "/conversations/abc", "/images/-1"]:
        response = client.get(path)
        assert response.status_code in (404, 422), path
        assert "error" in response.get_json()


def test_delete_cascades_messages_and_orphan_images(client, alice, seed_turn, app):
    keep = create(client, alice, "keep")
    drop = create(client, alice, "drop")
    shared = seed_turn(alice.user["id"], keep["id"], color=(1, 2, 3))
    seed_turn(alice.user["id"], drop["id"], color=(1, 2, 3))  # same bytes: shared image
    only = seed_turn(alice.user["id"], drop["id"], color=(9, 9, 9))
    store = app.extensions["image_store"]
    with app.app_context():
        only_sha = db.session.get(Image, only.image_id).sha256
    assert store.exists(only_sha)

    response = client.delete(f"/conversations/{drop['id']}", headers=alice.headers())
    assert response.status_code == 204
    assert client.get(f"/conversations/{drop['id']}").status_code == 404
    with app.app_context():
        assert db.session.get(Image, only.image_id) is None
        assert db.session.get(Image, shared.image_id) is not None
        remaining = db.session.execute(select(func.count()).select_from(Message)).scalar()
        assert remaining == 2
        links = db.session.execute(select(func.count()).select_from(MessageImage)).scalar()
        assert links == 1
    assert not store.exists(only_sha)
    assert client.get(f"/images/{shared.image_id}").status_code == 200


@pytest.mark.parametrize("turn_owner", ["same user", "another user"])
def test_picture_relinked_during_clean_up_keeps_its_file(
    client, alice, bob, seed_turn, app, turn_owner
):
    """A turn saved a picture's file, then a delete removed the last other use
    of the same picture (and its file) before the turn linked it; the file is
    shared by owners, so the turn may be another user's."""
    import hashlib
    from types import SimpleNamespace

    from app.models import User
    from app.services import conversations, stored_images
    from tests.support.images import png_bytes

    reader, owner = (client, alice) if turn_owner == "same user" else bob
    doomed = create(client, alice, "doomed")
    keeper = create(reader, owner, "keeper")
    seed_turn(alice.user["id"], doomed["id"], color=(5, 6, 7))
    data = png_bytes((5, 6, 7))
    clean = SimpleNamespace(
        data=data, mime="image/png", width=32, height=24, sha256=hashlib.sha256(data).hexdigest()
    )
    with app.test_request_context():
        pending = stored_images.save(clean)  # the file exists: nothing written
    assert (
        client.delete(f"/conversations/{doomed['id']}", headers=alice.headers()).status_code == 204
    )
    assert not app.extensions["image_store"].exists(clean.sha256)

    with app.test_request_context():
        user = db.session.get(User, owner.user["id"])
        turn = conversations.TurnRecord(
            kind="generate", prompt="again", params={}, inputs=[], outputs=[pending]
        )
        _, reply = conversations.record_turn(user, keeper["id"], turn)
        image_id = reply.image_links[0].image_id
    served = reader.get(f"/images/{image_id}")
    assert served.status_code == 200 and served.data == data


# ---- one image row per owner; shared files ---------------------------------


@pytest.fixture
def bob(app):
    client = app.test_client()
    actions = AuthActions(client)
    actions.signup("bob", "correct-horse-2")
    return client, actions


def test_same_picture_gives_each_owner_a_row_of_their_own(client, alice, bob, seed_turn, app):
    bob_client, bob_auth = bob
    alice_conv, bob_conv = create(client, alice), create(bob_client, bob_auth)
    mine = seed_turn(alice.user["id"], alice_conv["id"], color=(1, 2, 3))
    again = seed_turn(alice.user["id"], alice_conv["id"], color=(1, 2, 3))
    theirs = seed_turn(bob_auth.user["id"], bob_conv["id"], color=(1, 2, 3))

    assert again.image_id == mine.image_id  # one row per owner and picture
    assert theirs.image_id != mine.image_id
    with app.app_context():
        rows = db.session.execute(select(Image.user_id, Image.sha256)).all()
    assert sorted(owner for owner, _ in rows) == sorted([alice.user["id"], bob_auth.user["id"]])
    assert len({sha for _, sha in rows}) == 1  # the same bytes
    for reader, own, foreign in (
        (client, mine.image_id, theirs.image_id),
        (bob_client, theirs.image_id, mine.image_id),
    ):
        assert reader.get(f"/images/{own}").status_code == 200
        assert reader.get(f"/images/{foreign}").status_code == 404
        assert reader.get(f"/images/{foreign}/thumb").status_code == 404


def test_deleting_one_owners_conversation_keeps_the_file_the_other_uses(
    client, alice, bob, seed_turn, app
):
    bob_client, bob_auth = bob
    alice_conv, bob_conv = create(client, alice), create(bob_client, bob_auth)
    mine = seed_turn(alice.user["id"], alice_conv["id"], color=(4, 5, 6))
    theirs = seed_turn(bob_auth.user["id"], bob_conv["id"], color=(4, 5, 6))
    picture = bob_client.get(f"/images/{theirs.image_id}").data
    thumb = bob_client.get(f"/images/{theirs.image_id}/thumb").data
    store = app.extensions["image_store"]
    with app.app_context():
        sha = db.session.get(Image, theirs.image_id).sha256
    assert store.exists(sha) and store.exists(sha, "image/webp", "thumb")

    assert (
        client.delete(f"/conversations/{alice_conv['id']}", headers=alice.headers()).status_code
        == 204
    )

    with app.app_context():
        assert db.session.get(Image, mine.image_id) is None
        assert db.session.get(Image, theirs.image_id) is not None
    assert store.exists(sha) and store.exists(sha, "image/webp", "thumb")
    assert bob_client.get(f"/images/{theirs.image_id}").data == picture
    assert bob_client.get(f"/images/{theirs.image_id}/thumb").data == thumb

    delete = bob_client.delete(f"/conversations/{bob_conv['id']}", headers=bob_auth.headers())
    assert delete.status_code == 204
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Image)).scalar() == 0
    assert not store.exists(sha) and not store.exists(sha, "image/webp", "thumb")
