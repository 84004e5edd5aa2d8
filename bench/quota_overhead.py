"""What the quota check adds to a generation: a same-run comparison of
POST /v1/generate with quotas on and off, in process (Flask's test client),
on a SQLite file database, against an instant stub upstream (so the figure
is the app's own work, not a model's).

    .venv/bin/python bench/quota_overhead.py
    .venv/bin/python bench/quota_overhead.py --rounds 400 --database postgresql+psycopg://…

"On" is the real path: a reservation on the user's day, month and the
install's month (one write transaction before the call) and its settlement
(one after), with every limit set. "Off" replaces the reservation with a
no-op; the ledger rows are written either way. Batches of each alternate so
both see the same machine. Prints p50 and p90 wall time per request for
each, in wall time and in this process's CPU time (steadier on a shared
machine), the p50 difference (goal: under 2 ms) and the ratio, and the p50
of reserve + settle alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.db import write_transaction
from app.extensions import db
from app.models import User
from app.services import generation, quota
from app.services.genai.contracts import ProviderImage, ProviderResult
from tests.support.app import make_app
from tests.support.auth import AuthActions
from tests.support.images import png_bytes

GOAL_MS = 2.0
PNG = png_bytes("yellow", size=(8, 8))


class InstantUpstream:
    """Answers at once, as Gemini would shape it (billed: priced as gemini)."""

    name = "gemini"

    def generate(self, request, before_send=None, after_send=None) -> ProviderResult:
        if before_send:
            before_send()
        if after_send:
            after_send()
        return ProviderResult(
            images=[ProviderImage(data=PNG, mime="image/png")],
            usage={"prompt_tokens": 12, "output_tokens": 1290, "total_tokens": 1302},
            model=request.model,
        )

    def close(self) -> None:
        pass


class NoHold:
    """Quotas off: no counters, but the ledger's rows are written as ever."""

    def settle(self, used_images, cost, also=None) -> None:
        if also is not None:
            with write_transaction() as session:
                also(session)

    def release(self) -> None:
        pass


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="requests per mode")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite file)")
    options = parser.parse_args()

    settings = {
        "SIGNUP_RATE_LIMIT": "1000000/minute",
        "GENERATION_RATE_LIMIT": "1000000/minute",
        "QUOTA_DAILY_IMAGES": "1000000000",
        "QUOTA_MONTHLY_IMAGES": "1000000000",
        "QUOTA_MONTHLY_USD": "1000000",
        "BUDGET_MONTHLY_USD": "1000000",
        "GENAI_PROVIDER": "offline",
    }
    if options.database:
        settings["SQLALCHEMY_DATABASE_URI"] = options.database
    app = make_app(Path(tempfile.mkdtemp(prefix="nb-bench-quota-")), **settings)
    app.extensions["genai"].provider = InstantUpstream()
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.signup("bench").status_code == 201
    headers = auth.headers()

    real_reserve = quota.reserve
    samples: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}

    def one(mode: str | None = None) -> None:
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.post("/v1/generate", json={"prompt": "a banana"}, headers=headers)
        elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        assert response.status_code == 200, response.get_data(as_text=True)[:200]
        if mode:
            samples[mode].append(elapsed * 1000)
            cpu[mode].append(elapsed_cpu * 1000)

    for _ in range(20):  # warm up
        one()
    try:
        while len(samples["on"]) < options.rounds:
            for mode in ("off", "on"):
                generation.quota.reserve = real_reserve if mode == "on" else _no_hold
                for _ in range(options.batch):
                    one(mode)
    finally:
        generation.quota.reserve = real_reserve

    direct, direct_cpu = [], []
    with app.test_request_context():
        user = db.session.get(User, auth.user["id"])
        caller = quota.Caller(user=user, address="127.0.0.1")
        for _ in range(options.rounds):
            started, started_cpu = time.perf_counter(), time.process_time()
            quota.reserve(caller, 1, "gemini-3.1-flash-image", None).settle(1, Decimal("0.067"))
            direct.append((time.perf_counter() - started) * 1000)
            direct_cpu.append((time.process_time() - started_cpu) * 1000)

    dialect = "sqlite" if not options.database else options.database.split(":")[0]
    print(f"quota overhead, {dialect}, {len(samples['on'])} requests per mode (p50 / p90, ms)")
    for name, figures in (("wall", samples), ("cpu", cpu)):
        for mode in ("off", "on"):
            values = figures[mode]
            print(
                f"  {name:4} quotas {mode:3}: {statistics.median(values):6.2f} / "
                f"{percentile(values, 0.9):6.2f}"
            )
        on, off = (statistics.median(figures[mode]) for mode in ("on", "off"))
        verdict = "meets" if on - off < GOAL_MS else "MISSES"
        print(
            f"  {name:4} added at p50: {on - off:.2f} ms ({verdict} the {GOAL_MS:g} ms goal);"
            f" ratio {on / off:.2f}"
        )
    print(
        f"  reserve + settle alone: wall p50 {statistics.median(direct):.2f} ms,"
        f" cpu p50 {statistics.median(direct_cpu):.2f} ms"
    )


def _no_hold(*args, **kwargs) -> NoHold:
    return NoHold()


if __name__ == "__main__":
    main()
