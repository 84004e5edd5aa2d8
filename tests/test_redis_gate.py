"""The shared gate in Redis: several gates (as several processes would have)
obey one bound, one spacing, one queue; a dead holder's slot comes back."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest

from app.errors import Busy
from app.services.genai.gate import WIRE_MARGIN_S, LocalGate
from tests.support.services import connect_redis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_client():
    client = connect_redis(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def make_gate(redis_client):
    from app.services.genai.redis_gate import RedisGate

    prefix = f"nb:test:{uuid.uuid4().hex}"
    gates = []

    def make(**settings):
        defaults = dict(max_concurrent=2, min_interval_s=0, max_queue=10, queue_timeout_s=10)
        defaults.update(settings)
        gate = RedisGate(redis_client, prefix=prefix, **defaults)
        gates.append(gate)
        return gate

    yield make
    for gate in gates:
        gate.close()
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)


class InFlight:
    def __init__(self):
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.starts: list[float] = []

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.starts.append(time.monotonic())

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


def run_callers(gates, count, work_s, flight):
    outcomes = []
    lock = threading.Lock()

    def caller(gate):
        try:
            with gate.slot() as permit:
                permit.wait_for_start()
                permit.sent()
                with flight:
                    time.sleep(work_s)
            result = "ok"
        except Busy:
            result = "busy"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=caller, args=(gates[i % len(gates)],)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_gates_share_one_concurrency_bound(make_gate):
    gates = [make_gate(), make_gate()]
    flight = InFlight()
    outcomes = run_callers(gates, 10, 0.2, flight)
    assert outcomes.count("ok") == 10
    assert flight.peak == 2
    assert gates[0].active == 0 and gates[0].waiting == 0


def test_starts_are_spaced_across_gates(make_gate):
    gates = [
        make_gate(min_interval_s=0.2, max_concurrent=4),
        make_gate(min_interval_s=0.2, max_concurrent=4),
    ]
    flight = InFlight()
    run_callers(gates, 6, 0.05, flight)
    starts = sorted(flight.starts)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Scheduled 210 ms apart on the Redis clock, and each start waits for the
    # previous call's report of its send, so a caller woken late does not
    # shorten the next gap; the tolerance is Redis' millisecond clock.
    assert min(gaps) >= 0.2, gaps


def test_queue_bound_refuses_at_once(make_gate):
    gates = [make_gate(max_queue=2), make_gate(max_queue=2)]
    flight = InFlight()
    started = time.monotonic()
    outcomes = run_callers(gates, 8, 0.5, flight)
    assert outcomes.count("ok") == 4  # 2 in flight + 2 queued
    assert outcomes.count("busy") == 4
    assert time.monotonic() - started < 3


def test_queue_timeout_is_busy(make_gate):
    gate = make_gate(max_concurrent=1, queue_timeout_s=0.2)
    flight = InFlight()
    outcomes = run_callers([gate], 2, 0.6, flight)
    assert sorted(outcomes) == ["busy", "ok"]


def test_dead_holder_slot_returns_after_lease(make_gate, redis_client):
    gate = make_gate(max_concurrent=1, lease_s=1, queue_timeout_s=5)
    # A process that took the slot and died: its lease is never renewed.
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    redis_client.zadd(gate.keys.slots, {"dead-process": now_ms + 1000})
    started = time.monotonic()
    with gate.slot():
        waited = time.monotonic() - started
    assert 0.5 < waited < 2.5


def test_live_holder_keeps_slot_past_lease(make_gate):
    gate = make_gate(max_concurrent=1, lease_s=1, queue_timeout_s=0.3)
    other = make_gate(max_concurrent=1, lease_s=1, queue_timeout_s=0.3)
    with gate.slot():
        time.sleep(1.6)  # longer than the lease: renewal keeps it held
        with pytest.raises(Busy), other.slot():
            pass


def test_a_late_send_on_one_process_delays_a_start_reserved_on_another(make_gate):
    gates = [make_gate(min_interval_s=0.2), make_gate(min_interval_s=0.2)]
    with gates[0].slot() as first, gates[1].slot() as second:
        first.wait_for_start()
        waiting = threading.Thread(target=second.wait_for_start)
        waiting.start()  # reserves a start 210 ms on
        time.sleep(0.1)
        first.sent()  # the first request reaches the wire 100 ms late
        sent_at = time.monotonic()
        waiting.join()

    # Measured from the send, not the reservation: never sooner than 210 ms
    # after it, less Redis' millisecond clock (sleeps only run long: no flake).
    assert second.started - sent_at >= 0.2 + WIRE_MARGIN_S - 0.005


def test_a_send_report_survives_redis_going_away(make_gate, redis_client):
    gate = make_gate(min_interval_s=0.2)
    with gate.slot() as permit:
        permit.wait_for_start()
        gate._sent = _raise_connection_error  # as if Redis had gone away
        permit.sent()  # the request is already out: must not raise


def _raise_connection_error(*args, **kwargs):
    from redis.exceptions import ConnectionError as RedisConnectionError

    raise RedisConnectionError("gone")


@pytest.fixture(params=["local", "redis"])
def either_gate(request, make_gate):
    """Both gates, for what the Gate protocol promises of each."""
    settings = dict(max_concurrent=1, min_interval_s=0, max_queue=1, queue_timeout_s=5)
    if request.param == "redis":
        return make_gate(**settings)
    return LocalGate(**settings)


def test_either_gate_past_its_queue_refuses_at_once_and_says_when(either_gate):
    gate = either_gate
    holding, release = threading.Event(), threading.Event()

    def holder():
        with gate.slot():
            holding.set()
            release.wait(5)

    def waiter():
        with gate.slot():
            pass

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    holding.wait(5)
    threads.append(threading.Thread(target=waiter))
    threads[1].start()
    deadline = time.monotonic() + 2
    while gate.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert (gate.active, gate.waiting, gate.is_full()) == (1, 1, True)
    started = time.monotonic()
    with pytest.raises(Busy) as refused, gate.slot():
        pass
    assert time.monotonic() - started < 0.5
    assert refused.value.retry_after >= 1 and gate.retry_after() >= 1

    release.set()
    for thread in threads:
        thread.join()
    assert (gate.active, gate.waiting, gate.is_full()) == (0, 0, False)
    gate.close()


def test_a_permit_waits_through_the_sleep_it_was_given(make_gate):
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    gate = make_gate(min_interval_s=0.2, sleep=sleep)
    with gate.slot() as first:
        first.wait_for_start()
        first.sent()
    with gate.slot() as second:
        second.wait_for_start()

    # The interval was waited out through the sleep the gate was given (the
    # few milliseconds between the two slots had already passed).
    assert 0.15 < sum(slept) <= 0.2 + WIRE_MARGIN_S
    assert second.started - first.started >= 0.2
