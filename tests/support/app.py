"""An app on a throwaway database, built the way every test builds it.

SQLite in the given folder, or PostgreSQL when TEST_DATABASE_URL is set
(`.ci/run` runs the suite both ways).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from sqlalchemy import text

from app import create_app
from app.extensions import db, limiter
from config import TestingConfig

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
# The key the gemini_app fixture configures; the fake server can be told to
# refuse any other (FakeGemini(api_key=...)).
GEMINI_TEST_KEY = "test-key-123"


def make_app(tmp_path: Path, **overrides) -> Flask:
    """A TestingConfig app with DATA_DIR under `tmp_path`, an empty database
    and fresh rate limits; `overrides` are config keys."""
    settings = {"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": None}
    if TEST_DATABASE_URL:
        settings["SQLALCHEMY_DATABASE_URI"] = TEST_DATABASE_URL
    settings.update(overrides)

    class Config(TestingConfig):
        pass

    for key, value in settings.items():
        setattr(Config, key, value)
    app = create_app(Config)
    with app.app_context():
        reset_database()
    limiter.reset()
    LIVE_APPS.append(app)
    return app


# Every app made by make_app, so its job workers can be stopped after the
# test (tests/conftest.py): on the shared PostgreSQL database a worker left
# running would take the next test's jobs.
LIVE_APPS: list[Flask] = []


def stop_job_runners() -> None:
    while LIVE_APPS:
        runner = LIVE_APPS.pop().extensions.get("job_runner")
        if runner is not None:
            runner.stop(timeout=5)


_schema_rebuilt = False


def reset_database() -> None:
    """Every table there and empty (PostgreSQL: truncated in place)."""
    global _schema_rebuilt
    if db.engine.dialect.name == "postgresql":
        if not _schema_rebuilt:
            # The `test` database outlives a run: tables left by an older
            # schema would keep their old columns under create_all. Start each
            # run from an empty schema, once; truncating is enough after that.
            db.session.execute(text("DROP SCHEMA public CASCADE"))
            db.session.execute(text("CREATE SCHEMA public"))
            db.session.commit()
            _schema_rebuilt = True
        db.create_all()
        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        db.session.commit()
    else:
        db.drop_all()
        db.create_all()
