"""WSGI entry point: `app` for any WSGI server; `python wsgi.py` serves it
with waitress (see app/web/server.py)."""

from __future__ import annotations

from app import create_app

app = create_app()

if __name__ == "__main__":
    from app.web.server import serve

    serve(app)
