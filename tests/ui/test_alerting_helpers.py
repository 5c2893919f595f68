"""The alerting pages' building blocks on their own: the client's routes and query strings (httpx.MockTransport),
the form bodies, field labels on API errors, and the incident timeline figure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contract.alerting import AlertKind
from contract.incidents import IncidentDetailOut, TimelineEventOut, TimelineKind
from contract.notifications import SECRET_MASK, ChannelType
from ui import alerting, incidents, notifications
from ui.client import ApiCallFailed, ApiClient
from ui.data import labelled

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
RULE: dict[str, Any] = {"id": 3, "name": "errors-high", "kind": "error-rate", "service": None, "threshold": 5.0,
                        "windowSeconds": 300, "forSeconds": 60, "severity": "critical", "channels": [1],
                        "repeatSeconds": None, "createdAt": T0.isoformat()}
ALERT: dict[str, Any] = {"fingerprint": "ab12", "ruleId": 3, "ruleName": "errors-high", "kind": "error-rate",
                         "severity": "critical", "service": "orders", "state": "firing", "silenced": False,
                         "value": 12.5, "threshold": 5.0, "summary": "s", "activeAt": T0.isoformat(),
                         "firedAt": None, "resolvedAt": None, "lastNotifiedAt": None, "incidentId": None}
SILENCE: dict[str, Any] = {"id": 4, "service": "orders", "rule": None, "startsAt": T0.isoformat(),
                           "endsAt": T0.isoformat(), "comment": "c", "createdBy": "op", "simulationId": None,
                           "state": "expired"}
CHANNEL: dict[str, Any] = {"id": 1, "name": "hook", "type": "webhook", "createdAt": T0.isoformat(),
                           "config": {"url": "http://127.0.0.1:9/h", "secret": SECRET_MASK}}
DELIVERY: dict[str, Any] = {"id": "d1", "channelId": 1, "channelName": "hook", "fingerprint": None, "event": "test",
                            "status": "delivered", "attempts": 1, "lastError": None, "createdAt": T0.isoformat(),
                            "nextAttemptAt": None, "deliveredAt": T0.isoformat(), "payload": {}}
INCIDENT: dict[str, Any] = {"id": "7b1c", "service": "orders", "status": "open", "title": "t", "severity": "critical",
                            "startedAt": T0.isoformat(), "resolvedAt": None, "acknowledgedAt": None,
                            "acknowledgedBy": None, "expected": False, "latestNote": None, "alerts": ["ab12"]}
STATS: dict[str, Any] = {"service": None, "windowDays": 7, "incidents": 2, "mttaSeconds": 30.0, "mttrSeconds": None}
DELETED: dict[str, Any] = {"message": "deleted", "id": 3}


def answer(request: httpx.Request) -> Any:
    """A contract-shaped answer for each alerting route."""
    method, path = request.method, request.url.path
    if method == "DELETE":
        return SILENCE if path.startswith("/api/silences") else DELETED
    if path == "/api/incidents/stats":
        return STATS
    if path.endswith("/test") or path == "/api/deliveries":
        return DELIVERY if method == "POST" else [DELIVERY]
    if path.startswith("/api/incidents/"):
        return {**INCIDENT, "timeline": []} if method == "GET" else INCIDENT
    one = {"/api/alert-rules": RULE, "/api/alerts": ALERT, "/api/silences": SILENCE, "/api/alert-channels": CHANNEL,
           "/api/incidents": INCIDENT}
    base = next(p for p in one if path.startswith(p))
    listing = method == "GET" and path == base
    return [one[base]] if listing else one[base]


def test_every_alerting_call_uses_its_route_query_and_model():
    seen: list[tuple[str, str, dict[str, str], Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, dict(request.url.params), body))
        return httpx.Response(200, json=answer(request))

    c = ApiClient("http://api.test", token="t", transport=httpx.MockTransport(handler))
    assert c.alert_rules()[0].name == "errors-high"
    assert c.alert_rule(3).kind is AlertKind.ERROR_RATE
    c.create_alert_rule({"name": "x"})
    c.update_alert_rule(3, {"name": "y"})
    assert c.delete_alert_rule(3).id == 3
    assert c.alerts({"state": "firing", "silenced": False, "service": None})[0].value == 12.5
    c.silences()
    c.create_silence({"comment": "c"})
    assert c.expire_silence(4).state == "expired"
    assert c.alert_channels()[0].config["secret"] == SECRET_MASK
    c.create_alert_channel({"name": "hook"})
    c.update_alert_channel(1, {"name": "hook"})
    c.delete_alert_channel(1)
    assert c.test_alert_channel(1).status == "delivered"
    c.deliveries({"channel": 1, "status": "failed", "limit": 50})
    c.incidents({"status": "open"})
    assert c.incident("7b1c").timeline == []
    c.acknowledge_incident("7b1c", "on it")
    assert c.incident_stats({"windowDays": 7, "service": None}).mttaSeconds == 30.0
    assert [(m, p, q) for m, p, q, _ in seen] == [
        ("GET", "/api/alert-rules", {}), ("GET", "/api/alert-rules/3", {}), ("POST", "/api/alert-rules", {}),
        ("PUT", "/api/alert-rules/3", {}), ("DELETE", "/api/alert-rules/3", {}),
        ("GET", "/api/alerts", {"state": "firing", "silenced": "false"}),  # None left out, a bool as JSON writes it
        ("GET", "/api/silences", {}), ("POST", "/api/silences", {}), ("DELETE", "/api/silences/4", {}),
        ("GET", "/api/alert-channels", {}), ("POST", "/api/alert-channels", {}), ("PUT", "/api/alert-channels/1", {}),
        ("DELETE", "/api/alert-channels/1", {}), ("POST", "/api/alert-channels/1/test", {}),
        ("GET", "/api/deliveries", {"channel": "1", "status": "failed", "limit": "50"}),
        ("GET", "/api/incidents", {"status": "open"}), ("GET", "/api/incidents/7b1c", {}),
        ("POST", "/api/incidents/7b1c/acknowledge", {}), ("GET", "/api/incidents/stats", {"windowDays": "7"}),
    ]
    assert seen[-2][3] == {"note": "on it"}


def test_rule_body_sends_what_the_kind_takes():
    body = alerting.rule_body(name=" errors-high ", kind=AlertKind.ERROR_RATE, service=alerting.EVERY_SERVICE,
                              threshold=5.0, window_s=120, for_s=30, severity="critical", channels=[2, 1],
                              repeat_s=None)
    assert body == {"name": "errors-high", "kind": "error-rate", "windowSeconds": 120, "forSeconds": 30,
                    "severity": "critical", "channels": [2, 1], "threshold": 5.0}  # every service: no service
    down = alerting.rule_body(name="d", kind=AlertKind.SERVICE_DOWN, service="orders", threshold=3.0, window_s=300,
                              for_s=0, severity="warning", channels=[], repeat_s=600)
    assert "threshold" not in down and down["service"] == "orders" and down["repeatSeconds"] == 600
    db = alerting.rule_body(name="m", kind=AlertKind.MONITOR_DATABASE, service="orders", threshold=None,
                            window_s=300, for_s=0, severity="critical", channels=[], repeat_s=None)
    assert "service" not in db  # the kind watches no service


def test_silence_body_starts_now_for_the_minutes():
    body = alerting.silence_body(service="orders", rule=None, minutes=90, comment=" deploy ", now=T0)
    assert body == {"startsAt": T0.isoformat(), "endsAt": (T0 + timedelta(minutes=90)).isoformat(),
                    "comment": "deploy", "service": "orders"}


@pytest.mark.parametrize(("kind", "value", "threshold", "shown"), [
    (AlertKind.ERROR_RATE, 12.5, 5.0, "12.5 % > 5 %"),
    (AlertKind.LATENCY_P95, 1234.0, 500.0, "1,234 ms > 500 ms"),
    (AlertKind.INSTANCES_BELOW, 1.0, 2.0, "1 < 2 healthy instances"),
    (AlertKind.SLO_BURN, 20.0, None, "20 x burn rate > 14.4 x burn rate (default)"),
    (AlertKind.ERROR_RATE, None, 5.0, "n/a > 5 %"),
    (AlertKind.SERVICE_DOWN, 0.0, None, "0"),
    (AlertKind.BREAKER_OPEN, None, None, "n/a"),
], ids=str)
def test_value_against_threshold_in_the_rules_unit(kind, value, threshold, shown):
    assert alerting.fmt_value_vs_threshold(kind, value, threshold) == shown


def test_channel_body_leaves_secrets_out_on_edit_and_empty_optionals_always():
    values = {"url": " http://127.0.0.1:9/h ", "secret": ""}
    assert notifications.channel_body("hook", ChannelType.WEBHOOK, values, editing=False) == {
        "name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:9/h"}}
    slack = notifications.channel_body("s", ChannelType.SLACK, {"url": ""}, editing=True,
                                       shown={"url": "https://hooks.slack.com/services/" + SECRET_MASK})
    assert slack["config"] == {}  # left out: the engine keeps the stored URL
    email = notifications.channel_body("mail", ChannelType.EMAIL, {
        "host": "smtp.test", "port": 2525, "starttls": False, "username": "", "password": "",
        "from": "mon@test.io", "to": "a@test.io\n\n b@test.io \n"}, editing=False)
    assert email["config"] == {"host": "smtp.test", "port": 2525, "starttls": False, "from": "mon@test.io",
                               "to": ["a@test.io", "b@test.io"]}
    # a required field left empty on create is sent empty, so the API names it
    assert notifications.channel_body("a", ChannelType.APPRISE, {"url": ""}, editing=False)["config"] == {"url": ""}


def test_every_config_field_of_the_contract_has_an_input():
    from contract.notifications import CONFIG_MODELS
    for kind, model in CONFIG_MODELS.items():
        keys = {f.alias or name for name, f in model.model_fields.items()}
        assert {f.key for f in notifications.CONFIG_FIELDS[kind]} == keys, kind


def test_api_errors_name_the_forms_fields():
    exc = ApiCallFailed(422, "invalid request", [{"field": "windowSeconds", "message": "too big"},
                                                 {"field": "config.url", "message": "bad"},
                                                 {"field": "body", "message": "threshold is required"}])
    relabelled = labelled(exc, {**alerting.RULE_LABELS, **notifications.channel_labels(ChannelType.WEBHOOK)})
    assert relabelled.lines() == ["Window (s) (windowSeconds): too big", "URL (config.url): bad",
                                  "body: threshold is required"]
    assert relabelled.status == 422


def _event(kind: TimelineKind, seconds: float, title: str, end_s: float | None = None) -> TimelineEventOut:
    return TimelineEventOut(at=(T0 + timedelta(seconds=seconds)).isoformat(), kind=kind, title=title,
                            endAt=None if end_s is None else (T0 + timedelta(seconds=end_s)).isoformat())


def test_the_timeline_has_a_lane_per_kind_points_for_instants_and_bars_for_spans():
    events = [_event(TimelineKind.SIMULATION, -30, "service failure on orders", 90),
              _event(TimelineKind.ALERT, 0, "errors-high firing"), _event(TimelineKind.HEALTH, 5, "orders unhealthy"),
              _event(TimelineKind.LOAD_TEST, 10, "load test #2"),  # still running: a span to now
              _event(TimelineKind.ALERT, 120, "errors-high resolved"), _event(TimelineKind.NOTE, 60, "<b>on it</b>")]
    detail = IncidentDetailOut(**{**INCIDENT, "resolvedAt": (T0 + timedelta(seconds=120)).isoformat()},
                               timeline=events)
    fig = incidents.timeline_figure(detail, now=T0 + timedelta(seconds=200))
    traces = {(t.type, t.name): t for t in fig.data}
    assert set(traces) == {("scatter", "alert"), ("scatter", "health"), ("bar", "simulation"), ("bar", "load test"),
                           ("scatter", "note")}
    assert list(traces["scatter", "alert"].text) == ["errors-high firing", "errors-high resolved"]
    assert list(traces["bar", "simulation"].x) == [120_000.0]  # 2 minutes, in ms
    assert list(traces["bar", "load test"].x) == [190_000.0]  # from +10 s to now (+200 s)
    assert list(traces["scatter", "note"].text) == ["&lt;b>on it&lt;/b>"]
    assert list(fig.layout.yaxis.categoryarray) == ["note", "load test", "simulation", "health", "alert"]
    assert fig.layout.xaxis.type == "date" and fig.layout.xaxis.title.text == "time (UTC)"
    empty = IncidentDetailOut(**INCIDENT, timeline=[])
    assert incidents.timeline_figure(empty, now=T0) is None
