"""Fixtures for dashboard tests: the environment a page reads, a seeded database, a live API, a login."""

from __future__ import annotations

import base64
import json
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
