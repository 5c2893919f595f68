"""GET /metrics over a started engine with real traffic to a real demo process; the Grafana dashboard's names.

A started runtime (engine loop and jobs, no HTTP server) behind the Flask test client, as in test_loadtests.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine import VERSION
from engine.api import create_app
from engine.clock import FakeClock
from engine.runtime import Runtime
from tests.api.conftest import demo_process, started_client
from tests.conftest import wait_for

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
PROXIED = 7


@pytest.fixture(scope="module")
def target():
    with demo_process(seed=8) as instance:
        yield instance


@pytest.fixture
def live(clean_db, settings, target):
    with started_client(settings, target.url, max_rps=200, max_duration=30, max_users=10) as pair:
        yield pair


def scrape(client: Any) -> dict[str, Any]:
    """GET /metrics without a token, checked and parsed the way Prometheus's client library parses it."""
    r = client.application.test_client().get("/metrics")  # a client of the same app, without the operator's token
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {f.name: f for f in text_string_to_metric_families(r.get_data(as_text=True))}


def value(families: dict[str, Any], sample: str, **labels: str) -> Any:
    """The one sample with that name and exactly these labels, or None."""
    found = [s.value for f in families.values() for s in f.samples if s.name == sample and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else None


def routed(rt: Any) -> int:
    totals = rt.traffic.totals().get("orders")
    return totals.ok + totals.errors if totals else 0


def assert_histograms_are_consistent(families: dict[str, Any]) -> int:
    """Every histogram series: buckets ascending by le and cumulative, +Inf equal to _count. Returns the series."""
    series = 0
    for family in families.values():
        if family.type != "histogram":
            continue
        by_key: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        counts: dict[tuple[tuple[str, str], ...], float] = {}
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            if s.name.endswith("_bucket"):
                by_key.setdefault(key, []).append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                counts[key] = s.value
        for key, bucket_list in by_key.items():
            les = [le for le, _ in bucket_list]
            values = [v for _, v in bucket_list]
            assert les == sorted(les) and les[-1] == float("inf"), (family.name, key)
            assert values == sorted(values), f"{family.name} {key}: buckets are not cumulative: {values}"
            assert values[-1] == counts[key], (family.name, key)
            series += 1
    return series


def test_metrics_after_real_traffic(live):
    rt, c = live
    for _ in range(PROXIED):
        r = c.get("/proxy/orders/health")
        assert r.status_code == 200, r.data
    assert c.get("/api/services").status_code == 200
    assert c.get("/api/services").status_code == 200
    assert c.get("/api/services/9999").status_code == 404
    assert c.get("/no/such/route").status_code == 404
    # a fast success is recorded on the loop's next turn, after its answer was handed back
    assert wait_for(lambda: routed(rt) == PROXIED, 5) is True
    assert wait_for(lambda: rt.writer.flush() >= 0 and rt.writer.status().written > 0, 5)
    families = scrape(c)

    api = "mm_api_requests_total"
    assert value(families, api, method="GET", route="/api/services", status="200") == 2.0
    assert value(families, api, method="GET", route="/api/services/<int:service_id>", status="404") == 1.0
    assert value(families, api, method="GET", route="<unmatched>", status="404") == 1.0
    proxy_route = "/proxy/<service_name>/<path:path>"
    assert value(families, api, method="GET", route=proxy_route, status="200") == float(PROXIED)
    assert value(families, "mm_api_request_duration_seconds_count", method="GET", route=proxy_route) == PROXIED
    assert value(families, api, method="POST", route="/api/services", status="201") == 1.0  # the fixture's

    assert value(families, "mm_routed_requests_total", service="orders", outcome="ok") == float(PROXIED)
    assert value(families, "mm_routed_requests_total", service="orders", outcome="error") == 0.0
    assert value(families, "mm_routed_request_duration_seconds_count", service="orders") == float(PROXIED)
    assert 0 < value(families, "mm_routed_request_duration_seconds_sum", service="orders") < PROXIED * 1.0

    spec = rt.registry.by_name("orders")
    assert spec is not None and spec.instances
    for inst in spec.instances:
        key = {"service": "orders", "instance_id": str(inst.id), "url": inst.url}
        hot = {s: value(families, "mm_instance_health_state", **key, state=s)
               for s in ("healthy", "degraded", "unhealthy", "unknown")}
        assert hot == {"healthy": 1.0, "degraded": 0.0, "unhealthy": 0.0, "unknown": 0.0}
        assert value(families, "mm_instance_up", **key) == 1.0

    breaker = {s.labels["state"]: s.value for s in families["mm_circuit_breaker_state"].samples
               if s.labels["service"] == "orders"}
    assert breaker == {"CLOSED": 1.0, "OPEN": 0.0, "HALF_OPEN": 0.0}

    assert value(families, "mm_job_duration_seconds_count", job="health-check") >= 1.0
    assert value(families, "mm_job_failures_total", job="health-check") == 0.0
    assert value(families, "mm_db_write_seconds_count") > 0
    assert value(families, "mm_writer_database_ok") == 1.0
    assert value(families, "mm_writer_written_total") >= 1.0
    assert value(families, "mm_loadtest_running") == 0.0
    assert value(families, "mm_active_simulations") == 0.0
    assert value(families, "mm_build_info", version=VERSION) == 1.0
    assert value(families, "process_open_fds") > 0

    assert assert_histograms_are_consistent(families) >= 4  # API routes, routed orders, jobs, DB writes
    # a scrape is counted once it has been answered: the next one sees it
    assert value(scrape(c), api, method="GET", route="/metrics", status="200") == 1.0


def test_metrics_needs_no_token_and_is_a_text_operation_in_openapi(live):
    _, c = live
    doc = c.get("/api/openapi.json").json
    op = doc["paths"]["/metrics"]["get"]
    assert op["security"] == []
    assert list(op["responses"]["200"]["content"]) == ["text/plain"]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard["panels"])
    for row in dashboard["panels"]:
        panels += row.get("panels", [])
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_dashboard_is_an_importable_grafana_document():
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    assert 36 <= dashboard["schemaVersion"] <= 41 and dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for p in dashboard["panels"]:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["targets"], p["title"]


