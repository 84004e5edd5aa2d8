"""Concurrent writers lose nothing: atomic counters and BEGIN IMMEDIATE."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Conversation, Message

THREADS = 8
WRITES = 50


def test_concurrent_turns_lose_no_update(app, client, auth, seed_turn):
    auth.signup()
    conv = client.post("/conversations", json={}, headers=auth.headers()).get_json()
    user_id = auth.user["id"]
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(WRITES):
                seed_turn(user_id, conv["id"], prompt=f"{n}-{i}", color=(n, i, 7))
        except BaseException as error:  # recorded and asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with app.app_context():
        count = db.session.execute(
            select(func.count()).select_from(Message).where(Message.conversation_id == conv["id"])
        ).scalar()
        counter = db.session.get(Conversation, conv["id"]).message_count
    assert count == THREADS * WRITES * 2
    assert counter == count


def test_one_session_used_by_many_threads_at_once(app, auth, client):
    auth.signup()
    cookie = client.get_cookie("nb_session").value
    headers = auth.headers()
    errors: list = []

    def use_session(n: int) -> None:
        other = app.test_client()
        other.set_cookie("nb_session", cookie)
        for i in range(10):
            response = other.post("/conversations", json={"title": f"{n}-{i}"}, headers=headers)
            if response.status_code != 201:
                errors.append(response.get_json())
            if other.get("/me").status_code != 200:
                errors.append("me failed")

    threads = [threading.Thread(target=use_session, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Conversation)).scalar() == 80


@pytest.mark.parametrize("pragma,expected", [("journal_mode", "wal"), ("foreign_keys", 1)])
def test_sqlite_is_tuned(app, pragma, expected):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only")
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql(f"PRAGMA {pragma}").scalar() == expected
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
