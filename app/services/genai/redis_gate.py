"""The gate shared by every app process, in Redis.

Same contract as LocalGate (contracts.Gate: at most N calls in flight,
starts at least `min_interval` apart, a bounded FIFO queue, Busy at once past
it), but the state lives in Redis so several waitress processes share one gate.

What Redis gives us and we use:
- one Lua script per step, so every check-and-take is atomic across
  processes, on the server's own clock (`TIME`) — no skew between hosts;
- a sorted set of held slots scored by lease expiry: a process that dies
  (kill -9) stops renewing, and its slot is pruned once the lease runs out;
- a sorted set for the queue scored by arrival order (INCR counter) and one
  of waiter heartbeats, so a dead waiter is dropped within a second or two
  instead of blocking the head of the queue.
- two keys for pacing: the next reserved start, and when a request was last
  actually written (see gate.py for why both).
Waiters poll (every ~20 ms); a held slot is renewed by one daemon thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from app.errors import Busy
from app.services.genai.gate import WIRE_MARGIN_S, Permit

log = logging.getLogger("nano_banana.genai")

POLL_S = 0.02
HEARTBEAT_MS = 2000


@dataclass(frozen=True)
class GateKeys:
    """The Redis keys of one gate. The suffixes are what every process of a
    deployment shares: change one and old and new processes gate apart."""

    slots: str  # sorted set: held slot tokens, scored by lease expiry (ms)
    queue: str  # sorted set: waiting tokens, scored by arrival (seq)
    alive: str  # sorted set: waiting tokens, scored by last heartbeat (ms)
    next_start: str  # the next start that may be reserved (ms, Redis clock)
    seq: str  # arrival counter
    last_sent: str  # when a request was last fully written (ms, Redis clock)

    @classmethod
    def under(cls, prefix: str) -> GateKeys:
        return cls(
            slots=f"{prefix}:slots",
            queue=f"{prefix}:queue",
            alive=f"{prefix}:alive",
            next_start=f"{prefix}:next",
            seq=f"{prefix}:seq",
            last_sent=f"{prefix}:sent",
        )


# KEYS: slots, queue, alive, seq
# ARGV: token, max_concurrent, lease_ms, max_queue, heartbeat_ms
# Returns {status, value}: status 1 → got a slot; 0 → queued, keep polling;
# -1 → queue full (busy; value = queue length).
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token = ARGV[1]
local max_concurrent = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local max_queue = tonumber(ARGV[4])
local heartbeat = tonumber(ARGV[5])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - heartbeat)
for _, dead in ipairs(stale) do
  redis.call('ZREM', KEYS[2], dead)
  redis.call('ZREM', KEYS[3], dead)
end

local queued = redis.call('ZSCORE', KEYS[2], token)
if redis.call('ZCARD', KEYS[1]) < max_concurrent then
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if (#head == 0) or (head[1] == token) then
    redis.call('ZREM', KEYS[2], token)
    redis.call('ZREM', KEYS[3], token)
    redis.call('ZADD', KEYS[1], now + lease, token)
    return {1, 0}
  end
end
if not queued then
  if redis.call('ZCARD', KEYS[2]) >= max_queue then
    return {-1, redis.call('ZCARD', KEYS[2])}
  end
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), token)
end
redis.call('ZADD', KEYS[3], now, token)
return {0, 0}
"""

# KEYS: next_start, last_sent; ARGV: interval_ms. Reserves the earliest start
# at least `interval` after the previous reservation and after the last
# request actually sent, across processes; returns ms to wait.
START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local sent = tonumber(redis.call('GET', KEYS[2]) or '0') + interval
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'), sent)
redis.call('SET', KEYS[1], start + interval, 'PX', interval + 60000)
return start - now
"""

# KEYS: last_sent; ARGV: interval_ms. A request is on the wire now.
SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], math.max(now, last), 'PX', tonumber(ARGV[1]) + 60000)
return 1
"""

# KEYS: last_sent; ARGV: interval_ms. Ms still to wait after the last send.
AFTER_SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1]) - now
"""

# KEYS: slots; ARGV: lease_ms, tokens...  Extends the leases still held.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
return 1
"""

