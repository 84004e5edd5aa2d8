"""What the account safeguards cost (issue 18, points 4, 11 and 12).

- the server's own expired-session cleanup: one 500-row batch against a
  table of 10,000 expired and 10,000 live rows (SQLite), the same with
  nothing to remove, and `flask sessions cleanup`'s delete of all 10,000;
- usernames: loading Unicode's confusables data and building the skeleton
  map (once per process, at the first sign-up), then one look-alike key and
  one full validation per name.

    .venv/bin/python bench/accounts.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import timeit
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, insert

from app.extensions import db
from app.models import SessionRecord, utcnow
from tests.support.app import make_app

ROWS = 10_000
BATCH = 500


def fill_sessions() -> None:
    now = utcnow()
    rows = [
        {"id": f"{kind}{n:063}", "data": b"\x80" * 200, "expiry": now + offset}
        for kind, offset in (("e", -timedelta(hours=1)), ("l", timedelta(hours=1)))
        for n in range(ROWS)
    ]
    db.session.execute(insert(SessionRecord), rows)
    db.session.commit()


def session_cleanup() -> None:
    app = make_app(Path(tempfile.mkdtemp()))
    interface = app.session_interface
    with app.app_context():
        fill_sessions()
        times = []
        for _ in range(ROWS // BATCH):
            started = time.perf_counter()
            assert interface._delete_expired_sessions(limit=BATCH) == BATCH
            times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        interface._delete_expired_sessions(limit=BATCH)
        empty = (time.perf_counter() - started) * 1000
        db.session.execute(delete(SessionRecord))
        db.session.commit()
        fill_sessions()
        started = time.perf_counter()
        removed = interface._delete_expired_sessions()
        full = (time.perf_counter() - started) * 1000
    print(
        f"session cleanup (SQLite, {ROWS} expired + {ROWS} live rows): "
        f"{BATCH}-row batch median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms; nothing expired {empty:.1f} ms; "
        f"all {removed} at once {full:.1f} ms"
    )


def usernames() -> None:
    started = time.perf_counter()
    import confusable_homoglyphs.confusables  # noqa: F401

    loaded = (time.perf_counter() - started) * 1000
    from app.services import usernames as rules

    started = time.perf_counter()
    rules._prototypes()
    built = (time.perf_counter() - started) * 1000
    rules.validate("warm-up")
    name = "alice_the_banana"
    key_us = timeit.timeit(lambda: rules.confusable_key(name), number=10_000) / 10_000 * 1e6
    validate_us = timeit.timeit(lambda: rules.validate(name), number=10_000) / 10_000 * 1e6
    print(
        f"usernames: confusables data loaded in {loaded:.0f} ms, skeleton map built in "
        f"{built:.0f} ms (once per process); per name: look-alike key {key_us:.1f} µs, "
        f"validation {validate_us:.1f} µs"
    )


if __name__ == "__main__":
    session_cleanup()
    usernames()
