"""Scaling end to end: real demo processes started and stopped, proxied traffic, the autoscaler under a load test."""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from contract.roles import Role
from db.models import Service
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for
from tests.e2e.conftest import running_fleet

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(clean_db, settings):
    with running_fleet(settings, health_interval=0.5, autoscale_interval=2.0) as pair:
        yield pair


def service(api, name):
    return next(s for s in api.get("/api/scaling").json()["services"] if s["name"] == name)


def test_scale_up_starts_a_process_that_is_healthy_and_gets_proxied_traffic(fleet):
    rt, api = fleet
    orders = service(api, "orders")
    pids_before = {i.process.pid for i in rt.fleet.running("orders")}
    began = time.monotonic()
    r = api.post(f"/api/services/{orders['id']}/scale-up")
    took = time.monotonic() - began
    assert r.status_code == 200 and r.json() == {"message": "orders scaled up: 2 -> 3 instance(s)",
                                                  "newInstanceCount": 3}
    assert took < 10
    new = [i for i in rt.fleet.running("orders") if i.process.pid not in pids_before]
    assert len(new) == 1 and new[0].process.poll() is None
    served = Counter(api.get("/proxy/orders/work", params={"ms": 0, "cpu": 0}).headers["X-Upstream-Instance"]
                     for _ in range(30))
    assert served[new[0].url] == 10  # round-robin over three
    inst = next(i for s in api.get("/api/services").json() if s["name"] == "orders" for i in s["instances"]
                if i["url"] == new[0].url)
    assert inst["status"] == "healthy"
    events = api.get("/api/scaling/events", params={"service": "orders"}).json()
    assert (events[0]["direction"], events[0]["fromCount"], events[0]["toCount"], events[0]["source"]) == (
        "up", 2, 3, "manual")


def test_scale_down_under_steady_proxied_load_fails_no_request(fleet):
    rt, api = fleet
    payments = service(api, "payments")
    outcomes: Counter[int] = Counter()
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            outcomes[api.get("/proxy/payments/work", params={"ms": 20, "cpu": 0}).status_code] += 1

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(1.0)
        victim = rt.fleet.running("payments")[-1]
        r = api.post(f"/api/services/{payments['id']}/scale-down")
        assert r.status_code == 200 and r.json()["newInstanceCount"] == 1
        assert victim.process.poll() is not None  # the process is gone
        time.sleep(1.0)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert outcomes[200] > 100 and set(outcomes) == {200}, outcomes
    again = api.post(f"/api/services/{payments['id']}/scale-down")
    assert again.status_code == 409 and "minimum of 1" in again.json()["error"]


def test_external_services_and_bounds_are_409(fleet):
    _, api = fleet
    created = api.post("/api/services", json={"name": "ext", "url": "http://127.0.0.1:9"}).json()
    for action in ("scale-up", "scale-down"):
        r = api.post(f"/api/services/{created['id']}/{action}")
        assert r.status_code == 409 and "not managed" in r.json()["error"]
    inventory = service(api, "inventory")
    r = api.put(f"/api/services/{inventory['id']}/autoscaler", json={"enabled": False, "maxInstances": 2})
    assert r.status_code == 200 and r.json()["maxInstances"] == 2
    r = api.post(f"/api/services/{inventory['id']}/scale-up")
    assert r.status_code == 409 and "maximum of 2" in r.json()["error"]
    r = api.put(f"/api/services/{inventory['id']}/autoscaler", json={"enabled": True, "minInstances": 3})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "minInstances"


# The autoscaler under a load test on orders (2 instances), by the HPA rule desired = ceil(current x value / target)
# with the value the requests in flight per instance. 150 req/s at a 100 ms median keeps 150 x 0.1 = 15 requests in
# flight (Little's law; more when a busy machine stretches latency). From 2 instances: ceil(2 x (15 / 2) / 2) = 8,
# max step 4 gives 6, and max 3 binds: the count goes to 3 and stays there. Leaving 3 would take ceil(3 x v / 2) <= 2,
# v <= 4/3 per instance, 4 in flight in all: a quarter of what the load keeps in flight.
RPS, MEDIAN_MS, TARGET, MAX_STEP, MAX = 150, 100, 2, 4, 3
IN_FLIGHT = RPS * MEDIAN_MS / 1000
UNCAPPED = min(math.ceil(2 * (IN_FLIGHT / 2) / TARGET), 2 + MAX_STEP)
DESIRED = min(UNCAPPED, MAX)


