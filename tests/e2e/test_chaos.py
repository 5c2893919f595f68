"""Failure simulation end to end: the real engine, API and demo fleet; a load test running through a failure."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import running_fleet

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(clean_db, settings):
    with running_fleet(settings, health_interval=0.5) as pair:
        yield pair


def service(api, name):
    return next(s for s in api.get("/api/services").json() if s["name"] == name)


def test_service_failure_during_a_load_test_opens_the_breaker_and_everything_recovers_by_itself(fleet):
    _, api = fleet
    # thresholds are set beforehand (a 3 s open timeout); nothing is touched while the failure runs
    assert api.put("/api/circuit-breakers/orders", json={"timeout": 3000}).status_code == 200
    lt = api.post("/api/load-test/start", json={"concurrentUsers": 20, "requestsPerSecond": 100, "duration": 22,
                                                "targetService": "orders", "path": "/work?ms=5&cpu=0"})
    assert lt.status_code == 202
    time.sleep(3)
    sim = api.post("/api/simulate/service-failure", json={"serviceName": "orders", "duration": 10_000})
    assert sim.status_code == 201
    seen: dict[str, set[str]] = {"breaker": set(), "health": set()}
    while (st := api.get("/api/load-test/status").json())["status"] == "running":
        breakers = api.get("/api/circuit-breakers").json()["breakers"]
        seen["breaker"].add(next(b["state"] for b in breakers if b["serviceName"] == "orders"))
        seen["health"].add(service(api, "orders")["status"])
        time.sleep(0.25)
    assert "OPEN" in seen["breaker"] and "unhealthy" in seen["health"]
    assert st["failedRequests"] >= 500 and st["droppedRequests"] == 0
    assert st["totalRequests"] == st["successfulRequests"] + st["failedRequests"] == 2200
    assert set(st["errors"]) <= {"circuit_open", "no_instance", "connection"}
    samples = api.get(f"/api/load-tests/{st['id']}").json()["samples"]
    assert all(s["failed"] == 0 for s in samples[:3])  # before the failure
    assert sum(s["failed"] for s in samples[19:]) == 0  # 3 s after it ended (the breaker's timeout): recovered
    assert service(api, "orders")["status"] == "healthy"
    breaker = next(b for b in api.get("/api/circuit-breakers").json()["breakers"] if b["serviceName"] == "orders")
    assert breaker["state"] == "CLOSED"
    assert api.get("/api/simulations").json()[0]["status"] == "completed"


def test_kill_mode_terminates_a_real_instance_process(fleet):
    rt, api = fleet
    before = [i for i in rt.fleet.instances if i.service == "payments" and i.process.poll() is None]
    r = api.post("/api/simulate/service-failure", json={"serviceName": "payments", "duration": 5000, "mode": "kill"})
    assert r.status_code == 201
    alive = [i for i in rt.fleet.instances if i.service == "payments" and i.process.poll() is None]
    assert len(alive) == len(before) - 1
    killed = next(i for i in before if i not in alive)
    deadline = time.monotonic() + 5
    while next(i for i in service(api, "payments")["instances"] if i["url"] == killed.url)["status"] != "unhealthy":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert service(api, "payments")["status"] == "degraded"  # one of two instances serves
    assert all(api.get("/proxy/payments/work?ms=1&cpu=0").status_code == 200 for _ in range(10))
