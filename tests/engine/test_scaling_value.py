"""The autoscaler's in-flight value: the mean of a period's samples, per instance, with today's instances only."""

from __future__ import annotations

from typing import Any, cast

from contract.scaling import AutoscalerConfig, AutoscalerMetric
from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.scaling.manager import ScalingManager

INFLIGHT = AutoscalerConfig(metric=AutoscalerMetric.INFLIGHT)


def snapshot(registry: Registry, instance_ids: list[int]) -> None:
    instances = tuple(InstanceSpec(i, 1, f"http://127.0.0.1:{17000 + i}") for i in instance_ids)
    registry.replace((ServiceSpec(1, "orders", "/health", None, 1, True, instances),))


def manager(registry: Registry, clock: FakeClock, in_flight: list[int]) -> ScalingManager:
    """Only sample() and value() are exercised: they touch the registry, the clock and the in-flight count."""
    unused = cast(Any, None)
    return ScalingManager(unused, registry, unused, clock, lambda _name: in_flight[0], lambda _name: None)


def test_the_value_is_the_period_mean_per_instance():
    registry, clock, in_flight = Registry(), FakeClock(), [0]
    snapshot(registry, [1, 2])
    scaling = manager(registry, clock, in_flight)
    start = clock.monotonic()
    for n in (10, 20, 30):
        in_flight[0] = n
        scaling.sample()
        clock.advance(0.25)
    assert scaling.value("orders", INFLIGHT, 2, start) == 10.0  # mean 20 over 2 instances
    assert scaling.value("orders", INFLIGHT, 2, start + 0.5) == 15.0  # only the last sample is in the period
    assert scaling.value("orders", INFLIGHT, 2, clock.monotonic()) is None  # no sample yet: unknown


def test_samples_from_before_the_instances_changed_are_not_counted():
    registry, clock, in_flight = Registry(), FakeClock(), [0]
    snapshot(registry, [1, 2])
    scaling = manager(registry, clock, in_flight)
    start = clock.monotonic()
    in_flight[0] = 27  # two instances swamped while two more start
    for _ in range(6):
        scaling.sample()
        clock.advance(0.25)
    snapshot(registry, [1, 2, 3, 4])  # the new ones are registered: the balancer picks from four
    changed = clock.monotonic()
    assert scaling.value("orders", INFLIGHT, 4, start) is None  # nothing measured with four yet
    in_flight[0] = 16
    for _ in range(2):
        scaling.sample()
        clock.advance(0.25)
    assert scaling.value("orders", INFLIGHT, 4, start) is None  # the instances changed during this period
    assert scaling.value("orders", INFLIGHT, 4, changed) == 4.0  # 16 / 4, not (6 x 27 + 2 x 16) / 8 / 4
