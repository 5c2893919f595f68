"""Metrics collection: one row per service per bucket, CPU and memory scraped from Prometheus (on the engine's
HTTP client, engine.traffic.wire: the checks' kept-alive connections serve the scrapes too)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from contract.events import MetricEvent
from engine.clock import Clock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.probe import FetchError, failure_text, prepared_get
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.wire import HttpClient, Prepared, ResponseTooLarge

__all__ = ["SCRAPE_BODY_BYTES", "Collector", "ProcessSample", "parse_process_metrics"]

log = event_logger("metrics")
CPU = "process_cpu_seconds_total"
RSS = "process_resident_memory_bytes"
# a process's metrics page is a few kB; past this a scrape fails unread rather than parse an endless answer
SCRAPE_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ProcessSample:
    """What one scrape said about the instance's process, at monotonic time `at`."""

    at: float
    cpu_seconds: float | None
    rss_bytes: float | None


def parse_process_metrics(text: str, at: float) -> ProcessSample:
    """Pick the two process metrics out of a Prometheus text exposition."""
    cpu: float | None = None
    rss: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == CPU:
                cpu = float(sample.value)
            elif sample.name == RSS:
                rss = float(sample.value)
    return ProcessSample(at, cpu, rss)


def cpu_percent(previous: ProcessSample | None, current: ProcessSample) -> float | None:
    """Rate of process_cpu_seconds_total as a percentage of one core; None without two good samples."""
    if previous is None or previous.cpu_seconds is None or current.cpu_seconds is None:
        return None
    elapsed = current.at - previous.at
    used = current.cpu_seconds - previous.cpu_seconds
    if elapsed <= 0 or used < 0:  # a counter reset means the process restarted
        return None
    return used / elapsed * 100.0


class Collector:
    """Each call to run_once closes one bucket: traffic counters + a scrape of every instance (at most
    `concurrency` at a time)."""

    def __init__(
        self,
        registry: Registry,
        client: HttpClient,
        writer: BatchWriter,
        traffic: TrafficRecorder,
        clock: Clock,
        *,
        bucket_seconds: float,
        timeout: float,
        concurrency: int = 100,
    ) -> None:
        self._registry = registry
        self._client = client
        self._writer = writer
        self._traffic = traffic
        self._clock = clock
        self._bucket = bucket_seconds
        self.latest: dict[str, MetricEvent] = {}  # the newest row per service (the autoscaler reads it)
        self._timeout = timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._prepared: dict[str, Prepared] = {}
        self._last: dict[int, ProcessSample] = {}
        self.failures: dict[int, str] = {}  # instance id -> why its last scrape failed (absent: it succeeded)

    async def scrape(self, service: ServiceSpec, instance: InstanceSpec) -> ProcessSample | None:
        """Fetch and parse one instance's metrics; None when it fails (why: `failures[instance.id]`, logged when it
        changes)."""
        assert service.metrics_path is not None
        url = instance.url.rstrip("/") + service.metrics_path
        try:
            async with self._limit:
                text = await self._fetch(url)
            sample = parse_process_metrics(text, self._clock.monotonic())
        except ResponseTooLarge as exc:
            self._failed(service, instance, f"metrics body larger than {exc.limit} bytes")
        except OSError as exc:  # TimeoutError, the SSRF policy's refusal, a failed connection or answer
            self._failed(service, instance, failure_text(exc, self._timeout))
        except FetchError as exc:
            self._failed(service, instance, str(exc))
        except ValueError as exc:
            self._failed(service, instance, f"unreadable metrics: {exc}"[:300])
        else:
            self.failures.pop(instance.id, None)
            return sample
        return None

    async def _fetch(self, url: str) -> str:
        prepared = prepared_get(url, self._prepared)
        response = await self._client.request("GET", prepared, timeout=self._timeout, max_body=SCRAPE_BODY_BYTES)
        if not 200 <= response.status < 300:
            raise FetchError(f"metrics answered HTTP {response.status}")
        return response.body.decode("utf-8", errors="replace")

    def _failed(self, service: ServiceSpec, instance: InstanceSpec, reason: str) -> None:
        if self.failures.get(instance.id) != reason:
            log.warning("scraping %s of %s failed: %s", instance.url, service.name, reason,
                        extra={"meta": {"service": service.name, "instance": instance.url, "error": reason}})
        self.failures[instance.id] = reason

    async def run_once(self) -> list[MetricEvent]:
        """Close the bucket that ends now; submit and return its rows."""
        services = self._registry.services()
        scrapes = [(s, i) for s in services if s.metrics_path for i in s.instances]
        samples = await asyncio.gather(*(self.scrape(s, i) for s, i in scrapes))
        for gone in set(self.failures) - {i.id for _, i in scrapes}:
            del self.failures[gone]
        cpu: dict[int, list[float]] = {}
        rss: dict[int, list[float]] = {}
        scraped: dict[int, int] = {}
        for (service, instance), sample in zip(scrapes, samples, strict=True):
            if sample is None:
                self._last.pop(instance.id, None)
                continue
            scraped[service.id] = scraped.get(service.id, 0) + 1
            percent = cpu_percent(self._last.get(instance.id), sample)
            self._last[instance.id] = sample
            if percent is not None:
                cpu.setdefault(service.id, []).append(percent)
            if sample.rss_bytes is not None:
                rss.setdefault(service.id, []).append(sample.rss_bytes)
        now = self._clock.now()
        rows = []
        for service in services:
            traffic = self._traffic.drain(service.name)
            cpus = cpu.get(service.id)
            mems = rss.get(service.id)
            row = MetricEvent(
                service_name=service.name,
                timestamp=now,
                bucket_seconds=self._bucket,
                request_count=traffic.requests,
                error_count=traffic.errors,
                latency_avg_ms=traffic.avg_ms,
                latency_p50_ms=traffic.p50_ms,
                latency_p95_ms=traffic.p95_ms,
                latency_p99_ms=traffic.p99_ms,
                # CPU: mean over instances (HPA utilisation); memory: total resident MB of the service
                cpu_percent=sum(cpus) / len(cpus) if cpus else None,
                memory_mb=sum(mems) / 2**20 if mems else None,
                instances_scraped=scraped.get(service.id, 0),
            )
            self._writer.submit(row)
            self.latest[service.name] = row
            rows.append(row)
        return rows
