"""/api/services/<id>/slo over a real PostgreSQL: set, read, remove, roles, validation naming the field, counts that
survive a restart, and requests routed through the proxy to a real demo process counted."""

from __future__ import annotations

from typing import Any

import pytest

from contract.roles import Role
from engine.api import create_app
from engine.runtime import Runtime
from tests.api.conftest import demo_process, started_client
from tests.conftest import token_for

SLO = {"availabilityTarget": 99.0, "latencyThresholdMs": 100, "latencyTarget": 90.0, "windowDays": 7}
NO_BURN = {"5m": None, "30m": None, "1h": None, "6h": None}


@pytest.fixture
def orders(client) -> int:
    response = client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001"})
    assert response.status_code == 201
    return int(response.json["id"])


def test_set_read_remove_with_roles(app, client, anon, orders):
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.VIEWER)
    path = f"/api/services/{orders}/slo"
    missing = viewer.get(path)
    assert missing.status_code == 404 and "SLO of service" in missing.json["error"]
    assert anon.put(path, json=SLO).status_code == 401
    assert viewer.put(path, json=SLO).status_code == 403
    assert client.put("/api/services/999/slo", json=SLO).status_code == 404
    assert client.get("/api/services/999/slo").status_code == 404
    put = client.put(path, json=SLO)
    assert put.status_code == 200
    assert put.json == {"service": "orders", "availabilityTarget": 99.0, "latencyThresholdMs": 100.0,
                        "latencyTarget": 90.0, "windowDays": 7, "availability": None, "latency": None, "requests": 0,
                        "errorBudgetRemaining": None, "burnRates": NO_BURN}
    assert viewer.get(path).json == put.json
    replaced = client.put(path, json={"availabilityTarget": 99.9})
    assert (replaced.json["availabilityTarget"], replaced.json["latencyThresholdMs"], replaced.json["windowDays"]) == (
        99.9, None, 30)
    assert viewer.delete(path).status_code == 403
    assert client.delete(path).status_code == 200
    assert viewer.get(path).status_code == 404
    assert client.delete(path).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"availabilityTarget": 100}, "availabilityTarget"),
    ({"availabilityTarget": 0}, "availabilityTarget"),
    ({}, "availabilityTarget"),
    ({"availabilityTarget": 99, "windowDays": 91}, "windowDays"),
    ({"availabilityTarget": 99, "latencyThresholdMs": -1, "latencyTarget": 90}, "latencyThresholdMs"),
    ({"availabilityTarget": 99, "latencyTarget": 90}, "body"),  # the two latency fields go together
    ({"availabilityTarget": 99, "extra": 1}, "extra"),
], ids=["100", "zero", "missing", "window", "threshold", "latency-pair", "unknown"])
def test_bad_input_names_the_field_and_changes_nothing(client, orders, body, field):
    response = client.put(f"/api/services/{orders}/slo", json=body)
    assert response.status_code == 422, response.json
    assert field in [d["field"] for d in response.json["details"]]
    assert client.get(f"/api/services/{orders}/slo").status_code == 404


def test_routed_counts_survive_a_restart(runtime, client, orders, settings):
    assert client.put(f"/api/services/{orders}/slo", json=SLO).status_code == 200
    for n in range(50):  # 2 failed, 5 slower than 100 ms
        runtime.traffic.record("orders", 150.0 if n % 10 == 0 else 5.0, n not in (3, 4))
    runtime.traffic.record("payments", 5.0, False)  # no SLO: not counted
    out = client.get(f"/api/services/{orders}/slo").json
    assert (out["requests"], out["availability"], out["latency"]) == (50, 96.0, 90.0)
    assert out["errorBudgetRemaining"] == pytest.approx(1 - 0.04 / 0.01)
    assert out["burnRates"]["5m"] == pytest.approx(4.0) and out["burnRates"]["6h"] == pytest.approx(4.0)
    runtime.stop()  # the open minute is written

    again = Runtime.open(settings)
    try:
        c: Any = create_app(again).test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.VIEWER)
        out = c.get(f"/api/services/{orders}/slo").json
        assert (out["requests"], out["availability"], out["latency"]) == (50, 96.0, 90.0)
        assert out["burnRates"] == NO_BURN  # live counters start with the engine
        again.traffic.record("orders", 5.0, False)
        out = c.get(f"/api/services/{orders}/slo").json
        assert (out["requests"], out["burnRates"]["5m"]) == (51, pytest.approx(100.0))
    finally:
        again.stop()


@pytest.fixture(scope="module")
def target():
    with demo_process(seed=11) as instance:
        yield instance


def test_requests_routed_through_the_proxy_are_counted(clean_db, settings, target):
    # no retries: one routed request per call (each attempt the router sends is a routed request)
    with started_client(settings, target.url, route_retries=0) as (rt, c):
        spec = rt.registry.by_name("orders")
        assert spec is not None
        service_id = spec.id
        assert c.put(f"/api/services/{service_id}/slo", json={"availabilityTarget": 95.0}).status_code == 200
        assert [c.get("/proxy/orders/work?ms=1&cpu=0").status_code for _ in range(16)] == [200] * 16
        failure = c.post("/api/simulate/service-failure", json={"serviceName": "orders", "duration": 5000})
        assert failure.status_code == 201
        assert [c.get("/proxy/orders/work?ms=1&cpu=0").status_code for _ in range(4)] == [503] * 4
        out = c.get(f"/api/services/{service_id}/slo").json
        assert (out["requests"], out["availability"]) == (20, 80.0)
        assert out["burnRates"]["5m"] == pytest.approx(0.2 / 0.05)
        assert rt.slos.burn_rate("orders", 60) == pytest.approx(4.0)
