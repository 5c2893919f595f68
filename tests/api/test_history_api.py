"""Health history endpoints: exact figures over stored history (fake clock), validation naming the field, 404s,
and a started engine whose checks of a real loopback server show up in the heartbeat and the uptime."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from contract.events import CheckRollupEvent
from contract.roles import Role
from db import history
from db.models import InstanceCheckMinute, InstanceHealthTransition, ServiceHealthTransition
from engine.api import create_app
from engine.clock import FakeClock
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for
from tests.e2e.echo import echo_servers

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # a day whose partitions the engine makes anyway


@pytest.fixture
def faked(clean_db, settings) -> Iterator[tuple[Runtime, Any, FakeClock]]:
    """An opened engine (no jobs) on a fake clock, an operator client, and orders with two instances."""
    clock = FakeClock(NOW)
    rt = Runtime.open(settings, clock)
    client = create_app(rt).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
    created = client.post("/api/services", json={"name": "orders", "instances": ["http://127.0.0.1:9301",
                                                                                 "http://127.0.0.1:9302"]})
    assert created.status_code == 201
    try:
        yield rt, client, clock
    finally:
        rt.stop()


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def seed(rt: Runtime) -> tuple[int, list[int]]:
    """Observed for the last 10 minutes: instance b down from -5 min to -4 min, so the service degraded then;
    the service down (both refused) for 60 s from -3 min. A rollup row per instance per minute."""
    spec = rt.registry.by_name("orders")
    assert spec is not None
    sid, (a, b) = spec.id, [i.id for i in spec.instances]
    with rt.sessions.begin() as s:
        s.add_all([
            ServiceHealthTransition(service_id=sid, from_state="unknown", to_state="healthy", at=ago(600)),
            ServiceHealthTransition(service_id=sid, from_state="healthy", to_state="unhealthy", at=ago(180)),
            ServiceHealthTransition(service_id=sid, from_state="unhealthy", to_state="healthy", at=ago(120)),
            InstanceHealthTransition(service_id=sid, instance_id=a, from_state="unknown", to_state="healthy",
                                     at=ago(600)),
            InstanceHealthTransition(service_id=sid, instance_id=a, from_state="healthy", to_state="unhealthy",
                                     at=ago(180), error="refused"),
            InstanceHealthTransition(service_id=sid, instance_id=a, from_state="unhealthy", to_state="healthy",
                                     at=ago(120), latency_ms=3.0, status_code=200),
            InstanceHealthTransition(service_id=sid, instance_id=b, from_state="unknown", to_state="healthy",
                                     at=ago(600)),
            InstanceHealthTransition(service_id=sid, instance_id=b, from_state="healthy", to_state="unhealthy",
                                     at=ago(300)),
            InstanceHealthTransition(service_id=sid, instance_id=b, from_state="unhealthy", to_state="healthy",
                                     at=ago(120)),
        ])
        history.upsert_rollups(s, [CheckRollupEvent(sid, i, ago(600 - 60 * m), 12, 12, 0, 0, 12, 12 * (10.0 + m),
                                                    20.0 + m) for m in range(10) for i in (a, b)])
    return sid, [a, b]


def test_uptime_over_a_window_is_exact_and_unknown_time_is_not_down(faked):
    rt, client, _ = faked
    sid, (a, b) = seed(rt)
    body = client.get(f"/api/services/{sid}/uptime?window=1h").json
    assert body["serviceId"] == sid and body["window"] == "1h"
    assert body["to"] == NOW.isoformat() and body["from"] == (NOW - timedelta(hours=1)).isoformat()
    assert (body["uptimePercent"], body["downtimeSeconds"], body["observedSeconds"]) == (90.0, 60.0, 600.0)
    assert (body["incidents"], body["checks"]) == (1, 240)
    each = {i["id"]: i for i in body["instances"]}
    assert each[a] == {"id": a, "url": "http://127.0.0.1:9301", "uptimePercent": 90.0, "checks": 120,
                       "downtimeSeconds": 60.0, "observedSeconds": 600.0}
    assert (each[b]["uptimePercent"], each[b]["downtimeSeconds"]) == (70.0, 180.0)
    # the last hour and the last 90 days saw the same 10 minutes
    assert client.get(f"/api/services/{sid}/uptime?window=90d").json["uptimePercent"] == 90.0
    assert client.get(f"/api/services/{sid}/uptime").json["window"] == "24h"


def test_nothing_observed_is_null(faked):
    rt, client, _ = faked
    sid = rt.registry.services()[0].id
    body = client.get(f"/api/services/{sid}/uptime?window=7d").json
    assert (body["uptimePercent"], body["checks"], body["observedSeconds"], body["incidents"]) == (None, 0, 0.0, 0)
    assert [i["uptimePercent"] for i in body["instances"]] == [None, None]
    days = client.get(f"/api/services/{sid}/uptime/daily?days=3").json
    assert [(d["uptimePercent"], d["checks"]) for d in days] == [(None, 0)] * 3


def test_daily_bars_and_check_latency(faked):
    rt, client, _ = faked
    sid, _ = seed(rt)
    days = client.get(f"/api/services/{sid}/uptime/daily").json
    assert len(days) == 90 and days[-1]["day"] == NOW.date().isoformat()
    assert days[0]["day"] == (NOW.date() - timedelta(days=89)).isoformat()
    observed = [d for d in days if d["uptimePercent"] is not None]
    if NOW.hour == 0 and NOW.minute < 10:  # the 10 minutes straddle midnight: two days share them
        assert sum(d["observedSeconds"] for d in observed) == 600.0
    else:
        assert observed == [{"day": NOW.date().isoformat(), "uptimePercent": 90.0, "checks": 240,
                             "downtimeSeconds": 60.0, "observedSeconds": 600.0, "incidents": 1}]
    series = client.get(f"/api/services/{sid}/check-latency?window=1h").json
    assert (series["stepSeconds"], len(series["points"])) == (60, 10)
    first = series["points"][0]
    assert first == {"at": ago(600).isoformat(), "checks": 24, "latencyAvgMs": 10.0, "latencyMaxMs": 20.0}
    assert series["points"][-1]["latencyAvgMs"] == 19.0
    assert client.get(f"/api/services/{sid}/check-latency?window=7d").json["stepSeconds"] == 900


@pytest.mark.parametrize(("path", "field"), [
    ("uptime?window=2h", "window"), ("uptime?window=", "window"), ("uptime?days=3", "days"),
    ("uptime/daily?days=0", "days"), ("uptime/daily?days=x", "days"), ("checks?limit=0", "limit"),
    ("checks?limit=1001", "limit"), ("check-latency?window=1y", "window"),
], ids=["window", "empty-window", "unknown-param", "days-0", "days-text", "limit-0", "limit-over", "latency-window"])
def test_bad_query_is_400_naming_the_field(faked, path, field):
    rt, client, _ = faked
    sid = rt.registry.services()[0].id
    response = client.get(f"/api/services/{sid}/{path}")
    assert response.status_code == 400
    assert [d["field"] for d in response.json["details"]] == [field]


@pytest.mark.parametrize("path", ["uptime", "uptime/daily", "checks", "check-latency"])
def test_unknown_service_is_404(faked, path):
    _, client, _ = faked
    response = client.get(f"/api/services/999/{path}")
    assert response.status_code == 404 and "999" in response.json["error"]
    assert client.get(f"/api/services/99999999999/{path}").status_code == 404


def test_reads_need_a_token(faked):
    rt, _, _ = faked
    sid = rt.registry.services()[0].id
    anonymous = create_app(rt).test_client()
    assert anonymous.get(f"/api/services/{sid}/uptime").status_code == 401


def test_a_started_engine_fills_the_heartbeat_and_the_history(sessions, settings):
    """Real checks of a real loopback server every 0.5 s: the ring answers at once; stopping writes the open
    minute and 'unknown'."""
    with echo_servers("orders") as (server,):
        rt = Runtime.open(settings)
        rt.start()
        try:
            client = create_app(rt).test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)

            def get(path: str) -> Any:
                return client.get(f"/api/services/{sid}/{path}").json

            created: Any = client.post("/api/services", json={"name": "orders", "url": server.url}).json
            sid = created["id"]
            assert wait_for(lambda: len(get("checks?limit=3")) == 3, 10)
            checks = get("checks?limit=3")
            assert [c["at"] for c in checks] == sorted((c["at"] for c in checks), reverse=True)
            assert all(c["state"] == "healthy" and c["statusCode"] == 200 and c["latencyMs"] > 0
                       and c["error"] is None for c in checks)
            assert wait_for(lambda: get("uptime?window=1h")["observedSeconds"] > 0)
            assert get("uptime?window=1h")["uptimePercent"] == 100.0
        finally:
            rt.stop()
    with sessions() as s:
        states = [(t.from_state, t.to_state) for t in s.scalars(
            select(ServiceHealthTransition).where(ServiceHealthTransition.service_id == sid)
            .order_by(ServiceHealthTransition.id))]
        instance_states = s.scalars(select(InstanceHealthTransition.to_state)
                                    .order_by(InstanceHealthTransition.id)).all()
        rolled = s.scalar(select(func.sum(InstanceCheckMinute.checks)))
    assert states == [("unknown", "healthy"), ("healthy", "unknown")]
    assert instance_states == ["healthy", "unknown"]
    assert rolled is not None and rolled >= 3  # the open minute was written at stop
