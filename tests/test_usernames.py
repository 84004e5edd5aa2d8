"""Usernames: invisible, mixed-script and look-alike names; the migration
that gives existing users their look-alike key."""

from __future__ import annotations

import pytest

from app.extensions import db

# ---- usernames: invisible, mixed-script and look-alike names -------------------


def test_the_skeleton_joins_what_unicode_calls_confusable():
    """The skeleton is rebuilt from confusable_homoglyphs' copy of
    confusables.txt (app/services/usernames.py): a change in that copy's
    shape shows here first."""
    from app.services.usernames import _prototypes, skeleton

    assert skeleton("𝔭𝒶ỿ𝕡𝕒ℓ") == skeleton("paypal")  # UTS #39's own example
    assert skeleton("ѕсоре") == skeleton("scope")
    assert skeleton("m") == skeleton("rn")
    assert skeleton("I") == skeleton("l") == skeleton("1") == skeleton("|")
    assert skeleton("0") == skeleton("O")
    assert len({skeleton(c) for c in "abcdefghkptuvwxyz"}) == 17
    prototypes = _prototypes()
    assert len(prototypes) > 5000
    # A prototype is its own skeleton: skeleton(skeleton(x)) == skeleton(x).
    assert not [c for target in prototypes.values() for c in target if c in prototypes]


@pytest.mark.parametrize(
    "username",
    [
        "alice\u3164",  # Hangul filler: a letter to \w, invisible on screen
        "al\u115fice",
        "\uffa0alice",
        "\u0430lice",  # Cyrillic а among Latin letters
        "Ωmega",  # Greek and Latin
        "user\u0661\u0662",  # Latin letters with Arabic-Indic digits
    ],
)
def test_invisible_and_mixed_script_usernames_are_refused(client, username):
    response = client.post("/auth/signup", json={"username": username, "password": "long-enough-1"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_username"


@pytest.mark.parametrize(
    "username", ["ばなな太郎", "张三abc", "한국어abc", "Ünïcödé", "Ελένη", "Мария", "b.o_b-1"]
)
def test_one_script_names_and_cjk_with_latin_are_allowed(client, username):
    response = client.post("/auth/signup", json={"username": username, "password": "long-enough-1"})
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("existing", "lookalike"),
    [
        ("alice", "aIice"),  # capital i for l
        ("alice", "AIice"),
        ("alice", "a1ice"),
        ("bob", "b0b"),
        ("modern", "rnodern"),
        ("poe", "рое"),  # all Cyrillic: one script, and the same picture
        ("scope", "ѕсоре"),  # all Cyrillic too
        ("Alice", "ＡＩｉｃｅ"),  # NFKC first, then the skeleton
    ],
)
def test_a_lookalike_of_an_existing_name_is_refused(app, existing, lookalike):
    first = app.test_client().post(
        "/auth/signup", json={"username": existing, "password": "long-enough-1"}
    )
    assert first.status_code == 201
    second = app.test_client().post(
        "/auth/signup", json={"username": lookalike, "password": "long-enough-1"}
    )
    assert second.status_code == 409
    assert second.get_json()["error"] == "username_taken"


def test_names_that_only_look_different_are_both_allowed(app):
    for name in ("alice", "alise", "alice.b", "ali_ce"):
        response = app.test_client().post(
            "/auth/signup", json={"username": name, "password": "long-enough-1"}
        )
        assert response.status_code == 201, name


# ---- the migration to hashed sessions, look-alike keys, unique token names -----


def test_migration_0003_keeps_lookalike_users_and_renames_duplicate_tokens(tmp_path):
    from sqlalchemy import text

    from app import create_app
    from app.web.server import upgrade_database
    from config import TestingConfig

    data_dir = tmp_path / "data"
    config = type(
        "MigrationConfig",
        (TestingConfig,),
        {
            "DATA_DIR": str(data_dir),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'app.db'}",
            "LOG_DIR": None,
        },
    )
    app = create_app(config)
    try:
        upgrade_database(app, revision="0002")
        stamp = "2025-01-02 03:04:05.000000"
        rows = [
            "INSERT INTO users (id, username, username_key, password_hash, created_at, is_admin,"
            " disabled, auth_epoch) VALUES (1, 'alice', 'alice', 'x', :ts, 0, 0, 0),"
            " (2, 'aIice', 'aiice', 'x', :ts, 0, 0, 0), (3, 'bob', 'bob', 'x', :ts, 0, 0, 0)",
            "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at, revoked_at)"
            " VALUES (1, 1, 'ci', 'nb_1', 'h1', :ts, NULL), (2, 1, 'ci', 'nb_2', 'h2', :ts, NULL),"
            " (3, 1, 'ci', 'nb_3', 'h3', :ts, :ts), (4, 3, 'ci', 'nb_4', 'h4', :ts, NULL)",
            "INSERT INTO sessions (id, data, expiry) VALUES ('raw-cookie-value', x'80', :ts)",
        ]
        with app.app_context():
            for statement in rows:
                db.session.execute(text(statement), {"ts": stamp})
            db.session.commit()

        upgrade_database(app)

        with app.app_context():
            keys = dict(db.session.execute(text("SELECT id, confusable_key FROM users")).all())
            names = dict(db.session.execute(text("SELECT id, name FROM api_tokens")).all())
            sessions = db.session.execute(text("SELECT COUNT(*) FROM sessions")).scalar()
            db.session.rollback()
        assert keys == {1: "alice", 2: "alice#2", 3: "bob"}
        assert names == {1: "ci", 2: "ci (#2)", 3: "ci", 4: "ci"}
        assert sessions == 0
        # A third look-alike of the name the two share is refused.
        client = app.test_client()
        response = client.post("/auth/signup", json={"username": "a1ice", "password": "x" * 10})
        assert response.status_code == 409
    finally:
        with app.app_context():
            db.engine.dispose()
        app.extensions["genai"].close()
