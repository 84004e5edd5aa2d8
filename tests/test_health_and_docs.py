"""Liveness, readiness, and the generated OpenAPI document."""

from __future__ import annotations

from app.extensions import db


def test_health_reports_provider_and_version(client):
    body = client.get("/health").get_json()
    assert body["status"] == "ok"
    assert body["provider"] == "offline"
    assert body["version"]


def test_health_touches_no_database(app, client):
    statements = []
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    def record(*args, **kwargs):
        statements.append(args)

    event.listen(engine, "before_cursor_execute", record)
    try:
        client.set_cookie("nb_session", "some-session-id")
        assert client.get("/health").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []


def test_ready_checks_database(client):
    body = client.get("/ready").get_json()
    assert body["status"] == "ok"
    assert body["database"] in ("sqlite", "postgresql")


def test_openapi_document_lists_the_api(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ["/auth/signup", "/auth/login", "/me", "/conversations", "/health"]:
        assert path in spec["paths"], path
    assert "/conversations/{conv_id}/messages" in spec["paths"]


def test_docs_page_uses_local_assets_only(client):
    html = client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/js/swagger-ui-bundle.js" in html
    assert "http://" not in html and "https://" not in html
    assert "<script>" not in html  # nothing inline: the CSP allows none
    assert client.get("/docs/assets/js/swagger-ui-bundle.js").status_code == 200


def test_cached_schemas_match_pydantic_and_each_caller_gets_its_own_copy():
    from pydantic import BaseModel

    from app.web.schemas.imaging import ImageForm

    fresh = BaseModel.model_json_schema.__func__(ImageForm)  # pydantic's own, uncached
    first = ImageForm.model_json_schema()
    assert first == fresh
    first["properties"].clear()  # a caller that scribbles on its copy...
    assert ImageForm.model_json_schema() == fresh  # ...changes nothing for the next
    by_ref = ImageForm.model_json_schema(ref_template="#/components/schemas/{model}")
    assert by_ref == BaseModel.model_json_schema.__func__(
        ImageForm, ref_template="#/components/schemas/{model}"
    )
