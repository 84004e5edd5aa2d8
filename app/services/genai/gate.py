"""The gate in front of the upstream model.

At most `max_concurrent` calls in flight, starts at least `min_interval`
apart, at most `max_queue` callers waiting (each at most `queue_timeout`);
past either bound the caller is refused at once with `Busy` (503 +
Retry-After). A generation holds a waitress thread for its whole call, so the
gate must shed load before the thread pool runs dry.

Waiters are served first come, first served. A waiter that gets a slot is
given a start time no earlier than `min_interval` after the previous start and
sleeps until then: the slot is held idle for at most that interval.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Busy


class LocalGate:
    """One process's gate (threads). RedisGate shares one across processes."""

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
        self.max_queue = max(0, max_queue)
        self.queue_timeout_s = max(0.0, queue_timeout_s)
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._active = 0
        self._queue: deque[object] = deque()
        self._next_start = 0.0
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
    def slot(self, deadline: float | None = None) -> Iterator[None]:
        """Hold one upstream slot for the duration of the `with` block.

        `deadline` (monotonic) bounds the wait beyond the queue timeout.
        """
        start_at = self._acquire(deadline)
        started: float | None = None
        try:
            delay = start_at - self._clock()
            if delay > 0:
                self._sleep(delay)
            started = self._clock()
            self.recent_starts.append(started)
            yield
        finally:
            # Released on every path: success, error, timeout, exit.
            with self._cond:
                self._active -= 1
                if started is not None:
                    elapsed = self._clock() - started
                    self._avg_call_s = 0.8 * self._avg_call_s + 0.2 * elapsed
                self._cond.notify_all()

    def _acquire(self, deadline: float | None) -> float:
        with self._cond:
            now = self._clock()
            if self._active < self.max_concurrent and not self._queue:
                return self._take(now)
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
                return self._take(self._clock())
            finally:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                # The next waiter may now be at the head with a free slot.
                self._cond.notify_all()

    def _take(self, now: float) -> float:
        self._active += 1
        start_at = max(now, self._next_start)
        self._next_start = start_at + self.min_interval_s
        return start_at

    def close(self) -> None:
        pass
