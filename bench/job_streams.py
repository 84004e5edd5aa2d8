"""Benchmarks of issue 13: background jobs while the upstream is saturated.

    .venv/bin/python bench/job_streams.py               # 3 runs, the table (~10 min)
    .venv/bin/python bench/job_streams.py --runs 1 --streams 50 --scenario jobs
    .venv/bin/python bench/job_streams.py --app-root /tmp/other-checkout   # try a change
    .venv/bin/python bench/job_streams.py --dump /tmp/jobs-run   # every event + app.log

``make bench`` runs the same scenarios through bench/run.py (rows J1-J4).

Scenario ``jobs`` (one app, as ``python wsgi.py`` serves it, SQLite in a
fresh DATA_DIR; the fake Gemini answers after 5 s; GENAI_MAX_CONCURRENT=2,
the default gate queue of 8), in three phases:

1. Twelve synchronous callers keep the gate full (2 calls in flight, 8
   waiting: a sync request gets 503) while 4 logged-in clients submit 200
   jobs with ``Prefer: respond-async``: latency of the 202s.
2. One event stream per job (``GET /v1/jobs/{id}/events``, each on its own
   connection, read by one selector thread), the sync callers still on:
   ``GET /health`` every 20 ms, and the server's RSS and thread count
   (``/proc/PID/status``) with the streams open against before.
3. The sync callers stop and the fake answers after 1 s, so the workers run
   the queue (every start moves the position of every queued job: 200
   streams woken). Each final event read at the client is compared with the
   job's ``finished_at`` (the server's clock; same machine, same clock); a
   stream that ended is replaced by a new job and its stream, so 200 stay open.

Scenario ``jobs_cross``: two app processes on one database, one running the
workers, the other (JOB_WORKERS=-1) serving 20 event streams: the end-to-event
delay across processes, bounded by the bus's JOB_POLL_S tick.

Scenario ``jobs_herd``: what one queue move costs with 200 streams open (no
workers; the head job canceled 10 times): the app's CPU per stream woken, the
time until the last stream has its event, and the canceled job's final event.

Limits raised for one loopback user: JOB_MAX_QUEUED, JOB_MAX_ACTIVE_PER_CALLER,
JOB_STREAMS_PER_CALLER (and GENERATION_RATE_LIMIT, as in every bench app).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import queue
import selectors
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from loadgen import Client, Sample, percentile, run_closed_loop
from servers import HOST, App, FakeGemini, cpu_seconds

GEN_PATH = "/v1/generate"
PASSWORD = "bench-password-123"
ASYNC = {"Prefer": "respond-async"}
FINAL = ("succeeded", "failed", "canceled")

SLOTS, GATE_QUEUE = 2, 8
SATURATED_LATENCY_S = 5.0
FINISH_LATENCY_S = 1.0
# Other streams' events read between a job's end and its final event for
# the final to count as caught behind a herd of position updates.
HERD = 20


class Settings:
    """What a run uses; run.py passes its Options (duration), the rest are
    this script's own."""

    def __init__(self, opts=None, **overrides) -> None:
        self.duration = float(getattr(opts, "duration", 20.0))
        self.submissions = 200
        self.submitters = 4
        self.streams = 200
        self.finishes = 100
        self.finish_timeout = 120.0
        self.cross_streams = 20
        self.cross_finishes = 30
        self.herd_moves = 10
        self.dump: Path | None = None  # a folder for every event, sample and the app's log
        quick = getattr(opts, "overhead_requests", 30) < 30  # run.py --quick
        if quick:
            self.duration = min(self.duration, 8.0)
            self.finishes = 30
            self.cross_finishes = 15
        for key, value in overrides.items():
            if value is not None:
                setattr(self, key, value)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def pct_figures(prefix: str, values: list[float]) -> dict:
    return {
        f"{prefix}_p50_ms": ms(percentile(values, 50)),
        f"{prefix}_p99_ms": ms(percentile(values, 99)),
        f"{prefix}_max_ms": ms(max(values)) if values else float("nan"),
        f"{prefix}_n": len(values),
    }


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (kB) and Threads of a process."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "Threads"):
            values[name] = int(rest.split()[0])
    return values


