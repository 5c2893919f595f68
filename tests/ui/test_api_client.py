"""Unit tests of the dashboard's API client on httpx.MockTransport: routes, bodies, errors, answers validated into
contract models, and the login state whose token the client sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import streamlit as st

from contract.errors import MonitorError
from contract.responses import LogsClearedOut, ServiceOut, TokenOut, UserOut
from contract.roles import Role
from tests.ui.conftest import SERVICE, USER, api_answer
from ui import api, forms, session


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


def test_an_answer_outside_the_contract_is_an_api_error():
    broken = {**SERVICE, "instanceCount": "two"}
    with pytest.raises(api.ApiCallFailed) as info:
        _client(lambda r: httpx.Response(200, json=broken)).update_service(7, {"weight": 2})
    assert info.value.status == 200
    assert info.value.error.startswith("the answer to PUT /api/services/7 does not match the contract (instanceCount:")
    with pytest.raises(api.ApiCallFailed) as info:
        _client(lambda r: httpx.Response(200, json={"id": 2})).list_users()  # an object where a list belongs
    assert info.value.status == 200 and "GET /api/users does not match the contract" in info.value.error


def test_api_plain_reads_a_free_form_part_as_json():
    assert api.plain(None) == {}
    assert api.plain({"status": "up"}) == {"status": "up"}
    assert api.plain(UserOut.model_validate(USER)) == USER


def test_api_success_returns_json_and_api_url_default(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json=SERVICE)

    assert _client(handler).update_service(7, {"weight": 2}) == ServiceOut.model_validate(SERVICE)
    assert seen == [("PUT", "/api/services/7", {"weight": 2})]

    def needs_token(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer t0k"
        return httpx.Response(200, json={"message": "logs cleared", "deleted": 0})

    assert _client(needs_token, token="t0k").clear_logs() == LogsClearedOut.model_validate(
        {"message": "logs cleared", "deleted": 0})
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

    assert _client(handler).login("vera", "right-password") == TokenOut.model_validate(
        {"token": "t", "expiresAt": "2026-01-01T20:00:00+00:00", "role": "viewer"})
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
        return httpx.Response(200, json=[] if request.method == "GET" else api_answer(request))

    c = _client(handler, token="adm")
    assert c.list_users() == []
    assert c.create_user("vera", "viewer-password-1", "viewer") == UserOut.model_validate(USER)
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


def test_traffic_calls_use_their_routes():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        return httpx.Response(200, json=api_answer(request))

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


def test_simulation_calls_use_their_routes_and_the_form_bodies():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        return httpx.Response(201 if "/simulate/" in request.url.path else 200, json=api_answer(request))

    failure = forms.service_failure_body("orders", 30_000.0, 50.0, 503, "error")
    assert failure == {"serviceName": "orders", "duration": 30_000.0, "mode": "error", "probability": 0.5,
                       "statusCode": 503}
    assert forms.service_failure_body("orders", 1000.0, 100.0, None, "error") == {
        "serviceName": "orders", "duration": 1000.0, "mode": "error", "probability": 1.0}  # connection errors
    assert forms.service_failure_body("orders", 1000.0, 50.0, 503, "kill") == {
        "serviceName": "orders", "duration": 1000.0, "mode": "kill"}  # a kill takes neither
    latency = forms.network_latency_body(200.0, 5000.0, None, 0.0, 100.0)
    assert latency == {"latency": 200.0, "duration": 5000.0, "probability": 1.0}  # every service, no jitter
    assert forms.network_latency_body(200.0, 5000.0, "orders", 20.0, 25.0) == {
        "latency": 200.0, "duration": 5000.0, "probability": 0.25, "serviceName": "orders", "jitter": 20.0}
    c = _client(handler, token="op")
    c.simulate_service_failure(failure)
    c.simulate_network_latency(latency)
    c.simulate_database_overload({"duration": 1000.0, "intensity": "high"})
    c.simulate_memory_leak({"duration": 2000.0, "rate": 1.0})
    c.stop_simulation(7)
    c.stop_all_simulations()
    c.health()
    assert seen == [
        ("POST", "/api/simulate/service-failure", failure),
        ("POST", "/api/simulate/network-latency", latency),
        ("POST", "/api/simulate/database-overload", {"duration": 1000.0, "intensity": "high"}),
        ("POST", "/api/simulate/memory-leak", {"duration": 2000.0, "rate": 1.0}),
        ("POST", "/api/simulations/7/stop", None),
        ("POST", "/api/simulate/stop-all", None),
        ("GET", "/api/health", None),
    ]


def test_scaling_calls_use_their_routes_and_scaling_waits_longer(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        return httpx.Response(200, json=api_answer(request))

    timeouts = []

    def client(token: str | None = None, timeout: float = api.TIMEOUT_S) -> api.ApiClient:
        timeouts.append(timeout)
        return _client(handler, token="op")

    monkeypatch.setattr(api, "default_client", client)
    body = forms.autoscaler_body(True, metric="cpu", target=60.0, tolerance_pct=20.0, up_window_s=0.0,
                                 down_window_s=30.0, max_step=2, min_instances=1, max_instances=4)
    assert body == {"enabled": True, "minInstances": 1, "maxInstances": 4, "metric": "cpu", "target": 60.0,
                    "tolerance": 0.2, "scaleUpWindowS": 0.0, "scaleDownWindowS": 30.0, "maxStep": 2}
    off = forms.autoscaler_body(False, metric="cpu", target=60.0, tolerance_pct=20.0, up_window_s=0.0,
                                down_window_s=30.0, max_step=2, min_instances=2, max_instances=3)
    assert off == {"enabled": False, "minInstances": 2, "maxInstances": 3}  # an autoscaler that is off keeps none
    api.scaling()
    api.scale_up(3)
    api.scale_down(3)
    api.set_autoscaler(3, body)
    assert seen == [
        ("GET", "/api/scaling", None),
        ("POST", "/api/services/3/scale-up", None),
        ("POST", "/api/services/3/scale-down", None),
        ("PUT", "/api/services/3/autoscaler", body),
    ]
    # a scale-up waits for the new instance's health (15 s by default), longer than other calls may take
    assert timeouts == [api.TIMEOUT_S, api.SCALE_TIMEOUT_S, api.SCALE_TIMEOUT_S, api.TIMEOUT_S]
    assert api.SCALE_TIMEOUT_S > 15 + 5
