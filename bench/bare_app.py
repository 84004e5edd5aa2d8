"""The request-path ceiling: a WSGI app answering a constant, served by
waitress with the same thread count the app under test gets.

    python bench/bare_app.py PORT THREADS
"""

from __future__ import annotations

import sys

from waitress import serve

BODY = b'{"status":"ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


if __name__ == "__main__":
    port, threads = int(sys.argv[1]), int(sys.argv[2])
    serve(app, host="127.0.0.1", port=port, threads=threads, ident="bare", _quiet=True)
