"""Staged rates and rotating requests end to end: the engine and its API on real ports, echo servers (tests/e2e/echo.py)
recording what arrives, worker processes taking shares of the schedule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from contract.roles import Role
from contract.settings import Settings
from engine.api import create_app
from engine.loadtest.generator import planned
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for
from tests.e2e.conftest import run_to_end
from tests.e2e.echo import EchoServer, echo_servers

pytestmark = pytest.mark.e2e


@contextmanager
def engine_on(settings: Settings, echoes: list[EchoServer], **overrides: Any) -> Iterator[httpx.Client]:
    """The engine (loop and API on a real port) with service `echo` on the echo servers, healthy; an operator client."""
    rt = Runtime.open(settings.replace(**overrides))
    rt.start(app=create_app(rt))
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=10,
                       headers={"Authorization": "Bearer " + token_for(Role.OPERATOR)})
    try:
        r = api.post("/api/services", json={"name": "echo", "instances": [e.url for e in echoes]})
        assert r.status_code == 201, r.text
        spec = rt.registry.by_name("echo")
        assert spec is not None
        assert wait_for(lambda: all(rt.health_of(i.id).value == "healthy" for i in spec.instances), 15)
        yield api
    finally:
        api.close()
        rt.stop()


SPECS: list[dict[str, Any]] = [
    {"method": "POST", "path": "/orders?customer=7&x=%20y", "body": '{"qty": 2, "note": "café ☕"}',
     "headers": {"Content-Type": "application/json; charset=utf-8", "X-Tenant": "acme", "Authorization": "Bearer t0k",
                 "X-Unicode": "naïve ☕", "X-Empty": ""}},
    {"method": "GET", "path": "/items/42"},
    {"method": "PUT", "path": "/items/42?force=1", "headers": {"If-Match": '"v3"'}, "body": ""},
    {"method": "DELETE", "path": "/items/9", "headers": {"X-Reason": "cleanup"}},
]


def test_rotating_requests_arrive_as_specified_with_their_route_key_from_every_share(clean_db, settings):
    # 2 shares (a worker process takes every other request number), 60 requests over a 0 -> 40 -> 40 req/s ramp
    with echo_servers("e0") as echoes, engine_on(settings, echoes, loadtest_process_rps=20.0) as api:
        body = {"concurrentUsers": 4, "targetService": "echo", "startRps": 0,
                "stages": [{"durationS": 1, "targetRps": 40}, {"durationS": 1, "targetRps": 40}],
                "requests": SPECS, "routeKey": "cust-{n%3}/req-{n}"}
        st = run_to_end(api, body, 30)
        assert st["status"] == "completed" and st["workers"] == 2, st
        assert (st["sent"], st["successfulRequests"], st["droppedRequests"]) == (60, 60, 0)
        seen = echoes[0].seen
        assert len(seen) == 60
        by_n = {}
        for s in seen:
            (key,) = s.header("X-Route-Key")
            n = int(key.rsplit("-", 1)[1])
            assert key == f"cust-{n % 3}/req-{n}"
            by_n[n] = s
        assert sorted(by_n) == list(range(60))  # each request number once, across both processes
        for n, s in by_n.items():
            spec = SPECS[n % len(SPECS)]
            path, _, query = spec["path"].partition("?")
            assert (s.method, s.path, s.query) == (spec["method"], path, query.encode())
            for name, value in spec.get("headers", {}).items():
                # http.server decodes header bytes as latin-1: re-encoding gives the bytes that arrived
                assert [v.encode("latin-1") for v in s.header(name)] == [value.encode()], (n, name)
            assert s.body == (spec.get("body") or "").encode()
            expected_length = "0" if spec["method"] in ("POST", "PUT") and not spec.get("body") else None
            if spec.get("body"):
                expected_length = str(len(spec["body"].encode()))
            assert s.header("Content-Length") == ([expected_length] if expected_length else [])


def test_a_ramp_up_and_down_is_held_second_by_second(clean_db, settings):
    # 50 -> 400 -> 50 req/s over 3 + 3 s against a loopback server; each full second sends what is due in it
    start, stages = 50.0, [{"durationS": 3, "targetRps": 400}, {"durationS": 3, "targetRps": 50}]
    with echo_servers("e0") as echoes, engine_on(settings, echoes) as api:
        st = run_to_end(api, {"concurrentUsers": 40, "targetService": "echo", "startRps": start, "stages": stages}, 40)
        assert st["status"] == "completed" and st["workers"] == 1 and st["requestsPerSecond"] == 400
        assert st["sent"] == st["successfulRequests"] == 1350 and st["droppedRequests"] == 0
        # the last seconds' rows reach the database through the batch writer a moment after the status says so
        samples = wait_for(lambda: (got := api.get(f"/api/load-tests/{st['id']}").json()["samples"]) and
                           sum(s["sent"] for s in got) == st["sent"] and got, 10)
        assert samples, "the samples never added up to the run's sent requests"
    pairs = [(s["durationS"], s["targetRps"]) for s in stages]
    sent = {s["second"]: s["sent"] for s in samples}
    plan = {k: planned(start, pairs, k) for k in range(1, 7)}
    off = {k: (sent.get(k, 0), round(plan[k], 1)) for k in plan
           if abs(sent.get(k, 0) - plan[k]) > max(0.02 * plan[k], 1.0)}
    assert not off, f"seconds off their planned count (sent, planned): {off}; all: {sent}"
