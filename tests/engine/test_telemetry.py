"""Telemetry: its own instruments, the live collector over an opened runtime and over fakes, the routed totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from contract.events import LogEvent
from contract.loadtest import LoadTestOut
from contract.states import HealthState
from engine import VERSION
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import ScheduleCounts
from engine.telemetry.exporter import UNMATCHED_ROUTE, Telemetry
from engine.traffic.breaker import BreakerState
from engine.traffic.recorder import LATENCY_BOUNDS_MS, TrafficRecorder


def scrape(t: Telemetry) -> dict[str, Any]:
    """Families by name, parsed the way Prometheus's own client library parses a scrape."""
    return {f.name: f for f in text_string_to_metric_families(t.render().decode())}


def value(families: dict[str, Any], sample: str, **labels: str) -> Any:
    """The value of the one sample with that name and exactly these labels (le excepted for buckets), or None."""
    found = [s.value for f in families.values() for s in f.samples if s.name == sample and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else None


def buckets(families: dict[str, Any], family: str, **labels: str) -> dict[str, float]:
    """le -> cumulative count of one histogram series."""
    return {s.labels["le"]: s.value for s in families[family].samples if s.name == family + "_bucket"
            and {k: v for k, v in s.labels.items() if k != "le"} == labels}


FLEET = (
    ServiceSpec(1, "orders", "/health", None, 1, False,
                (InstanceSpec(11, 1, "http://127.0.0.1:7001"), InstanceSpec(12, 1, "http://127.0.0.1:7002"))),
    ServiceSpec(2, "payments", "/health", None, 1, False,
                (InstanceSpec(21, 2, "http://127.0.0.1:7003"), InstanceSpec(22, 2, "http://127.0.0.1:7004"))),
)
STATES = {11: HealthState.HEALTHY, 12: HealthState.DEGRADED, 21: HealthState.UNHEALTHY}  # 22: never checked


class FakeHealth:
    counts = ScheduleCounts()

    def state_of(self, instance_id: int) -> HealthState:
        return STATES.get(instance_id, HealthState.UNKNOWN)

    def close(self) -> None:
        """The runtime's stop closes its checker: nothing was counted here."""


def test_telemetry_watching_nothing_exports_its_own_metrics_and_no_invented_parts():
    fams = scrape(Telemetry(VERSION))  # no engine watched: no health, traffic, writer, breakers, runs
    assert value(fams, "mm_build_info", version=VERSION) == 1.0
    assert value(fams, "process_resident_memory_bytes") > 1e6
    assert "mm_instance_health_state" not in fams and "mm_routed_requests" not in fams
    for absent in ("mm_writer_pending", "mm_circuit_breaker_state", "mm_loadtest_running", "mm_active_simulations"):
        assert absent not in fams


def test_another_telemetry_has_its_own_registry():
    a, b = Telemetry(VERSION), Telemetry(VERSION)
    a.observe_db_write(0.01)
    assert value(scrape(a), "mm_db_write_seconds_count") == 1.0
    assert value(scrape(b), "mm_db_write_seconds_count") == 0.0


def test_api_job_and_db_write_observations():
    t = Telemetry(VERSION)
    t.observe_api("GET", "/api/services/<int:service_id>", 200, 0.003)
    t.observe_api("GET", "/api/services/<int:service_id>", 404, 0.002)
    t.observe_api("GET", "/api/services/<int:service_id>", 200, 0.004)
    t.observe_api("BREW", UNMATCHED_ROUTE, 404, 0.5)  # any method token a client invents is one label value
    t.observe_job("health-check", 0.02, True)
    t.observe_job("collect-metrics", 0.2, False)
    t.observe_job("collect-metrics", 0.3, True)
    t.observe_db_write(0.004)
    t.observe_db_write(2.0)
    fams = scrape(t)
    route = "/api/services/<int:service_id>"
    assert value(fams, "mm_api_requests_total", method="GET", route=route, status="200") == 2.0
    assert value(fams, "mm_api_requests_total", method="GET", route=route, status="404") == 1.0
    assert value(fams, "mm_api_requests_total", method="OTHER", route=UNMATCHED_ROUTE, status="404") == 1.0
    b = buckets(fams, "mm_api_request_duration_seconds", method="GET", route=route)
    assert (b["0.001"], b["0.0025"], b["0.005"], b["+Inf"]) == (0.0, 1.0, 3.0, 3.0)
    assert value(fams, "mm_api_request_duration_seconds_sum", method="GET", route=route) == pytest.approx(0.009)
    assert value(fams, "mm_job_duration_seconds_count", job="collect-metrics") == 2.0
    assert value(fams, "mm_job_duration_seconds_sum", job="collect-metrics") == pytest.approx(0.5)
    assert value(fams, "mm_job_failures_total", job="collect-metrics") == 1.0
    assert value(fams, "mm_job_failures_total", job="health-check") == 0.0  # exists before its first failure
    db = buckets(fams, "mm_db_write_seconds")
    assert (db["0.005"], db["1.0"], db["2.5"], db["+Inf"]) == (1.0, 1.0, 2.0, 2.0)


def test_routed_totals_are_cumulative_le_buckets_that_drain_does_not_reset():
    traffic = TrafficRecorder()
    for latency, ok in ((0.4, True), (1.0, True), (30.0, False), (20_000.0, True)):
        traffic.begin("orders")
        traffic.record("orders", latency, ok)
    assert traffic.drain("orders").requests == 4
    t = traffic.totals()["orders"]
    assert (t.ok, t.errors, t.count, t.sum_ms) == (3, 1, 4, 20_031.4)
    by_bound = dict(zip((*LATENCY_BOUNDS_MS, float("inf")), t.bucket_counts, strict=True))
    assert by_bound[1.0] == 2  # 1.0 ms is in the le=1 ms bucket: bounds are inclusive
    assert by_bound[25.0] == 2 and by_bound[50.0] == 3 and by_bound[10_000.0] == 3 and by_bound[float("inf")] == 4


def test_opened_runtime_health_breakers_routed_traffic_writer(runtime):
    runtime.registry.replace(FLEET)
    runtime.health = FakeHealth()  # type: ignore[assignment]
    for _ in range(runtime.breakers.default.failure_threshold):
        runtime.breakers.get("payments").record_failure("test")
    for latency, ok in ((0.5, True), (3.0, True), (7.0, False)):
        runtime.traffic.begin("orders")
        runtime.traffic.record("orders", latency, ok)
    runtime.traffic.begin("payments")  # in flight: sent, not answered
    runtime.writer.submit(LogEvent(datetime.now(UTC), "INFO", "test", "one row"))
    runtime.writer.flush()
    fams = scrape(runtime.telemetry)

    expectations = {11: "healthy", 12: "degraded", 21: "unhealthy", 22: "unknown"}
    for spec in FLEET:
        for inst in spec.instances:
            expected = expectations[inst.id]
            key = {"service": spec.name, "instance_id": str(inst.id), "url": inst.url}
            hot = {s: value(fams, "mm_instance_health_state", **key, state=s)
                   for s in ("healthy", "degraded", "unhealthy", "unknown")}
            assert hot == {s: (1.0 if s == expected else 0.0) for s in hot}
            up = value(fams, "mm_instance_up", **key)
            assert up == {"healthy": 1.0, "degraded": 1.0, "unhealthy": 0.0, "unknown": None}[expected]

    for service, overall, healthy in (("orders", "degraded", 1.0), ("payments", "unhealthy", 0.0)):
        hot = {s: value(fams, "mm_service_health_state", service=service, state=s)
               for s in ("healthy", "degraded", "unhealthy", "unknown")}
        assert hot == {s: (1.0 if s == overall else 0.0) for s in hot}
        assert value(fams, "mm_service_healthy_instances", service=service) == healthy
        assert value(fams, "mm_service_instances", service=service) == 2.0

    for service, breaker in (("orders", BreakerState.CLOSED), ("payments", BreakerState.OPEN)):
        hot = {s.value: value(fams, "mm_circuit_breaker_state", service=service, state=s.value) for s in BreakerState}
        assert hot == {s.value: (1.0 if s is breaker else 0.0) for s in BreakerState}

    assert value(fams, "mm_routed_requests_total", service="orders", outcome="ok") == 2.0
    assert value(fams, "mm_routed_requests_total", service="orders", outcome="error") == 1.0
    b = buckets(fams, "mm_routed_request_duration_seconds", service="orders")
    assert (b["0.001"], b["0.0025"], b["0.005"], b["0.01"], b["+Inf"]) == (1.0, 1.0, 2.0, 3.0, 3.0)
    assert value(fams, "mm_routed_request_duration_seconds_count", service="orders") == 3.0
    assert value(fams, "mm_routed_request_duration_seconds_sum", service="orders") == pytest.approx(0.0105)
    assert value(fams, "mm_routed_in_flight", service="payments") == 1.0
    assert value(fams, "mm_routed_in_flight", service="orders") == 0.0

    w = runtime.writer.status()
    assert w.written >= 1
    assert value(fams, "mm_writer_written_total") == float(w.written)
    assert value(fams, "mm_writer_dropped_total") == 0.0 and value(fams, "mm_writer_database_ok") == 1.0
    assert value(fams, "mm_db_write_seconds_count") >= 1.0  # the runtime hands the writer observe_db_write
    assert value(fams, "mm_active_simulations") == 0.0
    assert value(fams, "mm_loadtest_running") == 0.0 and "mm_loadtest_target_rps" not in fams


NO_LATENCY = dict.fromkeys(("p50", "p90", "p95", "p99", "p999", "max", "mean"))
RUNNING = {
    "id": 7, "status": "running", "requestsPerSecond": 200.0, "achievedRps": 187.5, "inFlight": 4, "backlog": 0,
    "sent": 375, "successfulRequests": 360, "failedRequests": 11, "droppedRequests": 2,
    "latency": {"corrected": {**NO_LATENCY, "p50": 1.5, "p95": 9.0}, "uncorrected": NO_LATENCY},
}


@dataclass
class FakeLoadTests:
    answer: dict[str, Any] | None

    def status(self) -> LoadTestOut:
        if self.answer is None:
            raise OperationalError("SELECT", {}, Exception("database is away"))
        return LoadTestOut.model_validate(self.answer)


class FakeWriter:
    def status(self) -> SimpleNamespace:  # the WriterStatus fields the collector reads
        return SimpleNamespace(database_ok=False, pending=42, written=1000, dropped=17, rejected=3)


class FakeChaos:
    def active_count(self) -> int:
        return 2


class FakeEngine:
    """What the collector reads, without a database."""

    def __init__(self, loadtests: FakeLoadTests) -> None:
        self.registry = Registry()
        self.traffic = TrafficRecorder()
        self.breakers = None
        self.writer = FakeWriter()
        self.loadtests = loadtests
        self.chaos = FakeChaos()

    def health_of(self, instance_id: int) -> HealthState:
        return HealthState.UNKNOWN

    def health_schedule(self) -> ScheduleCounts:
        return ScheduleCounts()


def over(engine: Any) -> Telemetry:
    """Telemetry over a fake engine (structurally what Observed asks for)."""
    telemetry = Telemetry("9.9")
    telemetry.watch(engine)
    return telemetry


def test_running_load_test_figures_and_no_invented_latencies():
    fams = scrape(over(FakeEngine(FakeLoadTests(RUNNING))))
    assert value(fams, "mm_build_info", version="9.9") == 1.0
    assert value(fams, "mm_loadtest_running") == 1.0
    assert value(fams, "mm_loadtest_target_rps") == 200.0 and value(fams, "mm_loadtest_achieved_rps") == 187.5
    assert value(fams, "mm_loadtest_in_flight") == 4.0 and value(fams, "mm_loadtest_backlog") == 0.0
    assert {s.labels["outcome"]: s.value for s in fams["mm_loadtest_requests"].samples} == {
        "sent": 375.0, "ok": 360.0, "failed": 11.0, "dropped": 2.0}
    latencies = {(s.labels["kind"], s.labels["quantile"]): s.value for s in fams["mm_loadtest_latency_seconds"].samples}
    assert latencies == {("corrected", "0.5"): 0.0015, ("corrected", "0.95"): 0.009}  # unknown ones: no sample
    assert value(fams, "mm_writer_pending") == 42.0 and value(fams, "mm_writer_dropped_total") == 17.0
    assert value(fams, "mm_writer_rejected_total") == 3.0
    assert value(fams, "mm_writer_database_ok") == 0.0
    assert value(fams, "mm_active_simulations") == 2.0


def test_a_run_that_has_not_measured_yet_exports_no_rate():
    fams = scrape(over(FakeEngine(FakeLoadTests({**RUNNING, "achievedRps": None}))))
    assert "mm_loadtest_achieved_rps" not in fams and value(fams, "mm_loadtest_target_rps") == 200.0


@pytest.mark.parametrize("answer", [{"status": "idle"}, {**RUNNING, "status": "completed"}, None],
                         ids=["idle", "finished", "database-away"])
def test_no_running_load_test(answer):
    fams = scrape(over(FakeEngine(FakeLoadTests(answer))))
    assert value(fams, "mm_loadtest_running") == (None if answer is None else 0.0)
    assert not [name for name in fams if name.startswith("mm_loadtest_") and name != "mm_loadtest_running"]