def test_autoscaler_scales_a_load_test_to_the_hpa_count_capped_by_max_and_back_down_explaining_every_step(fleet):
    assert (IN_FLIGHT, UNCAPPED, DESIRED) == (15, 6, 3)  # the cap binds: a count past it is the rule ignoring max
    _rt, api = fleet
    orders = service(api, "orders")
    r = api.put(f"/api/services/{orders['id']}/autoscaler", json={
        "enabled": True, "metric": "inflight", "target": TARGET, "scaleUpWindowS": 0, "scaleDownWindowS": 6,
        "maxStep": MAX_STEP, "minInstances": 1, "maxInstances": MAX})
    assert r.status_code == 200 and (r.json()["target"], r.json()["maxInstances"]) == (TARGET, MAX)
    lt = api.post("/api/load-test/start", json={"concurrentUsers": 60, "requestsPerSecond": RPS, "duration": 14,
                                                "targetService": "orders", "path": f"/work?ms={MEDIAN_MS}&cpu=0"})
    assert lt.status_code == 202
    # a still count (the autoscaler off, or never acting) fails here
    assert wait_for(lambda: service(api, "orders")["instanceCount"] == DESIRED, 2 * 2.0 + 3), (
        service(api, "orders"))  # within 2 periods
    counts = []
    while api.get("/api/load-test/status").json()["status"] == "running":
        counts.append(service(api, "orders")["instanceCount"])
        time.sleep(0.5)
    assert len(counts) >= 10 and set(counts) == {DESIRED}, counts  # held at the cap for the rest of the load
    assert wait_for(lambda: service(api, "orders")["instanceCount"] == 1, 6 + 2 * 2.0 + 5)  # after the window

    def down_recorded():  # a period records its decision once its instances are stopped
        events = api.get("/api/scaling/events", params={"service": "orders", "limit": 200}).json()
        return events if (events[0]["direction"], events[0]["toCount"]) == ("down", 1) else None

    events = wait_for(down_recorded, 5)
    assert events is not None
    auto = [e for e in reversed(events) if e["source"] == "autoscaler"]  # oldest first
    assert auto and all(e["reason"] and e["metric"] == "inflight" and e["target"] == TARGET for e in auto)
    moves = [(e["direction"], e["fromCount"], e["toCount"]) for e in auto if e["direction"] != "none"]
    # one step up to the cap, then down to min: at once, or through 2 when a period caught the load's last requests
    assert moves[0] == ("up", 2, DESIRED) and moves[-1][2] == 1, moves
    assert all(d == "down" and f == to for (_, _, to), (d, f, _) in itertools.pairwise(moves)), moves
    up = next(e for e in auto if e["direction"] == "up")
    assert f"limited to max {MAX}" in up["reason"], up["reason"]
    assert any(f"at the max of {MAX}" in e["reason"] for e in auto)  # periods under load that the cap held
    assert any("held by the 6 s scale-down window" in e["reason"] for e in auto)  # no-change periods after it
    st = api.get("/api/load-test/status").json()
    assert st["failedRequests"] == 0 and st["droppedRequests"] == 0


def test_a_service_registered_with_a_launch_command_is_managed_and_survives_a_restart(clean_db, settings):
    command = f"{sys.executable} -m engine.fleet.demo_service --name shop --port {{port}} --seed 7"
    rt = Runtime.open(settings)
    rt.start(app=create_app(rt))
    try:
        def client(role):
            return httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=30,
                                headers={"Authorization": "Bearer " + token_for(role, "admin" if role is Role.ADMIN
                                                                                 else None)})

        with client(Role.OPERATOR) as op, client(Role.ADMIN) as admin:
            body = {"name": "shop", "launchCommand": command, "minInstances": 2, "maxInstances": 3}
            assert op.post("/api/services", json=body).status_code == 403  # a command on this host: admins only
            bad = admin.post("/api/services", json={**body, "launchCommand": "sleep 100"})
            assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "launchCommand"
            broken = admin.post("/api/services", json={**body, "launchCommand": "false {port}"})
            assert broken.status_code == 422 and "did not start" in broken.json()["details"][0]["message"]
            assert [s["name"] for s in admin.get("/api/services").json()] == []  # nothing left behind
            r = admin.post("/api/services", json=body)
            assert r.status_code == 201, r.text
            assert r.json()["managed"] and r.json()["instanceCount"] == 2
            assert all(i["status"] == "healthy" for i in r.json()["instances"])
            first_pids = {i.process.pid for i in rt.fleet.running("shop")}
    finally:
        rt.stop()
    again = Runtime.open(settings)
    again.start(app=create_app(again))
    try:
        running = again.fleet.running("shop")
        assert len(running) == 2 and not ({i.process.pid for i in running} & first_pids)
        with again.sessions() as s:
            urls = sorted(i.url for i in s.scalars(select(Service).where(Service.name == "shop")).one().instances)
        assert urls == sorted(i.url for i in running)
    finally:
        again.stop()
