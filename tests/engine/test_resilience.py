"""Backoff with full jitter on a seeded random, and the resilience counters' 300 s window on a fake clock."""

from __future__ import annotations

import random

import pytest

from engine.clock import FakeClock
from engine.traffic.resilience import ResilienceCounters, backoff_s

BASE, CAP = 0.1, 2.0
# attempt -> the top of its delay range: min(cap, base x 2^attempt)
TOPS = [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 2.0), (6, 2.0), (30, 2.0)]


@pytest.mark.parametrize(("attempt", "top"), TOPS, ids=[f"attempt-{a}" for a, _ in TOPS])
def test_full_jitter_spreads_each_attempt_over_zero_to_its_exponential_top(attempt, top):
    rng = random.Random(attempt)
    delays = [backoff_s(attempt, BASE, CAP, rng) for _ in range(1000)]
    assert all(0.0 <= d <= top for d in delays)
    assert len(set(delays)) == 1000  # jittered: no two alike
    # full jitter, not "equal jitter" (top/2 + up to top/2) nor a fixed delay: the whole range is used
    assert min(delays) < 0.01 * top and max(delays) > 0.99 * top
    assert sum(d < top / 2 for d in delays) in range(450, 551)  # uniform: about half below the middle


def test_successive_attempts_draw_different_delays_from_one_random():
    rng = random.Random(5)
    delays = [backoff_s(attempt, BASE, CAP, rng) for attempt in range(6)]
    assert len(set(delays)) == 6
    assert all(0.0 <= d <= top for d, (_, top) in zip(delays, TOPS, strict=False))
    again = random.Random(5)
    assert delays == [backoff_s(attempt, BASE, CAP, again) for attempt in range(6)]  # one seed fixes them


def test_default_window_is_300_s_and_an_event_stops_counting_at_exactly_300_s():
    clock = FakeClock()
    counters = ResilienceCounters(clock)
    assert counters.window_s == 300
    counters.add("requests")
    counters.add("retries")
    counters.add("retry_successes")
    clock.advance(100)
    counters.add("requests", 3)
    counters.add("timeouts")
    clock.advance(199)  # the first events are 299 s old
    f = counters.figures()
    assert (f.window_s, f.requests, f.retries, f.retry_success_rate, f.timeouts, f.timeout_rate) == (
        300.0, 4, 1, 100.0, 1, 25.0)
    clock.advance(1)  # 300 s old: out
    f = counters.figures()
    assert (f.requests, f.retries, f.retry_success_rate, f.timeouts, f.timeout_rate) == (3, 0, None, 1, 100.0 / 3)
    clock.advance(99)
    assert counters.figures().requests == 3
    clock.advance(1)
    f = counters.figures()
    assert (f.requests, f.timeouts, f.timeout_rate, f.fallback_rate) == (0, 0, None, None)


def test_adding_after_the_window_forgets_the_old_seconds():
    clock = FakeClock()
    counters = ResilienceCounters(clock)
    for _ in range(5):
        counters.add("budget_refusals")
        counters.add("fallbacks", 2)
        counters.add("requests", 4)
        clock.advance(100)  # events at 0, 100, 200, 300, 400 s
    counters.add("requests")  # at 500 s: the events at 0, 100 and 200 s are 300 s old or more
    f = counters.figures()
    assert (f.requests, f.budget_refusals, f.fallbacks, f.fallback_rate) == (9, 2, 4, 100.0 * 4 / 9)
    assert [second for second, _ in counters._slots] == [1300, 1400, 1500]  # FakeClock starts at 1000 s


def test_an_unknown_counter_is_refused():
    counters = ResilienceCounters(FakeClock())
    with pytest.raises(ValueError, match="unknown counter 'nope'"):
        counters.add("nope")
