"""Prometheus exposition of the engine: its own work (API, jobs, DB writes) and, read live, what it observes.

Telemetry owns one CollectorRegistry per runtime (never the process-wide default: tests build many runtimes in
one process). Instruments the engine updates itself are prometheus_client counters and histograms; everything
the engine already keeps (health, breakers, routed traffic, the writer, load tests, simulations) is read at
scrape time by EngineCollector, so the hot paths carry no Prometheus objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy.exc import SQLAlchemyError

from contract.states import HealthState
from engine.health.checker import ScheduleCounts, aggregate
from engine.traffic.breaker import BreakerState
from engine.traffic.recorder import LATENCY_BOUNDS_MS, RoutedTotals

if TYPE_CHECKING:
    from engine.chaos.simulations import ChaosManager
    from engine.fleet.registry import Registry
    from engine.loadtest.manager import LoadTestManager
    from engine.store.writer import BatchWriter
    from engine.traffic.breakers import BreakerBook
    from engine.traffic.recorder import TrafficRecorder

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS_S",
    "UNMATCHED_ROUTE",
    "EngineCollector",
    "Observed",
    "Telemetry",
]

# text format 0.0.4, which every Prometheus reads (the library's CONTENT_TYPE_LATEST now names 1.0.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# the routed-traffic bounds in seconds, so every latency histogram the engine exports shares one scale
DURATION_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000.0 for ms in LATENCY_BOUNDS_MS)
JOB_BUCKETS_S: tuple[float, ...] = (*DURATION_BUCKETS_S, 30.0, 60.0)
UNMATCHED_ROUTE = "<unmatched>"
# any other method token a client sends is folded into one label value: label cardinality stays bounded
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEALTH_STATES = (HealthState.HEALTHY, HealthState.DEGRADED, HealthState.UNHEALTHY, HealthState.UNKNOWN)
_SERVING = frozenset({HealthState.HEALTHY, HealthState.DEGRADED})
_QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


class Observed(Protocol):
    """What the live collector reads of an engine (the Runtime satisfies it)."""

    @property
    def registry(self) -> Registry:
        """The registered services and instances."""
        ...

    @property
    def traffic(self) -> TrafficRecorder:
        """Routed traffic counters."""
        ...

    @property
    def breakers(self) -> BreakerBook:
        """The circuit breakers."""
        ...

    @property
    def writer(self) -> BatchWriter:
        """The batch writer."""
        ...

    @property
    def loadtests(self) -> LoadTestManager:
        """Load tests."""
        ...

    @property
    def chaos(self) -> ChaosManager:
        """Failure simulations."""
        ...

    def health_of(self, instance_id: int) -> HealthState:
        """An instance's damped health."""
        ...

    def health_schedule(self) -> ScheduleCounts:
        """What the phased health-check schedule did so far."""
        ...


class Telemetry:
    """The engine's Prometheus registry: its own instruments plus the live collector; render() is a scrape."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.api_requests = Counter("mm_api_requests", "REST API requests answered, by route template and status",
                                    ["method", "route", "status"], registry=r)
        self.api_duration = Histogram("mm_api_request_duration_seconds", "REST API request handling time",
                                      ["method", "route"], buckets=DURATION_BUCKETS_S, registry=r)
        self.job_duration = Histogram("mm_job_duration_seconds", "Scheduled job run time (failed runs included)",
                                      ["job"], buckets=JOB_BUCKETS_S, registry=r)
        self.job_failures = Counter("mm_job_failures", "Scheduled job runs that raised", ["job"], registry=r)
        self.db_write = Histogram("mm_db_write_seconds", "Batch writer: time to commit one batch to PostgreSQL",
                                  buckets=DURATION_BUCKETS_S, registry=r)
        Gauge("mm_build_info", "The engine's version (always 1)", ["version"], registry=r).labels(version).set(1)
        ProcessCollector(registry=r)

    def watch(self, engine: Observed) -> None:
        """Export, read at each scrape, what the engine observes (health, breakers, traffic, writer, runs)."""
        self.registry.register(EngineCollector(engine))

    def observe_api(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered API request; route is the URL rule template (UNMATCHED_ROUTE when none matched)."""
        method = method if method in _METHODS else "OTHER"
        self.api_requests.labels(method, route, str(status)).inc()
        self.api_duration.labels(method, route).observe(seconds)

    def observe_job(self, job: str, seconds: float, ok: bool) -> None:
        """One scheduled job run (build_scheduler's observe)."""
        self.job_duration.labels(job).observe(seconds)
        failures = self.job_failures.labels(job)  # made on the first run: the series is 0 before any failure
        if not ok:
            failures.inc()

    def observe_db_write(self, seconds: float) -> None:
        """One committed writer batch (BatchWriter's on_commit)."""
        self.db_write.observe(seconds)

    def render(self) -> bytes:
        """A scrape: the text exposition format 0.0.4 (content type CONTENT_TYPE)."""
        return generate_latest(self.registry)


