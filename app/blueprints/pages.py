"""The chat page, liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import text

from app import __version__
from app.extensions import db
from app.i18n import _l
from app.web.schemas.common import ErrorOut, HealthOut, ReadyOut, error_responses

bp = Blueprint("pages", __name__)
api = APIBlueprint(
    "health", __name__, abp_tags=[Tag(name="health")], abp_responses=error_responses()
)


@bp.get("/")
def index():
    return render_template("index.html", version=__version__)


@api.get("/health", responses={200: HealthOut})
def health():
    """Liveness: no database, no upstream call."""
    genai = current_app.extensions["genai"]
    return HealthOut(status="ok", version=__version__, provider=genai.provider_name).model_dump()


@api.get("/ready", responses={200: ReadyOut, 503: ErrorOut})
def ready():
    """Readiness: the database answers."""
    from app.errors import AppError

    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:  # any driver failure means "not ready"
        db.session.rollback()
        current_app.logger.warning("readiness check failed: %s", type(error).__name__)
        raise AppError(
            _l("The database is not reachable."),
            code="database_unavailable",
            status=503,
            retry_after=5,
        ) from None
    return ReadyOut(status="ok", database=db.engine.dialect.name).model_dump()
