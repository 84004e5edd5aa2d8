"""Review findings on accounts (issue 18, points 4, 5, 6, 11 and 12), each
replayed as the review did it: through `python wsgi.py` where the finding is
about the server and its files, through the app otherwise.

4. session ids at rest, file modes, sessions in backups;
5. an API token minting tokens, tokens outliving a password change;
6. a stranger's failed logins locking the owner out;
11. bearer requests writing session rows, expired rows never removed;
12. look-alike and invisible usernames.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken
from app.web.sessions import stored_session_id
from tests.reliability.support import NO_LIMITS, report, server_process
from tests.support.app import make_app
from tests.wsgi_server import ROOT

PASSWORD = "review-Passw0rd-1"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback, whatever HTTP(S)_PROXY says
    return session


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def log_in(server, username: str, **headers) -> tuple[requests.Session, requests.Response]:
    client = http()
    response = client.post(
        server.url("/auth/login"),
        json={"username": username, "password": PASSWORD},
        headers=headers,
        timeout=30,
    )
    return client, response


# ---- 4. session ids, the database, the secret key and backups at rest --------


@posix_only
@pytest.mark.slow
def test_nine_sessions_in_a_backup_resume_none(tmp_path):
    """The review logged in nine times, took `flask backup`, and found eight
    sessions still logged in from the copy. Now: the data folder, database,
    secret key and backup are the owner's alone, and a server restored from
    the backup (same secret key) knows none of the nine cookies."""
    with server_process(tmp_path / "live", SECRET_KEY="") as server:
        data_dir = Path(server.env["DATA_DIR"])
        signup = http().post(
            server.url("/auth/signup"),
            json={"username": "keeper", "password": PASSWORD},
            timeout=30,
        )
        assert signup.status_code == 201
        cookies = []
        for _ in range(9):
            client, response = log_in(server, "keeper")
            assert response.status_code == 200
            cookies.append(client.cookies["nb_session"])

        modes = {p.name: mode(p) for p in data_dir.iterdir() if p.is_file()}
        assert mode(data_dir) == 0o700
        assert modes["secret_key"] == modes["app.db"] == 0o600
        assert all(m == 0o600 for name, m in modes.items() if name.startswith("app.db"))
        live_bytes = b"".join(p.read_bytes() for p in data_dir.glob("app.db*"))
        assert not any(cookie.encode() in live_bytes for cookie in cookies)

        target = tmp_path / "backup.zip"
        backup = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "backup", "-o", str(target)],
            cwd=ROOT,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert backup.returncode == 0, backup.stdout + backup.stderr
        for cookie in cookies:  # control: all nine are live on the server
            assert _authenticated(server, cookie)

    assert mode(target) == 0o600
    restored_dir = tmp_path / "restored" / "data"
    with zipfile.ZipFile(target) as archive:
        assert {(i.external_attr >> 16) & 0o777 for i in archive.infolist()} == {0o600}
        archive.extractall(restored_dir)
    with server_process(tmp_path / "restored", SECRET_KEY="") as restored:
        resumed = sum(_authenticated(restored, cookie) for cookie in cookies)
        _, login = log_in(restored, "keeper")
        assert login.status_code == 200
    report("review_4_backup", sessions=len(cookies), resumed_from_backup=resumed)
    assert resumed == 0


def _authenticated(server, cookie: str) -> bool:
    client = http()
    client.cookies.set("nb_session", cookie)
    return client.get(server.url("/me"), timeout=10).json()["authenticated"]


# ---- 5. a token minting tokens; tokens outliving a password change -----------


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path, **NO_LIMITS)
    yield app
    app.extensions["genai"].close()


def browser_signup(app, username: str):
    client = app.test_client()
    body = client.post("/auth/signup", json={"username": username, "password": PASSWORD}).get_json()
    return client, {"X-CSRF-Token": body["csrf_token"]}


def test_a_leaked_token_mints_nothing_and_dies_with_a_password_change(app):
    browser, csrf = browser_signup(app, "alice")
    leaked = browser.post("/auth/tokens", json={"name": "ci"}, headers=csrf).get_json()
    thief = app.test_client()
    as_thief = {"Authorization": f"Bearer {leaked['token']}"}
    attempts = [
        ("POST", "/auth/tokens", {"name": "ci"}),  # the same name, so the owner can't tell
        ("POST", "/auth/tokens", {"name": "backdoor"}),
        ("GET", "/auth/tokens", None),
        ("DELETE", f"/auth/tokens/{leaked['id']}", None),
        ("POST", "/auth/password", {"current_password": PASSWORD, "new_password": "x" * 12}),
        ("POST", "/auth/logout", None),
    ]
    answers = [
        thief.open(url, method=method, json=body, headers=as_thief).status_code
        for method, url, body in attempts
    ]
    assert answers == [403] * len(attempts)
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(ApiToken)).scalar() == 1

    # The owner's own tokens, whatever their number, end with a password change.
    second = browser.post("/auth/tokens", json={"name": "cron"}, headers=csrf).get_json()
    assert browser.post("/auth/tokens", json={"name": "cron"}, headers=csrf).status_code == 409
    changed = browser.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "a-brand-new-pass-2"},
        headers=csrf,
    )
    assert changed.status_code == 200
    alive = [
        secret
        for secret in (leaked["token"], second["token"])
        if thief.get("/conversations", headers={"Authorization": f"Bearer {secret}"}).status_code
        != 401
    ]
    report("review_5_tokens", thief_attempts=len(attempts), accepted=0, alive_after_change=alive)
    assert alive == []


# ---- 6. a stranger's guesses don't lock the owner out -------------------------


@pytest.mark.slow
def test_a_strangers_guesses_dont_lock_the_owner_out_but_a_botnet_meets_a_ceiling(tmp_path):
    """Production limits for one address and per username and address; the
    ceiling over all addresses lowered to 20 so the run stays short."""
    ceiling = 20
    settings = dict(TRUSTED_PROXY_COUNT="1", LOGIN_USER_CEILING=f"{ceiling}/hour")
    for name in ("LOGIN_RATE_LIMIT", "LOGIN_USER_RATE_LIMIT"):
        settings[name] = ""  # the production default
    with server_process(tmp_path / "server", **settings) as server:
        created = http().post(
            server.url("/auth/signup"),
            json={"username": "owner", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.1"},
            timeout=30,
        )
        assert created.status_code == 201

        def attempt(password: str, address: str) -> int:
            return (
                http()
                .post(
                    server.url("/auth/login"),
                    json={"username": "owner", "password": password},
                    headers={"X-Forwarded-For": address},
                    timeout=30,
                )
                .status_code
            )

        stranger = [attempt(f"guess-{n}", "203.0.113.66") for n in range(8)]
        assert stranger[:5] == [401] * 5 and set(stranger[5:]) == {429}
        owner = attempt(PASSWORD, "198.51.100.1")
        assert owner == 200

        # A guesser rotating addresses: each address stays under its own
        # limit, the username's ceiling still stops it.
        botnet = [attempt(f"guess-{n}", f"192.0.2.{n % 250 + 1}") for n in range(ceiling + 5)]
        refused_from = botnet.index(429)
    report(
        "review_6_login_limits",
        stranger_refused_after=5,
        owner_elsewhere=owner,
        botnet_refused_after=refused_from,
        ceiling_left_for_botnet=ceiling - 5,
    )
    # The stranger's five failures count toward the ceiling too.
    assert refused_from == ceiling - 5
    assert set(botnet[refused_from:]) == {429}


# ---- 11. no session for bearer requests; expired sessions removed unasked -----

STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy writes a DateTime to SQLite


@pytest.mark.slow
def test_bearer_requests_write_no_sessions_and_expired_ones_go_by_themselves(tmp_path):
    with server_process(tmp_path / "server") as server:
        database = Path(server.env["DATA_DIR"]) / "app.db"
        expired = datetime.now(UTC) - timedelta(days=1)
        with sqlite3.connect(database) as conn:
            conn.executemany(
                "INSERT INTO sessions (id, data, expiry) VALUES (?, ?, ?)",
                [(f"expired-{n}", b"\x80", expired.strftime(STAMP)) for n in range(50)],
            )
        browser = http()
        body = browser.post(
            server.url("/auth/signup"), json={"username": "scripter", "password": PASSWORD}
        ).json()
        token = browser.post(
            server.url("/auth/tokens"),
            json={"name": "script"},
            headers={"X-CSRF-Token": body["csrf_token"]},
        ).json()["token"]

        def session_ids() -> set[str]:
            with sqlite3.connect(database) as conn:
                return {row[0] for row in conn.execute("SELECT id FROM sessions")}

        after_signup = session_ids()
        script = http()
        set_cookie = 0
        for _ in range(50):
            response = script.get(
                server.url("/me"), headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert response.json()["authenticated"] is True
            set_cookie += "Set-Cookie" in response.headers
        after_bearer = session_ids()
    report(
        "review_11_sessions",
        expired_inserted=50,
        expired_left=sum(key.startswith("expired-") for key in after_signup),
        bearer_requests=50,
        rows_written_by_bearer=len(after_bearer - after_signup),
    )
    assert not any(key.startswith("expired-") for key in after_signup)
    assert after_bearer == after_signup and set_cookie == 0
    assert stored_session_id(browser.cookies["nb_session"]) in after_signup


# ---- 12. look-alike and invisible usernames -----------------------------------

# (existing name, attempt, what the review saw): every attempt was accepted.
LOOKALIKES = [
    ("alice", "\u0430lice", "Cyrillic а among Latin letters"),
    ("alice", "alice\u3164", "a trailing Hangul filler (invisible)"),
    ("alice", "\u3164alice", "a leading Hangul filler"),
    ("alice", "al\u1160ice", "a Hangul jungseong filler inside"),
    ("alice", "aIice", "capital I for l"),
    ("alice", "a1ice", "digit one for l"),
    ("bob", "b0b", "digit zero for o"),
    ("modern", "rnodern", "r n for m"),
    ("poe", "\u0440\u043e\u0435", "all Cyrillic: one script, the same picture"),
    ("scope", "\u0455\u0441\u043e\u0440\u0435", "all Cyrillic"),
    ("paypal", "\u0440\u0430\u0443\u0440\u0430l", "Cyrillic with a Latin l"),
]


def test_lookalike_and_invisible_usernames_are_refused(app):
    for existing in {existing for existing, _, _ in LOOKALIKES}:
        browser_signup(app, existing)
    answers = {}
    for existing, attempt, why in LOOKALIKES:
        response = app.test_client().post(
            "/auth/signup", json={"username": attempt, "password": PASSWORD}
        )
        answers[why] = (response.status_code, response.get_json()["error"])
        assert response.status_code in (400, 409), (existing, attempt, why)
        assert response.get_json()["error"] in ("invalid_username", "username_taken")
    report(
        "review_12_usernames",
        attempts=len(LOOKALIKES),
        refused=len(answers),
        taken=sum(code == 409 for code, _ in answers.values()),
        invalid=sum(code == 400 for code, _ in answers.values()),
    )