# KEYS: slots, queue. The slots held (expired leases pruned) and the waiters.
ACTIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
"""


class RedisGate:
    def __init__(
        self,
        client: Redis,
        *,
        max_concurrent: int,
        min_interval_s: float,
        max_queue: int,
        queue_timeout_s: float,
        lease_s: float = 15.0,
        prefix: str = "nb:gate",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_concurrent = max(1, max_concurrent)
        self.min_interval_ms = max(0, round(min_interval_s * 1000))
        spacing_s = min_interval_s + WIRE_MARGIN_S if self.min_interval_ms else 0.0
        self._spacing_ms = round(spacing_s * 1000)
        self.max_queue = max(0, max_queue)
        self.queue_timeout_s = max(0.0, queue_timeout_s)
        self.lease_ms = max(1000, round(lease_s * 1000))
        self.keys = GateKeys.under(prefix)
        self._acquire = client.register_script(ACQUIRE)
        self._start = client.register_script(START)
        self._sent = client.register_script(SENT)
        self._after_sent = client.register_script(AFTER_SENT)
        self._renew = client.register_script(RENEW)
        self._counts = client.register_script(ACTIVE)
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name="gate-lease", daemon=True)
        self._renewer.start()
        self._avg_call_s = 5.0
        self.recent_starts: deque[float] = deque(maxlen=1000)
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_url(cls, url: str, **settings) -> RedisGate:
        return cls(Redis.from_url(url), **settings)

    @property
    def active(self) -> int:
        return self._slots_and_queue()[0]

    @property
    def waiting(self) -> int:
        return self._slots_and_queue()[1]

    def is_full(self) -> bool:
        active, waiting = self._slots_and_queue()
        return active >= self.max_concurrent and waiting >= self.max_queue

    def _slots_and_queue(self) -> tuple[int, int]:
        active, waiting = self._counts(keys=[self.keys.slots, self.keys.queue])
        return int(active), int(waiting)

    def retry_after(self, queued: int | None = None) -> float:
        ahead = (self.waiting if queued is None else queued) + 1
        return max(1.0, math.ceil(self._avg_call_s * ahead / self.max_concurrent))

    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[Permit]:
        token = uuid.uuid4().hex
        self._wait_for_slot(token, deadline)
        with self._held_lock:
            self._held.add(token)
        permit = Permit(self, clock=self._clock, sleep=self._sleep)
        try:
            yield permit
        finally:
            with self._held_lock:
                self._held.discard(token)
            self.client.zrem(self.keys.slots, token)
            if permit.started is not None:
                elapsed = self._clock() - permit.started
                self._avg_call_s = 0.8 * self._avg_call_s + 0.2 * elapsed

    def reserve_start(self) -> float:
        """Reserve this call's start on the shared schedule (Redis clock);
        return how long to wait for it (seconds)."""
        keys = [self.keys.next_start, self.keys.last_sent]
        return int(self._start(keys=keys, args=[self._spacing_ms])) / 1000

    def mark_sent(self) -> None:
        if not self._spacing_ms:
            return
        try:
            self._sent(keys=[self.keys.last_sent], args=[self._spacing_ms])
        except RedisError:
            # The request is already out: losing this report costs at most
            # one start's accuracy, raising would throw away a paid-for call.
            log.warning("gate: could not record a send in Redis", exc_info=True)

    def wait_after_last_send(self) -> float:
        keys = [self.keys.last_sent]
        return int(self._after_sent(keys=keys, args=[self._spacing_ms])) / 1000

    def _wait_for_slot(self, token: str, deadline: float | None) -> None:
        give_up = self._clock() + self.queue_timeout_s
        if deadline is not None:
            give_up = min(give_up, deadline)
        keys = [self.keys.slots, self.keys.queue, self.keys.alive, self.keys.seq]
        args = [token, self.max_concurrent, self.lease_ms, self.max_queue, HEARTBEAT_MS]
        try:
            while True:
                status, value = self._acquire(keys=keys, args=args)
                if status == 1:
                    return
                if status == -1:
                    raise Busy(retry_after=self.retry_after(int(value)))
                if self._clock() >= give_up:
                    raise Busy(retry_after=self.retry_after())
                self._sleep(POLL_S)
        except BaseException:
            # Leave the queue at once rather than waiting for the heartbeat.
            self.client.zrem(self.keys.queue, token)
            self.client.zrem(self.keys.alive, token)
            raise

    def _renew_loop(self) -> None:
        interval = self.lease_ms / 3000
        while not self._stop.wait(interval):
            with self._held_lock:
                tokens = list(self._held)
            if not tokens:
                continue
            try:
                self._renew(keys=[self.keys.slots], args=[self.lease_ms, *tokens])
            except Exception:  # Redis away for a moment: the next round retries
                continue

    def close(self) -> None:
        self._stop.set()
