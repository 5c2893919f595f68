"""/api/incidents over a real PostgreSQL: list, detail with its timeline from rows of every source, acknowledge,
MTTA/MTTR, 404s, roles and validation naming the field."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from contract.alerting import AlertKind, AlertState, Severity
from contract.roles import Role
from db.alerting_models import AlertEventRow
from db.models import BreakerTransitionRow, InstanceHealthTransition, LoadTest, ScalingEvent, Simulation
from engine.alerting.model import AlertSnapshot, fingerprint
from tests.conftest import token_for


def alert(service: str | None, state: AlertState, at: datetime, *, rule_id: int = 1,
          severity: Severity = Severity.CRITICAL, expected: bool = False) -> AlertSnapshot:
    """An alert of rule_id for service that changed to state at `at`."""
    return AlertSnapshot(
        fingerprint=fingerprint(rule_id, service), rule_id=rule_id, rule_name="orders down",
        kind=AlertKind.SERVICE_DOWN, severity=severity, service=service, state=state, silenced=expected,
        expected=expected, value=0.0, threshold=None, summary="no instance serves", active_at=at,
        fired_at=at if state is AlertState.FIRING else None,
        resolved_at=at if state is AlertState.RESOLVED else None, last_notified_at=None, incident_id=None, at=at,
        changed=True)


@pytest.fixture
def viewer(app):
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.VIEWER)
    return c


@pytest.fixture
def orders(client) -> int:
    response = client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001"})
    assert response.status_code == 201
    return int(response.json["id"])


@pytest.fixture
def opened(runtime, orders):
    """An incident of orders that opened 10 minutes ago, with rows of every source around it."""
    base = runtime.clock.now() - timedelta(minutes=10)
    incident = runtime.incidents.on_alert(alert("orders", AlertState.FIRING, base))
    assert incident is not None
    fp = fingerprint(1, "orders")
    with runtime.sessions.begin() as s:
        spec = runtime.registry.by_name("orders")
        instance_id = spec.instances[0].id
        s.add_all([
            AlertEventRow(fingerprint=fp, rule_id=1, rule_name="orders down", service_name="orders",
                          state="pending", silenced=False, at=base - timedelta(seconds=40)),
            AlertEventRow(fingerprint=fp, rule_id=1, rule_name="orders down", service_name="orders",
                          state="firing", silenced=False, at=base, incident_id=incident),
            InstanceHealthTransition(service_id=orders, instance_id=instance_id, from_state="healthy",
                                     to_state="unhealthy", at=base - timedelta(minutes=2), error="refused"),
            BreakerTransitionRow(service_name="orders", from_state="CLOSED", to_state="OPEN", reason="5 failures",
                                 at=base + timedelta(minutes=1)),
            ScalingEvent(service_name="orders", direction="up", from_count=1, to_count=2, reason="p95 high",
                         timestamp=base + timedelta(minutes=2)),
            ScalingEvent(service_name="orders", direction="none", from_count=2, to_count=2, reason="within target",
                         timestamp=base + timedelta(minutes=3)),  # no change: not on a timeline
            Simulation(kind="service-failure", target="orders", params={"duration": 420000}, status="completed",
                       started_at=base - timedelta(minutes=4), ends_at=base + timedelta(minutes=3),
                       ended_at=base + timedelta(minutes=3)),
            Simulation(kind="service-failure", target="orders", params={}, status="completed",
                       started_at=base - timedelta(minutes=30), ends_at=base - timedelta(minutes=20),
                       ended_at=base - timedelta(minutes=20)),  # over before the margin
            Simulation(kind="service-failure", target="payments", params={}, status="completed",
                       started_at=base - timedelta(minutes=1), ends_at=base + timedelta(minutes=1),
                       ended_at=base + timedelta(minutes=1)),  # another service's
            LoadTest(status="completed", concurrent_users=5, requests_per_second=50.0, duration_s=1020.0,
                     target_service="orders", total_requests=51000, successful_requests=50000, failed_requests=1000,
                     dropped_requests=0, started_at=base - timedelta(minutes=20), ended_at=base - timedelta(minutes=3)),
            BreakerTransitionRow(service_name="payments", from_state="CLOSED", to_state="OPEN", reason="x",
                                 at=base + timedelta(minutes=1)),  # another service's
        ])
    return incident, base


def test_the_detail_has_every_source_in_time_order(client, opened):
    incident, base = opened
    ack = client.post(f"/api/incidents/{incident}/acknowledge", json={"note": "looking at the breaker"})
    assert ack.status_code == 200
    detail = client.get(f"/api/incidents/{incident}")
    assert detail.status_code == 200
    body = detail.json
    assert (body["id"], body["service"], body["status"], body["severity"], body["expected"]) == (
        str(incident), "orders", "open", "critical", False)
    assert body["alerts"] == [fingerprint(1, "orders")]
    assert body["timelineTruncated"] is False
    timeline = [(e["kind"], e["title"]) for e in body["timeline"]]
    assert timeline == [
        ("load-test", "load test 1: 50 req/s on orders"),
        ("simulation", "service-failure simulation on orders"),
        ("health", "instance http://127.0.0.1:7001 healthy → unhealthy"),
        ("alert", "orders down pending"),
        ("alert", "orders down firing"),
        ("breaker", "breaker of orders CLOSED → OPEN"),
        ("scaling", "orders scaled up 1 → 2"),
        ("note", "note by test-operator"),
    ]
    at = [datetime.fromisoformat(e["at"]) for e in body["timeline"]]
    assert at == sorted(at)
    load_test, simulation = body["timeline"][0], body["timeline"][1]
    assert datetime.fromisoformat(load_test["endAt"]) == base - timedelta(minutes=3)
    assert datetime.fromisoformat(simulation["endAt"]) == base + timedelta(minutes=3)
    assert simulation["detail"]["target"] == "orders"
    assert body["timeline"][2]["detail"]["error"] == "refused"
    assert body["timeline"][-1]["detail"] == {"author": "test-operator", "note": "looking at the breaker"}
    assert body["timeline"][5]["detail"]["reason"] == "5 failures"


def test_list_filters_and_validation(runtime, client, viewer, opened):
    incident, base = opened
    # the monitor's own, opened a second later (newest first: equal start times would have no order)
    runtime.incidents.on_alert(alert(None, AlertState.FIRING, base + timedelta(seconds=1), rule_id=9))
    runtime.writer.flush()
    listed = viewer.get("/api/incidents")
    assert listed.status_code == 200
    assert [(i["service"], i["status"]) for i in listed.json] == [(None, "open"), ("orders", "open")]
    assert [i["id"] for i in viewer.get("/api/incidents?service=orders").json] == [str(incident)]
    assert viewer.get("/api/incidents?service=payments").json == []
    assert viewer.get("/api/incidents?status=resolved").json == []
    assert len(viewer.get("/api/incidents?status=open&limit=1").json) == 1
    for query, field in (("status=closed", "status"), ("limit=0", "limit"), ("service=bad%20name", "service"),
                         ("nope=1", "nope")):
        bad = viewer.get(f"/api/incidents?{query}")
        assert bad.status_code == 400, query
        assert [d["field"] for d in bad.json["details"]] == [field]


def test_unknown_and_malformed_ids_are_404_naming_the_id(client):
    unknown = uuid.uuid4()
    for path in (f"/api/incidents/{unknown}", "/api/incidents/not-a-uuid"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert path.rsplit("/", 1)[1] in response.json["error"]
    response = client.post("/api/incidents/not-a-uuid/acknowledge", json={"note": "x"})
    assert response.status_code == 404 and "not-a-uuid" in response.json["error"]
    assert client.post(f"/api/incidents/{unknown}/acknowledge", json={}).status_code == 404


def test_acknowledge_roles_first_ack_and_later_notes(app, client, viewer, anon, opened):
    incident, _ = opened
    path = f"/api/incidents/{incident}/acknowledge"
    assert anon.post(path, json={"note": "x"}).status_code == 401
    assert viewer.post(path, json={"note": "x"}).status_code == 403
    assert viewer.get(f"/api/incidents/{incident}").json["acknowledgedAt"] is None  # refused: nothing changed
    bad = client.post(path, json={"note": "x" * 2001})
    assert bad.status_code == 422 and [d["field"] for d in bad.json["details"]] == ["note"]
    assert client.post(path, json={"note": "x", "by": "mallory"}).status_code == 422
    assert client.post(path, data="[]", content_type="application/json").status_code == 400
    assert viewer.get(f"/api/incidents/{incident}").json["acknowledgedAt"] is None

    first = client.post(path, json={})
    assert first.status_code == 200
    assert (first.json["acknowledgedBy"], first.json["latestNote"]) == ("test-operator", None)
    acked_at = first.json["acknowledgedAt"]
    other = app.test_client()
    other.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.ADMIN, "bob")
    later = other.post(path, json={"note": "  rolled back the deploy  "})
    assert later.status_code == 200
    assert (later.json["acknowledgedBy"], later.json["acknowledgedAt"], later.json["latestNote"]) == (
        "test-operator", acked_at, "rolled back the deploy")
    notes = [e for e in viewer.get(f"/api/incidents/{incident}").json["timeline"] if e["kind"] == "note"]
    assert [n["detail"] for n in notes] == [{"author": "bob", "note": "rolled back the deploy"}]


def test_stats_give_mtta_and_mttr_of_the_window(runtime, client, viewer, opened):
    incident, base = opened
    assert client.post(f"/api/incidents/{incident}/acknowledge", json={"note": "on it"}).status_code == 200
    runtime.incidents.on_alert(alert("orders", AlertState.RESOLVED, base + timedelta(minutes=5)))
    runtime.writer.flush()
    detail = viewer.get(f"/api/incidents/{incident}").json
    assert (detail["status"], datetime.fromisoformat(detail["resolvedAt"])) == ("resolved", base + timedelta(
        minutes=5))
    # the resolution closes the timeline: the note written after it is still the incident's
    assert detail["timeline"][-1]["kind"] == "note"
    stats = viewer.get("/api/incidents/stats?service=orders&windowDays=7")
    assert stats.status_code == 200
    acked = datetime.fromisoformat(detail["acknowledgedAt"])
    assert stats.json["incidents"] == 1 and stats.json["windowDays"] == 7
    assert stats.json["mttaSeconds"] == pytest.approx((acked - base).total_seconds(), abs=1e-3)
    assert stats.json["mttrSeconds"] == pytest.approx(300.0, abs=1e-3)
    assert viewer.get("/api/incidents/stats?service=payments").json == {
        "service": "payments", "windowDays": 30, "incidents": 0, "mttaSeconds": None, "mttrSeconds": None}
    everything = viewer.get("/api/incidents/stats").json
    assert (everything["service"], everything["incidents"]) == (None, 1)
    for query, field in (("windowDays=0", "windowDays"), ("windowDays=366", "windowDays"), ("service=", "service")):
        bad = viewer.get(f"/api/incidents/stats?{query}")
        assert bad.status_code == 400 and [d["field"] for d in bad.json["details"]] == [field], query