class EngineCollector:
    """Reads the engine's live state at scrape time (a prometheus_client custom collector)."""

    def __init__(self, engine: Observed) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        """Every family."""
        yield from self._health()
        yield from self._schedule()
        yield from self._breakers()
        yield from self._routed()
        yield from self._writer()
        yield from self._loadtest()
        yield GaugeMetricFamily("mm_active_simulations", "Failure simulations in effect now",
                                value=self._engine.chaos.active_count())

    def _health(self) -> Iterator[Metric]:
        labels = ["service", "instance_id", "url"]  # not `instance`: Prometheus's own target label
        state = GaugeMetricFamily("mm_instance_health_state",
                                  "Instance health, one-hot over healthy|degraded|unhealthy|unknown",
                                  labels=[*labels, "state"])
        up = GaugeMetricFamily("mm_instance_up", "1 when the instance serves (healthy or degraded), else 0; "
                               "absent while its health is unknown", labels=labels)
        service_state = GaugeMetricFamily("mm_service_health_state",
                                          "Service health (its instances aggregated), one-hot over "
                                          "healthy|degraded|unhealthy|unknown", labels=["service", "state"])
        healthy = GaugeMetricFamily("mm_service_healthy_instances", "Instances of the service that are healthy",
                                    labels=["service"])
        instances = GaugeMetricFamily("mm_service_instances", "Instances registered for the service",
                                      labels=["service"])
        for spec in self._engine.registry.services():
            states = []
            for inst in spec.instances:
                key = [spec.name, str(inst.id), inst.url]
                now = self._engine.health_of(inst.id)
                states.append(now)
                for s in _HEALTH_STATES:
                    state.add_metric([*key, s.value], 1.0 if s is now else 0.0)
                if now is not HealthState.UNKNOWN:
                    up.add_metric(key, 1.0 if now in _SERVING else 0.0)
            overall = aggregate(states)
            for s in _HEALTH_STATES:
                service_state.add_metric([spec.name, s.value], 1.0 if s is overall else 0.0)
            healthy.add_metric([spec.name], float(states.count(HealthState.HEALTHY)))
            instances.add_metric([spec.name], float(len(states)))
        yield state
        yield up
        yield service_state
        yield healthy
        yield instances

    def _schedule(self) -> Iterator[Metric]:
        c = self._engine.health_schedule()
        yield CounterMetricFamily("mm_health_checks_started", "Health checks started by the phased schedule",
                                  value=c.started)
        yield CounterMetricFamily("mm_health_checks_late", "Health checks started more than 250 ms (or a quarter "
                                  "interval) after their due time", value=c.late)
        yield CounterMetricFamily("mm_health_checks_skipped", "Health checks due but not started within their "
                                  "interval (the previous one still running, or no free slot)", value=c.skipped)
        yield CounterMetricFamily("mm_health_intervals_overrun", "Health-check intervals in which a check was late "
                                  "or skipped: the interval was not kept", value=c.overrun_intervals)
        yield GaugeMetricFamily("mm_health_checks_in_flight", "Health checks sent and not yet answered",
                                value=c.in_flight)

    def _breakers(self) -> Iterator[Metric]:
        book = self._engine.breakers
        family = GaugeMetricFamily("mm_circuit_breaker_state",
                                   "Circuit breaker state per service, one-hot over CLOSED|HALF_OPEN|OPEN",
                                   labels=["service", "state"])
        for spec in self._engine.registry.services():
            now = book.get(spec.name).state  # a service routed to never yet has a fresh CLOSED breaker
            for s in BreakerState:
                family.add_metric([spec.name, s.value], 1.0 if s is now else 0.0)
        yield family

    def _routed(self) -> Iterator[Metric]:
        totals = self._engine.traffic.totals()
        requests = CounterMetricFamily("mm_routed_requests", "Requests the engine routed (proxy and load tests; "
                                       "each attempt), by outcome", labels=["service", "outcome"])
        duration = HistogramMetricFamily("mm_routed_request_duration_seconds",
                                         "Routed request latency, send to answer", labels=["service"])
        in_flight = GaugeMetricFamily("mm_routed_in_flight", "Routed requests sent and not yet answered",
                                      labels=["service"])
        for service, t in sorted(totals.items()):
            requests.add_metric([service, "ok"], t.ok)
            requests.add_metric([service, "error"], t.errors)
            duration.add_metric([service], _buckets(t), t.sum_ms / 1000.0)
        for spec in self._engine.registry.services():
            in_flight.add_metric([spec.name], self._engine.traffic.in_flight(spec.name))
        yield requests
        yield duration
        yield in_flight

    def _writer(self) -> Iterator[Metric]:
        w = self._engine.writer.status()
        yield GaugeMetricFamily("mm_writer_pending", "Events buffered for the database", value=w.pending)
        yield CounterMetricFamily("mm_writer_written", "Events written to the database", value=w.written)
        yield CounterMetricFamily("mm_writer_dropped", "Events dropped: buffer full while the database was away",
                                  value=w.dropped)
        yield CounterMetricFamily("mm_writer_rejected", "Rows the database refused (constraint or data errors)",
                                  value=w.rejected)
        yield GaugeMetricFamily("mm_writer_database_ok", "1 while the writer's last attempt reached the database",
                                value=1.0 if w.database_ok else 0.0)

    def _loadtest(self) -> Iterator[Metric]:
        try:
            # the live run from memory; the latest stored one otherwise
            status = self._engine.loadtests.status().model_dump(mode="json", by_alias=True)
        except SQLAlchemyError:
            return  # no run in this process and the database is away: unknown, so no samples
        running = status.get("status") == "running"
        yield GaugeMetricFamily("mm_loadtest_running", "1 while a load test runs", value=1.0 if running else 0.0)
        if running:
            yield from _running_test(status)


