"""Fixtures for dashboard tests: the environment a page reads, a seeded database, a live API, a login."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from contract.settings import Settings
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for
from ui import session

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def main_module_kept() -> Iterator[None]:
    """Put back sys.modules["__main__"] after each page test: Streamlit's script runner leaves the last page there,
    and a process started later with the spawn method (the load generator's workers) would run that page again as
    its main module."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture
def dash_env(monkeypatch: pytest.MonkeyPatch, database_url: str, settings: Settings,
             sessions: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """DATABASE_URL of the clean test database; API_URL of a port nothing listens on (no API unless started)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("API_URL", settings.api_base_url)
    st.cache_resource.clear()
    yield sessions
    st.cache_resource.clear()  # disposes the dashboard's engine (on_release)


@pytest.fixture
def live_api(dash_env: sessionmaker[Session], settings: Settings) -> Iterator[Runtime]:
    """A real engine serving the REST API on settings.api_port (the port API_URL already names)."""
    rt = Runtime.open(settings)
    rt.start(app=create_app(rt))
    try:
        yield rt
    finally:
        rt.stop()


def log_in(at: AppTest, role: Role, *, token: str | None = None, username: str | None = None,
           expires_in: timedelta = timedelta(hours=1)) -> None:
    """Put a login into the AppTest's session state, as a successful login form would (before run())."""
    name = username or f"test-{role.label}"
    entries = session.state_for(token or token_for(role, name), role, name, datetime.now(UTC) + expires_in)
    for key, value in entries.items():
        at.session_state[key] = value


def open_page(path: str, role: Role | None = Role.OPERATOR, **login: Any) -> AppTest:
    """Run a page (or app.py) once, as a browser's first visit would: logged in with `role`, or not (None).

    `login` goes to log_in (token, username, expires_in).
    """
    at = AppTest.from_file(ROOT / path, default_timeout=30)
    if role is not None:
        log_in(at, role, **login)
    return at.run()


def logged_in_token(at: AppTest) -> str | None:
    """The token the session keeps, None when logged out."""
    state = at.session_state  # a SafeSessionState: no .get()
    if session.TOKEN_KEY not in state:
        return None
    token: str = state[session.TOKEN_KEY]
    return token


def metrics(at: AppTest) -> dict[str, str]:
    """st.metric label -> shown value."""
    return {m.label: m.value for m in at.metric}


def texts(elements: Any) -> list[str]:
    """The .value of every element in a list (markdown, error, success, ...)."""
    return [str(e.value) for e in elements]


def chart_spec(at: AppTest, key: str) -> dict[str, Any]:
    """The plotly JSON of the chart with this key."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(key):
            spec: dict[str, Any] = json.loads(chart.proto.spec)
            return spec
    raise AssertionError(f"no plotly chart with key {key!r}")


def plotly_array(value: Any) -> Any:
    """A trace's array as a (nested) list: plotly writes numpy arrays as base64 typed arrays, the shape as text."""
    if not isinstance(value, dict):
        return value
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")]).tolist()


def chart_traces(at: AppTest, key: str) -> dict[str, list[Any]]:
    """Trace name -> y values of the plotly chart with this key."""
    return {trace["name"]: plotly_array(trace["y"]) for trace in chart_spec(at, key)["data"]}


def heatmap_rows(at: AppTest, key: str) -> dict[str, list[float]]:
    """Row name -> cell values of the plotly heatmap with this key (NaN: no value)."""
    (trace,) = chart_spec(at, key)["data"]
    return dict(zip(trace["y"], plotly_array(trace["z"]), strict=True))


# -- answers of the API as the contract shapes them, for unit tests of the client on httpx.MockTransport -----------

SERVICE: dict[str, Any] = {
    "id": 7, "name": "orders", "url": "http://a:1", "status": "healthy", "instanceCount": 1, "load": 0,
    "lastHealthCheck": None, "managed": False, "healthPath": "/health", "metricsPath": None, "weight": 1,
    "createdAt": None, "instances": [{"id": 1, "url": "http://a:1", "status": "healthy", "lastHealthCheck": None,
                                      "latencyMs": None, "weight": 1, "lastError": None}]}
USER: dict[str, Any] = {"id": 2, "username": "vera", "role": "viewer", "createdAt": "2026-01-01T00:00:00+00:00"}
BREAKER: dict[str, Any] = {
    "serviceName": "orders", "state": "CLOSED", "failureCount": 0, "rejectedCount": 0, "failureRate": None,
    "lastFailure": None, "failureThreshold": 5, "failureRateThreshold": 50.0, "windowSize": 20, "minimumCalls": 10,
    "slowCallMs": None, "timeout": 60000, "halfOpenCalls": 1}
BALANCER: dict[str, Any] = {"algorithm": "p2c", "algorithms": ["round-robin", "p2c"], "totalPicks": 0, "instances": []}
SIMULATION: dict[str, Any] = {
    "id": 7, "kind": "memory-leak", "target": None, "params": {"rate": 1.0}, "status": "active",
    "startedAt": "2026-01-01T00:00:00+00:00", "endsAt": "2026-01-01T00:00:02+00:00", "endedAt": None,
    "remainingMs": 2000.0, "effect": None}
SYSTEM_METRICS: dict[str, Any] = {
    "systemOverview": {"activeServices": 0, "totalServices": 0, "requestsPerMin": 0.0, "avgResponseTime": None,
                       "errorRate": None, "systemStatus": "unknown", "cpuPercent": None, "memoryMb": None},
    "loadBalancer": BALANCER, "circuitBreakers": [], "scaling": {"totalInstances": 0, "services": []}, "shards": [],
    "resilience": {"windowSeconds": 300.0, "requests": 0, "retries": 0, "retrySuccessRate": None, "fallbacks": 0,
                   "fallbackRate": None, "timeouts": 0, "timeoutRate": None, "retryBudgetRefusals": 0,
                   "ejectedInstances": 0},
    "loadTest": None, "recentLogs": []}
AUTOSCALER: dict[str, Any] = {"enabled": True, "minInstances": 1, "maxInstances": 4, "metric": "cpu", "target": 60.0,
                              "tolerance": 0.2, "scaleUpWindowS": 0.0, "scaleDownWindowS": 30.0, "maxStep": 2}
HEALTH: dict[str, Any] = {
    "status": "ok",
    "engine": {"status": "up", "startedAt": "2026-01-01T00:00:00+00:00", "uptimeSeconds": 5.0, "services": 1},
    "database": {"embedded": False, "status": "up"},
    "writer": {"databaseOk": True, "pending": 0, "written": 0, "dropped": 0, "rejected": 0, "lastError": None,
               "lastSuccess": None,
               "writeLatencyMs": {"windowSeconds": 60, "batches": 0, "p50": None, "p95": None, "max": None}},
    "simulations": {"active": 0}}


def api_answer(request: Any) -> Any:
    """A minimal answer in the contract's shape for each route the dashboard calls (an httpx.Request)."""
    method, path = request.method, request.url.path
    if path.startswith("/api/simulat"):
        return {"message": "stopped 0 simulation(s)", "stopped": 0} if path.endswith("stop-all") else SIMULATION
    if path.startswith("/api/circuit-breakers"):
        if path.endswith("reset-all"):
            return {"message": "every breaker reset"}
        if method == "GET":
            return {"total": 1, "closed": 1, "open": 0, "halfOpen": 0, "breakers": [BREAKER]}
        return BREAKER
    if path.startswith("/api/services/") and "/scale-" in path:
        return {"message": "orders scaled up: 1 -> 2 instance(s)", "newInstanceCount": 2}
    if path.endswith("/autoscaler"):
        return AUTOSCALER
    fixed: dict[str, Any] = {
        "/api/load-balancer": BALANCER, "/api/metrics": SYSTEM_METRICS, "/api/health": HEALTH,
        "/api/scaling": {"totalInstances": 0, "services": []}, "/api/logs": {"message": "logs cleared", "deleted": 0},
        "/api/load-test/start": {"status": "running"}, "/api/load-test/stop": {"status": "stopped"},
        "/api/load-test/status": {"status": "running"},
    }
    if path in fixed:
        return fixed[path]
    if path.startswith("/api/users"):
        return [USER] if method == "GET" else USER if method == "POST" else {"message": "user removed", "id": 2}
    if path.startswith("/api/services"):
        return {"message": "service deleted", "id": 3} if method == "DELETE" else SERVICE
    raise AssertionError(f"no sample answer for {method} {path}")
