"""The autoscaler's value per metric: in flight (the mean of a period's samples, per instance, with today's
instances only), CPU % and p95 (the collector's latest row), and the period that acts on each."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, cast

import pytest
from sqlalchemy import select

from contract.scaling import AutoscalerConfig, AutoscalerMetric
from db.models import ScalingEvent, Service
from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.collector import Collector
from engine.scaling.manager import ScalingManager
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.wire import HttpClient
from tests.engine.test_collector import LOOPBACK, metrics_servers

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


# -- CPU % and p95: what the collector measured last, read through its `latest` -------------------------------

EXPOSITION = """# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
"""
CPU_PER_BUCKET = [4.0, 2.0]  # CPU-seconds per 5 s bucket of instances 1 and 2: 80 % and 40 %, a mean of 60 %


class FleetDouble:
    """Stands in for the managed fleet: a count of running instances, and what the period asked of it."""

    def __init__(self, running: int) -> None:
        self.count = running
        self.calls: list[tuple[str, int]] = []

    def running(self, _name: str) -> list[object]:
        return [object()] * self.count

    def start(self, _service_id: int, count: int = 1) -> list[object]:
        self.calls.append(("start", count))
        self.count += count
        return []

    def stop_one(self, _name: str) -> None:
        self.calls.append(("stop", 1))
        self.count -= 1


def measured(clock: FakeClock) -> tuple[Registry, Collector]:
    """A collector that closed two 5 s buckets of orders (2 instances on loopback): 60 % CPU, 600 MB, p95 of
    190 ms."""
    cpu = [0.0, 0.0]

    def answer(k: int) -> tuple[int, bytes]:
        cpu[k] += CPU_PER_BUCKET[k]
        return 200, EXPOSITION.format(cpu=cpu[k], rss=300 * 2**20).encode()

    registry = Registry()
    traffic = TrafficRecorder()

    async def scenario() -> Collector:
        servers = await metrics_servers(answer, 2)
        registry.replace((ServiceSpec(1, "orders", "/health", "/metrics", 1, True, tuple(
            InstanceSpec(k + 1, 1, f"http://127.0.0.1:{port}") for k, (_, port) in enumerate(servers))),))
        client = HttpClient(LOOPBACK)
        collector = Collector(registry, client, cast(Any, WriterDouble()), traffic, clock, bucket_seconds=5.0,
                              timeout=1.0)
        try:
            await collector.run_once()  # the first scrape: no CPU rate yet
            clock.advance(5.0)
            for ms in range(10, 201, 10):  # 20 requests, 10..200 ms: the nearest-rank p95 is the 19th, 190 ms
                traffic.begin("orders")
                traffic.record("orders", float(ms), True)
            await collector.run_once()
            return collector
        finally:
            await client.close()
            for server, _ in servers:
                server.close()

    return registry, asyncio.run(scenario())


class WriterDouble:
    def submit(self, _event: object) -> None:
        pass


def test_cpu_and_p95_are_the_collectors_latest_row():
    clock = FakeClock()
    registry, collector = measured(clock)
    scaling = ScalingManager(cast(Any, None), registry, cast(Any, None), clock, lambda _n: 0, collector.latest.get)
    since = clock.monotonic()
    assert scaling.value("orders", AutoscalerConfig(metric=AutoscalerMetric.CPU), 2, since) == 60.0
    assert collector.latest["orders"].memory_mb == 600.0  # measured too, and not the CPU value
    assert scaling.value("orders", AutoscalerConfig(metric=AutoscalerMetric.P95), 2, since) == 190.0
    assert scaling.value("payments", AutoscalerConfig(metric=AutoscalerMetric.CPU), 2, since) is None  # no row


@pytest.mark.parametrize("metric, value, target, started, reason", [
    # 60 / 40 = 1.5: ceil(2 x 1.5) = 3, one more instance
    (AutoscalerMetric.CPU, 60.0, 40.0, 1, "CPU % per instance 60 vs target 40: ceil(2 x 1.50) = 3"),
    # 190 / 100 = 1.9: ceil(2 x 1.9) = ceil(3.8) = 4, two more
    (AutoscalerMetric.P95, 190.0, 100.0, 2, "p95 latency, ms 190 vs target 100: ceil(2 x 1.90) = 4"),
], ids=["cpu", "p95"])
def test_a_period_on_cpu_or_p95_scales_to_the_hpa_count_and_records_the_value(sessions, metric, value, target,
                                                                               started, reason):
    clock = FakeClock()
    registry, collector = measured(clock)
    config = AutoscalerConfig(metric=metric, target=target, up_window_s=0.0, down_window_s=60.0, max_step=4)
    with sessions.begin() as s:
        s.add(Service(name="orders", health_path="/health", metrics_path="/metrics", weight=1, managed=True,
                      status="unknown", launch_command="unused {port}", min_instances=1, max_instances=10,
                      autoscaler=asdict(config)))
    fleet = FleetDouble(running=2)
    scaling = ScalingManager(sessions, registry, cast(Any, fleet), clock, lambda _n: 0, collector.latest.get)
    [out] = scaling.run_period(5.0)
    assert fleet.calls == [("start", started)]
    assert out.newInstanceCount == 2 + started
    with sessions() as s:
        event = s.scalars(select(ScalingEvent)).one()
    assert (event.direction, event.from_count, event.to_count, event.source) == ("up", 2, 2 + started, "autoscaler")
    assert (event.metric, event.metric_value, event.target, event.reason) == (metric, value, target, reason)
