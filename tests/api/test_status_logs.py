"""/api/health, /api/metrics, /api/overview and /api/logs."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import delete

from db.models import Instance, LogEntry, MetricRow, Service


def test_health_reports_database_and_writer(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json["status"] == "ok"
    assert r.json["database"] == {"embedded": False, "status": "up"}
    assert r.json["writer"]["dropped"] == 0


def test_health_is_503_when_database_is_down(client, runtime):
    from db.session import make_engine, make_session_factory

    runtime.sessions = make_session_factory(make_engine("postgresql://postgres@127.0.0.1:1/x",
                                                         connect_args={"connect_timeout": 1}))
    r = client.get("/api/health")
    assert r.status_code == 503
    assert r.json["database"]["status"] == "down" and r.json["status"] == "degraded"
    r = client.get("/api/services")
    assert r.status_code == 503 and r.json["error"] == "database unavailable"


def seed(runtime, now):
    with runtime.sessions.begin() as s:
        s.add_all([
            Service(name="orders", status="healthy", instances=[Instance(url="http://127.0.0.1:1")]),
            Service(name="payments", status="unhealthy", instances=[Instance(url="http://127.0.0.1:2")]),
            Service(name="new", status="unknown"),
        ])
        for age, reqs, errs, lat, cpu in [(10, 30, 3, 100.0, 20.0), (5, 10, 0, 20.0, 40.0), (120, 999, 999, 9.0, 90.0)]:
            s.add(MetricRow(service_name="orders", timestamp=now - timedelta(seconds=age), bucket_seconds=5,
                            request_count=reqs, error_count=errs, latency_avg_ms=lat, cpu_percent=cpu,
                            memory_mb=64.0, instances_scraped=1))


def test_overview_is_computed_from_the_last_minute(client, runtime):
    seed(runtime, runtime.clock.now())
    o = client.get("/api/overview").json
    assert o["activeServices"] == 1 and o["totalServices"] == 3
    assert o["requestsPerMin"] == 40.0
    assert o["avgResponseTime"] == (30 * 100.0 + 10 * 20.0) / 40
    assert o["errorRate"] == 7.5
    assert o["systemStatus"] == "degraded"
    assert o["cpuPercent"] == 40.0 and o["memoryMb"] == 64.0


def test_overview_without_traffic_is_null_not_zero(client):
    o = client.get("/api/overview").json
    assert o["avgResponseTime"] is None and o["errorRate"] is None and o["cpuPercent"] is None
    assert o["requestsPerMin"] == 0 and o["systemStatus"] == "unknown"


def test_system_metrics_has_every_part(client, runtime):
    now = runtime.clock.now()
    seed(runtime, now)
    runtime.reload_registry()  # as the API does after every registry change
    m = client.get("/api/metrics").json
    assert list(m) == ["systemOverview", "loadBalancer", "circuitBreakers", "scaling", "shards", "resilience",
                       "loadTest", "recentLogs"]
    assert m["systemOverview"]["activeServices"] == 1
    assert m["loadBalancer"]["algorithm"] == "round-robin" and m["loadBalancer"]["totalPicks"] == 0
    assert [i["url"] for i in m["loadBalancer"]["instances"]] == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert [(b["serviceName"], b["state"]) for b in m["circuitBreakers"]] == [
        ("orders", "CLOSED"), ("payments", "CLOSED"), ("new", "CLOSED")]
    assert m["resilience"]["requests"] == 0 and m["resilience"]["retrySuccessRate"] is None
    assert m["loadTest"] is None
    days = [s["name"] for s in m["shards"]]  # today, the partitions ahead, DEFAULT last
    assert days[-1] == "metrics_default" and f"metrics_p{now:%Y%m%d}" in days
    assert {s["status"] for s in m["shards"] if s["name"] == f"metrics_p{now:%Y%m%d}"} == {"active"}
    scaling = m["scaling"]
    assert scaling["totalInstances"] == sum(s["instanceCount"] for s in scaling["services"])
    assert [(s["name"], s["managed"], s["canScaleUp"], s["canScaleDown"], s["load"]) for s in scaling["services"]] == [
        ("orders", False, False, False, 0), ("payments", False, False, False, 0), ("new", False, False, False, 0)]


def add_logs(runtime):
    now = runtime.clock.now()
    runtime.writer.flush()
    with runtime.sessions.begin() as s:
        s.execute(delete(LogEntry))  # the first-admin notice of the runtime's start
        s.add_all([
            LogEntry(timestamp=now - timedelta(seconds=3), level="INFO", source="health", message="orders is healthy"),
            LogEntry(timestamp=now - timedelta(seconds=2), level="ERROR", source="health",
                     message="payments is unhealthy: 100% down", metadata_={"service": "payments"}),
            LogEntry(timestamp=now - timedelta(seconds=1), level="WARN", source="registry", message="orders slow"),
        ])


def test_logs_filters(client, runtime):
    add_logs(runtime)
    assert [r["message"] for r in client.get("/api/logs").json] == [
        "orders slow", "payments is unhealthy: 100% down", "orders is healthy"]
    assert [r["level"] for r in client.get("/api/logs?level=ERROR").json] == ["ERROR"]
    assert [r["level"] for r in client.get("/api/logs?level=WARN").json] == ["WARN"]
    assert [r["source"] for r in client.get("/api/logs?source=registry").json] == ["registry"]
    assert [r["message"] for r in client.get("/api/logs?q=ORDERS").json] == ["orders slow", "orders is healthy"]
    assert [r["message"] for r in client.get("/api/logs?q=100%25").json] == ["payments is unhealthy: 100% down"]
    assert len(client.get("/api/logs?limit=1").json) == 1
    assert client.get("/api/logs?level=ERROR").json[0]["metadata"] == {"service": "payments"}


def test_logs_bad_parameters_are_named(client):
    r = client.get("/api/logs?limit=0&level=LOUD&since=yesterday&colour=red")
    assert r.status_code == 400
    assert [d["field"] for d in r.json["details"]] == ["limit", "level", "since", "colour"]
    r = client.get("/api/logs?limit=1&limit=2")
    assert r.status_code == 400 and r.json["details"] == [{"field": "limit", "message": "given more than once"}]


def test_logs_csv(client, runtime):
    add_logs(runtime)
    r = client.get("/api/logs?level=ERROR", headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(row["level"], row["message"]) for row in rows] == [("ERROR", "payments is unhealthy: 100% down")]
    assert rows[0]["metadata"] == '{"service": "payments"}'  # JSON, not a Python repr


def test_clear_logs_leaves_only_the_audit_row(client, runtime):
    add_logs(runtime)
    r = client.delete("/api/logs")
    assert r.json["deleted"] == 3
    runtime.writer.flush()
    assert [x["message"] for x in client.get("/api/logs").json] == ["logs cleared: 3 row(s) deleted"]


def test_unknown_route_is_json_404(client):
    r = client.get("/api/nope")
    assert r.status_code == 404 and "error" in r.json
