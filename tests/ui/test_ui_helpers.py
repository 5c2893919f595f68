"""Unit tests of the dashboard's building blocks: formatting, API client and bodies, login state, shaping, charts."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest
import streamlit as st

from db.queries import logs_csv
from engine.errors import MonitorError
from engine.users import Role
from ui import api, session
from ui.charts import per_service_lines
from ui.data import breaker_segments, picks_frame, summarize_services, timeline_start
from ui.format import breaker_label, fmt_ago, fmt_mb, fmt_ms, fmt_pct, fmt_rate, fmt_status, status_colour

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fn", "value", "shown"),
    [
        (fmt_ms, None, "n/a"),
        (fmt_ms, math.nan, "n/a"),
        (fmt_ms, 0.0, "0.0 ms"),
        (fmt_ms, 1234.56, "1,234.6 ms"),
        (fmt_pct, None, "n/a"),
        (fmt_pct, 5.0, "5.0 %"),
        (fmt_pct, 0.05, "0.05 %"),
        (fmt_pct, 0.0, "0.0 %"),
        (fmt_mb, None, "n/a"),
        (fmt_mb, 64.25, "64.2 MB"),
        (fmt_rate, 0.0, "0.0"),
        (fmt_rate, None, "n/a"),
    ],
    ids=["ms-none", "ms-nan", "ms-zero", "ms-big", "pct-none", "pct", "pct-small", "pct-zero", "mb-none", "mb",
         "rate-zero", "rate-none"],
)
def test_formatting_never_turns_unknown_into_zero(fn, value, shown):
    assert fn(value) == shown


def test_fmt_ago_and_status():
    assert fmt_ago(None, T0) == "n/a"
    assert fmt_ago(T0 - timedelta(seconds=4), T0) == "4 s ago"
    assert fmt_ago(T0 - timedelta(minutes=3), T0) == "3 min ago"
    assert fmt_ago(T0 - timedelta(hours=2), T0) == "2 h ago"
    assert fmt_status("healthy") == "🟢 healthy"
    assert fmt_status("degraded") == "🟠 degraded"
    assert fmt_status(None) == "⚪ n/a"
    assert status_colour("unhealthy") != status_colour("healthy")
    assert status_colour("something-new") == status_colour("unknown")


def test_create_body_parses_urls_and_omits_blank_metrics_path():
    body = api.create_body(" orders ", "http://a:1\n\n http://b:2 \nhttp://a:1\n", "/health", "  ", 2)
    assert body == {"name": "orders", "instances": ["http://a:1", "http://b:2"], "healthPath": "/health",
                    "weight": 2}
    assert api.create_body("x", "http://a:1", "/h", "/metrics", 1)["metricsPath"] == "/metrics"


def test_update_body_holds_only_changed_fields():
    current = {"name": "orders", "healthPath": "/health", "metricsPath": "/metrics", "weight": 1,
               "instances": ["http://a:1"]}
    same: dict[str, Any] = {"name": "orders", "health_path": "/health", "metrics_path": "/metrics", "weight": 1}
    assert api.update_body(current, **same, urls_text="http://a:1\n") == {}
    assert api.update_body(current, **{**same, "weight": 4}, urls_text="http://a:1") == {"weight": 4}
    assert api.update_body(current, **{**same, "metrics_path": " "}, urls_text=None) == {"metricsPath": None}
    assert api.update_body(current, **same, urls_text="http://a:1\nhttp://b:2") == {
        "instances": ["http://a:1", "http://b:2"]}


def _client(handler, token: str | None = None) -> api.ApiClient:
    return api.ApiClient("http://api.test", token=token, transport=httpx.MockTransport(handler))


def test_api_error_carries_error_and_details():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/api/services"
        assert json.loads(request.content) == {"name": ""}
        return httpx.Response(422, json={"error": "invalid request: name",
                                         "details": [{"field": "name", "message": "too short"}]})

    with pytest.raises(api.ApiCallFailed) as info:
        _client(handler).create_service({"name": ""})
    exc = info.value
    assert isinstance(exc, MonitorError)
    assert (exc.status, exc.error, exc.details) == (422, "invalid request: name",
                                                    [{"field": "name", "message": "too short"}])
    assert exc.text() == "invalid request: name (HTTP 422)\n- name: too short"


def test_api_error_without_json_and_unreachable_api():
    with pytest.raises(api.ApiCallFailed) as info:
        _client(lambda r: httpx.Response(502, text="<html>bad gateway</html>")).clear_logs()
    assert (info.value.status, info.value.error, info.value.details) == (502, "Bad Gateway", [])

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(api.ApiCallFailed) as info:
        _client(refuse).delete_service(3)
    assert info.value.status is None
    assert "http://api.test is not reachable" in info.value.text()


def test_api_success_returns_json_and_api_url_default(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"id": 7, "name": "orders"})

    assert _client(handler).update_service(7, {"weight": 2}) == {"id": 7, "name": "orders"}
    assert seen == [("PUT", "/api/services/7", {"weight": 2})]

    def needs_token(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer t0k"
        return httpx.Response(200, json={"message": "logs cleared", "deleted": 0})

    assert _client(needs_token, token="t0k").clear_logs()["deleted"] == 0
    monkeypatch.delenv("API_URL", raising=False)
    assert api.api_url() == "http://127.0.0.1:5000"
    monkeypatch.setenv("API_URL", "http://127.0.0.1:5055")
    assert api.default_client().base_url == "http://127.0.0.1:5055"


def test_login_posts_credentials_without_a_token_and_keeps_retry_after():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.method, request.url.path, body, request.headers.get("Authorization")))
        if body["password"] == "right-password":
            return httpx.Response(200, json={"token": "t", "expiresAt": "2026-01-01T20:00:00+00:00", "role": "viewer"})
        return httpx.Response(429, headers={"Retry-After": "42"},
                              json={"error": "too many failed logins; retry after 42 s"})

    assert _client(handler).login("vera", "right-password") == {
        "token": "t", "expiresAt": "2026-01-01T20:00:00+00:00", "role": "viewer"}
    assert seen == [("POST", "/api/auth/token", {"username": "vera", "password": "right-password"}, None)]
    with pytest.raises(api.ApiCallFailed) as info:
        _client(handler).login("vera", "guess")
    assert (info.value.status, info.value.retry_after) == (429, 42)

    with pytest.raises(api.ApiCallFailed) as info:  # a Retry-After given as a date is not read as seconds
        _client(lambda r: httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})).list_users()
    assert (info.value.status, info.value.retry_after) == (503, None)


def test_user_calls_use_the_admin_routes():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        return httpx.Response(200, json=[] if request.method == "GET" else {"id": 2})

    c = _client(handler, token="adm")
    assert c.list_users() == []
    c.create_user("vera", "viewer-password-1", "viewer")
    c.delete_user(2)
    assert seen == [
        ("GET", "/api/users", None),
        ("POST", "/api/users", {"username": "vera", "password": "viewer-password-1", "role": "viewer"}),
        ("DELETE", "/api/users/2", None),
    ]


@pytest.fixture
def bare_session():
    """st.session_state outside a script run (bare mode), emptied of any login before and after."""
    session.logout()
    st.session_state.pop("_mm_login_notice", None)
    yield st.session_state
    session.logout()
    st.session_state.pop("_mm_login_notice", None)


def test_session_keeps_the_login_and_orders_roles(bare_session):
    assert (session.token(), session.role(), session.username(), session.logged_in()) == (None, None, None, False)
    assert not session.can(Role.VIEWER)
    session.store("tok", "operator", "olga", "2999-01-01T00:00:00")  # a naive time is UTC
    assert (session.token(), session.role(), session.username()) == ("tok", Role.OPERATOR, "olga")
    assert session.expires_at() == datetime(2999, 1, 1, tzinfo=UTC)
    assert session.logged_in()
    assert session.who() == "olga (operator)"
    assert [session.can(r) for r in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)] == [True, True, False]
    assert session.needs(Role.OPERATOR) is None
    assert session.needs(Role.ADMIN) == "Needs the admin role; you are logged in as operator."
    assert api.default_client()._headers == {"Authorization": "Bearer tok"}  # the session's token is sent
    assert api.default_client(token="other")._headers == {"Authorization": "Bearer other"}
    session.logout()
    assert (session.token(), session.role(), session.logged_in()) == (None, None, False)
    assert api.default_client()._headers == {}


def test_a_lapsed_login_is_dropped_with_the_expired_notice(bare_session):
    session.store("tok", Role.ADMIN, "ada", datetime.now(UTC) - timedelta(seconds=1))
    assert not session.logged_in()
    assert session.token() is None
    assert bare_session["_mm_login_notice"] == session.EXPIRED


def test_summarize_services_counts_instances():
    frame = pd.DataFrame(
        [
            [1, "orders", "healthy", True, 2, "/health", "/metrics", 10, "http://a:1", "healthy", 3.0, T0, None],
            [1, "orders", "healthy", True, 2, "/health", "/metrics", 11, "http://a:2", "unhealthy", None,
             T0 + timedelta(seconds=5), "refused"],
            [2, "lonely", "unknown", False, 1, "/health", None, None, None, None, None, None, None],
        ],
        columns=["service_id", "service", "service_status", "managed", "weight", "health_path", "metrics_path",
                 "instance_id", "url", "status", "latency_ms", "last_health_check", "last_error"],
    )
    orders, lonely = summarize_services(frame)
    assert (orders.id, orders.name, orders.instance_count, orders.healthy_count) == (1, "orders", 2, 1)
    assert orders.urls == ("http://a:1", "http://a:2")
    assert orders.last_check == T0 + timedelta(seconds=5)
    assert orders.as_api()["metricsPath"] == "/metrics"
    assert (lonely.instance_count, lonely.healthy_count, lonely.last_check, lonely.metrics_path) == (0, 0, None, None)


def test_chart_keeps_gaps_and_skips_unmeasured_services():
    frame = pd.DataFrame({
        "timestamp": [T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=10), T0],
        "service_name": ["orders", "orders", "orders", "payments"],
        "cpu_percent": [10.0, None, 30.0, None],
    })
    fig = per_service_lines(frame, "cpu_percent", "CPU", "%")
    assert fig is not None
    assert [t.name for t in fig.data] == ["orders"]
    y = list(fig.data[0].y)
    assert y[0] == 10.0 and math.isnan(y[1]) and y[2] == 30.0  # a gap, not a zero
    assert per_service_lines(frame[frame.service_name == "payments"], "cpu_percent", "CPU", "%") is None
    assert per_service_lines(frame.iloc[0:0], "cpu_percent", "CPU", "%") is None


def test_logs_csv_writes_iso_times_and_json_metadata():
    frame = pd.DataFrame({
        "id": [2, 1], "timestamp": [T0, T0], "level": ["ERROR", "INFO"], "source": ["health", "api"],
        "message": ["down, again", "ok"], "metadata": [None, {"b": 1, "a": [1, 2]}],
    })
    lines = logs_csv(frame).splitlines()
    assert lines[0] == "id,timestamp,level,source,message,metadata"
    assert lines[1] == '2,2026-01-01T12:00:00+00:00,ERROR,health,"down, again",'
    assert lines[2] == '1,2026-01-01T12:00:00+00:00,INFO,api,ok,"{""a"": [1, 2], ""b"": 1}"'


# -- traffic: load balancer and breakers ---------------------------------------------------------------


def test_traffic_calls_use_their_routes():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        return httpx.Response(200, json={"ok": True})

    c = _client(handler, token="op")
    c.load_balancer()
    c.set_algorithm("p2c")
    c.circuit_breakers()
    c.update_breaker("orders", {"failureThreshold": 3})
    c.reset_breaker("orders")
    c.reset_all_breakers()
    c.system_metrics()
    assert seen == [
        ("GET", "/api/load-balancer", None),
        ("PUT", "/api/load-balancer", {"algorithm": "p2c"}),
        ("GET", "/api/circuit-breakers", None),
        ("PUT", "/api/circuit-breakers/orders", {"failureThreshold": 3}),
        ("POST", "/api/circuit-breakers/orders/reset", None),
        ("POST", "/api/circuit-breakers/reset-all", None),
        ("GET", "/api/metrics", None),
    ]


def test_breaker_body_holds_only_changed_thresholds():
    current = {"serviceName": "orders", "state": "OPEN", "failureThreshold": 5, "failureRateThreshold": 50.0,
               "windowSize": 20, "minimumCalls": 10, "slowCallMs": None, "timeout": 60000, "halfOpenCalls": 1}
    same = {f: current[f] for f in api.BREAKER_FIELDS}
    assert api.breaker_body(current, same) == {}
    assert api.breaker_body(current, {**same, "failureThreshold": 3, "slowCallMs": 250.0}) == {
        "failureThreshold": 3, "slowCallMs": 250.0}
    assert api.breaker_body({**current, "slowCallMs": 250.0}, same) == {"slowCallMs": None}  # cleared: off
    assert api.breaker_body(current, {"state": "CLOSED", "windowSize": 20}) == {}  # only thresholds are sent


def test_picks_frame_shares_within_each_service():
    def inst(service, iid, picks, ejected=False):
        return {"service": service, "instanceId": iid, "url": f"http://127.0.0.1:{7000 + iid}", "picks": picks,
                "inFlight": iid % 2, "health": "healthy", "ejected": ejected}

    frame = picks_frame([inst("orders", 1, 30), inst("orders", 2, 10, ejected=True), inst("payments", 3, 0)])
    assert frame["share"].tolist()[:2] == [75.0, 25.0]
    assert math.isnan(frame["share"].iloc[2])  # a service without picks: unknown share, not 0 %
    assert frame["ejected"].tolist() == [False, True, False]
    assert frame["in_flight"].tolist() == [1, 0, 1]
    assert picks_frame([]).empty


def test_breaker_segments_span_the_window_per_service():
    since, now = T0, T0 + timedelta(minutes=10)
    transitions = pd.DataFrame(
        [
            [T0 + timedelta(minutes=2), "orders", "CLOSED", "OPEN", "5 consecutive failures"],
            [T0 + timedelta(minutes=3), "orders", "OPEN", "HALF_OPEN", "open for 60000 ms"],
            [T0 + timedelta(minutes=4), "payments", "HALF_OPEN", "OPEN", "trial call failed"],
            [T0 + timedelta(minutes=5), "orders", "HALF_OPEN", "CLOSED", "1 trial call(s) succeeded"],
        ],
        columns=["at", "service_name", "from_state", "to_state", "reason"],
    )
    segments = breaker_segments(transitions, since, now)
    def minutes(t: Any) -> float:
        return (pd.Timestamp(t) - T0).total_seconds() / 60

    rows = [(svc, state, minutes(start), minutes(end), why) for svc, state, start, end, why in segments.to_numpy()]
    assert rows == [
        ("orders", "CLOSED", 0, 2, ""),
        ("orders", "OPEN", 2, 3, "5 consecutive failures"),
        ("orders", "HALF_OPEN", 3, 5, "open for 60000 ms"),
        ("orders", "CLOSED", 5, 10, "1 trial call(s) succeeded"),
        ("payments", "HALF_OPEN", 0, 4, ""),  # the state before the first transition: its from_state
        ("payments", "OPEN", 4, 10, "trial call failed"),
    ]
    assert breaker_segments(transitions.iloc[0:0], since, now).empty
    # the time axis starts a minute (or a tenth of the span) before the first transition, not before the window
    assert timeline_start(transitions, since, now) == T0 + timedelta(minutes=1)
    assert timeline_start(transitions, since, T0 + timedelta(minutes=32)) == T0  # 3 min pad, cut at `since`
    assert timeline_start(transitions.iloc[0:0], since, now) == since
    assert breaker_label("OPEN") == "🔴 OPEN"
    assert breaker_label("HALF_OPEN") == "🟠 HALF_OPEN"
    assert breaker_label(None) == "⚪ n/a"
