"""Router.candidates kept per service: the same list while nothing changes, found again on a health change, an
ejection (and its end), a registry change (instances, weights) and an algorithm switch."""

from __future__ import annotations

import asyncio
import functools
import random

from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthState
from engine.health.probe import FetchError
from engine.security.ssrf import Policy
from engine.traffic.breakers import BreakerBook
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import Router
from tests.engine.test_health import Collect, make_checker


def _router(registry, health_of, generation, clock, ejector=None):
    book = BreakerBook(clock, Collect())  # type: ignore[arg-type]
    return Router(registry, health_of, book, ejector or OutlierEjector(clock, 2, base_s=10.0),
                  TrafficRecorder(), ResilienceCounters(clock), RetryBudget(20, 3), clock,
                  policy=Policy.instances(["127.0.0.0/8"]), rng=random.Random(1), health_generation=generation)


def _spec(*weights):
    return ServiceSpec(1, "orders", "/health", None, 1, False,
                       tuple(InstanceSpec(n, 1, f"http://127.0.0.1:{9000 + n}", w) for n, w in enumerate(weights, 1)))


class _Health:
    """States by instance id, the number of state_of() calls, and a generation moved by set()."""

    def __init__(self, count):
        self.states = dict.fromkeys(range(1, count + 1), HealthState.HEALTHY)
        self.generation = 0
        self.asked = 0

    def state_of(self, instance_id):
        self.asked += 1
        return self.states[instance_id]

    def set(self, instance_id, state):
        self.states[instance_id] = state
        self.generation += 1


def _ids(targets):
    return [t.id for t in targets]


def test_candidates_are_kept_until_the_health_generation_moves():
    clock, health, registry = FakeClock(), _Health(3), Registry()
    registry.replace((_spec(1, 1, 1),))
    router = _router(registry, health.state_of, functools.partial(getattr, health, "generation"), clock)
    first = router.candidates(registry.by_name("orders"))
    asked = health.asked
    assert _ids(first) == [1, 2, 3] and asked == 3
    assert router.candidates(registry.by_name("orders")) is first and health.asked == asked  # not asked again
    health.set(2, HealthState.UNHEALTHY)
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 3]
    health.set(2, HealthState.DEGRADED)
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2, 3]


def test_without_a_generation_health_is_asked_every_time():
    clock, health, registry = FakeClock(), _Health(2), Registry()
    registry.replace((_spec(1, 1),))
    router = _router(registry, health.state_of, None, clock)
    router.candidates(registry.by_name("orders"))
    health.states[1] = HealthState.UNHEALTHY  # no generation moved: seen all the same
    assert _ids(router.candidates(registry.by_name("orders"))) == [2] and health.asked == 4


def test_an_ejection_takes_the_instance_out_at_once_and_its_end_puts_it_back():
    clock, health, registry = FakeClock(), _Health(3), Registry()
    registry.replace((_spec(1, 1, 1),))
    ejector = OutlierEjector(clock, 2, base_s=10.0)
    router = _router(registry, health.state_of, functools.partial(getattr, health, "generation"), clock, ejector)
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2, 3]
    ejector.observe("orders", 3, True, 3)
    assert ejector.observe("orders", 3, True, 3) is not None
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2]
    clock.advance(10.0)
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2, 3]
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2, 3]  # kept again, nothing held


def test_a_registry_change_of_instances_or_weights_is_seen_on_the_next_request():
    clock, health, registry = FakeClock(), _Health(3), Registry()
    registry.replace((_spec(1, 1),))
    router = _router(registry, health.state_of, functools.partial(getattr, health, "generation"), clock)
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2]
    registry.put(_spec(1, 1, 1))
    assert _ids(router.candidates(registry.by_name("orders"))) == [1, 2, 3]
    registry.put(_spec(1, 5, 1))
    assert [t.weight for t in router.candidates(registry.by_name("orders"))] == [1, 5, 1]
    router.set_algorithm("least-load")
    assert [t.weight for t in router.candidates(registry.by_name("orders"))] == [1, 5, 1]


def test_a_health_checkers_transition_moves_its_generation_and_the_candidates_follow():
    clock = FakeClock()
    down = {"9002": False}

    def handler(port: int) -> int:
        if port == 9002 and down["9002"]:
            raise FetchError("ConnectError: connection refused")
        return 200

    checker, _ = make_checker(handler, clock, fall=1, rise=1)
    router = _router(checker._registry, checker.state_of, functools.partial(getattr, checker, "generation"), clock)
    spec = checker._registry.by_name("orders")
    assert router.candidates(spec) == []  # unknown before the first round
    asyncio.run(checker.run_once())
    assert _ids(router.candidates(spec)) == [1, 2]
    before = checker.generation
    asyncio.run(checker.run_once())  # no change
    assert checker.generation == before and _ids(router.candidates(spec)) == [1, 2]
    down["9002"] = True
    asyncio.run(checker.run_once())
    assert checker.generation > before and _ids(router.candidates(spec)) == [1]
    checker.mark_healthy(2)
    assert _ids(router.candidates(spec)) == [1, 2]
