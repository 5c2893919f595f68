"""/api/alert-rules, /api/alerts and /api/silences over the Flask test client on a real PostgreSQL; failure
simulations that silence their target; alerts continued by the next engine over the same database."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from contract.roles import Role
from db.alerting_models import AlertChannelRow, AlertEventRow, AlertRuleRow, SilenceRow
from db.session import make_engine
from engine.runtime import Runtime
from engine.traffic.breaker import BreakerConfig
from tests.api.conftest import demo_process, started_client
from tests.conftest import token_for, wait_for

RULE = {"name": "orders-down", "kind": "service-down", "service": "orders", "forSeconds": 30,
        "severity": "critical", "repeatSeconds": 600}


@pytest.fixture
def channel(runtime: Runtime) -> int:
    """An alert channel row (the channels API is another part's)."""
    with runtime.sessions.begin() as s:
        row = AlertChannelRow(name="ops-hook", type="webhook", config={"url": "http://127.0.0.1:9/hook"})
        s.add(row)
        s.flush()
        return row.id


def rules_in_db(rt: Runtime) -> list[str]:
    with rt.sessions() as s:
        return list(s.scalars(select(AlertRuleRow.name).order_by(AlertRuleRow.id)))


def as_role(client, role: Role) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(role)}


def test_rule_crud_and_the_evaluator_follows(client, runtime, channel):
    r = client.post("/api/alert-rules", json={**RULE, "channels": [channel]})
    assert r.status_code == 201, r.json
    rule = r.json
    assert {k: rule[k] for k in ("name", "kind", "service", "threshold", "windowSeconds", "forSeconds", "severity",
                                  "channels", "repeatSeconds")} == {
        "name": "orders-down", "kind": "service-down", "service": "orders", "threshold": None, "windowSeconds": 300,
        "forSeconds": 30, "severity": "critical", "channels": [channel], "repeatSeconds": 600}
    assert rule["id"] >= 1 and rule["createdAt"]
    assert [x.name for x in runtime.alerting.rules()] == ["orders-down"]
    assert client.get("/api/alert-rules").json == [rule]
    assert client.get(f"/api/alert-rules/{rule['id']}").json == rule
    changed = client.put(f"/api/alert-rules/{rule['id']}", json={"name": "orders-slow", "kind": "latency-p95",
                                                                  "threshold": 250, "windowSeconds": 60})
    assert changed.status_code == 200
    assert (changed.json["kind"], changed.json["threshold"], changed.json["service"], changed.json["channels"]) == (
        "latency-p95", 250, None, [])  # PUT replaces every field: left out is the default
    assert [(x.name, x.kind.value, x.service) for x in runtime.alerting.rules()] == [
        ("orders-slow", "latency-p95", None)]
    deleted = client.delete(f"/api/alert-rules/{rule['id']}")
    assert deleted.status_code == 200 and deleted.json == {"message": "alert rule orders-slow deleted",
                                                            "id": rule["id"]}
    assert runtime.alerting.rules() == [] and rules_in_db(runtime) == []
    for method in ("GET", "PUT", "DELETE"):
        missing = client.open(f"/api/alert-rules/{rule['id']}", method=method, json=RULE)
        assert missing.status_code == 404 and "not found" in missing.json["error"]


def test_a_duplicate_name_is_409_on_create_and_on_change(client, runtime):
    first = client.post("/api/alert-rules", json=RULE).json
    other = client.post("/api/alert-rules", json={**RULE, "name": "other"}).json
    again = client.post("/api/alert-rules", json=RULE)
    assert again.status_code == 409 and again.json["details"] == [{"field": "name", "message": "taken"}]
    taken = client.put(f"/api/alert-rules/{other['id']}", json=RULE)
    assert taken.status_code == 409
    assert client.put(f"/api/alert-rules/{first['id']}", json=RULE).status_code == 200  # its own name
    assert rules_in_db(runtime) == ["orders-down", "other"]


