"""``python wsgi.py`` with the page-weight features of issue 17 point 13 off:
the "before" of bench/page_weight.py. The page names /static/... (revalidated
on every use), nothing is compressed, and the thread shows the originals
(display_url is the original's URL)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.web.server import serve

BEFORE = {"ASSET_HASHED_URLS": False, "COMPRESS_RESPONSES": False, "IMAGE_RENDITIONS": False}

if __name__ == "__main__":
    serve(create_app(BEFORE))
