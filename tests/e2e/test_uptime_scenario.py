"""Ten minutes of a service's life on a fake clock: real checks over real HTTP (Python's own http.server), a
service-failure simulation that takes it down for 60 s, a critical `service-down` rule. The uptime over the
window is 90 %, and the incident's timeline holds the health transitions and the simulation that caused them.

The clock is fake so ten minutes take seconds: each 5 s step runs what the engine's jobs would (a round of
checks, the alert evaluation, the simulation expiry) and then advances the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from contract.roles import Role
from contract.settings import Settings
from engine.api import create_app
from engine.clock import FakeClock
from engine.runtime import Runtime
from tests.conftest import free_port, token_for
from tests.e2e.test_alerting import http_server

pytestmark = pytest.mark.e2e

STEP_S = 5
WINDOW_S = 600
FAULT_AT_S, FAULT_S = 120, 60


@pytest.fixture
def engine(clean_db: Any, settings: Settings) -> Iterator[tuple[Runtime, FakeClock, Any]]:
    """A runtime on a fake clock with no background jobs (the test runs them), and an admin's API client."""
    clock = FakeClock()
    rt = Runtime.open(settings.replace(health_interval=STEP_S, fall=2, rise=2), clock=clock)
    client = create_app(rt).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.ADMIN)
    try:
        yield rt, clock, client
    finally:
        rt.stop()


def test_a_service_down_60_s_of_10_minutes_is_90_percent_up_and_its_incident_shows_why(
        engine: tuple[Runtime, FakeClock, Any]) -> None:
    rt, clock, api = engine
    port = free_port()
    loop = asyncio.new_event_loop()
    try:
        with http_server(port):
            created = api.post("/api/services", json={"name": "static", "url": f"http://127.0.0.1:{port}",
                                                      "healthPath": "/"})
            assert created.status_code == 201, created.json
            service_id = created.json["id"]
            rule = api.post("/api/alert-rules", json={"name": "static-down", "kind": "service-down",
                                                      "service": "static", "severity": "critical"})
            assert rule.status_code == 201, rule.json
            for t in range(0, WINDOW_S, STEP_S):
                if t == FAULT_AT_S:
                    sim = api.post("/api/simulate/service-failure", json={"serviceName": "static",
                                                                         "duration": FAULT_S * 1000})
                    assert sim.status_code == 201, sim.json
                rt.chaos.expire_due()
                loop.run_until_complete(rt.health.run_once())
                rt.alerting.evaluate()
                clock.advance(STEP_S)
    finally:
        loop.run_until_complete(rt._client.close())
        loop.close()
    rt.writer.flush()

    uptime = api.get(f"/api/services/{service_id}/uptime?window=1h").json
    # fall = 2: down from the second failed check (t = 125 s) to the second good one after the fault (t = 185 s)
    assert uptime["downtimeSeconds"] == pytest.approx(FAULT_S, abs=0.5)
    assert uptime["uptimePercent"] == pytest.approx(90.0, abs=0.5)
    assert uptime["incidents"] == 1

    [incident] = api.get("/api/incidents").json
    assert (incident["service"], incident["status"], incident["expected"]) == ("static", "resolved", False)
    timeline = api.get(f"/api/incidents/{incident['id']}").json["timeline"]
    kinds = {e["kind"] for e in timeline}
    assert {"alert", "health", "simulation"} <= kinds, timeline
    [span] = [e for e in timeline if e["kind"] == "simulation"]
    assert span["endAt"] is not None and span["at"] < incident["startedAt"] < span["endAt"]
    health = [e for e in timeline if e["kind"] == "health"]
    assert len(health) >= 2, "the fall to unhealthy and the rise back are both on the timeline"