def app_env(fake: FakeGemini, **extra) -> dict[str, str]:
    env = {
        "GOOGLE_API_KEY": "bench-key",
        "GENAI_PROVIDER": "gemini",
        "GENAI_BASE_URL": fake.url,
        "GENAI_MAX_RETRIES": "0",
        "GENAI_MAX_CONCURRENT": str(SLOTS),
        "GENAI_MAX_QUEUE": str(GATE_QUEUE),
        "JOB_MAX_QUEUED": "100000",
        "JOB_MAX_ACTIVE_PER_CALLER": "100000",
        "JOB_STREAMS_PER_CALLER": "100000",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def sign_up(app: App, name: str) -> tuple[dict[str, str], str]:
    client = app.client()
    response = client.request("POST", "/auth/signup", body={"username": name, "password": PASSWORD})
    client.close()
    if response.status != 201:
        raise RuntimeError(f"signup failed: {response.status} {response.body[:200]!r}")
    return dict(client.cookies), response.json()["csrf_token"]


def user_client(app: App, cookies: dict[str, str], csrf: str) -> Client:
    client = app.client()
    client.cookies = dict(cookies)
    client.headers["X-CSRF-Token"] = csrf
    return client


def submit(client: Client, prompt: str) -> tuple[Sample, str | None]:
    start = time.monotonic()
    try:
        response = client.request("POST", GEN_PATH, body={"prompt": prompt}, headers=ASYNC)
    except OSError as exc:
        client.close()
        return Sample("submit", start, time.monotonic(), 0, error=type(exc).__name__), None
    end = time.monotonic()
    job_id = response.json()["id"] if response.status == 202 else None
    return Sample("submit", start, end, response.status, len(response.body)), job_id


# ------------------------------------------------------------------ streams


class EventStream:
    """One ``GET /v1/jobs/{id}/events`` on its own socket: the response
    head, chunked transfer decoding, and Server-Sent Events parsing, fed
    whatever bytes arrive."""

    def __init__(self, port: int, job_id: str, cookies: dict[str, str]) -> None:
        self.job_id = job_id
        self.status = 0
        self.events: list[tuple[str, dict, float]] = []  # (event, data, time.time())
        self.heartbeats = 0
        self.ended = False
        self._head = b""
        self._raw = b""
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._chunk_tail = 0  # its CRLF still to skip
        self._chunked = False
        self._text = ""
        sock = socket.create_connection((HOST, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        request = (
            f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Accept: text/event-stream\r\nCache-Control: no-cache\r\nCookie: {cookie}\r\n\r\n"
        )
        sock.sendall(request.encode())
        sock.setblocking(False)
        self.sock = sock

    @property
    def final(self) -> tuple[str, dict, float] | None:
        for event in self.events:
            if event[0] in FINAL:
                return event
        return None

    def feed(self, data: bytes, now: float) -> None:
        if not data:
            self.ended = True
            return
        if not self.status:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, data = self._head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            self._chunked = any(
                line.lower().startswith("transfer-encoding:") and "chunked" in line.lower()
                for line in lines[1:]
            )
            if self.status != 200:
                self.ended = True
                return
        self._raw += data
        body = self._dechunk() if self._chunked else self._take_all()
        if body:
            self._text += body.decode()
            self._parse(now)

    def _take_all(self) -> bytes:
        body, self._raw = self._raw, b""
        return body

    def _dechunk(self) -> bytes:
        out = bytearray()
        while self._raw:
            if self._chunk_left:
                piece = self._raw[: self._chunk_left]
                out += piece
                self._raw = self._raw[len(piece) :]
                self._chunk_left -= len(piece)
                if not self._chunk_left:
                    self._chunk_tail = 2
                continue
            if self._chunk_tail:
                skip = min(self._chunk_tail, len(self._raw))
                self._raw = self._raw[skip:]
                self._chunk_tail -= skip
                continue
            line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                break
            size = int(line.split(b";")[0], 16)
            self._raw = rest
            if size == 0:
                self.ended = True
                break
            self._chunk_left = size
        return bytes(out)

    def _parse(self, now: float) -> None:
        while "\n\n" in self._text:
            block, _, self._text = self._text.partition("\n\n")
            name, data = "message", []
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.heartbeats += 1
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
            if data:
                self.events.append((name, json.loads("\n".join(data)), now))

    def close(self) -> None:
        self.sock.close()


class StreamReader:
    """Reads every open stream in one thread (a selector), timestamping
    each read with ``time.time()``; ``on_end`` is called (from this thread)
    with each stream that ended, after its last bytes were parsed."""

    def __init__(self, on_end=None) -> None:
        self.on_end = on_end or (lambda stream: None)
        self._selector = selectors.DefaultSelector()
        self._pending: list[EventStream] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.open: set[EventStream] = set()
        self.all: list[EventStream] = []
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)
        self._thread.start()

    def add(self, stream: EventStream) -> None:
        with self._lock:
            self._pending.append(stream)
            self.all.append(stream)

    def open_count(self) -> int:
        with self._lock:
            return len(self.open) + len(self._pending)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for stream in list(self.open) + self._pending:
            stream.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending, self._pending = self._pending, []
                for stream in pending:
                    self._selector.register(stream.sock, selectors.EVENT_READ, stream)
                    self.open.add(stream)
            for key, _mask in self._selector.select(timeout=0.05):
                stream: EventStream = key.data
                try:
                    data = stream.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                stream.feed(data, time.time())
                if stream.ended:
                    self._selector.unregister(stream.sock)
                    stream.close()
                    with self._lock:
                        self.open.discard(stream)
                    self.on_end(stream)


def end_to_event_s(stream: EventStream) -> float | None:
    final = stream.final
    if final is None or not final[1].get("finished_at"):
        return None
    finished = datetime.fromisoformat(final[1]["finished_at"]).timestamp()
    return final[2] - finished


# ------------------------------------------------------------------ sync load


class SyncLoad:
    """Synchronous callers that keep the gate full: each posts /v1/generate
    again as soon as it has its answer, and waits 1 s after a 503."""

    def __init__(self, app: App, callers: int) -> None:
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(app, n), daemon=True) for n in range(callers)
        ]
        for thread in self._threads:
            thread.start()

    def _loop(self, app: App, number: int) -> None:
        client = app.client(timeout=120)
        try:
            while not self._stop.is_set():
                sample = client.timed("sync", "POST", GEN_PATH, body={"prompt": f"sync {number}"})
                self.samples.append(sample)
                if sample.status != 200:
                    self._stop.wait(1.0)
        finally:
            client.close()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=120)


