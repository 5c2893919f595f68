"""Every breaker transition, driven by a fake clock."""

from __future__ import annotations

import pytest

from engine.clock import FakeClock
from engine.traffic.breaker import BreakerConfig, BreakerState, CircuitBreaker

CL, OP, HO = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(**config):
    clock = FakeClock()
    seen: list[object] = []
    breaker = CircuitBreaker("orders", BreakerConfig(**config), clock, listeners=(seen.append,))
    return breaker, clock, seen


def call(breaker, ok, ms=10.0):
    if not breaker.allow():
        return "rejected"
    if ok:
        breaker.record_success(ms)
    else:
        breaker.record_failure("HTTP 500")
    return "called"


def test_opens_after_exactly_failure_threshold_consecutive_failures():
    b, _, seen = make(failure_threshold=5, minimum_calls=20, window_size=20)
    for _ in range(4):
        call(b, ok=False)
    assert b.state is CL
    call(b, ok=False)
    assert b.state is OP
    assert [(t.from_state, t.to_state) for t in seen] == [(CL, OP)]
    assert seen[0].reason == "5 consecutive failures (last: HTTP 500)"


def test_a_success_breaks_the_consecutive_run():
    b, _, _ = make(failure_threshold=3, minimum_calls=20, window_size=20)
    for ok in [False, False, True, False, False]:
        call(b, ok)
    assert b.state is CL


def test_open_rejects_without_calling_then_half_opens_after_the_timeout_and_closes_on_success():
    b, clock, seen = make(failure_threshold=2, open_timeout_ms=30_000)
    call(b, False), call(b, False)
    assert [call(b, True) for _ in range(3)] == ["rejected"] * 3 and b.rejected == 3
    clock.advance(29.999)
    assert b.state is OP
    clock.advance(0.001)
    assert b.state is HO
    assert call(b, True) == "called"
    assert b.state is CL
    assert [(t.from_state, t.to_state) for t in seen] == [(CL, OP), (OP, HO), (HO, CL)]


def test_failed_trial_reopens_and_restarts_the_timeout():
    b, clock, seen = make(failure_threshold=1, open_timeout_ms=1000)
    call(b, False)
    clock.advance(1.0)
    assert call(b, False) == "called"
    assert b.state is OP
    clock.advance(0.5)
    assert call(b, True) == "rejected"
    clock.advance(0.5)
    assert b.state is HO
    assert [(t.from_state, t.to_state) for t in seen] == [(CL, OP), (OP, HO), (HO, OP), (OP, HO)]


def test_half_open_admits_only_k_trials_and_needs_k_successes():
    b, clock, _ = make(failure_threshold=1, open_timeout_ms=1000, half_open_calls=2)
    call(b, False)
    clock.advance(1.0)
    assert [b.allow(), b.allow(), b.allow()] == [True, True, False]
    b.record_success(5.0)
    assert b.state is HO
    b.record_success(5.0)
    assert b.state is CL


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([True, False] * 5, OP),  # 50 % of 10 calls, minimum reached
        ([True, False] * 4 + [True, True], CL),  # 40 %
        ([False, True] * 4 + [False], CL),  # 56 % but only 9 calls seen
    ],
    ids=["rate-reached", "rate-below", "too-few-calls"],
)
def test_failure_rate_over_the_window(outcomes, expected):
    b, _, seen = make(failure_threshold=100, failure_rate_threshold=50, window_size=10, minimum_calls=10)
    for ok in outcomes:
        call(b, ok)
    assert b.state is expected
    if expected is OP:
        assert seen[-1].reason == "failure rate 50% over the last 10 calls"


def test_slow_calls_count_as_failures():
    b, _, seen = make(failure_threshold=3, slow_call_ms=200)
    for _ in range(3):
        call(b, True, ms=250)
    assert b.state is OP and seen[-1].reason.endswith("(last: slow call (250 ms))")
    b2, _, _ = make(failure_threshold=3)
    for _ in range(3):
        call(b2, True, ms=250)
    assert b2.state is CL


def test_reset_closes_and_clears():
    b, _, seen = make(failure_threshold=2)
    call(b, False), call(b, False)
    b.reset()
    assert b.state is CL and call(b, False) == "called" and b.state is CL
    assert seen[-1].reason == "manual reset"


def test_late_result_of_a_call_admitted_before_opening_changes_nothing():
    b, _, _ = make(failure_threshold=1)
    assert b.allow()  # a slow call goes out
    call(b, False)  # another fails: open
    b.record_success(5.0)  # the slow one comes back
    assert b.state is OP


@pytest.mark.parametrize(
    "bad",
    [{"failure_threshold": 0}, {"failure_rate_threshold": 0}, {"failure_rate_threshold": 101},
     {"minimum_calls": 30, "window_size": 20}, {"open_timeout_ms": 0}, {"slow_call_ms": -1}, {"half_open_calls": 0}],
    ids=["threshold", "rate-zero", "rate-high", "minimum-above-window", "timeout", "slow", "trials"],
)
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ValueError):
        BreakerConfig(**bad)