METRIC = re.compile(r"\b((?:mm|process)_[a-zA-Z0-9_]+)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def exported_names(families: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Every series name a scrape can hold (a family without samples included), and every label name."""
    names: set[str] = set()
    labels: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum", "_created")}
    for f in families.values():
        names.add(f.name)
        names.update(f.name + s for s in suffixes.get(f.type, ()))
        for s in f.samples:
            names.add(s.name)
            labels.update(s.labels)
    return names, labels


def test_every_dashboard_metric_is_one_the_engine_exports(live):
    """A live scrape during a load test (its gauges exist only while one runs) against every panel's expr."""
    rt, c = live
    r = c.post("/api/load-test/start", json={"concurrentUsers": 2, "requestsPerSecond": 20, "duration": 3,
                                              "targetService": "orders", "path": "/health"})
    assert r.status_code == 202, r.json

    def during_run() -> dict[str, Any] | None:
        families = scrape(c)
        return families if "mm_loadtest_latency_seconds" in families and families[
            "mm_loadtest_latency_seconds"].samples and "mm_loadtest_achieved_rps" in families else None

    families = wait_for(during_run, 10, step=0.2)
    assert families, "no scrape saw the running load test's figures"
    assert value(families, "mm_loadtest_running") == 1.0 and value(families, "mm_loadtest_target_rps") == 20.0
    names, labels = exported_names(families)
    exprs = dashboard_exprs()
    for expr in exprs:
        used = METRIC.findall(expr)
        assert used, f"no engine metric in {expr!r}"
        assert set(used) <= names, f"{expr!r} uses {sorted(set(used) - names)}, not exported"
        for group in GROUPING.findall(expr):
            grouped = {g.strip() for g in group.split(",") if g.strip()}
            assert grouped <= labels | {"le"}, f"{expr!r} groups by {sorted(grouped - labels)}, not exported"
    assert wait_for(lambda: rt.loadtests.status().status != "running", 10)


def test_refused_requests_are_counted_too(clean_db, settings):
    # a fake clock: the bucket refills only if the test advances it, however slow the machine
    rt = Runtime.open(settings.replace(rate_limit=0.5, rate_burst=2), FakeClock(datetime.now(UTC)))
    try:
        anon = create_app(rt).test_client()
        assert [anon.get("/api/health").status_code for _ in range(3)] == [200, 200, 429]
        families = {f.name: f for f in text_string_to_metric_families(rt.telemetry.render().decode())}
        assert value(families, "mm_api_requests_total", method="GET", route="/api/health", status="200") == 2.0
        assert value(families, "mm_api_requests_total", method="GET", route="/api/health", status="429") == 1.0
    finally:
        rt.stop()
