"""Collection: Prometheus parsing, CPU rate, one row per service per bucket with NULL for unknown."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.collector import Collector, ProcessSample, cpu_percent, parse_process_metrics
from engine.stats import percentile
from engine.traffic.recorder import TrafficRecorder

EXPOSITION = """# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
"""


def test_parse_process_metrics():
    sample = parse_process_metrics(EXPOSITION.format(cpu=1.5, rss=2.0 * 2**20), at=10.0)
    assert sample == ProcessSample(10.0, 1.5, 2.0 * 2**20)
    assert parse_process_metrics("# nothing here\n", at=1.0) == ProcessSample(1.0, None, None)


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        (None, ProcessSample(5, 1.0, 1), None),
        (ProcessSample(0, 1.0, 1), ProcessSample(5, 1.5, 1), 10.0),
        (ProcessSample(0, 1.0, 1), ProcessSample(2, 3.0, 1), 100.0),
        (ProcessSample(0, 9.0, 1), ProcessSample(5, 1.0, 1), None),
        (ProcessSample(0, None, 1), ProcessSample(5, 1.0, 1), None),
    ],
    ids=["first-scrape", "ten-percent", "one-core", "counter-reset", "missing"],
)
def test_cpu_percent(prev, cur, expected):
    assert cpu_percent(prev, cur) == expected


class Collect:
    def __init__(self):
        self.events = []

    def submit(self, event):
        self.events.append(event)


def test_bucket_rows_use_scrapes_and_null_for_unknown():
    clock = FakeClock()
    cpu = {9001: 10.0, 9002: 20.0}

    def handler(request: httpx.Request) -> httpx.Response:
        port = request.url.port or 0
        if port == 9003:
            return httpx.Response(500)
        cpu[port] += 0.5  # half a CPU-second per bucket
        return httpx.Response(200, text=EXPOSITION.format(cpu=cpu[port], rss=50 * 2**20))

    registry = Registry()
    registry.replace((
        ServiceSpec(1, "orders", "/health", "/metrics", 1, True,
                    (InstanceSpec(1, 1, "http://127.0.0.1:9001"), InstanceSpec(2, 1, "http://127.0.0.1:9002"))),
        ServiceSpec(2, "broken", "/health", "/metrics", 1, False, (InstanceSpec(3, 2, "http://127.0.0.1:9003"),)),
        ServiceSpec(3, "plain", "/health", None, 1, False, (InstanceSpec(4, 3, "http://127.0.0.1:9004"),)),
    ))
    traffic = TrafficRecorder()
    writer = Collect()
    collector = Collector(registry, httpx.AsyncClient(transport=httpx.MockTransport(handler)), writer,  # type: ignore[arg-type]
                          traffic,
                          clock, bucket_seconds=5.0, timeout=1.0)
    first = {r.service_name: r for r in asyncio.run(collector.run_once())}
    assert first["orders"].cpu_percent is None  # one scrape is no rate
    assert first["orders"].memory_mb == pytest.approx(100.0)
    clock.advance(5.0)
    for ms, ok in [(10.0, True), (20.0, True), (30.0, False)]:
        traffic.begin("orders")
        traffic.record("orders", ms, ok)
    rows = {r.service_name: r for r in asyncio.run(collector.run_once())}
    assert rows["orders"].cpu_percent == pytest.approx(10.0)
    assert rows["orders"].instances_scraped == 2
    assert (rows["orders"].request_count, rows["orders"].error_count) == (3, 1)
    assert rows["orders"].latency_avg_ms == pytest.approx(20.0)
    assert rows["orders"].latency_p50_ms == 20.0 and rows["orders"].latency_p99_ms == 30.0
    for name in ("broken", "plain"):
        r = rows[name]
        assert (r.cpu_percent, r.memory_mb, r.latency_avg_ms, r.request_count, r.instances_scraped) == (
            None, None, None, 0, 0
        )
    assert len(writer.events) == 6
    assert traffic.in_flight("orders") == 0


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99), percentile(values, 100)) == (
        50.0, 95.0, 99.0, 100.0
    )
    with pytest.raises(ValueError):
        percentile([], 50)