BAD_RULES = {
    "threshold-missing": ({"name": "r", "kind": "error-rate"}, "threshold"),
    "error-rate-over-100": ({"name": "r", "kind": "error-rate", "threshold": 150}, "threshold"),
    "window-over-an-hour": ({"name": "r", "kind": "latency-p95", "threshold": 100, "windowSeconds": 7200},
                            "windowSeconds"),
    "window-too-short": ({"name": "r", "kind": "service-down", "windowSeconds": 1}, "windowSeconds"),
    "service-for-the-monitor": ({"name": "r", "kind": "monitor-database", "service": "orders"}, "service"),
    "unknown-kind": ({"name": "r", "kind": "cpu-high"}, "kind"),
    "bad-name": ({"name": "no spaces", "kind": "service-down"}, "name"),
    "channel-twice": ({"name": "r", "kind": "service-down", "channels": [1, 1]}, "channels"),
    "no-such-channel": ({"name": "r", "kind": "service-down", "channels": [4242]}, "channels"),
    "repeat-too-often": ({"name": "r", "kind": "service-down", "repeatSeconds": 1}, "repeatSeconds"),
    "unknown-field": ({"name": "r", "kind": "service-down", "labels": {}}, "labels"),
}


@pytest.mark.parametrize("case", list(BAD_RULES), ids=list(BAD_RULES))
def test_a_bad_rule_is_422_naming_the_field_and_changes_nothing(client, runtime, case):
    body, field = BAD_RULES[case]
    r = client.post("/api/alert-rules", json=body)
    assert r.status_code == 422, r.json
    assert [d["field"] for d in r.json["details"]] == [field]
    assert rules_in_db(runtime) == [] and runtime.alerting.rules() == []


def test_a_body_that_is_not_an_object_is_400(client):
    r = client.post("/api/alert-rules", data="[]", content_type="application/json")
    assert r.status_code == 400 and r.json["details"][0]["field"] == "body"


def test_roles_viewers_read_operators_change(anon, client, runtime):
    rule_id = client.post("/api/alert-rules", json=RULE).json["id"]
    viewer = as_role(client, Role.VIEWER)
    for method, url in (("GET", "/api/alert-rules"), ("GET", f"/api/alert-rules/{rule_id}"), ("GET", "/api/alerts"),
                        ("GET", "/api/silences")):
        assert anon.open(url, method=method).status_code == 401
        assert anon.open(url, method=method, headers=viewer).status_code == 200
    for method, url in (("POST", "/api/alert-rules"), ("PUT", f"/api/alert-rules/{rule_id}"),
                        ("DELETE", f"/api/alert-rules/{rule_id}"), ("POST", "/api/silences"),
                        ("DELETE", "/api/silences/1")):
        assert anon.open(url, method=method, json=RULE).status_code == 401
        refused = anon.open(url, method=method, json=RULE, headers=viewer)
        assert refused.status_code == 403 and "operator" in refused.json["error"]
    assert rules_in_db(runtime) == ["orders-down"]


def open_breaker(runtime: Runtime, service: str) -> None:
    breaker = runtime.breakers.get(service)
    breaker.reconfigure(BreakerConfig(failure_threshold=1))
    assert breaker.allow()
    breaker.record_failure("HTTP 500")


def test_alerts_come_from_memory_with_filters_and_answer_while_the_database_is_away(client, runtime):
    for name in ("orders", "payments"):
        assert client.post("/api/services", json={"name": name, "url": "http://127.0.0.1:9"}).status_code == 201
    client.post("/api/alert-rules", json={"name": "breakers", "kind": "breaker-open"})
    assert client.get("/api/alerts").json == []
    open_breaker(runtime, "orders")
    runtime.alerting.evaluate()
    open_breaker(runtime, "payments")
    silence = {"service": "payments", "startsAt": runtime.clock.now().isoformat(),
               "endsAt": (runtime.clock.now() + timedelta(hours=1)).isoformat(), "comment": "known"}
    assert client.post("/api/silences", json=silence).status_code == 201
    runtime.alerting.evaluate()
    listed = client.get("/api/alerts").json
    assert [(a["service"], a["state"], a["silenced"], a["kind"]) for a in listed] == [
        ("payments", "firing", True, "breaker-open"), ("orders", "firing", False, "breaker-open")]
    assert listed[1]["summary"] == "orders: circuit breaker is not closed" and listed[1]["value"] is None
    assert [a["service"] for a in client.get("/api/alerts?silenced=false").json] == ["orders"]
    assert [a["service"] for a in client.get("/api/alerts?service=payments&state=firing").json] == ["payments"]
    assert client.get("/api/alerts?state=pending").json == []
    assert len(client.get("/api/alerts?limit=1").json) == 1
    bad = client.get("/api/alerts?state=burning")
    assert bad.status_code == 400 and bad.json["details"][0]["field"] == "state"
    dead = make_engine("postgresql://postgres@127.0.0.1:1/gone", connect_args={"connect_timeout": 1})
    sessions, runtime.sessions = runtime.sessions, sessionmaker(dead)
    try:
        assert client.get("/api/alert-rules").status_code == 503
        assert [a["service"] for a in client.get("/api/alerts").json] == ["payments", "orders"]
    finally:
        runtime.sessions = sessions
        dead.dispose()


