"""Deployment: `python wsgi.py` as Docker, a NAS and Windows run it; the
Dockerfile and compose files; upgrades; the secret key; backups; the README's
variable table."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db, limiter
from app.web.server import upgrade_database
from config import TestingConfig, env_bool
from tests.support.app import TEST_DATABASE_URL
from tests.support.images import png_bytes
from tests.support.services import require_service
from tests.wsgi_server import (
    COMMAND,
    ROOT,
    WsgiServer,
    app_variables,
    isolated_environment,
)

SERVER_COMMAND = COMMAND  # the Dockerfile's CMD (checked below) is what the tests run
APP_PORT = 8000
FAKE_API_KEY = "AIzaSyFAKE-deploy-test-key-0123456789abc"
PASSWORD = "deploy-test-Passw0rd!"
NGROK_VARIABLES = {"NGROK_AUTHTOKEN"}
# The proxies in front of the app in each compose file, each appending to
# X-Forwarded-For: nginx; ngrok then nginx.
PROXIES_IN_FRONT = {"docker-compose.nas.yml": 1, "docker-compose.ngrok.yml": 2}
PROXY_PORT = 8080  # deploy/nginx.conf's listen port
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- what the app reads ------------------------------------------------------


def env_example_variables() -> list[str]:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return [m.group(1) for line in lines if (m := re.match(r"#?\s*([A-Z][A-Z0-9_]+)=", line))]


def test_app_variables_are_found():
    names = app_variables()
    assert {"GOOGLE_API_KEY", "DATA_DIR", "PORT", "TRUSTED_PROXY_COUNT", "APP_ENV"} <= names


def test_env_example_names_only_variables_the_app_reads():
    documented = env_example_variables()
    assert documented, ".env.example lists no variables"
    assert set(documented) <= app_variables() | NGROK_VARIABLES


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_readme_variable_table_matches_env_example(readme):
    text_ = (ROOT / readme).read_text(encoding="utf-8")
    tabled = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", text_, flags=re.MULTILINE))
    assert set(env_example_variables()) <= tabled, "a variable is missing from the README table"
    assert tabled <= app_variables() | NGROK_VARIABLES, (
        "the README documents a variable no one reads"
    )
    undocumented = app_variables() - tabled - {"TEST_DATABASE_URL", "https_proxy"}
    assert not undocumented, "the app reads a variable the README table doesn't list"


# ---- the server process --------------------------------------------------------


@pytest.fixture
def launch(tmp_path):
    """launch(data_dir=None, **env) → a started `python wsgi.py`, configured
    only by its environment, as in the container."""
    started: list[WsgiServer] = []

    def start(data_dir: Path | None = None, **env: str) -> WsgiServer:
        data_dir = data_dir or tmp_path / "data"
        settings = dict(
            DATA_DIR=str(data_dir),
            LOG_DIR=str(data_dir / "logs"),
            GENAI_PROVIDER="offline",
            GOOGLE_API_KEY=FAKE_API_KEY,
        )
        environment = isolated_environment(**{**settings, **env})
        server = WsgiServer(environment, tmp_path / f"console-{len(started)}.txt")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


def local_session() -> requests.Session:
    """A client for 127.0.0.1 that ignores any HTTP(S)_PROXY around the tests."""
    session = requests.Session()
    session.trust_env = False
    return session


def signup(http: requests.Session, server: WsgiServer, username: str) -> str:
    response = http.post(
        server.url("/auth/signup"), json={"username": username, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["csrf_token"]


def run_healthcheck(port: int) -> subprocess.CompletedProcess:
    """The Dockerfile's HEALTHCHECK command, run with this venv's python."""
    return subprocess.run(
        [sys.executable, *dockerfile_exec_form("HEALTHCHECK")[1:]],
        env={**os.environ, "PORT": str(port)},
        capture_output=True,
        timeout=20,
        check=False,
    )


def assert_clean_exit(code: int) -> None:
    # On Windows terminate() is TerminateProcess: no handler runs, no status to check.
    if os.name == "posix":
        assert code == 0, f"exit status {code} after SIGTERM"


@pytest.mark.slow
def test_wsgi_py_serves_the_app_and_stops_cleanly(launch):
    server = launch()
    http = local_session()

    health = http.get(server.url("/health"), timeout=5)
    assert health.json()["status"] == "ok"
    assert health.json()["provider"] == "offline"
    assert health.headers["X-Content-Type-Options"] == "nosniff"

    signup(http, server, "deployer")
    refused = http.post(server.url("/auth/logout"), timeout=5)  # cookie but no CSRF token
    assert refused.status_code == 400
    assert refused.json()["error"] == "csrf_failed"
    login = http.post(
        server.url("/auth/login"), json={"username": "deployer", "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    csrf = login.json()["csrf_token"]
    me = http.get(server.url("/me"), timeout=5).json()
    assert me["authenticated"] is True
    assert me["user"]["username"] == "deployer"

    conversation = http.post(
        server.url("/conversations"),
        json={"title": "deploy"},
        headers={"X-CSRF-Token": csrf},
        timeout=5,
    )
    assert conversation.status_code == 201, conversation.text

    generated = http.post(
        server.url("/v1/generate"),
        json={"prompt": "a yellow banana"},
        headers={"X-CSRF-Token": csrf},
        timeout=60,
    )
    assert generated.status_code == 200, generated.text
    body = generated.json()
    assert isinstance(body["texts"], list)
    picture = base64.b64decode(body["images"][0])
    assert picture.startswith(PNG_SIGNATURE)
    from PIL import Image

    assert Image.open(io.BytesIO(picture)).size[0] > 0

    # The Dockerfile's HEALTHCHECK, run against this server, passes.
    assert run_healthcheck(server.port).returncode == 0

    session_cookie = http.cookies.get("nb_session")
    started = time.monotonic()
    assert_clean_exit(server.stop())
    assert time.monotonic() - started < 8
    assert run_healthcheck(server.port).returncode != 0  # nothing listens: unhealthy

    log = server.app_log()
    assert re.search(r"GET /health 200 ", log)
    assert re.search(r"POST /auth/login 200 ", log)
    assert re.search(r"POST /v1/generate 200 ", log)
    secret_key = (Path(server.env["DATA_DIR"]) / "secret_key").read_text().strip()
    everything_written = log + server.console()
    for secret in (secret_key, FAKE_API_KEY, PASSWORD, session_cookie, csrf):
        assert secret and secret not in everything_written


@pytest.mark.slow
def test_secret_key_is_kept_so_sessions_survive_a_restart(launch, tmp_path):
    data_dir = tmp_path / "data"
    server = launch(data_dir)
    http = local_session()
    csrf = signup(http, server, "survivor")
    key = (data_dir / "secret_key").read_text()
    assert_clean_exit(server.stop())

    restarted = launch(data_dir)
    me = http.get(restarted.url("/me"), timeout=5).json()
    assert me["authenticated"] is True
    assert me["user"]["username"] == "survivor"
    # The CSRF token is signed with SECRET_KEY: the one issued before the
    # restart still works, so the key is the same.
    written = http.post(
        restarted.url("/conversations"),
        json={"title": "after restart"},
        headers={"X-CSRF-Token": csrf},
        timeout=5,
    )
    assert written.status_code == 201, written.text
    assert (data_dir / "secret_key").read_text() == key
    assert_clean_exit(restarted.stop())


# ---- apps built in-process -----------------------------------------------------


@pytest.fixture
def build_app():
    """create_app() on its own data folder, with a generated secret key and
    SQLite (whatever TEST_DATABASE_URL says): what a fresh install gets."""
    made = []

    def build(data_dir: Path, **overrides):
        settings = {
            "DATA_DIR": str(data_dir),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'app.db'}",
            "SECRET_KEY": None,
            "LOG_DIR": None,
            **overrides,
        }
        config = type("DeployConfig", (TestingConfig,), settings)
        app = create_app(config)
        limiter.reset()
        made.append(app)
        return app

    yield build
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        app.extensions["genai"].close()


def test_each_install_generates_its_own_secret_key(build_app, tmp_path):
    first = build_app(tmp_path / "one").config["SECRET_KEY"]
    second = build_app(tmp_path / "two").config["SECRET_KEY"]
    assert first and second and first != second
    assert len(first) >= 32
    assert (tmp_path / "one" / "secret_key").read_text() == first
    if os.name == "posix":
        assert (tmp_path / "one" / "secret_key").stat().st_mode & 0o077 == 0
    assert build_app(tmp_path / "one").config["SECRET_KEY"] == first


# ---- files at rest: the owner's alone ------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def open_umask():
    """The most permissive umask: modes must come from the code, not from it."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def database_bytes(data_dir: Path) -> bytes:
    return b"".join(
        path.read_bytes() for path in sorted(data_dir.glob("app.db*")) if path.is_file()
    )


