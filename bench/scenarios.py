"""The benchmark scenarios of issue 7. Each starts its own fake Gemini server
and its own app (fresh data and log folders), measures, stops both, and
returns a flat dict of figures; ``run.py`` repeats them and prints the table.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from dataclasses import dataclass

from job_streams import jobs_cross, jobs_herd, jobs_saturated
from loadgen import Client, Sample, burst, percentile, run_closed_loop
from page_weight import page_weight
from servers import App, BareApp, FakeGemini, cpu_seconds, memory_kb, reset_peak_rss

GEN_PATH = "/v1/generate"
GEN_BODY = {"prompt": "a ripe banana on a blue table"}
PASSWORD = "bench-password-123"
# What the SDK sends, near enough for the fake to answer the same image.
FAKE_PATH = "/v1beta/models/gemini-3.1-flash-image:generateContent"
FAKE_BODY = {
    "contents": [{"role": "user", "parts": [{"text": GEN_BODY["prompt"]}]}],
    "generationConfig": {"candidateCount": 1, "responseModalities": ["TEXT", "IMAGE"]},
}


@dataclass
class Options:
    duration: float = 20.0  # scenarios 1-4
    short_duration: float = 8.0  # scenario 7, per server
    clients: int = 64
    overhead_requests: int = 30
    history_turns: int = 100


def gemini_env(fake: FakeGemini, **gate) -> dict[str, str]:
    env = {
        "GOOGLE_API_KEY": "bench-key",
        "GENAI_PROVIDER": "gemini",
        "GENAI_BASE_URL": fake.url,
        "GENAI_MAX_RETRIES": "0",
    }
    env.update({f"GENAI_{key.upper()}": str(value) for key, value in gate.items()})
    return env


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def latency_figures(prefix: str, samples: list[Sample]) -> dict[str, float]:
    values = [sample.latency for sample in samples]
    return {
        f"{prefix}_p50_ms": ms(percentile(values, 50)),
        f"{prefix}_p99_ms": ms(percentile(values, 99)),
        f"{prefix}_n": len(values),
    }


def sign_up(app: App, name: str = "bench") -> tuple[Client, str]:
    """A logged-in client (session cookie) and its CSRF token."""
    client = app.client()
    response = client.request("POST", "/auth/signup", body={"username": name, "password": PASSWORD})
    if response.status != 201:
        raise RuntimeError(f"signup failed: {response.status} {response.body[:200]!r}")
    return client, response.json()["csrf_token"]


def logged_in_factory(app: App, cookies: dict[str, str]):
    def make() -> Client:
        client = app.client()
        client.cookies = dict(cookies)
        return client

    return make


def generate_step(client: Client) -> tuple[Sample, float]:
    return client.timed("generate", "POST", GEN_PATH, body=GEN_BODY), 0.0


def probe_step(label: str, path: str, pause: float):
    def step(client: Client) -> tuple[Sample, float]:
        return client.timed(label, "GET", path), pause

    return step


def _busy_fraction(starts: list[float], latency: float, lo: float, hi: float) -> float:
    """Upstream call-seconds inside [lo, hi], each call lasting ``latency``:
    counting fractions of calls avoids the ±1 call error of a window edge."""
    return sum(max(0.0, min(hi, s + latency) - max(lo, s)) for s in starts)


# ------------------------------------------------------------------ 1 + 3


def efficiency(opts: Options) -> dict:
    """Scenario 1 (upstream efficiency) with scenario 3 (responsiveness)
    measured while it runs."""
    latency, slots = 0.5, 4
    fake = FakeGemini(latency=latency)
    app = App(
        env=gemini_env(
            fake,
            max_concurrent=slots,
            min_interval_ms=0,
            max_queue=opts.clients,
            queue_timeout_s=120,
        )
    )
    try:
        app.start()
        user, _ = sign_up(app)
        cookies = dict(user.cookies)
        user.close()
        warm = app.client()
        assert warm.request("POST", GEN_PATH, body=GEN_BODY).status == 200
        warm.close()
        fake.reset()
        cpu_before = cpu_seconds(app.pid)
        result = run_closed_loop(
            [
                (opts.clients, app.client, generate_step),
                (1, app.client, probe_step("health", "/health", 0.02)),
                (1, logged_in_factory(app, cookies), probe_step("convs", "/conversations", 0.02)),
            ],
            opts.duration,
        )
        cpu = cpu_seconds(app.pid) - cpu_before
        stats = fake.stats()
    finally:
        app.stop()
        fake.stop()

    warmup = min(2.0, opts.duration / 4)
    lo, hi = result.started + warmup, result.deadline
    busy = _busy_fraction(stats["start_times"], latency, lo, hi)
    utilisation = busy / (slots * (hi - lo))
    generations = result.by_label("generate")
    ok = [s for s in generations if s.status == 200]
    done_in_window = sum(1 for s in ok if lo <= s.end <= hi)
    in_run = lambda label: [  # noqa: E731
        s for s in result.by_label(label) if result.started <= s.start <= result.deadline
    ]
    health, convs = in_run("health"), in_run("convs")
    figures = {
        "efficiency": round(utilisation, 4),
        "gen_per_s": round(utilisation * slots / latency, 3),
        "gen_per_s_client": round(done_in_window / (hi - lo), 3),
        "gen_ok": len(ok),
        "gen_failed": len(generations) - len(ok),
        "max_in_flight": stats["max_in_flight"],
        "app_cpu_share": round(cpu / (result.finished - result.started), 3),
        "health_failed": sum(1 for s in health if s.status != 200),
        "convs_failed": sum(1 for s in convs if s.status != 200),
    }
    figures.update(latency_figures("health", health))
    figures.update(latency_figures("convs", convs))
    return figures


# ------------------------------------------------------------------ 2


def pacing(opts: Options) -> dict:
    latency, slots, interval = 0.5, 4, 0.3
    clients = 16
    fake = FakeGemini(latency=latency)
    app = App(
        env=gemini_env(
            fake,
            max_concurrent=slots,
            min_interval_ms=round(interval * 1000),
            max_queue=clients,
            queue_timeout_s=120,
        )
    )
    try:
        app.start()
        fake.reset()
        result = run_closed_loop([(clients, app.client, generate_step)], opts.duration)
        stats = fake.stats()
    finally:
        app.stop()
        fake.stop()
    starts = sorted(stats["start_times"])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    warmup = min(2.0, opts.duration / 4)
    window = [s for s in starts if result.started + warmup <= s <= result.deadline]
    rate = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else 0.0
    target = min(slots / latency, 1 / interval)
    generations = result.by_label("generate")
    return {
        "pacing": round(rate / target, 4),
        "starts_per_s": round(rate, 3),
        "min_gap_ms": ms(min(gaps)) if gaps else float("nan"),
        "gap_p1_ms": ms(percentile(gaps, 1)),
        "gap_p50_ms": ms(percentile(gaps, 50)),
        # Timer resolution makes half the gaps a few µs short of 300 ms;
        # count those short by more than 1 ms and by more than 10 ms.
        "gaps_short_1ms": sum(1 for gap in gaps if gap < interval - 0.001),
        "gaps_short_10ms": sum(1 for gap in gaps if gap < interval - 0.010),
        "gaps": len(gaps),
        "gen_ok": sum(1 for s in generations if s.status == 200),
        "gen_failed": sum(1 for s in generations if s.status != 200),
    }


# ------------------------------------------------------------------ 4


def shedding(opts: Options, flood_think_s: float = 0.1, max_wait_s: float = 5.0) -> dict:
    """64 clients against 4 slots and 4 queue places, twice on one app.

    First the clients behave: a refused one waits what Retry-After says
    (at most ``max_wait_s``, plus up to half again) before trying again; the
    goal is judged here. All 64 start at once, so the first 56 refusals
    arrive together.
    Then a flood: a refused client tries again after ``flood_think_s``,
    which runs the process out of CPU; its figures show the ceiling of the
    refusal path and the CPU one refusal costs."""
    latency, slots, queue = 0.5, 4, 4
    fake = FakeGemini(latency=latency)
    app = App(
        env=gemini_env(
            fake, max_concurrent=slots, min_interval_ms=0, max_queue=queue, queue_timeout_s=30
        )
    )

    def polite(client: Client) -> tuple[Sample, float]:
        sample = client.timed("generate", "POST", GEN_PATH, body=GEN_BODY)
        if sample.status != 503:
            return sample, 0.0
        try:
            wait = float(sample.retry_after or 1)
        except ValueError:
            wait = 1.0
        # At least what was asked, spread out so the clients drift apart.
        return sample, min(max_wait_s, wait) * random.uniform(1.0, 1.5)

    def flood(client: Client) -> tuple[Sample, float]:
        sample = client.timed("generate", "POST", GEN_PATH, body=GEN_BODY)
        return sample, flood_think_s if sample.status == 503 else 0.0

    try:
        app.start()
        polite_result = run_closed_loop([(opts.clients, app.client, polite)], opts.duration)
        cpu_before = cpu_seconds(app.pid)
        flood_result = run_closed_loop([(opts.clients, app.client, flood)], opts.duration / 2)
        cpu = cpu_seconds(app.pid) - cpu_before
    finally:
        app.stop()
        fake.stop()
    figures = _shedding_figures("", polite_result)
    figures.update(_shedding_figures("flood_", flood_result))
    flood_requests = len(flood_result.samples)
    figures["flood_app_cpu_ms_per_request"] = ms(cpu / flood_requests) if flood_requests else 0.0
    return figures


def _shedding_figures(prefix: str, result) -> dict:
    samples = [s for s in result.samples if s.start <= result.deadline]
    shed = [s for s in samples if s.status == 503]
    figures = {
        "shed_share": round(len(shed) / len(samples), 4) if samples else 0.0,
        "shed_with_retry_after": round(sum(1 for s in shed if s.retry_after) / len(shed), 4)
        if shed
        else 0.0,
        "requests_per_s": round(len(samples) / (result.deadline - result.started), 1),
        "ok": sum(1 for s in samples if s.status == 200),
        "other_status": sum(1 for s in samples if s.status not in (200, 503)),
    }
    figures.update(latency_figures("shed", shed))
    return {prefix + key: value for key, value in figures.items()}


# ------------------------------------------------------------------ 5


def overhead(opts: Options, image_kb: int = 1024, concurrent: int = 16) -> dict:
    latency = 0.2
    fake = FakeGemini(latency=latency, image_kb=image_kb)
    app = App(
        env=gemini_env(
            fake,
            max_concurrent=concurrent,
            min_interval_ms=0,
            max_queue=concurrent,
            queue_timeout_s=60,
        )
    )
    try:
        app.start()
        rss_start = memory_kb(app.pid)["VmRSS"]
        direct = Client("127.0.0.1", fake.port)
        client = app.client()
        for _ in range(3):  # warm both (imports, caches, connection pool)
            assert client.request("POST", GEN_PATH, body=GEN_BODY).status == 200
            direct.request("POST", FAKE_PATH, body=FAKE_BODY)
        ours, baseline = [], []
        cpu = 0.0
        for _ in range(opts.overhead_requests):
            before = cpu_seconds(app.pid)
            ours.append(client.timed("generate", "POST", GEN_PATH, body=GEN_BODY))
            cpu += cpu_seconds(app.pid) - before
            baseline.append(direct.timed("fake", "POST", FAKE_PATH, body=FAKE_BODY))
        client.close()
        direct.close()
        assert all(s.status == 200 for s in ours), {s.status for s in ours}
        time.sleep(0.5)
        idle = memory_kb(app.pid)["VmRSS"]
        peak_reset = reset_peak_rss(app.pid)
        rounds = 3
        burst_samples = []
        for _ in range(rounds):
            burst_samples += burst(
                app.client,
                lambda c: c.timed("generate", "POST", GEN_PATH, body=GEN_BODY),
                concurrent,
            )
        peak = memory_kb(app.pid)["VmHWM"]
        after = memory_kb(app.pid)["VmRSS"]
        stats = fake.stats()
    finally:
        app.stop()
        fake.stop()
    extra = [s.latency - latency for s in ours]
    app_only = [a.latency - b.latency for a, b in zip(ours, baseline, strict=True)]
    return {
        "overhead_p50_ms": ms(percentile(extra, 50)),
        "overhead_p99_ms": ms(percentile(extra, 99)),
        "app_only_p50_ms": ms(statistics.median(app_only)),
        "app_cpu_ms_per_request": ms(cpu / len(ours)),
        "fake_direct_minus_L_p50_ms": ms(percentile([b.latency - latency for b in baseline], 50)),
        "response_bytes": ours[0].nbytes,
        "rss_start_mb": round(rss_start / 1024, 1),
        "rss_idle_mb": round(idle / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "rss_peak_above_idle_mb": round((peak - idle) / 1024, 1) if peak_reset else float("nan"),
        "burst_ok": sum(1 for s in burst_samples if s.status == 200),
        "burst_max_in_flight": stats["max_in_flight"],
    }


# ------------------------------------------------------------------ 6


def history(opts: Options, image_kb: int = 256, repeats: int = 100) -> dict:
    fake = FakeGemini(latency=0.0, image_kb=image_kb)
    app = App(env=gemini_env(fake, max_concurrent=4, min_interval_ms=0, max_queue=16))
    try:
        app.start()
        client, csrf = sign_up(app)
        client.headers["X-CSRF-Token"] = csrf
        conversation = client.request("POST", "/conversations", body={"title": "bench"}).json()
        conv_id = conversation["id"]
        started = time.monotonic()
        for turn in range(opts.history_turns):
            body = dict(GEN_BODY, conv_id=conv_id, seed=turn)
            response = client.request("POST", GEN_PATH, body=body)
            if response.status != 200:
                raise RuntimeError(f"turn {turn}: {response.status} {response.body[:200]!r}")
        build_s = time.monotonic() - started
        page_path = f"/conversations/{conv_id}/messages"
        first = client.request("GET", page_path)
        page = first.json()
        image_id = page["items"][-1]["images"][0]["id"]
        image_path = f"/images/{image_id}"
        etag = client.request("GET", image_path).headers["ETag"]
        pages = [client.timed("page", "GET", page_path) for _ in range(repeats)]
        full = [client.timed("full", "GET", page_path + "?limit=200") for _ in range(repeats // 4)]
        images = [client.timed("image", "GET", image_path) for _ in range(repeats)]
        revalidated = [
            client.timed("304", "GET", image_path, headers={"If-None-Match": etag})
            for _ in range(repeats)
        ]
        client.close()
    finally:
        app.stop()
        fake.stop()
    figures = {
        "turns": opts.history_turns,
        "build_s": round(build_s, 1),
        "page_items": len(page["items"]),
        "page_bytes": len(first.body),
        "full_items": 2 * opts.history_turns,
        "full_bytes": full[0].nbytes,
        "image_bytes": images[0].nbytes,
        "revalidate_all_304": all(s.status == 304 for s in revalidated),
        "revalidate_bytes": revalidated[0].nbytes,
    }
    figures.update(latency_figures("page", pages))
    figures.update(latency_figures("full", full))
    figures.update(latency_figures("image", images))
    figures.update(latency_figures("revalidate", revalidated))
    return figures


# ------------------------------------------------------------------ 7


def _throughput(make_client, path: str, clients: int, duration: float, pid: int) -> dict:
    """Requests per second (and the server's CPU per request) with
    ``clients`` keep-alive connections asking for ``path`` back to back."""
    cpu_before = cpu_seconds(pid)
    result = run_closed_loop(
        [(clients, make_client, probe_step("req", path, 0.0))], duration, start_gate=0.2
    )
    cpu = cpu_seconds(pid) - cpu_before
    done = [s for s in result.samples if s.status == 200 and s.end <= result.deadline]
    failed = [s for s in result.samples if s.status != 200]
    return {
        "rps": round(len(done) / (result.deadline - result.started), 1),
        "cpu_us": round(cpu / max(1, len(result.samples)) * 1e6),
        "p50_ms": ms(percentile([s.latency for s in done], 50)),
        "failed": len(failed),
    }


def ceiling(opts: Options, clients: int = 8) -> dict:
    """GET /health back to back: a bare waitress app answering a constant,
    ours with the access log (LOG_LEVEL=INFO, the default) and without
    (WARNING); and a logged-in GET /conversations. Same thread count, same
    load generator. The server's CPU per request is the steadier figure on a
    shared machine (the load generator takes a core of its own)."""
    duration = opts.short_duration
    fake = FakeGemini()
    figures: dict = {}

    def record(name: str, measured: dict) -> None:
        figures.update({f"{name}_{key}": value for key, value in measured.items()})

    try:
        for suffix, level in (("", "INFO"), ("_quiet", "WARNING")):
            app = App(env=dict(gemini_env(fake), LOG_LEVEL=level))
            app.start()
            try:
                if level == "INFO":
                    threads = _thread_count(app)
                record(
                    "health" + suffix,
                    _throughput(app.client, "/health", clients, duration, app.pid),
                )
                user, _ = sign_up(app)
                cookies = dict(user.cookies)
                user.close()
                record(
                    "convs" + suffix,
                    _throughput(
                        logged_in_factory(app, cookies),
                        "/conversations",
                        clients,
                        duration,
                        app.pid,
                    ),
                )
            finally:
                app.stop()
        with BareApp(threads) as bare:
            record("bare", _throughput(bare.client, "/health", clients, duration, bare.process.pid))
    finally:
        fake.stop()
    figures["health_vs_bare"] = round(figures["health_rps"] / figures["bare_rps"], 4)
    figures["health_quiet_vs_bare"] = round(figures["health_quiet_rps"] / figures["bare_rps"], 4)
    figures["access_log_cost"] = round(1 - figures["health_rps"] / figures["health_quiet_rps"], 4)
    figures["access_log_cpu_us"] = figures["health_cpu_us"] - figures["health_quiet_cpu_us"]
    figures["threads"] = threads
    return figures


def _thread_count(app: App) -> int:
    text = app.stderr_path.read_text()
    marker = " threads, provider"
    line = next(line for line in text.splitlines() if marker in line)
    return int(line.split(" with ")[1].split(marker)[0])


SCENARIOS = {
    "efficiency": efficiency,  # 1 and 3
    "pacing": pacing,  # 2
    "shedding": shedding,  # 4
    "overhead": overhead,  # 5
    "history": history,  # 6
    "ceiling": ceiling,  # 7
    "jobs": jobs_saturated,  # issue 13: J1, J2, J3
    "jobs_cross": jobs_cross,  # issue 13: J3 across two processes
    "jobs_herd": jobs_herd,  # issue 13: J4, the cost of one queue move
    "page_weight": page_weight,  # issue 17: W1-W3, bytes on the wire, before and after
}
