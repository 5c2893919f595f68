"""The traffic path against real aiohttp servers on loopback, with a fake clock for breaker timing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from aiohttp import web

from contract.errors import NotFound
from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthState
from engine.security.ssrf import Policy
from engine.traffic.breaker import BreakerConfig
from engine.traffic.breakers import BreakerBook
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import CircuitOpen, NoInstance, Router
from tests.conftest import free_port

LOOPBACK = Policy.instances(("127.0.0.0/8",))


class Collect:
    def __init__(self):
        self.events = []

    def submit(self, event):
        self.events.append(event)


class Backend:
    """A loopback server whose answer the test sets; counts hits per port."""

    def __init__(self, n):
        self.ports = [free_port() for _ in range(n)]
        self.status = {p: 200 for p in self.ports}
        self.delay = 0.0
        self.hits: Counter[int] = Counter()
        self.runners = []

    async def start(self):
        for port in self.ports:
            app = web.Application()

            async def handle(request, port=port):
                self.hits[port] += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                return web.Response(status=self.status[port], text=f"from {port}", headers={"X-Port": str(port)})

            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)

    async def stop(self):
        for r in self.runners:
            await r.cleanup()


def make_router(ports, clock, *, health=None, breaker=None, retries=2, ejector=None, budget=None, timeout=2.0,
                rng=None, backoff=(0.001, 0.002)):
    registry = Registry()
    registry.replace((ServiceSpec(1, "orders", "/health", None, 1, False, tuple(
        InstanceSpec(n, 1, f"http://127.0.0.1:{p}") for n, p in enumerate(ports, start=1))),))
    writer = Collect()
    default = breaker or BreakerConfig(failure_threshold=5, minimum_calls=20, window_size=20)
    book = BreakerBook(clock, writer, default)  # type: ignore[arg-type]
    router = Router(
        registry, health or (lambda _id: HealthState.HEALTHY), book, ejector or OutlierEjector(clock, 1000),
        TrafficRecorder(), ResilienceCounters(clock), budget or RetryBudget(20, 3), clock,
        timeout_s=timeout, max_retries=retries, backoff_base_s=backoff[0], backoff_cap_s=backoff[1],
        rng=rng or random.Random(1), policy=LOOPBACK,
    )
    return router, writer


NEVER_OPEN = BreakerConfig(failure_threshold=1000, minimum_calls=1000, window_size=1000)


def send_many(router, backend, n, method="GET"):
    """Start the backend and router, send n requests one after another, return the answers."""
    async def scenario():
        await router.start()
        try:
            return [await router.send("orders", method, "/", body=b"x" if method == "POST" else b"") for _ in range(n)]
        finally:
            await router.close()
    return run(scenario, backend)


def run(scenario, backend):
    async def main():
        await backend.start()
        try:
            return await scenario()
        finally:
            await backend.stop()
    return asyncio.run(main())


def test_round_robin_splits_evenly_and_skips_unserving_instances():
    backend = Backend(3)
    clock = FakeClock()
    health = {1: HealthState.HEALTHY, 2: HealthState.DEGRADED, 3: HealthState.UNHEALTHY}
    router, _ = make_router(backend.ports, clock, health=lambda i: health[i])

    async def scenario():
        await router.start()
        try:
            answers = [await router.send("orders", "GET", "/work") for _ in range(100)]
        finally:
            await router.close()
        return answers

    answers = run(scenario, backend)
    assert all(a.status == 200 and a.attempts == 1 for a in answers)
    assert backend.hits == {backend.ports[0]: 50, backend.ports[1]: 50}
    assert Counter(a.instance_url for a in answers) == {f"http://127.0.0.1:{backend.ports[0]}": 50,
                                                         f"http://127.0.0.1:{backend.ports[1]}": 50}
    assert [router.targets[i].picks for i in (1, 2, 3)] == [50, 50, 0]
    assert all(t.in_flight == 0 for t in router.targets.values())


def test_breaker_opens_after_exactly_the_threshold_and_half_opens_after_the_timeout():
    backend = Backend(1)
    port = backend.ports[0]
    backend.status[port] = 500
    clock = FakeClock()
    router, writer = make_router(backend.ports, clock, retries=0,
                                 breaker=BreakerConfig(failure_threshold=5, minimum_calls=20, window_size=20,
                                                       open_timeout_ms=10_000))

    async def scenario():
        await router.start()
        try:
            statuses = [(await router.send("orders", "GET", "/")).status for _ in range(5)]
            assert backend.hits[port] == 5 and statuses == [500] * 5
            for _ in range(3):
                with pytest.raises(CircuitOpen):
                    await router.send("orders", "GET", "/")
            assert backend.hits[port] == 5  # OPEN: the target was not called
            clock.advance(10.0)
            backend.status[port] = 200
            assert (await router.send("orders", "GET", "/")).status == 200  # the trial call
            assert backend.hits[port] == 6
        finally:
            await router.close()

    run(scenario, backend)
    breaker = router.breakers.get("orders")
    assert breaker.state.value == "CLOSED" and breaker.rejected == 3
    assert [(e.from_state, e.to_state) for e in writer.events] == [
        ("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert router.counters.figures().fallbacks == 3


def test_retries_move_to_another_instance_and_count_as_retry_successes():
    backend = Backend(2)
    backend.status[backend.ports[0]] = 503
    clock = FakeClock()
    router, _ = make_router(backend.ports, clock, retries=2)
    answers = send_many(router, backend, 10)
    assert all(a.status == 200 and a.instance_url.endswith(str(backend.ports[1])) for a in answers)
    # round-robin counts the retry's pick too, so every first attempt lands on the failing instance
    assert Counter(a.attempts for a in answers) == {2: 10}
    f = router.counters.figures()
    assert (f.requests, f.retries, f.retry_success_rate) == (10, 10, 100.0)


class RecordingRandom(random.Random):
    """A seeded random that records each uniform(lo, hi) asked of it and the value it gave."""

    def __init__(self, seed):
        super().__init__(seed)
        self.draws = []

    def uniform(self, a, b):
        value = super().uniform(a, b)
        self.draws.append((a, b, value))
        return value


def test_retries_back_off_exponentially_with_full_jitter_up_to_the_cap():
    backend = Backend(1)
    backend.status[backend.ports[0]] = 503
    rng = RecordingRandom(3)
    router, _ = make_router(backend.ports, FakeClock(), retries=4, rng=rng, backoff=(0.001, 0.005),
                            breaker=NEVER_OPEN)
    answers = send_many(router, backend, 2)
    assert [a.attempts for a in answers] == [5, 5]
    # before retry k (0-based): uniform over [0, min(cap, base x 2^k)]
    assert [(lo, hi) for lo, hi, _ in rng.draws] == [(0.0, 0.001), (0.0, 0.002), (0.0, 0.004), (0.0, 0.005)] * 2
    delays = [d for _, _, d in rng.draws]
    assert all(lo <= d <= hi for lo, hi, d in rng.draws)
    assert len(set(delays)) == len(delays)  # jittered: every wait differs
    replay = random.Random(3)
    assert delays == [replay.uniform(0.0, hi) for _, hi, _ in rng.draws]  # one seed alone fixes the waits


def test_post_is_not_retried():
    backend = Backend(2)
    backend.status[backend.ports[0]] = 503
    router, _ = make_router(backend.ports, FakeClock(), retries=2)
    answers = send_many(router, backend, 4, method="POST")
    assert sorted(a.status for a in answers) == [200, 200, 503, 503]
    assert router.counters.figures().retries == 0


class FailOnceBackend:
    """One loopback instance: each path's first call waits until all n first calls arrived, then answers 500;
    a later call (a retry) waits until the test releases it, then answers 200."""

    def __init__(self, n):
        self.port = free_port()
        self.n = n
        self.first_calls = 0
        self.retry_calls = 0
        self.all_arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.seen = set()
        self.runners = []

    async def start(self):
        async def handle(request):
            if request.path not in self.seen:
                self.seen.add(request.path)
                self.first_calls += 1
                if self.first_calls == self.n:
                    self.all_arrived.set()
                await self.all_arrived.wait()
                return web.Response(status=500)
            self.retry_calls += 1
            await self.release.wait()
            return web.Response(status=200)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.runners.append(runner)

    async def stop(self):
        for runner in self.runners:
            await runner.cleanup()


class ObservedBudget(RetryBudget):
    """The product's budget, calling back once every request has had its retry decided."""

    def __init__(self, percent, minimum, n, decided):
        super().__init__(percent, minimum)
        self._n = n
        self._decided = decided
        self.granted = 0

    def try_retry(self):
        allowed = super().try_retry()
        self.granted += allowed
        if self.granted + self.refused == self._n:
            self._decided()
        return allowed


