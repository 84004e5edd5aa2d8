"""The in-process gate: bounds, order, and refusal."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from app.errors import Busy
from app.services.genai.gate import WIRE_MARGIN_S, LocalGate


def make_gate(**settings):
    defaults = dict(max_concurrent=1, min_interval_s=0, max_queue=2, queue_timeout_s=5)
    defaults.update(settings)
    return LocalGate(**defaults)


def hold(gate, seconds, order=None, name=None):
    def run():
        try:
            with gate.slot() as permit:
                permit.wait_for_start()
                permit.sent()
                if order is not None:
                    order.append(name)
                time.sleep(seconds)
        except Busy:
            if order is not None:
                order.append(f"busy:{name}")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_waiters_are_served_in_arrival_order():
    gate = make_gate(max_queue=5)
    order: list[str] = []
    threads = [hold(gate, 0.3, order, "first")]
    time.sleep(0.05)
    for name in ("a", "b", "c"):
        threads.append(hold(gate, 0.01, order, name))
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert order == ["first", "a", "b", "c"]


def test_full_gate_refuses_at_once_and_says_so():
    gate = make_gate(max_queue=1)
    threads = [hold(gate, 0.4), hold(gate, 0.01)]
    time.sleep(0.1)
    assert gate.is_full()
    started = time.monotonic()
    with pytest.raises(Busy) as refused, gate.slot():
        pass
    # At once: not after the 5 s queue timeout (the bound leaves room for a
    # loaded machine).
    assert time.monotonic() - started < 0.5
    assert refused.value.retry_after >= 1
    for thread in threads:
        thread.join()
    assert not gate.is_full() and gate.active == 0 and gate.waiting == 0


def test_waiting_past_the_queue_timeout_is_busy():
    gate = make_gate(queue_timeout_s=0.1)
    holder = hold(gate, 0.5)
    time.sleep(0.05)
    with pytest.raises(Busy) as refused, gate.slot():
        pass
    assert refused.value.retry_after >= 1
    holder.join()
    assert gate.waiting == 0


def test_slot_is_released_when_the_call_raises():
    gate = make_gate()
    with pytest.raises(RuntimeError), gate.slot():
        raise RuntimeError("upstream exploded")
    assert gate.active == 0
    with gate.slot():
        assert gate.active == 1


def test_starts_are_spaced_without_holding_slots_longer():
    gate = make_gate(max_concurrent=3, min_interval_s=0.1, max_queue=5)
    threads = [hold(gate, 0.01) for _ in range(4)]
    for thread in threads:
        thread.join()
    starts = sorted(gate.recent_starts)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.099
    assert starts[-1] - starts[0] < 0.6  # ~0.33 s: four starts, not four calls in a row


class ManualClock:
    """A clock that moves only when the gate sleeps; `during_sleep` runs
    what other threads would have done meanwhile."""

    def __init__(self):
        self.now = 0.0
        self.during_sleep = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        if self.during_sleep:
            self.during_sleep.pop(0)()
        self.now += seconds


def test_a_late_send_pushes_back_a_start_already_reserved():
    clock = ManualClock()
    gate = make_gate(max_concurrent=2, min_interval_s=0.3, clock=clock, sleep=clock.sleep)
    spacing = 0.3 + WIRE_MARGIN_S
    with gate.slot() as first, gate.slot() as second:
        first.wait_for_start()  # reserved at 0, but its request goes out late:

        def first_goes_out_late():
            clock.now = 0.05
            first.sent()

        clock.during_sleep.append(first_goes_out_late)
        second.wait_for_start()  # reserved at `spacing`, then re-checks

    assert first.started == 0
    assert second.started == pytest.approx(0.05 + spacing)


def test_a_late_send_pushes_back_the_next_reservation():
    clock = ManualClock()
    gate = make_gate(max_concurrent=2, min_interval_s=0.3, clock=clock, sleep=clock.sleep)
    spacing = 0.3 + WIRE_MARGIN_S
    with gate.slot() as first, gate.slot() as second:
        first.wait_for_start()
        clock.now = 0.2
        first.sent()
        second.wait_for_start()

    assert second.started == pytest.approx(0.2 + spacing)


def test_sends_on_time_keep_the_reserved_schedule():
    clock = ManualClock()
    gate = make_gate(max_concurrent=3, min_interval_s=0.3, clock=clock, sleep=clock.sleep)
    spacing = 0.3 + WIRE_MARGIN_S
    with gate.slot() as first, gate.slot() as second, gate.slot() as third:
        first.wait_for_start()
        first.sent()
        second.wait_for_start()
        second.sent()  # on time
        third.wait_for_start()

    assert [first.started, second.started, third.started] == pytest.approx(
        [0, spacing, 2 * spacing]
    )
