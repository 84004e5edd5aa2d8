"""Benchmarks of issue 7: upstream efficiency, pacing, responsiveness under
saturation, load shedding, overhead and memory, history, request-path ceiling;
and of issue 13: background jobs while the upstream is saturated (J1-J4,
bench/job_streams.py); and of issue 17: the page's weight on the wire, before
and after (W1-W3, bench/page_weight.py).

    .venv/bin/python bench/run.py                 # 3 runs of everything (make bench)
    .venv/bin/python bench/run.py --quick         # 1 short run
    .venv/bin/python bench/run.py --runs 5 --scenario efficiency --scenario overhead

Each scenario starts the fake Gemini server (tests/fake_gemini/) and the
app as ``python wsgi.py`` serves it (waitress, fresh DATA_DIR and LOG_DIR in
/tmp), drives it with the load generator in bench/loadgen.py, and stops both.
Prints one table: the median of the runs, with min and max, beside each goal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from page_weight import ROWS as PAGE_WEIGHT_ROWS
from scenarios import SCENARIOS, Options

# (scenario, figure, label, unit, goal as (op, value) or None)
TABLE = [
    (
        "efficiency",
        "efficiency",
        "1 upstream efficiency: achieved ÷ (N / L)",
        "ratio",
        (">=", 0.95),
    ),
    ("efficiency", "gen_per_s", "1 generations per second (upstream side)", "1/s", None),
    ("efficiency", "gen_per_s_client", "1 generations per second (client side)", "1/s", None),
    ("efficiency", "gen_failed", "1 failed generations", "count", ("==", 0)),
    ("efficiency", "app_cpu_share", "1 app CPU while saturated (1 = one core)", "ratio", None),
    ("pacing", "pacing", "2 pacing: achieved ÷ min(N / L, 1 / 0.3 s)", "ratio", (">=", 0.95)),
    ("pacing", "min_gap_ms", "2 closest two upstream starts (at the fake)", "ms", (">=", 300)),
    ("pacing", "gap_p1_ms", "2 upstream start gaps, 1st percentile", "ms", None),
    ("pacing", "gaps", "2 gaps between upstream starts", "count", None),
    ("pacing", "gaps_short_1ms", "2 gaps more than 1 ms short of 300 ms", "count", None),
    ("pacing", "gaps_short_10ms", "2 gaps more than 10 ms short of 300 ms", "count", None),
    ("efficiency", "health_p50_ms", "3 GET /health while saturated, p50", "ms", None),
    ("efficiency", "health_p99_ms", "3 GET /health while saturated, p99", "ms", ("<", 50)),
    (
        "efficiency",
        "convs_p50_ms",
        "3 GET /conversations (logged in) while saturated, p50",
        "ms",
        None,
    ),
    (
        "efficiency",
        "convs_p99_ms",
        "3 GET /conversations (logged in) while saturated, p99",
        "ms",
        ("<", 50),
    ),
    ("shedding", "shed_share", "4 share of requests answered 503", "ratio", None),
    ("shedding", "shed_with_retry_after", "4 share of 503s with Retry-After", "ratio", ("==", 1)),
    ("shedding", "shed_p50_ms", "4 503 latency p50 (clients honour Retry-After)", "ms", None),
    ("shedding", "shed_p99_ms", "4 503 latency p99 (clients honour Retry-After)", "ms", ("<", 100)),
    ("shedding", "requests_per_s", "4 offered requests per second (honouring)", "1/s", None),
    (
        "shedding",
        "flood_requests_per_s",
        "4 flood: requests per second (retry after 0.1 s)",
        "1/s",
        None,
    ),
    ("shedding", "flood_shed_p50_ms", "4 flood: 503 latency p50", "ms", None),
    ("shedding", "flood_shed_p99_ms", "4 flood: 503 latency p99", "ms", None),
    ("shedding", "flood_app_cpu_ms_per_request", "4 flood: app CPU per request", "ms", None),
    ("overhead", "overhead_p50_ms", "5 end-to-end minus L, 1 MB PNG, p50", "ms", ("<", 15)),
    ("overhead", "overhead_p99_ms", "5 end-to-end minus L, 1 MB PNG, p99", "ms", None),
    (
        "overhead",
        "fake_direct_minus_L_p50_ms",
        "5 the fake alone: direct call minus L, p50",
        "ms",
        None,
    ),
    ("overhead", "app_only_p50_ms", "5 end-to-end minus the direct call, p50", "ms", None),
    ("overhead", "app_cpu_ms_per_request", "5 app CPU per generation (user + sys)", "ms", None),
    ("overhead", "rss_start_mb", "5 RSS after start", "MB", None),
    ("overhead", "rss_idle_mb", "5 RSS idle, after warm-up", "MB", None),
    ("overhead", "rss_peak_above_idle_mb", "5 peak RSS above idle, 16 at once", "MB", ("<", 64)),
    ("history", "page_p50_ms", "6 GET messages, default page (30), p50", "ms", ("<", 30)),
    ("history", "page_p99_ms", "6 GET messages, default page (30), p99", "ms", None),
    ("history", "page_bytes", "6 GET messages, default page, bytes", "B", ("<", 100 * 1024)),
    ("history", "full_p50_ms", "6 GET messages, all 200 (limit=200), p50", "ms", None),
    ("history", "full_bytes", "6 GET messages, all 200, bytes", "B", None),
    ("history", "image_p50_ms", "6 GET /images/{id} (256 KB PNG), p50", "ms", None),
    ("history", "revalidate_p50_ms", "6 same with If-None-Match → 304, p50", "ms", None),
    ("history", "revalidate_all_304", "6 every revalidation answered 304", "bool", ("==", True)),
    ("ceiling", "bare_rps", "7 bare waitress constant, req/s (8 clients)", "1/s", None),
    ("ceiling", "health_rps", "7 our GET /health, req/s (access log on)", "1/s", None),
    ("ceiling", "health_quiet_rps", "7 our GET /health, req/s (LOG_LEVEL=WARNING)", "1/s", None),
    ("ceiling", "health_vs_bare", "7 /health ÷ bare (access log on)", "ratio", None),
    ("ceiling", "bare_cpu_us", "7 server CPU per request: bare", "µs", None),
    ("ceiling", "health_cpu_us", "7 server CPU per request: /health", "µs", None),
    ("ceiling", "access_log_cpu_us", "7 of which the access log", "µs", None),
    ("ceiling", "access_log_cost", "7 /health throughput lost to the access log", "ratio", None),
    ("ceiling", "convs_rps", "7 our GET /conversations (logged in), req/s", "1/s", None),
    ("ceiling", "convs_cpu_us", "7 server CPU per request: /conversations", "µs", None),
    (
        "ceiling",
        "convs_quiet_rps",
        "7 our GET /conversations, req/s (LOG_LEVEL=WARNING)",
        "1/s",
        None,
    ),
    # Issue 13, background jobs (bench/job_streams.py), upstream saturated.
    ("jobs", "submit_p50_ms", "J1 202 to Prefer: respond-async, gate full, p50", "ms", None),
    ("jobs", "submit_p99_ms", "J1 202 to Prefer: respond-async, gate full, p99", "ms", ("<", 200)),
    ("jobs", "submit_not_202", "J1 submissions not answered 202", "count", ("==", 0)),
    ("jobs", "gate_full", "J1 a sync request is refused 503 meanwhile", "bool", ("==", True)),
    ("jobs", "submit_cpu_ms", "J1 app CPU per submission", "ms", None),
    ("jobs", "health_base_p50_ms", "J2 GET /health, gate full, no streams, p50", "ms", None),
    ("jobs", "health_base_p99_ms", "J2 GET /health, gate full, no streams, p99", "ms", None),
    ("jobs", "app_cpu_share_base", "J2 app CPU, gate full, no streams", "ratio", None),
    ("jobs", "streams_opened", "J2 event streams open", "count", None),
    ("jobs", "health_p50_ms", "J2 GET /health with the streams open, p50", "ms", None),
    ("jobs", "health_p99_ms", "J2 GET /health with the streams open, p99", "ms", ("<", 50)),
    ("jobs", "app_cpu_share_streams", "J2 app CPU with the streams open", "ratio", None),
    (
        "jobs",
        "stream_events_during_health",
        "J2 events sent meanwhile (queue moves)",
        "count",
        None,
    ),
    ("jobs", "rss_before_streams_mb", "J2 app RSS before the streams", "MB", None),
    ("jobs", "rss_streams_mb", "J2 app RSS with the streams open (peak)", "MB", None),
    ("jobs", "threads_before_streams", "J2 app threads before the streams", "count", None),
    ("jobs", "threads_streams", "J2 app threads with the streams open", "count", None),
    ("jobs", "end_to_event_p50_ms", "J3 job end → final event at the client, p50", "ms", None),
    (
        "jobs",
        "end_to_event_p99_ms",
        "J3 job end → final event at the client, p99",
        "ms",
        ("<", 250),
    ),
    ("jobs", "end_to_event_no_final", "J3 streams ended without a final event", "count", ("==", 0)),
    ("jobs", "finals_behind_herd", "J3 finals read after >= 20 other events", "count", None),
    ("jobs", "end_to_event_herd_p50_ms", "J3 those finals, p50", "ms", None),
    ("jobs", "app_cpu_ms_per_event", "J3 app CPU per event sent (with the jobs' own)", "ms", None),
    ("jobs", "app_cpu_share_finishing", "J3 app CPU while the queue moves", "ratio", None),
    ("jobs_cross", "cross_end_to_event_p50_ms", "J3 across processes, p50", "ms", None),
    ("jobs_cross", "cross_end_to_event_p99_ms", "J3 across processes, p99", "ms", None),
    (
        "jobs_herd",
        "herd_cpu_ms_per_stream",
        "J4 one queue move: app CPU per stream woken",
        "ms",
        None,
    ),
    (
        "jobs_herd",
        "herd_last_event_p50_ms",
        "J4 one queue move: until the last stream's event",
        "ms",
        None,
    ),
    (
        "jobs_herd",
        "herd_canceled_final_p50_ms",
        "J4 the canceled head's final event, p50",
        "ms",
        None,
    ),
]

# Issue 17 point 13 (bench/page_weight.py): each figure before (the features
# off) and after; the goals are the after's.
TABLE += [
    ("page_weight", f"{when}_{key}", f"{label} ({when})", unit, goal if when == "after" else None)
    for key, label, unit, goal in PAGE_WEIGHT_ROWS
    for when in ("before", "after")
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repeats of each scenario (default 3)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of load in scenarios 1, 2, 4"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="1 run, short durations")
    parser.add_argument(
        "--app-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every app process (repeatable), for experiments",
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        help="serve wsgi.py from this checkout instead (to compare a change)",
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return parser.parse_args(argv)


def machine() -> dict:
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    memory = run("free", "-h").splitlines()
    return {
        "nproc": run("nproc") or str(os.cpu_count()),
        "memory": memory[1].split()[1] if len(memory) > 1 else "?",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def check(value, goal) -> str:
    if goal is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "?"
    op, target = goal
    met = {
        ">=": value >= target,
        "<": value < target,
        "==": value == target,
    }[op]
    return "met" if met else "MISSED"


def summarise(values: list):
    if all(isinstance(v, bool) for v in values):
        return all(values), all(values), all(values)
    numbers = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not numbers:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(numbers), min(numbers), max(numbers)


def fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def goal_text(goal) -> str:
    if goal is None:
        return ""
    op, target = goal
    return f"{op} {fmt(target)}"


def table(results: dict[str, list[dict]], markdown: bool) -> str:
    rows = []
    for scenario, key, label, unit, goal in TABLE:
        runs = [figures[key] for figures in results.get(scenario, []) if key in figures]
        if not runs:
            continue
        median, low, high = summarise(runs)
        rows.append(
            [label, unit, fmt(median), fmt(low), fmt(high), goal_text(goal), check(median, goal)]
        )
    header = ["figure", "unit", "median", "min", "max", "goal", ""]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    opts = Options(duration=args.duration)
    runs = args.runs
    if args.quick:
        runs = 1
        opts = Options(duration=8.0, short_duration=4.0, overhead_requests=15)
    selected = args.scenario or list(SCENARIOS)
    servers.EXTRA_ENV.update(dict(item.split("=", 1) for item in args.app_env))
    if args.app_root:
        servers.APP_ROOT = args.app_root.resolve()
    info = machine()
    print(
        f"machine: {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, "
        f"Python {info['python']}, {info['platform']}",
        flush=True,
    )
    results: dict[str, list[dict]] = {name: [] for name in selected}
    began = time.monotonic()
    for run in range(1, runs + 1):
        for name in selected:
            started = time.monotonic()
            load_before = os.getloadavg()[0]
            figures = SCENARIOS[name](opts)
            figures["load_average"] = round((load_before + os.getloadavg()[0]) / 2, 2)
            results[name].append(figures)
            print(
                f"run {run}/{runs} {name} ({time.monotonic() - started:.0f} s): "
                + json.dumps(figures),
                flush=True,
            )
    loads = [figures["load_average"] for runs_ in results.values() for figures in runs_]
    print(
        f"\n{runs} run(s) in {time.monotonic() - began:.0f} s; median, min, max of the runs; "
        f"1-minute load average during the scenarios {min(loads):.1f} to {max(loads):.1f} "
        f"on {info['nproc']} cores\n"
    )
    print(table(results, args.markdown))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
