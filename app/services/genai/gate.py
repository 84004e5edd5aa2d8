"""The gate in front of the upstream model.

At most `max_concurrent` calls in flight, starts at least `min_interval`
apart, at most `max_queue` callers waiting (each at most `queue_timeout`);
past either bound the caller is refused at once with `Busy` (503 +
Retry-After). A generation holds a waitress thread for its whole call, so the
gate must shed load before the thread pool runs dry.

Waiters are served first come, first served. A slot holder reserves its start
as its request goes out (Permit.wait_for_start, called by the provider just
before the request's first byte is written), no earlier than `min_interval`
after the previous start, and sleeps until then: the slot is held idle for at
most that interval, and the gap the upstream sees is not shortened by the time
spent building a request or opening a connection.

A reservation is a promise about when a call may go, not when it went: a
thread kept off the CPU for a few milliseconds after its reservation (a burst
of requests on a small NAS) reaches the upstream late, and the next call,
sleeping to its own reservation, would then arrive less than the interval
after it. So each call also reports when its request was fully written
(Permit.sent); a call that slept re-checks that report before going, and the
next reservation starts from whichever is later.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.errors import Busy
from app.services.genai.contracts import StartSchedule

# Added to a non-zero minimum interval: the milliseconds a request can take
# from the send hook to the upstream's handler (a new connection's accept and
# thread start on the far side, a thread wake-up here) must not bring two
# starts closer than the interval where it counts (the figures behind the
# value: docs/benchmarks.md, scenario 2).
WIRE_MARGIN_S = 0.010


# A call re-checks the previous call's report at most this many times; each
# check can only move its start later, and a report comes once per call.
MAX_SEND_CHECKS = 3


class Permit:
    """A held slot of either gate. `wait_for_start()` sleeps until this call
    may start on the gate's schedule (once; later calls return at once) and
    records when it did; `sent()` reports that the request is on the wire."""

    def __init__(
        self,
        schedule: StartSchedule,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._schedule = schedule
        self._clock = clock
        self._sleep = sleep
        self.started: float | None = None

    def wait_for_start(self) -> None:
        if self.started is not None:
            return
        delay = self._schedule.reserve_start()
        if delay > 0:
            self._sleep(delay)
            # Not going at once means another call went (or was due to go)
            # less than the interval ago: make sure it did not go late.
            for _ in range(MAX_SEND_CHECKS):
                late = self._schedule.wait_after_last_send()
                if late <= 0:
                    break
                self._sleep(late)
        self.started = self._clock()
        self._schedule.recent_starts.append(self.started)

    def sent(self) -> None:
        self._schedule.mark_sent()


class LocalGate:
    """One process's gate (threads). RedisGate shares one across processes;
    both are a contracts.Gate, which is all GenAIService relies on."""

    def __init__(
        self,
        *,
        max_concurrent: int,
        min_interval_s: float,
        max_queue: int,
        queue_timeout_s: float,
        clock=time.monotonic,
        sleep=time.sleep,
    ) -> None:
        self.max_concurrent = max(1, max_concurrent)
        self.min_interval_s = max(0.0, min_interval_s)
        self._spacing_s = self.min_interval_s + WIRE_MARGIN_S if self.min_interval_s else 0.0
        self.max_queue = max(0, max_queue)
        self.queue_timeout_s = max(0.0, queue_timeout_s)
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._active = 0
        self._queue: deque[object] = deque()
        self._next_start = 0.0
        self._last_sent = -math.inf
        self._avg_call_s = 5.0  # a guess until calls are measured
        # When recent calls were let through (monotonic), for tests and benches.
        self.recent_starts: deque[float] = deque(maxlen=1000)

    # -- introspection (tests, /health) ------------------------------------
    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def is_full(self) -> bool:
        """Every slot and queue place taken: a new caller would be refused.
        Read without the lock: an early, cheap answer, not a promise."""
        return self._active >= self.max_concurrent and len(self._queue) >= self.max_queue

    def retry_after(self) -> float:
        """A fair guess at when a refused caller could get in."""
        ahead = len(self._queue) + 1
        return max(1.0, math.ceil(self._avg_call_s * ahead / self.max_concurrent))

    # -- the gate ----------------------------------------------------------
    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[Permit]:
        """Hold one upstream slot for the duration of the `with` block.

        The block calls `permit.wait_for_start()` right before the call goes
        out; that is where starts are spaced `min_interval` apart, so the
        time a caller spends preparing its request can't shorten the gap.
        `deadline` (monotonic) bounds the wait beyond the queue timeout.
        """
        self._acquire(deadline)
        permit = Permit(self, clock=self._clock, sleep=self._sleep)
        try:
            yield permit
        finally:
            # Released on every path: success, error, timeout, exit.
            with self._cond:
                self._active -= 1
                if permit.started is not None:
                    elapsed = self._clock() - permit.started
                    self._avg_call_s = 0.8 * self._avg_call_s + 0.2 * elapsed
                self._cond.notify_all()

    def reserve_start(self) -> float:
        """Reserve the earliest start `min_interval` after the previous
        reservation and after the last request actually sent; return how long
        to wait for it (seconds)."""
        with self._cond:
            now = self._clock()
            start_at = max(now, self._next_start, self._last_sent + self._spacing_s)
            self._next_start = start_at + self._spacing_s
            return start_at - now

    def mark_sent(self) -> None:
        """A request is on the wire now: no start before now + interval."""
        if not self._spacing_s:
            return
        with self._cond:
            self._last_sent = max(self._last_sent, self._clock())

    def wait_after_last_send(self) -> float:
        """Seconds still to wait so this start is the interval after the
        last request actually sent (0 or less: go)."""
        with self._cond:
            return self._last_sent + self._spacing_s - self._clock()

    def _acquire(self, deadline: float | None) -> None:
        with self._cond:
            now = self._clock()
            if self._active < self.max_concurrent and not self._queue:
                self._active += 1
                return
            if len(self._queue) >= self.max_queue:
                raise Busy(retry_after=self.retry_after())
            ticket = object()
            self._queue.append(ticket)
            give_up = now + self.queue_timeout_s
            if deadline is not None:
                give_up = min(give_up, deadline)
            try:
                while not (self._queue[0] is ticket and self._active < self.max_concurrent):
                    remaining = give_up - self._clock()
                    if remaining <= 0:
                        raise Busy(retry_after=self.retry_after())
                    self._cond.wait(remaining)
                self._queue.popleft()
                self._active += 1
            finally:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                # The next waiter may now be at the head with a free slot.
                self._cond.notify_all()

    def close(self) -> None:
        pass