# ------------------------------------------------------------------ scenarios


def _submit_all(app, cookies, csrf, count, clients) -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    ids: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def one(number: int) -> None:
        client = user_client(app, cookies, csrf)
        local, local_ids = [], []
        try:
            barrier.wait()
            for index in range(number, count, clients):
                sample, job_id = submit(client, f"a banana, job {index}")
                local.append(sample)
                if job_id:
                    local_ids.append(job_id)
        finally:
            client.close()
            with lock:
                samples.extend(local)
                ids.extend(local_ids)

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return samples, ids


def _wait(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def jobs_saturated(opts=None, settings: Settings | None = None) -> dict:
    s = settings or Settings(opts)
    fake = FakeGemini(latency=0.0)
    app = App(env=app_env(fake))
    figures: dict = {}
    reader = None
    sync = None
    try:
        app.start()
        cookies, csrf = sign_up(app, "jobs-bench")
        # Warm both paths (imports, first queries) before anything is timed.
        warm = user_client(app, cookies, csrf)
        assert warm.request("POST", GEN_PATH, body={"prompt": "warm"}).status == 200
        _sample, warm_id = submit(warm, "warm job")
        assert warm_id, "the warm-up job was not accepted"
        assert _wait(lambda: _job_status(warm, warm_id) in FINAL, 30)
        warm.close()
        fake.configure(latency=SATURATED_LATENCY_S)
        fake.reset()

        # -- 1: 202s while the gate is full of synchronous callers
        sync = SyncLoad(app, SLOTS + GATE_QUEUE + 2)
        # Full once 2 calls are in flight at the fake and sync callers are refused.
        _wait(lambda: fake.stats()["in_flight"] >= SLOTS, 30)
        time.sleep(1.0)  # and the 8 others are waiting in the gate's queue
        before = proc_status(app.pid)
        full_before = _sync_refused(app)
        cpu_before = cpu_seconds(app.pid)
        samples, ids = _submit_all(app, cookies, csrf, s.submissions, s.submitters)
        figures["submit_cpu_ms"] = ms((cpu_seconds(app.pid) - cpu_before) / len(samples))
        full_after = _sync_refused(app)
        figures.update(pct_figures("submit", [x.latency for x in samples if x.status == 202]))
        figures["submit_not_202"] = sum(1 for x in samples if x.status != 202)
        figures["gate_full"] = full_before and full_after

        # -- 2: /health without streams (the control), then one event stream
        # per job and /health again
        cpu_before = cpu_seconds(app.pid)
        probe = run_closed_loop([(1, app.client, _probe("/health", 0.02))], s.duration)
        base = [x for x in probe.samples if x.start <= probe.deadline]
        figures.update(pct_figures("health_base", [x.latency for x in base]))
        figures["app_cpu_share_base"] = round(
            (cpu_seconds(app.pid) - cpu_before) / (probe.finished - probe.started), 3
        )
        reader = StreamReader()
        for job_id in ids[: s.streams]:
            reader.add(EventStream(app.port, job_id, cookies))
        opened = _wait(lambda: sum(1 for x in reader.all if x.events) >= len(reader.all), 60)
        figures["streams_opened"] = sum(1 for x in reader.all if x.status == 200)
        figures["streams_refused"] = sum(1 for x in reader.all if x.status not in (0, 200))
        figures["streams_all_first_event"] = opened
        events_before = sum(len(x.events) for x in reader.all)
        cpu_before = cpu_seconds(app.pid)
        peak = {"VmRSS": 0, "Threads": 0}
        stop_sampling = threading.Event()

        def sample_proc() -> None:
            while not stop_sampling.wait(0.25):
                for key, value in proc_status(app.pid).items():
                    peak[key] = max(peak[key], value)

        sampler = threading.Thread(target=sample_proc, daemon=True)
        sampler.start()
        sync_at = len(sync.samples)
        probe = run_closed_loop([(1, app.client, _probe("/health", 0.02))], s.duration)
        stop_sampling.set()
        sampler.join()
        health = [x for x in probe.samples if x.start <= probe.deadline]
        figures.update(pct_figures("health", [x.latency for x in health]))
        figures["health_failed"] = sum(1 for x in health if x.status != 200)
        figures["app_cpu_share_streams"] = round(
            (cpu_seconds(app.pid) - cpu_before) / (probe.finished - probe.started), 3
        )
        figures["streams_open_during_health"] = reader.open_count()
        figures["stream_events_during_health"] = (
            sum(len(x.events) for x in reader.all) - events_before
        )
        figures["sync_503_during_health"] = sum(
            1 for x in sync.samples[sync_at:] if x.status == 503
        )
        figures["rss_before_streams_mb"] = round(before["VmRSS"] / 1024, 1)
        figures["rss_streams_mb"] = round(peak["VmRSS"] / 1024, 1)
        figures["threads_before_streams"] = before["Threads"]
        figures["threads_streams"] = peak["Threads"]

        # -- 3: the queue moves; each final event against finished_at
        sync.stop()
        fake.configure(latency=FINISH_LATENCY_S)
        cpu_before, started = cpu_seconds(app.pid), time.monotonic()
        figures.update(_finish_phase(app, reader, cookies, csrf, s))
        figures["app_cpu_share_finishing"] = round(
            (cpu_seconds(app.pid) - cpu_before) / (time.monotonic() - started), 3
        )
        if s.dump:
            _dump(s.dump, app, reader, samples, health)
    finally:
        if reader is not None:
            reader.stop()
        if sync is not None:
            sync.stop()
        app.stop()
        fake.stop()
        if sync is not None:
            sync.join()
    return figures


def _dump(folder: Path, app: App, reader: StreamReader, submits, health) -> None:
    """Everything one run saw, for looking into a missed goal afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    streams = [
        {
            "job_id": x.job_id,
            "status": x.status,
            "events": [
                {
                    "event": name,
                    "read": read,
                    "position": data.get("position"),
                    "status": data.get("status"),
                    "started_at": data.get("started_at"),
                    "finished_at": data.get("finished_at"),
                }
                for name, data, read in x.events
            ],
        }
        for x in reader.all
    ]
    # The load generator's clock is time.monotonic(); give its offset to time.time().
    offset = time.time() - time.monotonic()
    data = {
        "clock_offset": offset,
        "streams": streams,
        "submits": [(x.start, x.end, x.status) for x in submits],
        "health": [(x.start, x.end, x.status) for x in health],
    }
    (folder / "run.json").write_text(json.dumps(data))
    log = app.workdir / "logs" / "app.log"
    if log.exists():
        (folder / "app.log").write_bytes(log.read_bytes())


def _sync_refused(app: App) -> bool:
    """One more synchronous request is refused 503 at once: the gate is full."""
    client = app.client(timeout=60)
    try:
        return client.request("POST", GEN_PATH, body={"prompt": "one more"}).status == 503
    finally:
        client.close()


def _job_status(client: Client, job_id: str) -> str | None:
    response = client.request("GET", f"/v1/jobs/{job_id}")
    return response.json().get("status") if response.status == 200 else None


def _probe(path: str, pause: float):
    def step(client: Client) -> tuple[Sample, float]:
        return client.timed("probe", "GET", path), pause

    return step


def _finish_phase(app: App, reader: StreamReader, cookies, csrf, s: Settings) -> dict:
    """Wait for `s.finishes` final events, replacing each ended stream with a
    new job and its stream (from another thread, so reading is not held up)."""
    ended: queue.Queue = queue.Queue()
    reader.on_end = ended.put
    delays: list[float] = []
    finals: list[tuple[float, float]] = []  # (finished_at, read), time.time()
    no_final = 0
    open_counts: list[int] = []
    client = user_client(app, cookies, csrf)
    started, started_wall = time.monotonic(), time.time()
    events_before = _events_read(reader)
    cpu_before = cpu_seconds(app.pid)
    replaced = 0
    try:
        while len(delays) < s.finishes and time.monotonic() - started < s.finish_timeout:
            try:
                stream = ended.get(timeout=1.0)
            except queue.Empty:
                continue
            open_counts.append(reader.open_count())
            delay = end_to_event_s(stream)
            if delay is None:
                no_final += 1
            else:
                delays.append(delay)
                finals.append((stream.final[2] - delay, stream.final[2]))
            _sample, job_id = submit(client, f"a banana, replacement {replaced}")
            replaced += 1
            if job_id:
                reader.add(EventStream(app.port, job_id, cookies))
    finally:
        client.close()
    elapsed = time.monotonic() - started
    events = _events_read(reader) - events_before
    figures = pct_figures("end_to_event", delays)
    figures["end_to_event_no_final"] = no_final
    figures["streams_open_min_finishing"] = min(open_counts) if open_counts else 0
    figures["finish_phase_s"] = round(elapsed, 1)
    figures["events_per_s_finishing"] = round(events / elapsed, 1)
    figures["app_cpu_ms_per_event"] = ms((cpu_seconds(app.pid) - cpu_before) / max(1, events))
    figures.update(_herd_figures(reader, finals, started_wall))
    return figures


def _events_read(reader: StreamReader) -> int:
    return sum(len(stream.events) for stream in list(reader.all))


def _herd_figures(reader: StreamReader, finals, since: float) -> dict:
    """How many other events the client read between each job's end and its
    final event: a queue move wakes every queued job's stream at once, and
    a final event caught behind that herd waits for it."""
    reads = sorted(
        read
        for stream in list(reader.all)
        for _name, _data, read in list(stream.events)
        if read >= since - 5
    )
    clear, herd = [], []
    for finished, read in finals:
        between = bisect.bisect_left(reads, read) - bisect.bisect_right(reads, finished)
        (herd if between >= HERD else clear).append(read - finished)
    return {
        "finals_behind_herd": len(herd),
        "end_to_event_clear_p50_ms": ms(percentile(clear, 50)),
        "end_to_event_herd_p50_ms": ms(percentile(herd, 50)),
    }


def jobs_cross(opts=None, settings: Settings | None = None) -> dict:
    """Workers in process A, event streams served by process B (same SQLite
    file): B learns of a job's change only at its bus's next JOB_POLL_S tick."""
    s = settings or Settings(opts)
    fake = FakeGemini(latency=FINISH_LATENCY_S)
    worker_app = App(env=app_env(fake, GENAI_MIN_INTERVAL_MS=0))
    stream_app = None
    reader = None
    try:
        worker_app.start()
        shared = str(worker_app.workdir / "data")
        stream_app = App(env=app_env(fake, JOB_WORKERS=-1, DATA_DIR=shared)).start()
        cookies, csrf = sign_up(worker_app, "jobs-cross")
        client = user_client(worker_app, cookies, csrf)
        ended: queue.Queue = queue.Queue()
        reader = StreamReader(on_end=ended.put)
        ids = [submit(client, f"cross {n}")[1] for n in range(s.cross_streams)]
        for job_id in ids:
            reader.add(EventStream(stream_app.port, job_id, cookies))
        delays, no_final, replaced = [], 0, 0
        started = time.monotonic()
        while len(delays) < s.cross_finishes and time.monotonic() - started < s.finish_timeout:
            try:
                stream = ended.get(timeout=1.0)
            except queue.Empty:
                continue
            delay = end_to_event_s(stream)
            if delay is None:
                no_final += 1
            else:
                delays.append(delay)
            _sample, job_id = submit(client, f"cross replacement {replaced}")
            replaced += 1
            if job_id:
                reader.add(EventStream(stream_app.port, job_id, cookies))
        client.close()
    finally:
        if reader is not None:
            reader.stop()
        if stream_app is not None:
            stream_app.stop()
        worker_app.stop()
        fake.stop()
    figures = pct_figures("cross_end_to_event", delays)
    figures["cross_no_final"] = no_final
    figures["cross_poll_s"] = 0.25
    return figures


def jobs_herd(opts=None, settings: Settings | None = None) -> dict:
    """What one queue move costs with every queued job's stream open: no
    workers (JOB_WORKERS=-1), 200 queued jobs, one stream each; then the job
    at the head is canceled 10 times, a second apart. Each cancel moves every
    other job up one place, so every stream is sent a `queued` event, and the
    canceled job's own stream its final `canceled` event."""
    s = settings or Settings(opts)
    fake = FakeGemini()
    app = App(env=app_env(fake, JOB_WORKERS=-1))
    reader = None
    spans, finals, cpu_per_stream, woken = [], [], [], []
    try:
        app.start()
        cookies, csrf = sign_up(app, "jobs-herd")
        client = user_client(app, cookies, csrf)
        ids = [submit(client, f"herd {n}")[1] for n in range(s.streams)]
        reader = StreamReader()
        streams = {job_id: EventStream(app.port, job_id, cookies) for job_id in ids}
        for stream in streams.values():
            reader.add(stream)
        _wait(lambda: all(x.events for x in streams.values()), 60)
        time.sleep(1.0)
        for head in ids[: s.herd_moves]:
            others = [x for x in reader.all if x.job_id != head and not x.ended]
            counts = {id(x): len(x.events) for x in others}
            cpu_before, sent = cpu_seconds(app.pid), time.time()
            response = client.request("DELETE", f"/v1/jobs/{head}")
            assert response.status == 200, response.status
            _wait(
                lambda head=head, counts=counts, others=others: (
                    streams[head].final is not None
                    and all(len(x.events) > counts[id(x)] for x in others)
                ),
                10,
                step=0.01,
            )
            time.sleep(0.2)  # let the last writes finish before reading the CPU
            cpu = cpu_seconds(app.pid) - cpu_before
            moved = [x.events[counts[id(x)]][2] for x in others if len(x.events) > counts[id(x)]]
            woken.append(len(moved))
            spans.append(max(moved) - sent if moved else float("nan"))
            cpu_per_stream.append(cpu / max(1, len(moved)))
            delay = end_to_event_s(streams[head])
            if delay is not None:
                finals.append(delay)
            time.sleep(0.8)
        client.close()
    finally:
        if reader is not None:
            reader.stop()
        app.stop()
        fake.stop()
    figures = {
        "herd_streams_woken": min(woken) if woken else 0,
        "herd_last_event_p50_ms": ms(percentile(spans, 50)),
        "herd_last_event_max_ms": ms(max(spans)) if spans else float("nan"),
        "herd_cpu_ms_per_stream": ms(percentile(cpu_per_stream, 50)),
        "herd_canceled_final_p50_ms": ms(percentile(finals, 50)),
        "herd_canceled_final_max_ms": ms(max(finals)) if finals else float("nan"),
    }
    return figures


SCENARIOS = {"jobs": jobs_saturated, "jobs_cross": jobs_cross, "jobs_herd": jobs_herd}


def main(argv=None) -> int:
    import run  # the table and machine description of bench/run.py

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--duration", type=float, help="seconds of /health probing (20)")
    parser.add_argument("--streams", type=int, help="event streams open (200)")
    parser.add_argument("--submissions", type=int, help="jobs submitted in phase 1 (200)")
    parser.add_argument("--finishes", type=int, help="final events measured in phase 3 (100)")
    parser.add_argument("--dump", type=Path, help="folder for every event and the app log")
    parser.add_argument(
        "--app-root", type=Path, help="serve wsgi.py from this checkout instead (to try a change)"
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    settings = Settings(
        duration=args.duration,
        streams=args.streams,
        submissions=args.submissions,
        finishes=args.finishes,
        dump=args.dump,
    )
    if args.app_root:
        servers.APP_ROOT = args.app_root.resolve()
    if settings.submissions < settings.streams:
        settings.submissions = settings.streams
    info = run.machine()
    print(f"machine: {info['nproc']} cores ({info['cpu']}), Python {info['python']}", flush=True)
    selected = args.scenario or list(SCENARIOS)
    results: dict[str, list[dict]] = {name: [] for name in selected}
    for number in range(1, args.runs + 1):
        for name in selected:
            started = time.monotonic()
            load_before = os.getloadavg()[0]
            figures = SCENARIOS[name](settings=settings)
            figures["load_average"] = round((load_before + os.getloadavg()[0]) / 2, 2)
            results[name].append(figures)
            print(
                f"run {number}/{args.runs} {name} ({time.monotonic() - started:.0f} s): "
                + json.dumps(figures),
                flush=True,
            )
    loads = [figures["load_average"] for runs in results.values() for figures in runs]
    print(f"\n1-minute load average during the runs {min(loads):.1f} to {max(loads):.1f}\n")
    print(run.table(results, args.markdown))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
