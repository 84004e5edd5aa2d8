"""OpenAPI document and Swagger UI, served from local files (a NAS may be
offline) with the initialiser in a static script (the CSP has no inline)."""

from __future__ import annotations

from pathlib import Path

import flask_openapi3_swagger
from flask import Blueprint, current_app, jsonify, render_template

SWAGGER_ASSETS = Path(flask_openapi3_swagger.__file__).parent / "templates" / "swagger"

bp = Blueprint("docs", __name__, static_folder=str(SWAGGER_ASSETS), static_url_path="/docs/assets")


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(current_app.api_doc)


@bp.get("/docs")
def swagger_ui():
    return render_template("docs.html")
