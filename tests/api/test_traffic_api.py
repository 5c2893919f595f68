"""/api/load-balancer and /api/circuit-breakers over the test client (engine loop not needed)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from db.models import BreakerTransitionRow
from engine.clock import FakeClock
from engine.traffic.breaker import BreakerConfig, CircuitBreaker, Transition


def register(client, name="orders"):
    assert client.post("/api/services", json={"name": name, "url": "http://127.0.0.1:7001"}).status_code == 201


def test_algorithm_switch_and_unknown_name(client, runtime):
    register(client)
    r = client.put("/api/load-balancer", json={"algorithm": "p2c"})
    assert r.status_code == 200 and r.json["algorithm"] == "p2c" and runtime.router.algorithm == "p2c"
    assert [i["url"] for i in r.json["instances"]] == ["http://127.0.0.1:7001"]
    bad = client.put("/api/load-balancer", json={"algorithm": "fastest"})
    assert bad.status_code == 400
    assert bad.json["details"][0]["field"] == "algorithm" and "round-robin" in bad.json["error"]
    assert runtime.router.algorithm == "p2c"


def test_breaker_thresholds_are_validated_by_name_and_stored(client, runtime):
    register(client)
    r = client.put("/api/circuit-breakers/orders", json={"failureThreshold": None})
    assert r.status_code == 422 and r.json["details"][0]["field"] == "failureThreshold"
    r = client.put("/api/circuit-breakers/orders", json={"minimumCalls": 30})
    assert r.status_code == 422
    assert r.json["details"] == [{"field": "minimumCalls", "message": "minimumCalls must be between 1 and windowSize"}]
    r = client.put("/api/circuit-breakers/orders", json={"failureThreshold": 3, "timeout": 5000, "slowCallMs": 200})
    assert r.status_code == 200
    assert (r.json["failureThreshold"], r.json["timeout"], r.json["slowCallMs"]) == (3, 5000, 200)
    assert client.put("/api/circuit-breakers/orders", json={"slowCallMs": None}).json["slowCallMs"] is None
    assert client.put("/api/circuit-breakers/nope", json={"failureThreshold": 3}).status_code == 404
    listed = client.get("/api/circuit-breakers").json
    assert (listed["total"], listed["closed"], listed["open"], listed["halfOpen"]) == (1, 1, 0, 0)
    assert listed["breakers"][0]["failureThreshold"] == 3


def test_reset_empties_the_counters_and_is_persisted(client, runtime):
    register(client)
    breaker = runtime.breakers.get("orders")
    for _ in range(5):
        assert breaker.allow()
        breaker.record_failure("HTTP 500")
    assert client.get("/api/circuit-breakers").json["open"] == 1
    r = client.post("/api/circuit-breakers/orders/reset")
    assert (r.json["state"], r.json["failureCount"], r.json["rejectedCount"]) == ("CLOSED", 0, 0)
    runtime.writer.flush()
    with runtime.sessions() as s:
        rows = s.execute(select(BreakerTransitionRow.to_state, BreakerTransitionRow.reason)
                         .order_by(BreakerTransitionRow.id)).all()
    assert [tuple(r) for r in rows] == [("OPEN", "5 consecutive failures (last: HTTP 500)"), ("CLOSED", "manual reset")]
    assert client.post("/api/circuit-breakers/reset-all").json["message"] == "1 breaker(s) reset"


def test_half_open_is_dated_when_the_timeout_ran_out_not_when_noticed():
    clock = FakeClock()
    seen: list[Transition] = []
    b = CircuitBreaker("orders", BreakerConfig(failure_threshold=1, open_timeout_ms=60_000), clock, (seen.append,))
    b.allow()
    b.record_failure()
    opened = seen[-1].at
    clock.advance(74)  # nobody asks for 14 s after the timeout
    assert b.state.value == "HALF_OPEN"
    assert seen[-1].at == opened + timedelta(seconds=60)


def test_a_restart_closes_stored_open_breakers_with_a_transition(client, runtime, settings):
    from engine.runtime import Runtime

    register(client)
    breaker = runtime.breakers.get("orders")
    breaker.allow()
    for _ in range(5):
        breaker.record_failure()
    runtime.writer.flush()
    again = Runtime.open(settings)
    try:
        again.writer.flush()
        with again.sessions() as s:
            last = s.execute(select(BreakerTransitionRow.from_state, BreakerTransitionRow.to_state,
                                    BreakerTransitionRow.reason).order_by(BreakerTransitionRow.id.desc())).first()
        assert last is not None and tuple(last) == ("OPEN", "CLOSED", "engine restarted")
        assert again.breakers is not None and again.breakers.get("orders").state.value == "CLOSED"
    finally:
        again.stop()
