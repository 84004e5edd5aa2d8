"""What reading usage costs on SQLite with 100,000 ledger rows (issue 12,
point 5): `GET /me/usage` for the last 31 days through the whole request
path (quota status and budget included), the admin's report by day, user
and model for 31 days and for a year, and user_totals for the admin's user
list.

Two ledgers of 100,000 attempts over the past year: spread over 50 users
(2,000 each, ~170 a month), and one where a single heavy user made 40,000
of them (~3,300 a month) — the worst /me/usage a busy install sees.
Median of 30 runs after a warm-up, in milliseconds.

    .venv/bin/python bench/usage_queries.py
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from app.extensions import db
from app.models import UsageRecord, User
from app.services import accounts, usage
from tests.support.app import make_app

ROWS = 100_000
USERS = 50
RUNS = 30
PASSWORD = "bench-pass-123"
MODELS = ["gemini-2.5-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-image"]


def fill(user_ids: list[int], heavy_share: float) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    rows = []
    for _ in range(ROWS):
        heavy = rng.random() < heavy_share
        billed = rng.random() < 0.9
        rows.append(
            {
                "created_at": now - timedelta(seconds=rng.randrange(365 * 86400)),
                "user_id": user_ids[0] if heavy else rng.choice(user_ids),
                "request_id": "bench",
                "kind": "generate",
                "model": rng.choice(MODELS),
                "images": 1 if billed else 0,
                "cost_usd": Decimal("0.039") if billed else Decimal(0),
                "billed": billed,
                "outcome": "ok" if billed else "upstream_error",
            }
        )
    # Appended as they happen: the table is in time order, as a real ledger's.
    rows.sort(key=lambda row: row["created_at"])
    db.session.execute(insert(UsageRecord), rows)
    db.session.commit()


def median_ms(call) -> float:
    call()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(label: str, heavy_share: float) -> None:
    app = make_app(Path(tempfile.mkdtemp()))
    with app.app_context():
        users = [accounts.create_user(f"user{n}", PASSWORD) for n in range(USERS)]
        ids = [user.id for user in users]
        fill(ids, heavy_share)
    client = app.test_client()
    client.post("/auth/login", json={"username": "user0", "password": PASSWORD})
    today = datetime.now(UTC).date()
    year_ago = today - timedelta(days=364)
    month_ago = today - timedelta(days=30)
    window = f"/me/usage?from={month_ago}&to={today}"
    with app.app_context():
        user0 = db.session.get(User, ids[0])
        month_rows = usage.usage_for(user0, month_ago, today)["total"]["calls"]
        figures = {
            "GET /me/usage (31 days, HTTP)": median_ms(
                lambda: client.get(window).status_code == 200 or sys.exit("failed")
            ),
            "usage_for (31 days)": median_ms(lambda: usage.usage_for(user0, month_ago, today)),
            "usage_for (year)": median_ms(lambda: usage.usage_for(user0, year_ago, today)),
            "admin by day (31 days)": median_ms(
                lambda: usage.install_usage(month_ago, today, "day")
            ),
            "admin by user (31 days)": median_ms(
                lambda: usage.install_usage(month_ago, today, "user")
            ),
            "admin by model (31 days)": median_ms(
                lambda: usage.install_usage(month_ago, today, "model")
            ),
            "admin by day (year)": median_ms(lambda: usage.install_usage(year_ago, today, "day")),
            "user_totals (50 users)": median_ms(lambda: usage.user_totals(ids)),
        }
        db.session.remove()
        db.engine.dispose()
    app.extensions["genai"].close()
    print(f"\n{label}: {ROWS:,} rows; user0 made {month_rows:,} attempts in the last 31 days")
    for name, value in figures.items():
        print(f"  {name:<30} {value:7.2f} ms")


if __name__ == "__main__":
    run("spread over 50 users", heavy_share=0.0)
    run("one heavy user (40%)", heavy_share=0.4)
