"""Application factory. Reads top to bottom: config → extensions →
blueprints → request pipeline → error handlers → CLI."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from flask_openapi3 import Info, OpenAPI

from app import private_files
from config import CONFIGS, Config

__version__ = "1.0.0"


def create_app(config: type[Config] | dict | str | None = None) -> OpenAPI:
    from app.web.errors import validation_error_response

    app = OpenAPI(
        __name__,
        info=Info(title="Nano Banana", version=__version__),
        security_schemes={
            "cookie": {"type": "apiKey", "in": "cookie", "name": "nb_session"},
            "bearer": {"type": "http", "scheme": "bearer"},
        },
        validation_error_status=422,
        validation_error_callback=validation_error_response,
        doc_ui=False,  # our own /docs: local assets and no inline script (CSP)
        instance_relative_config=True,
    )

    # 1. Configuration: class defaults, then instance/config.py, then overrides.
    _load_config(app, config)
    _prepare_data_dirs(app)

    # 2. Extensions
    from app import extensions
    from app.db import configure_engine
    from app.i18n import init_i18n
    from app.logs import init_logging
    from app.web.sessions import init_sessions

    init_logging(app)
    init_i18n(app)
    extensions.db.init_app(app)
    configure_engine(app)
    extensions.migrate.init_app(
        app, extensions.db, directory=str(_root() / "migrations"), render_as_batch=True
    )
    extensions.login_manager.init_app(app)
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    init_sessions(app)

    from app.services.genai import init_genai
    from app.services.job_runner import init_jobs
    from app.services.stored_images import init_store
    from app.web.job_events import init_streams

    init_store(app)
    init_genai(app)
    init_jobs(app)
    init_streams(app)
    # Quota, budget and price settings: a typo fails the start, not the first image.
    from app.services import quota

    quota.validate(app.config)

    # 3. Blueprints
    from app.blueprints import admin, auth, conversations, docs, imaging, jobs, pages, usage
    from app.web.assets import init_assets

    app.register_api(auth.bp)
    app.register_api(admin.bp)
    app.register_api(usage.bp)
    app.register_api(conversations.bp)
    app.register_api(imaging.bp)
    app.register_api(jobs.bp)
    app.register_api(pages.api)
    app.register_blueprint(pages.bp)
    app.register_blueprint(docs.bp)
    init_assets(app, docs_root=docs.SWAGGER_ASSETS)  # /assets/<hash>/..., static files

    # 4. Request pipeline, its order declared in one place: trusted proxies,
    # load shedding, request ids and access log, JSON checks, limits,
    # sessions, CSRF, headers.
    from app.web import pipeline

    pipeline.install(app, shed_endpoints=imaging.GENERATION_ENDPOINTS)

    # 5. Error handlers
    from app.web.errors import register_error_handlers

    register_error_handlers(app)

    # 6. CLI
    from app.cli import register_cli

    register_cli(app)
    return app


def _root() -> Path:
    return Path(__file__).resolve().parent.parent


def _load_config(app: OpenAPI, config: type[Config] | dict | str | None) -> None:
    if isinstance(config, str):
        config = CONFIGS[config]
    if config is None or isinstance(config, dict):
        app.config.from_object(CONFIGS[os.environ.get("APP_ENV", "production")])
    else:
        app.config.from_object(config)
    app.config.from_pyfile("config.py", silent=True)
    if isinstance(config, dict):
        app.config.update(config)
    # With Redis, rate-limit counters are shared by every process too.
    if app.config.get("REDIS_URL") and app.config["RATELIMIT_STORAGE_URI"] == "memory://":
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]


def _prepare_data_dirs(app: OpenAPI) -> None:
    # The data folder, the SQLite file and the secret key are the owner's
    # alone: app/private_files.py.
    data_dir = private_files.make_dir(Path(app.config.get("DATA_DIR") or app.instance_path))
    app.config["DATA_DIR"] = str(data_dir)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{data_dir / 'app.db'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = _normalise_db_url(app.config["SQLALCHEMY_DATABASE_URI"])
    _owner_only_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    if not app.config.get("IMAGE_DIR"):
        app.config["IMAGE_DIR"] = str(data_dir / "images")
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _load_or_create_secret(data_dir / "secret_key")


def _owner_only_sqlite_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite would (0644); its -wal and
    -shm files take the database file's mode."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if path.parent.is_dir() and not path.exists():
        with contextlib.suppress(FileExistsError), private_files.open_new(path):
            pass  # an empty file is an empty SQLite database
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        private_files.tighten(path.with_name(name))


def _normalise_db_url(url: str) -> str:
    # Users paste Heroku-style URLs; psycopg 3 is the driver we ship.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _load_or_create_secret(path: Path) -> str:
    """A per-install secret, made once and kept, so sessions survive restarts."""
    if path.exists():
        private_files.tighten(path)
        return path.read_text().strip()
    # Written whole to a temporary file (created 0600), then linked into
    # place: a second process starting at the same moment either wins the
    # link or reads the complete key the first one linked — never an empty
    # file, and never one another user could read.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with private_files.open_new(temporary, "w") as file:
            file.write(secrets.token_urlsafe(48))
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text().strip()
