"""The fault layer alone (fake clock, seeded), and as the router and the health checker meet it."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from engine.chaos.faults import Fault, FaultLayer, InjectedConnectionError, InjectedStatus
from engine.clock import FakeClock, SystemClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthChecker, HealthState
from engine.traffic.breaker import BreakerConfig, BreakerState
from tests.engine.fetch_double import fetch_by_port
from tests.engine.test_health import Collect
from tests.engine.test_router import Backend, make_router, run


def layer(*faults: Fault, seed: int = 1) -> tuple[FaultLayer, FakeClock]:
    clock = FakeClock()
    f = FaultLayer(clock, random.Random(seed))
    for fault in faults:
        f.add(fault)
    return f, clock


def test_latency_with_jitter_stays_in_its_band_and_targets_only_its_service():
    f, clock = layer(Fault(1, "orders", clock_end := 1060.0, latency_ms=300, jitter_ms=50))
    delays = [f.delay_s("orders") for _ in range(1000)]
    assert 0.250 <= min(delays) < 0.26 and 0.34 < max(delays) <= 0.350
    assert sum(delays) / len(delays) == pytest.approx(0.300, abs=0.005)
    assert f.delay_s("payments") == 0.0
    clock.advance(clock_end - clock.monotonic())  # the end time passed: no effect, whatever the expiry job does
    assert f.delay_s("orders") == 0.0 and f.active() == ()
    assert f.fired == {1: 1000}


def test_failure_probability_status_and_connection_error():
    f, _ = layer(Fault(1, None, 2000.0, probability=0.25, fail=True, status=503),
                 Fault(2, "payments", 2000.0, fail=True))
    outcomes = [f.failure("orders") for _ in range(4000)]
    hits = [o for o in outcomes if o is not None]
    assert 900 <= len(hits) <= 1100  # 25 % of 4000, seeded
    assert all(isinstance(o, InjectedStatus) and o.status == 503 for o in hits)
    assert isinstance(f.failure("payments"), (InjectedConnectionError, InjectedStatus))
    f.remove(1)
    assert f.failure("orders") is None and isinstance(f.failure("payments"), InjectedConnectionError)
    f.clear()
    assert not f.armed


def test_routed_requests_see_the_added_latency_and_recover_after():
    backend = Backend(1)
    router, _ = make_router(backend.ports, SystemClock(), retries=0)
    faults = FaultLayer(SystemClock(), random.Random(2))
    router.faults = faults

    async def timed() -> float:
        began = time.perf_counter()
        up = await router.send("orders", "GET", "/")
        assert up.status == 200
        return time.perf_counter() - began

    async def scenario():
        await router.start()
        try:
            before = [await timed() for _ in range(5)]
            faults.add(Fault(1, "orders", time.monotonic() + 0.6, latency_ms=300))
            during = [await timed() for _ in range(2)]
            await asyncio.sleep(max(0.0, 0.65 - sum(during)))
            after = [await timed() for _ in range(5)]
            return before, during, after
        finally:
            await router.close()

    before, during, after = run(scenario, backend)
    assert max(before) < 0.1 and min(during) >= 0.3 and max(after) < 0.1


def test_injected_5xx_is_the_answer_and_opens_the_breaker_without_reaching_the_instance():
    backend = Backend(1)
    clock = FakeClock()
    router, _ = make_router(backend.ports, clock, retries=0,
                            breaker=BreakerConfig(failure_threshold=3, minimum_calls=20, window_size=20))
    router.faults = FaultLayer(clock, random.Random(3))
    router.faults.add(Fault(7, "orders", clock.monotonic() + 10, fail=True, status=503))

    async def scenario():
        await router.start()
        try:
            return [await router.send("orders", "GET", "/") for _ in range(3)]
        finally:
            await router.close()

    answers = run(scenario, backend)
    assert [a.status for a in answers] == [503, 503, 503]
    assert b"simulation 7" in answers[0].body and dict(answers[0].raw_headers)[b"X-Fault-Injected"] == b"true"
    assert router.breakers.get("orders").state is BreakerState.OPEN
    assert sum(backend.hits.values()) == 0


def test_health_checks_see_an_injected_failure_as_unhealthy_and_latency_as_slow():
    clock = FakeClock()
    service = ServiceSpec(1, "orders", "/health", None, 1, False, (InstanceSpec(1, 1, "http://127.0.0.1:9001"),))
    registry = Registry()
    registry.replace((service,))
    faults = FaultLayer(clock, random.Random(4))
    checker = HealthChecker(registry, fetch_by_port(lambda _port: 200), Collect(), clock,  # type: ignore[arg-type]
                            timeout=1.0, degraded_ms=500.0, fall=1, rise=1, concurrency=5, faults=faults)
    asyncio.run(checker.run_once())
    assert checker.state_of(1) is HealthState.HEALTHY
    faults.add(Fault(1, "orders", clock.monotonic() + 60, fail=True))
    result = asyncio.run(checker.check(service, service.instances[0]))
    assert result.state is HealthState.UNHEALTHY and "injected connection failure" in (result.error or "")
    faults.clear()
    faults.add(Fault(2, "orders", clock.monotonic() + 60, fail=True, status=500))
    result = asyncio.run(checker.check(service, service.instances[0]))
    assert result.state is HealthState.DEGRADED and result.status_code == 500 and "injected" in (result.error or "")
