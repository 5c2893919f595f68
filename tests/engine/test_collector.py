"""Collection: Prometheus parsing, CPU rate, one row per service per bucket with NULL for unknown (scrapes of real
servers on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.collector import Collector, ProcessSample, cpu_percent, parse_process_metrics
from engine.security.ssrf import Policy
from engine.stats import percentile
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.wire import HttpClient

EXPOSITION = """# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
"""


LOOPBACK = Policy.instances(("127.0.0.0/8",))


async def metrics_servers(answer: Callable[[int], tuple[int, bytes]], n: int) -> list[tuple[asyncio.Server, int]]:
    """n keep-alive HTTP/1.1 servers on free loopback ports; answer(k) is server k's (status, body) (k from 0)."""

    def handler(k: int):
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                for _ in range(1000):
                    await reader.readuntil(b"\r\n\r\n")
                    status, body = answer(k)
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()
        return serve

    out = []
    for k in range(n):
        server = await asyncio.start_server(handler(k), "127.0.0.1", 0)
        out.append((server, server.sockets[0].getsockname()[1]))
    return out


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
    cpu = [10.0, 20.0]

    def answer(k: int) -> tuple[int, bytes]:
        if k == 2:
            return 500, b"no"
        cpu[k] += 0.5  # half a CPU-second per bucket
        return 200, EXPOSITION.format(cpu=cpu[k], rss=50 * 2**20).encode()

    traffic = TrafficRecorder()
    writer = Collect()

    async def scenario():
        servers = await metrics_servers(answer, 3)
        url = [f"http://127.0.0.1:{port}" for _, port in servers]
        registry = Registry()
        registry.replace((
            ServiceSpec(1, "orders", "/health", "/metrics", 1, True,
                        (InstanceSpec(1, 1, url[0]), InstanceSpec(2, 1, url[1]))),
            ServiceSpec(2, "broken", "/health", "/metrics", 1, False, (InstanceSpec(3, 2, url[2]),)),
            ServiceSpec(3, "plain", "/health", None, 1, False, (InstanceSpec(4, 3, "http://127.0.0.1:9"),)),
        ))
        client = HttpClient(LOOPBACK)
        collector = Collector(registry, client, writer, traffic, clock,  # type: ignore[arg-type]
                              bucket_seconds=5.0, timeout=1.0)
        try:
            first = {r.service_name: r for r in await collector.run_once()}
            clock.advance(5.0)
            for ms, ok in [(10.0, True), (20.0, True), (30.0, False)]:
                traffic.begin("orders")
                traffic.record("orders", ms, ok)
            return first, {r.service_name: r for r in await collector.run_once()}, collector.failures
        finally:
            await client.close()
            for server, _ in servers:
                server.close()

    first, rows, failures = asyncio.run(scenario())
    assert first["orders"].cpu_percent is None  # one scrape is no rate
    assert first["orders"].memory_mb == pytest.approx(100.0)
    assert failures == {3: "metrics answered HTTP 500"}
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
