"""The proxy end to end: real demo instances on loopback, the real engine and API, over real HTTP."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from db.models import BreakerTransitionRow, MetricRow
from tests.conftest import wait_for
from tests.e2e.conftest import running_fleet

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(clean_db, settings):
    with running_fleet(settings, health_interval=0.5) as pair:
        yield pair


def test_round_robin_split_then_a_killed_instance_stops_being_picked(fleet, capsys):
    rt, api = fleet
    served: Counter[str] = Counter()
    for _ in range(1000):
        r = api.get("/proxy/orders/work", params={"ms": 0, "cpu": 0})
        assert r.status_code == 200 and r.json()["service"] == "orders"
        served[r.headers["X-Upstream-Instance"]] += 1
    assert sorted(served.values()) == [500, 500]
    lb = api.get("/api/load-balancer").json()
    assert sorted(i["picks"] for i in lb["instances"] if i["service"] == "orders") == [500, 500]
    assert lb["algorithm"] == "round-robin"

    def routed_rows():
        rt.writer.flush()
        with rt.sessions() as s:
            return s.execute(select(func.sum(MetricRow.request_count), func.max(MetricRow.latency_p99_ms))
                             .where(MetricRow.service_name == "orders")).one()

    assert wait_for(lambda: (routed_rows()[0] or 0) >= 1000, 5)  # the collector's buckets hold the traffic
    assert routed_rows()[1] is not None and routed_rows()[1] > 0

    victim = next(i for i in rt.fleet.instances if i.service == "orders")
    victim.on_purpose = True  # as a chaos kill: the supervisor leaves it to health checks and the balancer
    os.kill(victim.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    outcomes = []  # (status, picked the victim?)
    picks_before = {i["url"]: i["picks"] for i in api.get("/api/load-balancer").json()["instances"]}
    deadline = killed_at + 60
    quiet = 0
    while time.monotonic() < deadline and quiet < 200:
        before = rt.router.targets[_instance_id(rt, victim.url)].picks
        r = api.get("/proxy/orders/work", params={"ms": 0, "cpu": 0})
        hit_victim = rt.router.targets[_instance_id(rt, victim.url)].picks > before
        outcomes.append((r.status_code, hit_victim))
        quiet = 0 if hit_victim else quiet + 1
    assert quiet >= 200, "the killed instance was still being picked after 60 s"
    last = max(n for n, (_, hit) in enumerate(outcomes) if hit)
    failed_before = sum(1 for status, _ in outcomes[: last + 1] if status != 200)
    failed_after = sum(1 for status, _ in outcomes[last + 1:] if status != 200)
    victim_picks = rt.router.targets[_instance_id(rt, victim.url)].picks - picks_before[victim.url]
    with capsys.disabled():
        print(f"\nkill -9 under traffic: the victim got {victim_picks} more pick(s) over {last + 1} request(s); "
              f"{failed_before} of those failed, {failed_after} failed after (of {len(outcomes)})")
    assert all(status == 200 for status, _ in outcomes[last + 1:]) or rt.breakers.get("orders").state.value != "CLOSED"


def test_breaker_opens_when_an_instance_dies_under_traffic(fleet):
    rt, api = fleet
    # retries off, so every call to the dead instance is a failure the breaker sees; a window short enough
    # to open before outlier ejection (5 consecutive errors) takes the instance out
    rt.router.max_retries = 0
    r = api.put("/api/circuit-breakers/payments", json={"windowSize": 6, "minimumCalls": 6, "failureRateThreshold": 30})
    assert r.status_code == 200 and r.json()["windowSize"] == 6
    victim = next(i for i in rt.fleet.instances if i.service == "payments")
    victim.on_purpose = True  # as a chaos kill: not replaced
    for _ in range(20):
        assert api.get("/proxy/payments/work", params={"ms": 0}).status_code == 200
    os.kill(victim.process.pid, signal.SIGKILL)
    codes = Counter(api.get("/proxy/payments/work", params={"ms": 0}).status_code for _ in range(40))
    assert codes[503] > 0  # 503 from the dead instance's connection error, then from the open breaker
    breaker = api.get("/api/circuit-breakers").json()
    assert breaker["open"] == 1
    assert next(b for b in breaker["breakers"] if b["serviceName"] == "payments")["state"] == "OPEN"
    body = api.get("/proxy/payments/work").json()
    assert body["error"] == "circuit breaker of payments is OPEN"
    rt.writer.flush()
    with rt.sessions() as s:
        rows = s.execute(select(BreakerTransitionRow.from_state, BreakerTransitionRow.to_state)
                         .where(BreakerTransitionRow.service_name == "payments")).all()
    assert ("CLOSED", "OPEN") in [tuple(r) for r in rows]
    assert api.post("/api/circuit-breakers/payments/reset").json()["state"] == "CLOSED"


def test_proxy_forwards_method_query_body_and_hides_our_token(fleet):
    _, api = fleet
    r = api.get("/proxy/inventory/work", params={"ms": "abc"})
    assert r.status_code == 400 and r.json() == {"error": "ms and cpu must be numbers"}  # the upstream's own answer
    assert api.get("/proxy/nope/work").status_code == 404
    r = api.post("/proxy/inventory/work", content=b"{}")
    assert r.status_code == 405  # the demo service has no POST /work: its answer comes back as is


def _instance_id(rt, url):
    return next(i.id for s in rt.registry.services() for i in s.instances if i.url == url)
