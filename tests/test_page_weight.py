"""Issue 17 point 13, the page's weight: static files under a content-hashed
prefix cached for a year, gzip for text answers, display-sized renditions of
stored images (app/web/assets.py, app/web/compression.py, /images/{id}/display)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin

import pytest
from flask import Response
from PIL import Image

from app.extensions import db
from app.web import assets
from app.web.assets import IMMUTABLE, AssetTree
from app.web.compression import compress_response
from tests.support.auth import AuthActions
from tests.support.jobs import accepted, job_url, submit, wait_for_status

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
STATIC = Path(__file__).resolve().parents[1] / "app" / "static"


def page_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/(?:static|docs)/[^"]+)"', html)


def png(size=(2048, 1536)) -> bytes:
    """A picture with detail in it (a flat colour would make any format tiny)."""
    image = Image.radial_gradient("L").resize(size).convert("RGB")
    image.paste((200, 40, 40), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def alice(client, auth):
    auth.signup("alice", "correct-horse-1")
    return auth


@pytest.fixture
def stored(app, client, alice):
    """Alice's conversation with one 2048 × 1536 result, stored through the
    services: its image id and content hash."""
    from app.models import User
    from app.services import conversations, stored_images

    conv = client.post("/conversations", json={}, headers=alice.headers()).get_json()
    data = png()
    clean = SimpleNamespace(
        data=data,
        mime="image/png",
        width=2048,
        height=1536,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    with app.test_request_context():
        user = db.session.get(User, alice.user["id"])
        turn = conversations.TurnRecord(
            kind="generate",
            prompt="a big picture",
            params={},
            inputs=[],
            outputs=[stored_images.save(clean)],
            texts=[],
            model="test-model",
            finish_reasons=["STOP"],
        )
        _, reply = conversations.record_turn(user, conv["id"], turn)
        image_id = reply.image_links[0].image_id
        db.session.remove()
    return SimpleNamespace(conv_id=conv["id"], image_id=image_id, sha256=clean.sha256, data=data)


# ---- the version: a hash of the whole tree ---------------------------------------


def test_version_changes_with_any_file_and_only_then(tmp_path):
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "main.js").write_text('import "./a.js";\n')
    (tmp_path / "js" / "a.js").write_text("export const a = 1;\n")
    tree = AssetTree(tmp_path)
    first = tree.version
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert tree.rescan() == first  # nothing changed, same version

    (tmp_path / "js" / "a.js").write_text("export const a = 2;\n")  # same size, new bytes
    changed = tree.rescan()
    assert changed != first
    (tmp_path / "new.css").write_text("body {}\n")
    added = tree.rescan()
    assert added not in (first, changed)
    (tmp_path / "new.css").unlink()
    assert tree.rescan() == changed  # content, not history, makes the version
    (tmp_path / "js" / "a.js").rename(tmp_path / "js" / "b.js")
    assert tree.rescan() not in (first, changed, added)  # a file's name counts too


def test_a_running_server_notices_an_edited_file(tmp_path, monkeypatch):
    (tmp_path / "app.css").write_text("a {}")
    tree = AssetTree(tmp_path)
    before = tree.current_version()
    (tmp_path / "app.css").write_text("b {}")
    assert tree.current_version() == before  # looked at again at most once a second
    monkeypatch.setattr(assets, "RESCAN_INTERVAL_S", 0)
    after = tree.current_version()
    assert after != before
    file, current = tree.get("app.css", after)
    assert current and file.data == b"b {}"


def test_the_page_names_its_files_under_the_current_version(app, client):
    version = app.extensions["assets"]["static"].version
    html = client.get("/").get_data(as_text=True)
    urls = page_urls(html)
    assert f"/static/{version}/js/main.js" in urls
    assert f"/static/{version}/css/app.css" in urls
    assert f"/static/{version}/img/favicon.svg" in urls
    assert all(url.startswith(f"/static/{version}/") for url in urls), urls


def test_the_version_is_the_hash_of_app_static(app):
    """Every file of app/static counts (a change to any of them is a new version)."""
    tree = app.extensions["assets"]["static"]
    on_disk = sorted(
        p.relative_to(STATIC).as_posix()
        for p in STATIC.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(STATIC).parts)
    )
    assert sorted(tree.state[1]) == on_disk
    assert tree.version == AssetTree(STATIC).version


# ---- cache headers ------------------------------------------------------------------


def test_hashed_files_are_immutable_and_relative_imports_stay_under_the_hash(app, client):
    version = app.extensions["assets"]["static"].version
    main_url = f"/static/{version}/js/main.js"
    main = client.get(main_url)
    assert main.status_code == 200
    assert main.headers["Cache-Control"] == IMMUTABLE == "public, max-age=31536000, immutable"
    assert main.mimetype == "text/javascript"
    assert main.data == (STATIC / "js" / "main.js").read_bytes()
    imports = re.findall(r'from "(\./[^"]+)"', main.get_data(as_text=True))
    assert len(imports) > 5
    for relative in imports:
        url = urljoin(main_url, relative)
        assert url.startswith(f"/static/{version}/js/")
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == IMMUTABLE


def test_no_session_is_read_or_written_for_them(app, client, alice):
    """A logged-in browser's requests for them touch no session (no store
    read, no cookie) and say nothing of cookies: `Vary: Cookie` would make
    the browser ask again after every login."""
    version = app.extensions["assets"]["static"].version
    response = client.get(f"/static/{version}/js/main.js")
    assert response.status_code == 200
    assert "Cookie" not in response.headers.get("Vary", "")
    assert "Set-Cookie" not in response.headers
    assert "Cookie" in client.get("/me").headers["Vary"]  # unlike a session's own answer


def test_old_urls_and_old_versions_still_work_revalidated(app, client):
    body = (STATIC / "js" / "api.js").read_bytes()
    for url in ("/static/js/api.js", "/static/0123456789abcdef/js/api.js"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.data == body
        assert response.headers["Cache-Control"] == "no-cache", url
        again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and again.data == b""


def test_a_missing_file_is_the_json_404(app, client):
    version = app.extensions["assets"]["static"].version
    for url in (
        f"/static/{version}/js/nope.js",
        f"/static/{version}/../config.py",
        f"/static/{version}/{version}/js/main.js",
        "/static/../../config.py",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.get_json()["error"] == "not_found"


def test_the_docs_page_versions_swagger_ui_by_query(app, client):
    docs = app.extensions["assets"]["docs"]
    html = client.get("/docs").get_data(as_text=True)
    bundle = f"/docs/assets/js/swagger-ui-bundle.js?v={docs.version}"
    assert bundle in html
    version = app.extensions["assets"]["static"].version
    assert f"/static/{version}/docs-init.js" in html
    response = client.get(bundle, headers=GZIP)
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert response.headers["Content-Encoding"] == "gzip"
    plain = client.get("/docs/assets/js/swagger-ui-bundle.js")
    assert plain.headers["Cache-Control"] == "no-cache"
    assert gzip.decompress(response.data) == plain.data
    assert len(response.data) < len(plain.data) / 3


def test_switched_off_the_page_names_static_urls(app_factory):
    app = app_factory(ASSET_HASHED_URLS=False)
    html = app.test_client().get("/").get_data(as_text=True)
    version = app.extensions["assets"]["static"].version
    assert "/static/js/main.js" in html and version not in html


# ---- gzip -----------------------------------------------------------------------------


def test_static_files_are_gzipped_once_with_an_etag_per_encoding(app, client, monkeypatch):
    version = app.extensions["assets"]["static"].version
    url = f"/static/{version}/css/app.css"
    plain = client.get(url)
    packed = client.get(url, headers=GZIP)
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    for response in (plain, packed):
        assert "Accept-Encoding" in response.headers["Vary"]
    assert gzip.decompress(packed.data) == plain.data
    assert len(packed.data) < len(plain.data) / 3
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert not packed.headers["ETag"].startswith("W/")
    # Each ETag revalidates its own encoding.
    again = client.get(url, headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
    assert again.status_code == 304
    crossed = client.get(url, headers={"If-None-Match": packed.headers["ETag"]})
    assert crossed.status_code == 200 and crossed.data == plain.data

    # Compressed once: the next request reuses the kept bytes.
    def no_second_time(*args, **kwargs):
        raise AssertionError("compressed again")

    monkeypatch.setattr(assets, "gzip_bytes", no_second_time)
    assert client.get(url, headers=GZIP).data == packed.data


def test_html_and_json_are_gzipped_for_clients_that_accept_it(client, stored, alice, seed_turn):
    page = client.get("/", headers=GZIP)
    assert page.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in page.headers["Vary"]
    html = gzip.decompress(page.data).decode()
    assert html == client.get("/").get_data(as_text=True)
    assert int(page.headers["Content-Length"]) == len(page.data) < len(html) / 3

    for turn in range(3):
        seed_turn(alice.user["id"], stored.conv_id, prompt=f"turn {turn}: " + "a banana " * 40)
    path = f"/conversations/{stored.conv_id}/messages"
    plain = client.get(path)
    packed = client.get(path, headers=GZIP)
    assert len(plain.data) > 2048
    assert packed.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    assert "Accept-Encoding" in plain.headers["Vary"]  # a cache keeps the two apart
    spec = client.get("/openapi.json", headers=GZIP)
    assert spec.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(spec.data))["openapi"].startswith("3.")
    assert spec.headers["Cache-Control"] == "no-store"  # the pipeline's headers still there


def test_no_gzip_unless_asked_for_or_worth_it(client, stored):
    assert "Content-Encoding" not in client.get("/").headers  # nothing accepted
    refused = client.get("/", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
    small = client.get("/health", headers=GZIP)  # under 1 KB
    assert "Content-Encoding" not in small.headers and small.get_json()["status"] == "ok"
    error = client.get("/conversations/999999", headers=GZIP)
    assert "Content-Encoding" not in error.headers
    assert set(error.get_json()) >= {"error", "message", "detail"}
    for url in (f"/images/{stored.image_id}", f"/images/{stored.image_id}/display"):
        picture = client.get(url, headers=GZIP)
        assert picture.status_code == 200
        assert "Content-Encoding" not in picture.headers, url


def test_a_large_json_error_keeps_its_shape_and_status_compressed(app_factory):
    from app.errors import AppError

    app = app_factory()

    @app.get("/_long_error")
    def long_error():
        raise AppError("why " * 400, code="long_story", status=503, retry_after=7)

    response = app.test_client().get("/_long_error", headers=GZIP)
    assert response.status_code == 503
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Retry-After"] == "7"
    error = json.loads(gzip.decompress(response.data))
    assert error["error"] == "long_story" and error["message"] == error["detail"] == "why " * 400


def test_switched_off_nothing_is_compressed(app_factory):
    client = app_factory(COMPRESS_RESPONSES=False).test_client()
    page = client.get("/", headers=GZIP)
    assert "Content-Encoding" not in page.headers and b"<html" in page.data
    url = page_urls(page.get_data(as_text=True))[1]
    assert "Content-Encoding" not in client.get(url, headers=GZIP).headers


def test_event_streams_and_streamed_answers_are_never_compressed(app):
    with app.test_request_context("/", headers=GZIP):
        stream = Response(iter([b"data: x\n\n" * 200]), mimetype="text/event-stream")
        assert "Content-Encoding" not in compress_response(stream).headers
        streamed = Response(iter([b"<p>x</p>" * 500]), mimetype="text/html")
        assert streamed.is_streamed
        assert "Content-Encoding" not in compress_response(streamed).headers
        whole = Response(b"<p>x</p>" * 500, mimetype="text/html")
        assert compress_response(whole).headers["Content-Encoding"] == "gzip"


def test_a_job_event_stream_is_not_compressed(client):
    job = accepted(submit(client))
    wait_for_status(client, job_url(job), "succeeded")
    events = client.get(job["links"]["events"], headers=GZIP)
    assert events.mimetype == "text/event-stream"
    assert "Content-Encoding" not in events.headers
    assert b"event:" in events.data  # readable as it is


def test_a_strong_etag_turns_weak_on_the_compressed_body(app_factory):
    app = app_factory()

    @app.get("/_etagged")
    def etagged():
        response = Response("<p>same content</p>" * 200, mimetype="text/html")
        response.set_etag("abc")
        return response

    client = app.test_client()
    assert client.get("/_etagged").headers["ETag"] == '"abc"'
    assert client.get("/_etagged", headers=GZIP).headers["ETag"] == 'W/"abc"'


def test_head_answers_what_get_would_without_the_body(app, client, stored):
    version = app.extensions["assets"]["static"].version
    for url in ("/", f"/static/{version}/js/thread.js", "/openapi.json"):
        get = client.get(url, headers=GZIP)
        head = client.head(url, headers=GZIP)
        assert head.status_code == 200 and head.data == b"", url
        for name in ("Content-Type", "Content-Encoding", "Content-Length", "Cache-Control"):
            assert head.headers.get(name) == get.headers.get(name), (url, name)
    display = client.head(f"/images/{stored.image_id}/display")
    assert display.status_code == 200 and display.data == b""
    assert display.mimetype == "image/webp" and int(display.headers["Content-Length"]) > 0


# ---- display renditions -------------------------------------------------------------


def test_messages_name_a_display_rendition(client, stored):
    items = client.get(f"/conversations/{stored.conv_id}/messages").get_json()["items"]
    image = items[-1]["images"][0]
    assert image["display_url"] == f"/images/{stored.image_id}/display"
    assert image["url"] == f"/images/{stored.image_id}"  # the original, for download


def test_switched_off_display_url_is_the_original(app, client, stored):
    app.config["IMAGE_RENDITIONS"] = False  # read when a message is serialised
    items = client.get(f"/conversations/{stored.conv_id}/messages").get_json()["items"]
    image = items[-1]["images"][0]
    assert image["display_url"] == image["url"] == f"/images/{stored.image_id}"


def _conversation(client, auth) -> int:
    return client.post("/conversations", json={}, headers=auth.headers()).get_json()["id"]


def test_display_is_a_webp_at_most_1280_px_kept_beside_the_original(app, client, stored):
    response = client.get(f"/images/{stored.image_id}/display")
    assert response.status_code == 200
    assert response.mimetype == "image/webp"
    picture = Image.open(io.BytesIO(response.data))
    assert picture.format == "WEBP" and picture.size == (1280, 960)  # aspect kept
    assert len(response.data) < len(stored.data) / 4
    store = app.extensions["image_store"]
    assert store.get(stored.sha256, "image/webp", "display") == response.data
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["ETag"] == f'"{stored.sha256}-d"'
    again = client.get(
        f"/images/{stored.image_id}/display", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304 and again.data == b""


def test_display_is_made_once(app, client, stored, monkeypatch):
    first = client.get(f"/images/{stored.image_id}/display").data
    from app.services import image_codec

    def not_again(*args, **kwargs):
        raise AssertionError("made again")

    monkeypatch.setattr(image_codec, "make_thumbnail", not_again)
    assert client.get(f"/images/{stored.image_id}/display").data == first


def test_the_thumbnail_is_made_from_the_display_rendition_when_there_is_one(
    client, stored, monkeypatch
):
    client.get(f"/images/{stored.image_id}/display")
    from app.services import stored_images

    def no_original(image):
        raise AssertionError("the original was decoded")

    monkeypatch.setattr(stored_images, "image_bytes", no_original)
    thumb = client.get(f"/images/{stored.image_id}/thumb")
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.data)).size == (256, 192)


def test_a_small_image_is_not_enlarged(client, alice, seed_turn):
    conv = _conversation(client, alice)
    seeded = seed_turn(alice.user["id"], conv)  # 32 × 24
    response = client.get(f"/images/{seeded.image_id}/display")
    assert Image.open(io.BytesIO(response.data)).size == (32, 24)


def test_display_follows_the_image_access_rule(app, client, stored):
    bob = app.test_client()
    AuthActions(bob).signup("bob", "correct-horse-1")
    foreign = bob.get(f"/images/{stored.image_id}/display")
    assert foreign.status_code == 404
    assert foreign.get_json()["error"] == "not_found"
    anonymous = app.test_client().get(f"/images/{stored.image_id}/display")
    assert anonymous.status_code == 401
    assert bob.get(f"/images/{stored.image_id}").status_code == 404  # same as the original


def test_deleting_the_conversation_removes_the_rendition(app, client, alice, stored):
    client.get(f"/images/{stored.image_id}/display")
    store = app.extensions["image_store"]
    assert store.exists(stored.sha256, "image/webp", "display")
    response = client.delete(f"/conversations/{stored.conv_id}", headers=alice.headers())
    assert response.status_code == 204
    assert not store.exists(stored.sha256, "image/webp", "display")
    assert not store.exists(stored.sha256)


def test_display_route_is_in_the_openapi_document(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/images/{image_id}/display"]["get"]
    assert {"200", "304", "404"} <= set(operation["responses"])
    ref = spec["components"]["schemas"]["ImageRef"]
    assert "display_url" in ref["properties"] and "display_url" in ref["required"]


# ---- the first load's last kilobytes (W1 < 80 KB) -------------------------------------------

JS = STATIC / "js"
STATIC_IMPORT = re.compile(r'^import\s[^;]*?\sfrom\s+"(\./[^"]+)";', re.M | re.S)
DYNAMIC_IMPORT = re.compile(r'\bimport\("(\./[^"]+)"\)')
ON_DEMAND = {
    *("admin.js", "usage.js", "tokens.js", "password.js"),
    *("i18n/en.js", "i18n/zh.js", "i18n/en-account.js", "i18n/zh-account.js"),
}


def static_graph(entry: str = "main.js") -> set[str]:
    """The modules the browser fetches before main.js runs: its static
    imports, and theirs."""
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = (JS / name).read_text(encoding="utf-8")
        base = Path(name).parent
        for relative in STATIC_IMPORT.findall(source):
            todo.append((base / relative).as_posix().removeprefix("./"))
    return seen


def test_what_a_new_visitor_never_needs_is_not_in_the_static_module_graph():
    graph = static_graph()
    assert {"main.js", "i18n.js", "quota.js", "thread.js", "api.js"} <= graph
    assert graph & ON_DEMAND == set(), sorted(graph & ON_DEMAND)
    # ...and each of them is fetched with import() by the module that needs it.
    dynamic = set()
    for name in ("main.js", "i18n.js"):
        dynamic |= {
            rel.removeprefix("./")
            for rel in DYNAMIC_IMPORT.findall((JS / name).read_text(encoding="utf-8"))
        }
    assert dynamic == ON_DEMAND
    for name in ON_DEMAND:
        assert (JS / name).is_file(), name


def _table_keys(name: str) -> set[str]:
    source = (JS / "i18n" / name).read_text(encoding="utf-8")
    body = source[source.index("export default {") :]
    return set(re.findall(r'^\s+"?([\w.]+)"?:', body, re.M))


def test_both_language_tables_have_the_same_keys_and_every_key_the_page_uses():
    """The strings moved from i18n.js into i18n/<lang>.js and
    i18n/<lang>-account.js, one language at a time: neither language may lack
    a key (no English fallback is at hand when only Chinese is loaded), and
    what the page shows before a login is never in the account part."""
    page_en, page_zh = _table_keys("en.js"), _table_keys("zh.js")
    account_en, account_zh = _table_keys("en-account.js"), _table_keys("zh-account.js")
    assert len(page_en) > 150 and len(account_en) > 100
    assert page_en == page_zh, {
        "only en": sorted(page_en - page_zh),
        "only zh": sorted(page_zh - page_en),
    }
    assert account_en == account_zh, sorted(account_en ^ account_zh)
    assert page_en & account_en == set()
    assert all(re.match(r"(admin|usage|tokens|password)\.", key) for key in account_en)
    en = page_en | account_en
    page = (STATIC.parent / "templates" / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([\w.]+)"', page))
    before_login = set()
    for path in JS.glob("*.js"):
        code = path.read_text(encoding="utf-8")
        keys = set(re.findall(r'\bt\("([\w.]+)"', code))
        keys |= set(re.findall(r'i18n(?:Label)?: "([\w.]+)"', code))
        used |= keys
        if path.name in static_graph():
            before_login |= keys
    assert len(used) > 100
    assert used - en == set(), sorted(used - en)
    # Modules loaded with the page use the page's strings only.
    assert before_login - page_en == set(), sorted(before_login - page_en)
    assert "STRINGS" not in (JS / "i18n.js").read_text(encoding="utf-8")


def test_the_language_tables_are_served_under_the_hash(app, client):
    version = app.extensions["assets"]["static"].version
    i18n_url = f"/static/{version}/js/i18n.js"
    source = client.get(i18n_url, headers=GZIP)
    assert source.status_code == 200
    tables = DYNAMIC_IMPORT.findall(gzip.decompress(source.data).decode())
    assert len(tables) == 4
    for relative in tables:
        url = urljoin(i18n_url, relative)
        assert url.startswith(f"/static/{version}/js/i18n/")
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == IMMUTABLE
        assert b"\nexport default {\n" in response.data


DOCUMENT_ONLY = ("Content-Security-Policy", "X-Frame-Options")


def test_scripts_styles_and_pictures_carry_only_the_headers_that_act_on_them(app, client):
    """CSP and X-Frame-Options act on documents: a static script or
    stylesheet goes without them (nosniff stays on everything)."""
    version = app.extensions["assets"]["static"].version
    for url in (
        f"/static/{version}/js/main.js",
        "/static/js/api.js",
        f"/static/{version}/js/i18n/zh.js",
    ):
        response = client.get(url, headers=GZIP)
        assert response.status_code == 200, url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        for name in (*DOCUMENT_ONLY, "Referrer-Policy"):
            assert name not in response.headers, (url, name)
        assert response.headers["X-Request-ID"]
    # A stylesheet's url()s follow its own referrer policy: it keeps one.
    css = client.get(f"/static/{version}/css/app.css")
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    assert css.headers["Referrer-Policy"] == "same-origin"
    assert not any(name in css.headers for name in DOCUMENT_ONLY)
    # Swagger UI's files on /docs too.
    bundle = client.get("/docs/assets/js/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.mimetype == "text/javascript"
    assert bundle.headers["X-Content-Type-Options"] == "nosniff"
    assert not any(name in bundle.headers for name in DOCUMENT_ONLY)


def test_everything_that_can_be_a_document_keeps_every_security_header(app, client, alice):
    version = app.extensions["assets"]["static"].version
    for url in (
        "/",
        "/health",
        "/me",
        "/docs",
        f"/static/{version}/img/favicon.svg",  # an SVG can hold a script
        f"/static/{version}/js/nope.js",  # the JSON 404
        "/static/js/nope.js",
    ):
        response = client.get(url)
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], url
        assert headers["X-Frame-Options"] == "DENY", url
        assert headers["Referrer-Policy"] == "same-origin", url
        assert headers["X-Content-Type-Options"] == "nosniff", url
