"""A small closed-loop load generator: threads, one keep-alive
``http.client`` connection each, timestamps from ``time.monotonic()`` (on
Linux the same clock the fake Gemini server stamps its calls with).

Every worker loops until the deadline and then finishes the request it has
in flight; nothing runs unbounded.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Sample:
    label: str
    start: float
    end: float
    status: int
    nbytes: int = 0
    retry_after: str | None = None
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


class Client:
    """One keep-alive connection; reconnects once when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.headers: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()
            # http.client sends a request's headers and body in two send()
            # calls; with Nagle on, the body waits for the server's delayed
            # ACK (up to 40 ms). Browsers and httpx set TCP_NODELAY too.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = dict(self.headers)
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=all_headers)
                raw = conn.getresponse()
                data = raw.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if raw.will_close:
                self.close()
            self._remember_cookies(raw.headers)
            return Response(raw.status, raw.headers, data)
        raise AssertionError("unreachable")

    def _remember_cookies(self, headers: http.client.HTTPMessage) -> None:
        for value in headers.get_all("Set-Cookie") or []:
            pair = value.split(";", 1)[0]
            name, _, cookie = pair.partition("=")
            if cookie:
                self.cookies[name.strip()] = cookie.strip()
            else:
                self.cookies.pop(name.strip(), None)

    def timed(
        self,
        label: str,
        method: str,
        path: str,
        *,
        body: bytes | dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sample:
        start = time.monotonic()
        try:
            response = self.request(method, path, body=body, headers=headers)
        except OSError as exc:
            self.close()
            return Sample(label, start, time.monotonic(), 0, error=type(exc).__name__)
        return Sample(
            label,
            start,
            time.monotonic(),
            response.status,
            len(response.body),
            response.headers.get("Retry-After"),
        )


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    deadline: float = 0.0
    finished: float = 0.0

    def by_label(self, label: str) -> list[Sample]:
        return [sample for sample in self.samples if sample.label == label]


# One request from a worker: returns the sample and the pause before the next.
Step = Callable[[Client], tuple[Sample, float]]


def run_closed_loop(
    groups: list[tuple[int, Callable[[], Client], Step]],
    duration: float,
    *,
    start_gate: float = 0.0,
) -> LoadResult:
    """Run every group's workers until ``duration`` has passed.

    ``groups``: (worker count, client factory, step). Each worker makes its
    own client (one connection) and calls ``step`` in a loop, sleeping the
    pause the step returns. ``start_gate`` delays the whole run's clock start
    so that all workers begin together.
    """
    result = LoadResult()
    lock = threading.Lock()
    barrier = threading.Barrier(sum(count for count, _, _ in groups) + 1)

    def worker(make_client: Callable[[], Client], step: Step) -> None:
        client = make_client()
        local: list[Sample] = []
        try:
            barrier.wait()
            while time.monotonic() < result.deadline:
                sample, pause = step(client)
                local.append(sample)
                if pause > 0:
                    time.sleep(min(pause, max(0.0, result.deadline - time.monotonic())))
        finally:
            client.close()
            with lock:
                result.samples.extend(local)

    threads = [
        threading.Thread(target=worker, args=(make_client, step), daemon=True)
        for count, make_client, step in groups
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    if start_gate:
        time.sleep(start_gate)
    result.started = time.monotonic()
    result.deadline = result.started + duration
    barrier.wait()
    for thread in threads:
        # A worker's last request is bounded by its client timeout.
        thread.join(timeout=duration + 120)
    result.finished = time.monotonic()
    return result


def burst(make_client: Callable[[], Client], step: Callable[[Client], Sample], count: int):
    """``count`` requests at once, one per thread; returns their samples."""
    samples: list[Sample] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def one() -> None:
        client = make_client()
        try:
            barrier.wait()
            sample = step(client)
        finally:
            client.close()
        with lock:
            samples.append(sample)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return samples


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