def silence_body(rt: Runtime, **overrides) -> dict[str, object]:
    now = rt.clock.now()
    return {"service": "orders", "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
            "comment": "deploying", **overrides}


def test_silences_created_listed_matched_and_expired(client, runtime):
    made = client.post("/api/silences", json=silence_body(runtime))
    assert made.status_code == 201, made.json
    s = made.json
    assert (s["service"], s["rule"], s["state"], s["createdBy"], s["simulationId"], s["comment"]) == (
        "orders", None, "active", "test-operator", None, "deploying")
    assert runtime.silences.match(5, "orders", runtime.clock.now()).silenced
    later = runtime.clock.now() + timedelta(days=1)
    pending = client.post("/api/silences", json=silence_body(
        runtime, service="payments", startsAt=later.isoformat(), endsAt=(later + timedelta(hours=1)).isoformat()))
    assert pending.json["state"] == "pending"
    assert [x["id"] for x in client.get("/api/silences").json] == [pending.json["id"], s["id"]]
    assert [x["id"] for x in client.get("/api/silences?state=active").json] == [s["id"]]
    expired = client.delete(f"/api/silences/{s['id']}")
    assert expired.status_code == 200 and expired.json["state"] == "expired"
    assert not runtime.silences.match(5, "orders", runtime.clock.now()).silenced
    assert client.delete(f"/api/silences/{s['id']}").status_code == 409
    assert client.delete(f"/api/silences/{pending.json['id']}").json["state"] == "expired"
    assert [x["state"] for x in client.get("/api/silences").json] == ["expired", "expired"]
    assert client.delete("/api/silences/999").status_code == 404


BAD_SILENCES: dict[str, tuple[dict[str, object], str]] = {
    "neither-service-nor-rule": ({"service": None}, "body"),
    "no-such-rule": ({"service": None, "rule": 77}, "rule"),
    "naive-time": ({"startsAt": "2026-01-01T00:00:00"}, "startsAt"),
    "ends-before-start": ({"endsAt": "2000-01-01T00:00:00Z"}, "endsAt"),
    "empty-comment": ({"comment": ""}, "comment"),
}


@pytest.mark.parametrize("case", list(BAD_SILENCES), ids=list(BAD_SILENCES))
def test_a_bad_silence_is_422_naming_the_field(client, runtime, case):
    overrides, field = BAD_SILENCES[case]
    r = client.post("/api/silences", json=silence_body(runtime, **overrides))
    assert r.status_code == 422, r.json
    assert [d["field"] for d in r.json["details"]] == [field]
    with runtime.sessions() as s:
        assert s.scalars(select(SilenceRow)).all() == []


def test_a_silence_of_a_rule_matches_that_rule_only(client, runtime):
    rule_id = client.post("/api/alert-rules", json=RULE).json["id"]
    assert client.post("/api/silences", json=silence_body(runtime, service=None, rule=rule_id)).status_code == 201
    now = runtime.clock.now()
    assert runtime.silences.match(rule_id, "payments", now).silenced
    assert not runtime.silences.match(rule_id + 1, "orders", now).silenced


