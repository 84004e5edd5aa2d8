"""Static files under content-hashed URLs, with no build step.

At start-up every file of app/static is read and hashed; the hash of the
whole tree is the *version*, and the page names its files under it:
``/static/<version>/js/main.js``. A module's relative imports
(``./api.js``) resolve under the same prefix, so one hash covers the whole
module graph. Those answers may be kept for a year without asking again
(``immutable``): a repeat visit makes no request for them at all. A change
to any file gives a new version, and the page names the new URLs.

- Under /static/, like the plain URLs: no session is read for them and none
  is written (app/web/sessions.py), so no ``Vary: Cookie`` either, which
  would have the browser ask again after every login.
- Files are kept in memory, each compressed once, on its first request by
  a client that accepts gzip (app/web/compression.py), with a strong ETag
  per encoding.
- ``/static/js/main.js`` keeps working for anything that links it,
  revalidated (``no-cache``) as before; so does a version that is not the
  current one (an old page during an upgrade), which gets today's file,
  revalidated.
- Swagger UI's files (the /docs page) keep their URLs with the version of
  their own tree as ``?v=``: they name no other file, so a query is enough.
- The tree is looked at again when the page is rendered, at most once a
  second (a few dozen stat calls): a file edited while the server runs gets
  a new version without a restart, and what is served under a version is
  always what was hashed for it.

The config key ``ASSET_HASHED_URLS = False`` makes the page name the plain
URLs again (the benchmark's "before": bench/page_weight.py).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, Response, current_app, request, url_for
from werkzeug.exceptions import NotFound
from werkzeug.utils import get_content_type

from app.web.compression import (
    MIN_BYTES,
    STATIC_LEVEL,
    accepts_gzip,
    compressible,
    gzip_bytes,
)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
VERSION_LENGTH = 16
VERSION = re.compile(rf"[0-9a-f]{{{VERSION_LENGTH}}}")
RESCAN_INTERVAL_S = 1.0
# What browsers expect for module scripts, whatever the platform's table says.
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


@dataclass
class StaticFile:
    data: bytes
    mimetype: str
    digest: str
    _gzip: bytes | None = field(default=None, repr=False)

    @property
    def compressible(self) -> bool:
        return compressible(self.mimetype) and len(self.data) >= MIN_BYTES

    def gzipped(self) -> bytes | None:
        """The gzip body, made on first use and kept; None when it would
        not be smaller."""
        if self._gzip is None:
            packed = gzip_bytes(self.data, STATIC_LEVEL)
            self._gzip = packed if len(packed) < len(self.data) else b""
        return self._gzip or None


# Files already read, by path: every app of a process (tests make hundreds)
# shares them, and a rescan reads only what changed.
_READ: dict[str, tuple[tuple[int, int], StaticFile]] = {}
_READ_LOCK = threading.Lock()


def _read(path: Path) -> StaticFile:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    with _READ_LOCK:
        known = _READ.get(str(path))
        if known and known[0] == key:
            return known[1]
    data = path.read_bytes()
    mimetype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    file = StaticFile(
        data=data,
        mimetype=mimetype or "application/octet-stream",
        digest=hashlib.sha256(data).hexdigest(),
    )
    with _READ_LOCK:
        _READ[str(path)] = (key, file)
    return file


class AssetTree:
    """The files of one folder, in memory, and the version they make."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        # (version, files) as one value: a reader never pairs one scan's
        # version with another's files.
        self.state: tuple[str, dict[str, StaticFile]] = ("", {})
        self._checked = 0.0
        self._lock = threading.Lock()
        self.rescan()

    def rescan(self) -> str:
        files = {}
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                if name.startswith("."):
                    continue  # editors' swap files, .DS_Store
                path = Path(folder, name)
                files[path.relative_to(self.root).as_posix()] = _read(path)
        tree = hashlib.sha256()
        for name in sorted(files):
            tree.update(f"{name}\0{files[name].digest}\n".encode())
        self.state = (tree.hexdigest()[:VERSION_LENGTH], files)
        self._checked = time.monotonic()
        return self.version

    @property
    def version(self) -> str:
        return self.state[0]

    def current_version(self) -> str:
        if time.monotonic() - self._checked >= RESCAN_INTERVAL_S and self._lock.acquire(False):
            try:
                self.rescan()
            finally:
                self._lock.release()
        return self.version

    def get(self, name: str, version: str | None = None) -> tuple[StaticFile, bool]:
        """The file, and whether it belongs to `version` (the current one)."""
        current, files = self.state
        file = files.get(name)
        if file is None:
            raise NotFound()
        return file, version == current

    def lookup(self, path: str) -> tuple[StaticFile, bool]:
        """A path under /static/: ``<version>/<name>`` (the file, and
        whether that is the current version) or a plain ``<name>``."""
        version, _, name = path.partition("/")
        if VERSION.fullmatch(version) and name in self.state[1]:
            return self.get(name, version)
        return self.get(path)


def serve(file: StaticFile, cache_control: str) -> Response:
    """One file, gzip when the client takes it, answered 304 when the client
    has these bytes already (strong ETag per encoding)."""
    body, etag = file.data, file.digest[:32]
    encoded = False
    if file.compressible and current_app.config.get("COMPRESS_RESPONSES", True):
        packed = file.gzipped() if accepts_gzip(request) else None
        if packed is not None:
            body, etag, encoded = packed, f"{etag}-gzip", True
    response = Response(body, content_type=get_content_type(file.mimetype, "utf-8"))
    if encoded:
        response.headers["Content-Encoding"] = "gzip"
    if file.compressible:
        response.vary.add("Accept-Encoding")
    response.set_etag(etag)  # the one validator: Last-Modified would add nothing
    response.headers["Cache-Control"] = cache_control
    return response.make_conditional(request)


# ---- the app's trees and views ------------------------------------------


def init_assets(app: Flask, docs_root: str | os.PathLike | None = None) -> None:
    """Read the trees, serve /static/ (hashed or plain) and the docs' files
    from memory, and give templates asset_url / docs_asset_url."""
    app.config.setdefault("ASSET_HASHED_URLS", True)
    trees = {"static": AssetTree(app.static_folder)}
    if docs_root is not None:
        trees["docs"] = AssetTree(docs_root)
    app.extensions["assets"] = trees

    def static_file(filename: str):
        file, current = trees["static"].lookup(filename)
        return serve(file, IMMUTABLE if current else REVALIDATE)

    app.view_functions["static"] = static_file
    if "docs" in trees and "docs.static" in app.view_functions:

        def docs_file(filename: str):
            file, current = trees["docs"].get(filename, request.args.get("v"))
            return serve(file, IMMUTABLE if current else REVALIDATE)

        app.view_functions["docs.static"] = docs_file
    app.add_template_global(asset_url)
    app.add_template_global(docs_asset_url)


def asset_url(filename: str) -> str:
    """The page's URL for a file of app/static."""
    if not current_app.config["ASSET_HASHED_URLS"]:
        return url_for("static", filename=filename)
    version = current_app.extensions["assets"]["static"].current_version()
    return url_for("static", filename=f"{version}/{filename}")


def docs_asset_url(filename: str) -> str:
    """The /docs page's URL for a Swagger UI file."""
    if not current_app.config["ASSET_HASHED_URLS"]:
        return url_for("docs.static", filename=filename)
    version = current_app.extensions["assets"]["docs"].current_version()
    return url_for("docs.static", filename=filename, v=version)
