"""Successes recorded together (a loop turn's, by the router) count exactly as the same successes told one by one:
the recorder, the rolling window, the SLO counters, the breaker, and the router's turn."""

from __future__ import annotations

import asyncio
import random

import pytest

from engine.alerting.slo import SloBook, SloTarget
from engine.clock import FakeClock
from engine.traffic.breaker import BreakerConfig, BreakerState, CircuitBreaker
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.window import RollingWindow
from tests.engine.test_router import Backend, make_router, run

LATENCIES = [0.31, 0.9, 1.0, 2.4, 7.5, 0.0001, 3000.0, 12.0]


@pytest.mark.parametrize("max_samples", [100, 5, 8], ids=["room", "capped", "exactly-full"])
def test_the_recorder_counts_a_batch_as_each_success_alone(max_samples):
    one_by_one, together = TrafficRecorder(max_samples), TrafficRecorder(max_samples)
    for recorder in (one_by_one, together):
        for _ in range(len(LATENCIES) + 2):
            recorder.begin("orders")
        recorder.record("orders", 40.0, False)
    for latency in LATENCIES:
        one_by_one.record("orders", latency, True)
    together.record_successes("orders", list(LATENCIES))
    assert together.in_flight("orders") == one_by_one.in_flight("orders") == 1
    assert together.totals() == one_by_one.totals()
    assert together.totals()["orders"].ok == len(LATENCIES)
    assert together.drain("orders") == one_by_one.drain("orders")


def test_the_recorders_listeners_hear_a_batch_once_or_each_success_when_they_have_no_batch_form():
    heard: list[tuple[str, float, bool]] = []
    batches: list[tuple[str, list[float]]] = []
    TrafficRecorder(listeners=(lambda s, x, ok: heard.append((s, x, ok)),)).record_successes("orders", [1.0, 2.0])
    TrafficRecorder(listeners=(lambda s, x, ok: heard.append((s, x, ok)),),
                    batch_listeners=(lambda s, xs: batches.append((s, xs)),)).record_successes("orders", [3.0])
    assert heard == [("orders", 1.0, True), ("orders", 2.0, True)]
    assert batches == [("orders", [3.0])]
    with pytest.raises(ValueError, match="pair"):
        TrafficRecorder(listeners=(), batch_listeners=(lambda s, xs: None,))


def test_the_rolling_window_counts_a_batch_as_each_success_alone():
    clock = FakeClock()
    one_by_one, together = RollingWindow(clock, 60), RollingWindow(clock, 60)
    for second in range(3):
        for latency in LATENCIES:
            one_by_one.add("orders", latency * (second + 1), True)
        together.add_successes("orders", [x * (second + 1) for x in LATENCIES])
        one_by_one.add("orders", 5.0, False)
        together.add("orders", 5.0, False)
        clock.advance(1)
    for window in (1, 2, 10):
        assert together.counts("orders", window) == one_by_one.counts("orders", window)
        for q in (0.5, 0.9, 0.99):
            assert together.quantile("orders", window, q) == one_by_one.quantile("orders", window, q)
    assert together.counts("orders", 10).requests == 3 * (len(LATENCIES) + 1)


@pytest.mark.parametrize(("config", "before"), [
    (BreakerConfig(failure_threshold=100, minimum_calls=4, window_size=6, failure_rate_threshold=90.0),
     [False, True, True, False, True]),
    (BreakerConfig(failure_threshold=100, minimum_calls=4, window_size=20, failure_rate_threshold=90.0),
     [True, False]),
    (BreakerConfig(failure_threshold=3, minimum_calls=4, window_size=6, slow_call_ms=100.0), [True, True]),
], ids=["pushes-failures-out", "room-left", "slow-calls-one-by-one"])
def test_the_breaker_records_a_batch_as_each_success_alone(config, before):
    one_by_one = CircuitBreaker("orders", config, FakeClock())
    together = CircuitBreaker("orders", config, FakeClock())
    for breaker in (one_by_one, together):
        for failed in before:
            breaker.allow()
            if failed:
                breaker.record_failure("HTTP 500")
            else:
                breaker.record_success(1.0)
    durations = [1.0, 2.0, 150.0, 3.0] if config.slow_call_ms else [1.0, 2.0, 3.0]
    for duration in durations:
        one_by_one.record_success(duration)
    together.record_successes(durations)
    assert together.failure_rate() == one_by_one.failure_rate()
    assert together.state == one_by_one.state
    if config.slow_call_ms:
        assert together.state is BreakerState.OPEN  # the slow call was the third consecutive failure
    else:
        assert together.state is BreakerState.CLOSED


def test_the_slo_counters_count_a_batch_as_each_success_alone(writer, clock, sessions):
    target = SloTarget("orders", 99.0, 200.0, 95.0, 30)
    books = [SloBook(writer, clock, sessions), SloBook(writer, clock, sessions)]
    for book in books:
        book.set(target)
        book.record("orders", 10.0, False)
    latencies = [10.0, 500.0, 20.0, 250.0, 30.0]
    for latency in latencies:
        books[0].record("orders", latency, True)
    books[1].record_successes("orders", latencies)
    books[1].record_successes("payments", latencies)  # no SLO: nothing counted, nothing raised
    with sessions() as s:
        reports = [book.report(s, target) for book in books]
    assert reports[0] == reports[1]
    assert reports[1].requests == 6 and reports[1].latency == pytest.approx(100 * 4 / 6)
    assert books[1].burn_rate("orders", 60) == books[0].burn_rate("orders", 60)


def test_a_loop_turns_successes_reach_the_recorder_and_its_listeners_in_one_batch():
    backend = Backend(2)
    clock = FakeClock()
    router, _ = make_router(backend.ports, clock, rng=random.Random(3))
    singles: list[float] = []
    batches: list[int] = []
    recorder = router._traffic
    recorder._listeners = (lambda service, latency, ok: singles.append(latency),)
    recorder._batch_listeners = (lambda service, latencies: batches.append(len(latencies)),)

    async def scenario():
        await router.start()
        try:
            answers = await asyncio.gather(*(router.send("orders", "GET", "/") for _ in range(30)))
            await asyncio.sleep(0.05)  # the last turn's successes are recorded on the turn after their answer
            spec = router._registry.by_name("orders")
            breaker = router.breakers.get("orders")
            targets = router.candidates(spec)
            router.ejector.observe("orders", targets[1].id, True, 2)  # one error: a success in the batch clears it
            for n in range(5):  # five answers concluded in one turn
                router._traffic.begin("orders")
                router._conclude(spec, targets[n % 2], breaker, 0.0, 0.001 * (n + 1), None, None, None)
            assert batches[-1:] != [5]
            await asyncio.sleep(0)
            return answers
        finally:
            await router.close()

    answers = run(scenario, backend)
    assert all(a.status == 200 for a in answers)
    assert batches[-1] == 5 and len(singles) + sum(batches) == 35
    totals = recorder.totals()["orders"]
    assert (totals.ok, totals.errors, recorder.in_flight("orders")) == (35, 0, 0)
    assert router.breakers.get("orders").failure_rate() == 0.0
    assert not router.ejector.is_ejected(2) and router.ejector._errors.get(2, 0) == 0
    assert all(t.in_flight == 0 for t in router.targets.values())