def _buckets(t: RoutedTotals) -> list[tuple[str, float]]:
    le = [*map(floatToGoString, DURATION_BUCKETS_S), "+Inf"]
    return list(zip(le, map(float, t.bucket_counts), strict=True))


def _running_test(status: dict[str, Any]) -> Iterator[Metric]:
    """The figures of the run in progress; a figure not known yet has no sample (never an invented zero)."""
    gauges = (
        ("mm_loadtest_target_rps", "Requests per second the running load test schedules", "requestsPerSecond"),
        ("mm_loadtest_achieved_rps", "Requests per second the running load test sent, averaged over the run",
         "achievedRps"),
        ("mm_loadtest_in_flight", "Load-test requests sent and not yet answered", "inFlight"),
        ("mm_loadtest_backlog", "Load-test requests due and waiting for a free user", "backlog"),
    )
    for name, doc, key in gauges:
        value = status.get(key)
        if value is not None:
            yield GaugeMetricFamily(name, doc, value=float(value))
    requests = GaugeMetricFamily("mm_loadtest_requests", "Requests of the running load test so far, by outcome",
                                 labels=["outcome"])
    for outcome, key in (("sent", "sent"), ("ok", "successfulRequests"), ("failed", "failedRequests"),
                         ("dropped", "droppedRequests")):
        value = status.get(key)
        if value is not None:
            requests.add_metric([outcome], float(value))
    yield requests
    latency = GaugeMetricFamily("mm_loadtest_latency_seconds", "Latency percentiles of the running load test so far "
                                "(corrected: from the scheduled time; uncorrected: from the send)",
                                labels=["kind", "quantile"])
    for kind in ("corrected", "uncorrected"):
        figures = (status.get("latency") or {}).get(kind) or {}
        for quantile, key in _QUANTILES:
            ms = figures.get(key)
            if ms is not None:
                latency.add_metric([kind, quantile], ms / 1000.0)
    yield latency
