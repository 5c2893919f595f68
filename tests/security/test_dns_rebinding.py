"""DNS rebinding: a name inside INSTANCE_ALLOWLIST when it was registered that resolves outside it afterwards reaches
nothing. The guard holds where each connection is made: health checks, scrapes, proxied requests and a load test
all report the refusal, and the server at the new address sees no request.

The name is resolved through socket.getaddrinfo (registration and the engine's resolvers both use it), switched here
from 127.0.0.1 to 127.0.0.2, where a real server counts what reaches it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from contract.roles import Role
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import free_port, token_for, wait_for
from tests.security.upstream import Upstream, upstream

NAME = "rebind.test"
REFUSAL = "refused: 127.0.0.2 is not in INSTANCE_ALLOWLIST"


class Rebinding:
    """socket.getaddrinfo with NAME answering `address` (every other name resolves as usual)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.address = "127.0.0.1"
        self.lookups = 0
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
            if isinstance(host, str) and host.rstrip(".").lower() == NAME:
                self.lookups += 1
                return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (self.address, port or 0))]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def moved(monkeypatch, clean_db, settings) -> Iterator[tuple[Runtime, object, Upstream, Rebinding]]:
    """A started engine with INSTANCE_ALLOWLIST=127.0.0.1/32 and `rebind` registered at NAME while it resolved to
    127.0.0.1; NAME now resolves to 127.0.0.2, where the counting server listens. No job checks or scrapes on its
    own (the test runs each round), so every connection below is one the test made happen."""
    dns = Rebinding(monkeypatch)
    port = free_port()
    with upstream("127.0.0.2", port) as server:
        rt = Runtime.open(settings.replace(instance_allowlist=("127.0.0.1/32",), health_interval=3600.0,
                                           collect_interval=3600.0, route_retries=1))
        rt.start()
        try:
            c = create_app(rt).test_client()
            c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
            r = c.post("/api/services", json={"name": "rebind", "url": f"http://{NAME}:{port}",
                                              "metricsPath": "/metrics"})
            assert r.status_code == 201, r.json
            assert dns.lookups >= 1  # the registration resolved it, to 127.0.0.1: allowed
            dns.address = "127.0.0.2"
            yield rt, c, server, dns
        finally:
            rt.stop()


def instance(rt: Runtime) -> tuple[int, int]:
    spec = rt.registry.by_name("rebind")
    assert spec is not None
    return spec.id, spec.instances[0].id


def test_health_checks_and_scrapes_refuse_the_new_address_and_say_so(moved):
    rt, _, server, dns = moved
    service_id, instance_id = instance(rt)
    before = dns.lookups
    rt.run_soon(rt.health.run_once()).result(10)
    rt.run_soon(rt.collector.run_once()).result(10)
    assert dns.lookups > before  # both resolved the name again, at the connection
    [check] = rt.health.recent(service_id, 10)
    assert check.state.value == "unhealthy"
    assert check.error is not None and REFUSAL in check.error
    assert REFUSAL in rt.collector.failures[instance_id]
    assert server.count() == 0


def test_proxied_requests_and_a_load_test_refuse_it_as_errors(moved):
    rt, c, server, _ = moved
    _, instance_id = instance(rt)
    rt.health.mark_healthy(instance_id)  # as if its last check had passed: the router tries it
    r = c.get("/proxy/rebind/work")
    assert r.status_code == 502
    assert REFUSAL in r.json["error"]

    r = c.post("/api/load-test/start", json={"concurrentUsers": 2, "requestsPerSecond": 20, "duration": 1,
                                             "targetService": "rebind", "path": "/work"})
    assert r.status_code == 202, r.json
    status = wait_for(lambda: (s := c.get("/api/load-test/status").json)["status"] != "running" and s, 30)
    assert status["status"] == "completed"
    assert status["totalRequests"] == status["failedRequests"] == 20
    # refused at the connection until the breaker or the ejector stops trying the instance at all
    assert status["errors"].get("refused", 0) >= 1
    assert set(status["errors"]) <= {"refused", "circuit_open", "no_instance"}
    assert server.count() == 0