# (requests, percent, minimum, retries allowed): allowed = max(minimum, floor(requests in flight x percent / 100));
# a refused request ends, so the requests in flight only fall after the last grant and no later one is granted
BUDGETS = [(50, 20, 3, 10), (10, 20, 3, 3), (40, 25, 2, 10), (5, 50, 0, 2)]


@pytest.mark.parametrize(("n", "percent", "minimum", "allowed"), BUDGETS,
                         ids=["20pct-of-50", "minimum-3-of-10", "25pct-of-40", "50pct-of-5"])
def test_retry_budget_allows_exactly_its_share_when_every_request_fails_once(n, percent, minimum, allowed):
    """n requests fail together; their retries are held in flight until all n retry decisions are made."""
    backend = FailOnceBackend(n)
    budget = ObservedBudget(percent, minimum, n, backend.release.set)
    router, _ = make_router([backend.port], FakeClock(), retries=3, budget=budget,
                            breaker=BreakerConfig(failure_threshold=10_000, failure_rate_threshold=100,
                                                  minimum_calls=1000, window_size=1000))

    async def scenario():
        await router.start()
        try:
            sends = asyncio.gather(*(router.send("orders", "GET", f"/r{i}") for i in range(n)))
            return await asyncio.wait_for(sends, 60)  # a bound against a hang, not a timing assertion
        finally:
            await router.close()

    answers = run(scenario, backend)
    assert sorted(a.status for a in answers) == [200] * allowed + [500] * (n - allowed)
    assert (backend.first_calls, backend.retry_calls) == (n, allowed)
    f = router.counters.figures()
    assert (f.requests, f.retries, f.budget_refusals, f.retry_success_rate) == (n, allowed, n - allowed, 100.0)
    assert (budget.granted, budget.refused) == (allowed, n - allowed)
    assert router.budget.retries_in_flight == 0 and router.budget.requests_in_flight == 0


