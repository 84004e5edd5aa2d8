"""Storage under stress: 16 writers at once lose nothing; a server killed
with SIGKILL in the middle of a burst of writes comes back with an intact
database holding every message whose request was answered 2xx."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Conversation, Message
from tests.reliability.support import NO_LIMITS, http_json, report, server_process
from tests.wsgi_server import WsgiServer

WRITERS = 16
ROUNDS = 5
PASSWORD = "correct-horse-1"


def test_sixteen_writers_at_once_lose_nothing(app_factory):
    app = app_factory(GENAI_MAX_CONCURRENT=WRITERS, GENAI_MAX_QUEUE=WRITERS, **NO_LIMITS)
    owner = app.test_client()
    body = owner.post("/auth/signup", json={"username": "alice", "password": PASSWORD}).get_json()
    shared = owner.post(
        "/conversations", json={"title": "shared"}, headers={"X-CSRF-Token": body["csrf_token"]}
    ).get_json()["id"]
    barrier = threading.Barrier(WRITERS)
    failures: list = []
    created: list[int] = []
    message_ids: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        client = app.test_client()  # its own session, as another tab would be
        login = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
        headers = {"X-CSRF-Token": login.get_json()["csrf_token"]}
        barrier.wait()
        for i in range(ROUNDS):
            conv = client.post("/conversations", json={"title": f"w{n}-{i}"}, headers=headers)
            if conv.status_code != 201:
                failures.append(conv.get_json())
                continue
            for target in (conv.get_json()["id"], shared):
                turn = client.post(
                    "/v1/generate",
                    json={"prompt": f"w{n} r{i}", "conv_id": target, "seed": n * 100 + i},
                    headers=headers,
                )
                if turn.status_code != 200:
                    failures.append(turn.get_json())
                    continue
                with lock:
                    message_ids.extend(
                        [turn.get_json()["user_message"]["id"], turn.get_json()["message"]["id"]]
                    )
            rename = client.patch(
                f"/conversations/{conv.get_json()['id']}", json={"title": "done"}, headers=headers
            )
            if rename.status_code != 200:
                failures.append(rename.get_json())
            with lock:
                created.append(conv.get_json()["id"])

    started = time.monotonic()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    elapsed = time.monotonic() - started
    assert failures == []
    with app.app_context():
        stored = set(db.session.execute(select(Message.id)).scalars())
        counts = dict(
            db.session.execute(
                select(Message.conversation_id, func.count()).group_by(Message.conversation_id)
            ).all()
        )
        conversations = {c.id: c for c in db.session.execute(select(Conversation)).scalars()}
        dialect = db.engine.dialect.name
    assert set(message_ids) <= stored and len(message_ids) == len(stored)
    assert len(created) == WRITERS * ROUNDS and set(created) <= set(conversations)
    assert counts[shared] == conversations[shared].message_count == WRITERS * ROUNDS * 2
    for conv_id in created:
        assert counts[conv_id] == conversations[conv_id].message_count == 2
        assert conversations[conv_id].title == "done"
    report(
        "concurrent_writers",
        database=dialect,
        threads=WRITERS,
        requests=WRITERS * (1 + ROUNDS * 4),
        messages=len(stored),
        lost=0,
        seconds=round(elapsed, 1),
    )


# ---- SIGKILL in the middle of a burst ----------------------------------------

KILL_CYCLES = 3
BURST_WRITERS = 12
BURST_SECONDS = 2.5


def _signup(url: str, username: str) -> dict:
    import urllib.request

    request = urllib.request.Request(
        url + "/auth/signup",
        data=f'{{"username": "{username}", "password": "{PASSWORD}"}}'.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
        import json

        token = json.loads(response.read())["csrf_token"]
    return {"Cookie": cookie, "X-CSRF-Token": token}


def _burst(server: WsgiServer, headers: dict, stop: threading.Event, acked: dict) -> None:
    """Write until the server dies; record what was answered 2xx."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            status, conv, _ = http_json(
                "POST", server.url("/conversations"), {"title": f"t{n}"}, headers, timeout=5
            )
            if status != 201:
                continue
            acked["conversations"].add(conv["id"])
            status, turn, _ = http_json(
                "POST",
                server.url("/v1/generate"),
                {"prompt": f"burst {n}", "conv_id": conv["id"], "seed": n},
                headers,
                timeout=5,
            )
            if status == 200:
                acked["messages"].update({turn["user_message"]["id"], turn["message"]["id"]})
                acked["images"].update(turn["image_ids"])
        except OSError:
            if server.process.poll() is not None:
                return  # killed: this request was never answered


def _check_database(path, data_dir, acked) -> dict:
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        conversations = {row[0] for row in connection.execute("SELECT id FROM conversations")}
        messages = {row[0] for row in connection.execute("SELECT id FROM messages")}
        images = dict(connection.execute("SELECT id, sha256 FROM images").fetchall())
        mismatched = connection.execute(
            "SELECT c.id FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id "
            "GROUP BY c.id HAVING c.message_count != COUNT(m.id)"
        ).fetchall()
    finally:
        connection.close()
    assert acked["conversations"] <= conversations
    assert acked["messages"] <= messages, sorted(acked["messages"] - messages)[:10]
    assert set(acked["images"]) <= set(images)
    assert mismatched == []  # counters move in the same transaction as messages
    missing_files = [
        sha
        for sha in images.values()
        if not (data_dir / "images" / sha[:2] / f"{sha}.png").exists()
    ]
    assert missing_files == []  # files are written before their rows
    return {"conversations": len(conversations), "messages": len(messages)}


@pytest.mark.slow
def test_sigkill_during_a_burst_of_writes_loses_nothing_acknowledged(tmp_path):
    workdir = tmp_path / "server"
    acked = {"conversations": set(), "messages": set(), "images": set()}
    totals: dict = {}
    kills = 0
    for cycle in range(KILL_CYCLES):
        server = server_process(workdir, GENAI_MAX_CONCURRENT="16", GENAI_MAX_QUEUE="16")
        with server:
            headers = _signup(server.url(), f"user{cycle}")
            stop = threading.Event()
            threads = [
                threading.Thread(target=_burst, args=(server, headers, stop, acked))
                for _ in range(BURST_WRITERS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(BURST_SECONDS)
            server.kill()
            kills += 1
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            assert not any(thread.is_alive() for thread in threads)
            totals = _check_database(
                Path(server.env["DATA_DIR"]) / "app.db", workdir / "data", acked
            )
    # And it starts again on what the kills left, with everything there.
    with server_process(workdir) as server:
        assert http_json("GET", server.url("/ready"))[0] == 200
        assert "Traceback" not in server.app_log()
    report(
        "sigkill",
        kills=kills,
        acknowledged_messages=len(acked["messages"]),
        acknowledged_conversations=len(acked["conversations"]),
        stored_messages=totals["messages"],
        integrity="ok",
        lost=0,
    )