def test_a_simulation_with_silence_silences_its_target_until_a_grace_after_it_is_stopped(client, runtime, settings):
    grace = timedelta(seconds=(settings.rise + 1) * settings.health_interval + 2 * settings.alert_interval)
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:9"}).status_code == 201
    sim = client.post("/api/simulate/service-failure", json={"serviceName": "orders", "duration": 60_000,
                                                             "silence": True})
    assert sim.status_code == 201 and sim.json["silence"] is True
    [silence] = client.get("/api/silences").json
    assert (silence["service"], silence["rule"], silence["simulationId"], silence["state"]) == (
        "orders", None, sim.json["id"], "active")
    assert f"simulation {sim.json['id']}" in silence["comment"]
    assert datetime.fromisoformat(silence["endsAt"]) == datetime.fromisoformat(sim.json["endsAt"]) + grace
    match = runtime.silences.match(1, "orders", runtime.clock.now())
    assert (match.silenced, match.expected) == (True, True)
    assert not runtime.silences.match(1, "payments", runtime.clock.now()).silenced
    assert client.post(f"/api/simulations/{sim.json['id']}/stop").status_code == 200
    stopped = runtime.clock.now()
    assert runtime.silences.match(1, "orders", stopped).silenced  # the recovery is expected too
    assert not runtime.silences.match(1, "orders", stopped + grace + timedelta(seconds=1)).silenced
    plain = client.post("/api/simulate/network-latency", json={"latency": 5, "duration": 1000,
                                                               "serviceName": "orders"}).json
    assert plain["silence"] is False and len(client.get("/api/silences").json) == 1
    everyone = client.post("/api/simulate/network-latency", json={"latency": 5, "duration": 1000, "silence": True})
    assert everyone.status_code == 422 and everyone.json["details"][0]["field"] == "silence"


def test_the_next_engine_continues_open_alerts_and_ends_silences_of_cut_off_simulations(client, runtime, settings):
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:9"}).status_code == 201
    client.post("/api/alert-rules", json={"name": "breakers", "kind": "breaker-open", "severity": "critical"})
    client.post("/api/simulate/network-latency", json={"latency": 5, "duration": 600_000, "serviceName": "orders",
                                                      "silence": True})
    open_breaker(runtime, "orders")
    [firing] = runtime.alerting.evaluate()
    assert firing.silenced and firing.expected
    runtime.writer.flush()
    successor = Runtime.open(settings)  # the first never stopped: as after a crash
    try:
        [restored] = successor.alerting.alerts()
        assert (restored.fingerprint, restored.state.value, restored.active_at) == (
            firing.fingerprint, "firing", firing.active_at)
        assert not successor.silences.match(firing.rule_id, "orders", successor.clock.now()).silenced
        assert [s["state"] for s in client.get("/api/silences").json] == ["expired"]
    finally:
        successor.stop()


@pytest.fixture(scope="module")
def target():
    with demo_process(seed=11) as instance:
        yield instance


def test_the_running_engine_alerts_on_routed_errors_and_resolves_when_they_stop(clean_db, settings, target):
    """The whole path: router -> rolling window -> the alert-evaluation job on the loop -> /api/alerts."""
    with started_client(settings, target.url, alert_interval=0.1) as (rt, c):
        rule = c.post("/api/alert-rules", json={"name": "orders-errors", "kind": "error-rate", "service": "orders",
                                                "threshold": 40, "windowSeconds": 5})
        assert rule.status_code == 201
        for _ in range(5):
            assert c.get("/proxy/orders/work?ms=1&cpu=0").status_code == 200
        sim = c.post("/api/simulate/service-failure", json={"serviceName": "orders", "duration": 30_000,
                                                            "statusCode": 500})
        assert sim.status_code == 201
        for _ in range(5):
            c.get("/proxy/orders/work?ms=1&cpu=0")
        firing = wait_for(lambda: c.get("/api/alerts?state=firing").json, 5)
        assert [(a["ruleName"], a["service"], a["kind"]) for a in firing] == [("orders-errors", "orders",
                                                                                "error-rate")]
        assert 40 < firing[0]["value"] <= 100
        assert c.post(f"/api/simulations/{sim.json['id']}/stop").status_code == 200
        # the failures leave the 5 s window; with no traffic in it the condition no longer holds
        resolved = wait_for(lambda: c.get("/api/alerts?state=resolved").json, 10)
        assert resolved[0]["fingerprint"] == firing[0]["fingerprint"] and resolved[0]["resolvedAt"]
        rt.writer.flush()
        with rt.sessions() as s:
            assert s.scalars(select(AlertEventRow.state).order_by(AlertEventRow.id)).all() == ["firing", "resolved"]