@posix_only
def test_a_new_install_keeps_its_data_to_its_owner(build_app, tmp_path, open_umask):
    from app.web.sessions import stored_session_id

    data_dir = tmp_path / "nested" / "data"
    app = build_app(data_dir)
    upgrade_database(app)
    client = app.test_client()
    client.post("/auth/signup", json={"username": "owner", "password": PASSWORD})
    sid = client.get_cookie("nb_session").value

    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secret_key") == 0o600
    database_files = sorted(data_dir.glob("app.db*"))
    assert {p.name for p in database_files} >= {"app.db", "app.db-wal"}
    assert {p.name: mode(p) for p in database_files} == {p.name: 0o600 for p in database_files}
    # The store holds the hash of the session id, never the id.
    stored = database_bytes(data_dir)
    assert stored_session_id(sid).encode() in stored
    assert sid.encode() not in stored


@posix_only
def test_the_secret_key_is_never_readable_by_others_even_while_written(
    build_app, tmp_path, open_umask, monkeypatch
):
    modes_when_linked = []
    real_link = os.link

    def link(source, target, *args, **kwargs):
        modes_when_linked.append(mode(Path(source)))
        return real_link(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    build_app(tmp_path / "data")
    assert modes_when_linked == [0o600]


@posix_only
def test_an_older_install_is_tightened_at_start(build_app, tmp_path):
    data_dir = tmp_path / "data"
    first = build_app(data_dir)
    upgrade_database(first)
    os.chmod(data_dir, 0o755)
    for name in ("secret_key", "app.db"):
        os.chmod(data_dir / name, 0o644)
    build_app(data_dir)
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secret_key") == mode(data_dir / "app.db") == 0o600


def test_upgrade_from_the_first_migration_keeps_the_data(build_app, tmp_path):
    from alembic.script import ScriptDirectory
    from werkzeug.security import generate_password_hash

    data_dir = tmp_path / "data"
    app = build_app(data_dir)
    upgrade_database(app, revision="0001")

    picture = png_bytes((10, 120, 200))
    sha = app.extensions["image_store"].put(picture, "image/png")
    stamp = "2025-01-02 03:04:05.000000"
    with app.app_context():
        password_hash = generate_password_hash(PASSWORD, method=app.config["PASSWORD_HASH_METHOD"])
        statements = [
            (
                "INSERT INTO users (id, username, username_key, password_hash, created_at,"
                " is_admin, disabled, auth_epoch)"
                " VALUES (1, 'OldTimer', 'oldtimer', :hash, :ts, 0, 0, 0)",
                {"hash": password_hash},
            ),
            (
                "INSERT INTO images (id, sha256, mime, width, height, byte_size, created_at)"
                " VALUES (1, :sha, 'image/png', 32, 24, :size, :ts)",
                {"sha": sha, "size": len(picture)},
            ),
            (
                "INSERT INTO conversations (id, user_id, title, created_at, updated_at,"
                " message_count, last_prompt, last_image_id)"
                " VALUES (7, 1, 'from version one', :ts, :ts, 2, 'a blue square', 1)",
                {},
            ),
            (
                "INSERT INTO messages (id, conversation_id, role, kind, prompt, texts, params,"
                " finish_reasons, created_at)"
                " VALUES (1, 7, 'user', 'generate', 'a blue square', '[]', '{}', '[]', :ts)",
                {},
            ),
            (
                "INSERT INTO messages (id, conversation_id, role, kind, prompt, texts, params,"
                " model, finish_reasons, created_at)"
                " VALUES (2, 7, 'assistant', 'generate', NULL, '[\"here it is\"]', '{}',"
                " 'old-model', '[\"STOP\"]', :ts)",
                {},
            ),
            (
                "INSERT INTO message_images (message_id, role, position, image_id)"
                " VALUES (2, 'output', 0, 1)",
                {},
            ),
        ]
        for statement, params in statements:
            db.session.execute(text(statement), {"ts": stamp, **params})
        db.session.commit()

    upgrade_database(app)  # what `python wsgi.py` does at start

    with app.app_context():
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        heads = ScriptDirectory.from_config(
            app.extensions["migrate"].migrate.get_config()
        ).get_heads()
        db.session.rollback()
    assert [revision] == heads

    client = app.test_client()
    login = client.post("/auth/login", json={"username": "oldtimer", "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    items = client.get("/conversations").get_json()["items"]
    assert [(c["id"], c["title"], c["message_count"]) for c in items] == [
        (7, "from version one", 2)
    ]
    messages = client.get("/conversations/7/messages").get_json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["prompt"] == "a blue square"
    assert messages[1]["texts"] == ["here it is"]
    image = client.get(messages[1]["images"][0]["url"])
    assert image.status_code == 200
    assert image.data == picture


# ---- backups --------------------------------------------------------------------


def _populated(build_app, data_dir: Path):
    app = build_app(data_dir)
    upgrade_database(app)
    client = app.test_client()
    created = client.post("/auth/signup", json={"username": "keeper", "password": PASSWORD})
    csrf = created.get_json()["csrf_token"]
    conversation = client.post(
        "/conversations", json={"title": "worth keeping"}, headers={"X-CSRF-Token": csrf}
    )
    assert conversation.status_code == 201
    sha = app.extensions["image_store"].put(png_bytes(), "image/png")
    return app, sha


def test_backup_zip_holds_database_images_and_secret_key(build_app, tmp_path):
    data_dir = tmp_path / "data"
    app, sha = _populated(build_app, data_dir)
    target = tmp_path / "snapshots" / "nightly.zip"

    result = app.test_cli_runner().invoke(args=["backup", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert str(target) in result.output

    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        assert {"app.db", "secret_key", "backup-manifest.json"} <= names
        assert f"images/{sha[:2]}/{sha}.png" in names
        assert archive.read("secret_key").decode() == app.config["SECRET_KEY"]
        manifest = json.loads(archive.read("backup-manifest.json"))
        archive.extract("app.db", tmp_path / "restored")
    assert manifest["rows"]["users"] == 1
    assert manifest["database_file"] == "app.db"

    restored = sqlite3.connect(tmp_path / "restored" / "app.db")
    try:
        assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # One self-contained file, not a WAL database missing its -wal.
        assert restored.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert restored.execute("SELECT username FROM users").fetchall() == [("keeper",)]
        assert restored.execute("SELECT title FROM conversations").fetchall() == [
            ("worth keeping",)
        ]
    finally:
        restored.close()


def logged_in_cookies(app, count: int) -> list[str]:
    cookies = []
    for _ in range(count):
        client = app.test_client()
        response = client.post("/auth/login", json={"username": "keeper", "password": PASSWORD})
        assert response.status_code == 200
        cookies.append(client.get_cookie("nb_session").value)
    return cookies


@posix_only
def test_a_backup_is_private_and_resumes_no_session(build_app, tmp_path, open_umask):
    """The issue's case: nine sessions, a backup, a restore: before, eight
    were still logged in. Now the zip and all it holds are 0600, the copy has
    no session rows, and a server restored from it knows none of the cookies."""
    from app.web.sessions import stored_session_id

    app, _ = _populated(build_app, tmp_path / "data")
    cookies = logged_in_cookies(app, 9)
    target = tmp_path / "snapshots" / "nightly.zip"
    result = app.test_cli_runner().invoke(args=["backup", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert "sessions: left out" in result.output

    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700
    restored_dir = tmp_path / "restored"
    with zipfile.ZipFile(target) as archive:
        for info in archive.infolist():  # what `unzip` would restore
            assert (info.external_attr >> 16) & 0o777 == 0o600, info.filename
        assert json.loads(archive.read("backup-manifest.json"))["left_out"] == ["sessions"]
        archive.extractall(restored_dir)
    snapshot = (restored_dir / "app.db").read_bytes()
    for cookie in cookies:
        assert cookie.encode() not in snapshot
        assert stored_session_id(cookie).encode() not in snapshot
    copy = sqlite3.connect(restored_dir / "app.db")
    try:
        assert copy.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    finally:
        copy.close()

    # Control: every cookie is logged in on the live install...
    for cookie in cookies:
        live = app.test_client()
        live.set_cookie("nb_session", cookie)
        assert live.get("/me").get_json()["authenticated"] is True
    # ...and none on an install restored from the backup (same secret key).
    restored = build_app(restored_dir)
    assert restored.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    for cookie in cookies:
        replay = restored.test_client()
        replay.set_cookie("nb_session", cookie)
        assert replay.get("/me").get_json()["authenticated"] is False
    login = restored.test_client().post(
        "/auth/login", json={"username": "keeper", "password": PASSWORD}
    )
    assert login.status_code == 200


@posix_only
def test_a_backup_folder_and_the_default_backups_folder_are_private(
    build_app, tmp_path, open_umask
):
    app, _ = _populated(build_app, tmp_path / "data")
    result = app.test_cli_runner().invoke(args=["backup", "--folder"])
    assert result.exit_code == 0, result.output
    backups = tmp_path / "data" / "backups"
    [snapshot] = list(backups.iterdir())
    assert mode(backups) == mode(snapshot) == 0o700
    for path in snapshot.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_backup_to_a_folder_is_timestamped(build_app, tmp_path):
    app, sha = _populated(build_app, tmp_path / "data")
    out = tmp_path / "backups"
    result = app.test_cli_runner().invoke(args=["backup", "--folder", "--output", str(out)])
    assert result.exit_code == 0, result.output
    [snapshot] = list(out.iterdir())
    assert re.fullmatch(r"nano-banana-\d{8}-\d{6}", snapshot.name)
    assert (snapshot / "images" / sha[:2] / f"{sha}.png").read_bytes() == png_bytes()
    restored = sqlite3.connect(snapshot / "app.db")
    try:
        assert restored.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 1
    finally:
        restored.close()


def _needs_postgres() -> None:
    if not (TEST_DATABASE_URL or "").startswith("postgresql"):
        pytest.skip("runs on the PostgreSQL pass (TEST_DATABASE_URL)")


@pytest.mark.postgres
def test_backup_dumps_postgres_with_pg_dump(app_factory, tmp_path):
    _needs_postgres()
    import shutil

    if shutil.which("pg_dump") is None:
        require_service("pg_dump")
    app = app_factory(SECRET_KEY=None)
    client = app.test_client()
    created = client.post("/auth/signup", json={"username": "pg-keeper", "password": PASSWORD})
    assert created.status_code == 201
    target = tmp_path / "pg.zip"
    result = app.test_cli_runner().invoke(args=["backup", "--output", str(target)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as archive:
        dump = archive.read("database.pgdump")
        manifest = json.loads(archive.read("backup-manifest.json"))
    assert dump.startswith(b"PGDMP")  # pg_dump's custom format
    assert manifest["rows"]["users"] == 1
    # The sessions table's definition is in the dump, its rows are not.
    dump_file = tmp_path / "pg.dump"
    dump_file.write_bytes(dump)
    listing = subprocess.run(
        ["pg_restore", "--list", str(dump_file)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"TABLE DATA public users ", listing)
    assert re.search(r"TABLE public sessions ", listing)
    assert not re.search(r"TABLE DATA public sessions ", listing)
    password = make_url(TEST_DATABASE_URL).password
    if password:
        assert password not in result.output


@pytest.mark.postgres
def test_backup_without_pg_dump_says_what_to_run(app_factory, monkeypatch):
    _needs_postgres()
    import app.cli.backup as backup

    monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    app = app_factory(SECRET_KEY=None)
    result = app.test_cli_runner().invoke(args=["backup"])
    assert result.exit_code == 1
    assert "pg_dump" in result.output
    assert "NOT INCLUDED" in result.output
    password = make_url(TEST_DATABASE_URL).password
    if password:
        assert password not in result.output


# ---- Dockerfile and compose -----------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_values(keyword: str) -> list[str]:
    return [rest for word, rest in dockerfile_instructions() if word == keyword]


def dockerfile_exec_form(keyword: str) -> list[str]:
    [rest] = dockerfile_values(keyword)
    if keyword == "HEALTHCHECK":
        rest = rest[rest.index("CMD ") + 4 :]
    return json.loads(rest)


def dockerfile_env() -> dict[str, str]:
    env = {}
    for rest in dockerfile_values("ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env


def test_dockerfile_runs_what_the_tests_run():
    assert dockerfile_values("FROM") == ["python:3.11-slim"]
    assert dockerfile_exec_form("CMD") == SERVER_COMMAND
    health = dockerfile_exec_form("HEALTHCHECK")
    assert health[0] == "python" and "/health" in health[-1]
    [user] = dockerfile_values("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert dockerfile_values("EXPOSE") == [str(APP_PORT)]
    env = dockerfile_env()
    assert env["DATA_DIR"] == "/data"
    assert env["LOG_DIR"] == "/data/logs"
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == str(APP_PORT)
    assert json.loads(dockerfile_values("VOLUME")[0]) == ["/data"]
    # Variables read by Python, pip and the C library rather than the app.
    runtime_own = {name for name in env if name.startswith(("PYTHON", "PIP_", "MALLOC_"))}
    assert set(env) - runtime_own <= app_variables()


def test_dockerfile_installs_dependencies_before_the_code():
    copies = dockerfile_values("COPY")
    runs = dockerfile_values("RUN")
    order = [f"{w} {r}" for w, r in dockerfile_instructions() if w in ("COPY", "RUN")]
    assert copies[0] == "requirements.txt ."
    assert order.index("COPY requirements.txt .") < order.index(f"RUN {runs[0]}")
    assert "pip install -r requirements.txt" in runs[0]
    assert order.index(f"RUN {runs[0]}") < order.index("COPY . .")


def test_dockerignore_keeps_secrets_and_data_out():
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".env", ".venv", ".git", "instance", "logs"} <= ignored


def compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def interpolated_variables(value) -> set[str]:
    return set(re.findall(r"\$\{(\w+)", json.dumps(value)))


def effective_default(value) -> str:
    """What compose passes when .env and the shell don't set the variable."""
    value = str(value)
    match = re.fullmatch(r"\$\{\w+(?::?-([^}]*))?\}", value)
    return (match.group(1) or "") if match else value


def app_service(spec: dict) -> tuple[str, dict]:
    [(name, service)] = [(n, s) for n, s in spec["services"].items() if "build" in s]
    return name, service


@pytest.mark.parametrize("name", ["docker-compose.nas.yml", "docker-compose.ngrok.yml"])
def test_compose_names_only_what_the_app_reads(name):
    spec = compose(name)
    known = app_variables()
    declared_volumes = set(spec.get("volumes") or {})
    api_name, api = app_service(spec)
    assert api["build"] in (".", {"context": "."})
    assert api["restart"] == "unless-stopped"
    assert api["env_file"] in (".env", [".env"])

    environment = api["environment"]
    assert set(environment) <= known
    assert interpolated_variables(api) <= known
    assert environment["DATA_DIR"] == "/data"
    assert str(environment["PORT"]) == str(APP_PORT)
    assert environment["HOST"] == "0.0.0.0"
    assert str(environment["LOG_DIR"]).startswith("/data/")
    assert {"GOOGLE_API_KEY", "GEMINI_API_KEY", "DEFAULT_MODEL"} <= set(environment)
    assert {"GENAI_MAX_CONCURRENT", "GENAI_MIN_INTERVAL_MS"} <= set(environment)
    # Fixed, not from .env: it is the number of proxies this file puts in front.
    assert str(environment["TRUSTED_PROXY_COUNT"]) == str(PROXIES_IN_FRONT[name])

    assert "ports" not in api, "waitress is never published: nginx is in front"
    [volume] = api["volumes"]
    source, target = volume.split(":")[:2]
    assert target == "/data"
    assert source in declared_volumes

    proxy = spec["services"]["proxy"]
    assert proxy["image"].startswith("nginxinc/nginx-unprivileged:")
    assert proxy["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert proxy["depends_on"] == {api_name: {"condition": "service_healthy"}}
    assert "environment" not in proxy and "env_file" not in proxy
    nginx_conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert f"http://{api_name}:{APP_PORT}" in nginx_conf
    assert f"listen {PROXY_PORT};" in nginx_conf

    for other_name, other in spec["services"].items():
        if other_name in (api_name, "proxy"):
            continue
        # Only ngrok's own container sits beside the app and its proxy.
        assert other["image"].startswith("ngrok/ngrok")
        assert set(other.get("environment", {})) <= NGROK_VARIABLES
        assert interpolated_variables(other) <= NGROK_VARIABLES
        assert f"proxy:{PROXY_PORT}" in other["command"]
        assert "ports" not in other and "volumes" not in other


def test_nas_compose_publishes_4041_through_the_proxy():
    spec = compose("docker-compose.nas.yml")
    assert spec["services"]["proxy"]["ports"] == [f"4041:{PROXY_PORT}"]
    assert [name for name, s in spec["services"].items() if "ports" in s] == ["proxy"]


def test_the_proxy_writes_every_forwarded_header_the_app_trusts():
    """ProxyFix (TRUSTED_PROXY_COUNT) reads X-Forwarded-For, -Proto, -Host,
    -Port and -Prefix: nginx must append to or replace each one, or a client's
    own value would pass as the proxy's."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    written = dict(re.findall(r"proxy_set_header\s+(X-Forwarded-\w+)\s+([^;]+);", conf))
    assert written == {
        "X-Forwarded-For": "$proxy_add_x_forwarded_for",
        "X-Forwarded-Proto": "$forwarded_proto",
        "X-Forwarded-Host": "$http_host",
        "X-Forwarded-Port": '""',
        "X-Forwarded-Prefix": '""',
    }
    assert "proxy_request_buffering on;" in conf
    assert re.search(r"client_header_timeout\s+\d+s;", conf)


def test_ngrok_compose_locks_generation_down_by_default(monkeypatch):
    spec = compose("docker-compose.ngrok.yml")
    _, api = app_service(spec)
    environment = api["environment"]
    assert not [name for name, s in spec["services"].items() if "ports" in s], (
        "only the tunnel reaches the proxy, and only the proxy the app"
    )

    def default_is_true(variable: str) -> bool:
        monkeypatch.setenv(variable, effective_default(environment[variable]))
        return env_bool(variable)

    assert default_is_true("REQUIRE_AUTH_FOR_GENERATION")
    assert "ALLOW_SIGNUP" in environment
    assert str(environment["TRUSTED_PROXY_COUNT"]) == "2"  # ngrok, then nginx
    assert "NGROK_AUTHTOKEN" in spec["services"]["ngrok"]["environment"]


# ---- the client address through waitress --------------------------------------


def _failed_logins(server: WsgiServer, forwarded_for: list[str]) -> list[int]:
    http = local_session()
    return [
        http.post(
            server.url("/auth/login"),
            json={"username": "nobody", "password": "wrong-password-1"},
            headers={"X-Forwarded-For": value},
            timeout=10,
        ).status_code
        for value in forwarded_for
    ]


@pytest.mark.slow
def test_trusted_proxy_count_gives_the_real_address_through_waitress(launch):
    server = launch(
        TRUSTED_PROXY_COUNT="1", LOGIN_RATE_LIMIT="2/minute", LOGIN_USER_RATE_LIMIT="100/minute"
    )
    # The proxy appends the address it saw; a forged left-most entry is ignored.
    forged = [f"1.1.1.{i}, 198.51.100.7" for i in range(3)]
    assert _failed_logins(server, forged) == [401, 401, 429]
    assert _failed_logins(server, ["198.51.100.8"]) == [401]


@pytest.mark.slow
def test_forwarded_for_is_ignored_through_waitress_without_trusted_proxies(launch):
    server = launch(LOGIN_RATE_LIMIT="2/minute", LOGIN_USER_RATE_LIMIT="100/minute")
    rotating = [f"203.0.113.{i}" for i in range(3)]
    assert _failed_logins(server, rotating) == [401, 401, 429]