def test_consecutive_errors_eject_an_instance_within_the_cap():
    backend = Backend(2)
    backend.status[backend.ports[0]] = 500
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=50)
    router, _ = make_router(backend.ports, clock, retries=0, ejector=ejector, breaker=NEVER_OPEN)
    send_many(router, backend, 20)
    assert backend.hits[backend.ports[0]] == 3  # ejected after its third 500
    assert backend.hits[backend.ports[1]] == 17
    assert ejector.is_ejected(1) and not ejector.is_ejected(2)
    clock.advance(30)
    assert not ejector.is_ejected(1)


def test_unknown_service_and_no_serving_instance():
    backend = Backend(1)
    router, _ = make_router(backend.ports, FakeClock(), health=lambda _i: HealthState.UNHEALTHY)

    async def scenario():
        await router.start()
        try:
            with pytest.raises(NotFound):
                await router.send("nope", "GET", "/")
            with pytest.raises(NoInstance):
                await router.send("orders", "GET", "/")
        finally:
            await router.close()

    run(scenario, backend)
    assert backend.hits == {} and router.counters.figures().fallbacks == 1


def test_slow_instance_times_out_with_504_and_counts_as_a_timeout():
    from engine.traffic.router import UpstreamTimeout

    backend = Backend(1)
    backend.delay = 0.5
    router, _ = make_router(backend.ports, FakeClock(), retries=0, timeout=0.1)

    async def scenario():
        await router.start()
        try:
            with pytest.raises(UpstreamTimeout) as err:
                await router.send("orders", "GET", "/slow")
            return err.value
        finally:
            await router.close()

    error = run(scenario, backend)
    assert error.status == 504 and error.message == "no answer within 0.1 s"
    f = router.counters.figures()
    assert (f.requests, f.timeouts, f.timeout_rate) == (1, 1, 100.0)


def test_ejection_never_takes_out_more_than_the_cap():
    backend = Backend(4)
    for port in backend.ports:
        backend.status[port] = 500
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=2, base_s=30, max_percent=50)
    router, _ = make_router(backend.ports, clock, retries=0, ejector=ejector, breaker=NEVER_OPEN)
    send_many(router, backend, 40)
    assert len(ejector.ejected()) == 2  # half of 4, although all four kept failing


def test_a_one_instance_service_may_lose_its_instance_and_then_falls_back():
    """max(1, 50 % of 1) = 1 may be out: the lone instance is ejected and requests get NoInstance until it ends."""
    backend = Backend(1)
    port = backend.ports[0]
    backend.status[port] = 500
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=50)
    router, _ = make_router(backend.ports, clock, retries=0, ejector=ejector, breaker=NEVER_OPEN)

    async def scenario():
        await router.start()
        try:
            statuses = [(await router.send("orders", "GET", "/")).status for _ in range(3)]
            with pytest.raises(NoInstance):
                await router.send("orders", "GET", "/")
            clock.advance(30)
            backend.status[port] = 200
            statuses.append((await router.send("orders", "GET", "/")).status)
            return statuses
        finally:
            await router.close()

    assert run(scenario, backend) == [500, 500, 500, 200]
    assert backend.hits[port] == 4 and router.counters.figures().fallbacks == 1
