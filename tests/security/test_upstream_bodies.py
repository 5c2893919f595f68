"""Upstream bodies are read up to a bound, never whole: a health check reads a little and is judged on its status,
a scrape past its bound fails saying so, a proxied answer past ROUTE_MAX_BODY_BYTES is a 502 naming the limit. A real
server sends each too-large body (an endless one included) and counts how much of it it managed to send."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from contract.roles import Role
from engine.api import create_app
from engine.health.collector import SCRAPE_BODY_BYTES
from engine.runtime import Runtime
from tests.conftest import free_port, token_for
from tests.security.upstream import Upstream, upstream

LIMIT = 1024 * 1024
MUCH_LESS = 16 * 1024 * 1024  # what the server may push into socket buffers before it sees the reader gone


@pytest.fixture
def live(clean_db, settings) -> Iterator[tuple[Runtime, FlaskClient, Upstream]]:
    """A started engine routing to `orders` on a local server (healthy as its starter saw it); no job checks or
    scrapes on its own (the test runs each round), no retries or ejections to blur one answer."""
    with upstream("127.0.0.1", free_port()) as server:
        rt = Runtime.open(settings.replace(route_max_body=LIMIT, route_retries=0, eject_consecutive=100,
                                           health_interval=3600.0, collect_interval=3600.0))
        rt.start()
        try:
            c = create_app(rt).test_client()
            c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
            assert c.post("/api/services", json={"name": "orders", "url": server.url}).status_code == 201
            spec = rt.registry.by_name("orders")
            assert spec is not None
            rt.health.mark_healthy(spec.instances[0].id)
            yield rt, c, server
        finally:
            rt.stop()


def test_a_health_check_reads_a_little_of_an_endless_body_and_is_healthy(live):
    rt, c, server = live
    r = c.post("/api/services", json={"name": "chatty", "url": server.url, "healthPath": "/endless"})
    assert r.status_code == 201
    rt.run_soon(rt.health.run_once()).result(10)
    spec = rt.registry.by_name("chatty")
    [check] = rt.health.recent(spec.id, 1)
    assert (check.state.value, check.status_code, check.error) == ("healthy", 200, None)
    assert server.sent < MUCH_LESS


def test_a_scrape_past_its_bound_fails_saying_the_body_is_too_large(live):
    rt, c, server = live
    for name, path in (("padded", f"/padded/{SCRAPE_BODY_BYTES + 1000}"), ("endless", "/endless")):
        r = c.post("/api/services", json={"name": name, "url": server.url, "metricsPath": path})
        assert r.status_code == 201
    rt.run_soon(rt.collector.run_once()).result(10)
    for name in ("padded", "endless"):
        spec = rt.registry.by_name(name)
        assert rt.collector.failures[spec.instances[0].id] == f"metrics body larger than {SCRAPE_BODY_BYTES} bytes"
        assert rt.collector.latest[name].instances_scraped == 0
    assert server.sent < SCRAPE_BODY_BYTES + 1000 + MUCH_LESS


def test_a_proxied_answer_past_the_limit_is_a_502_naming_it(live):
    _, c, server = live
    small = c.get("/proxy/orders/big/1000")
    assert (small.status_code, len(small.data)) == (200, 1000)
    for path in (f"/proxy/orders/big/{LIMIT + 1}", "/proxy/orders/endless"):
        r = c.get(path)
        assert r.status_code == 502, path
        assert r.json["error"] == f"upstream failed: response body larger than {LIMIT} bytes"
    assert server.sent < 2 * LIMIT + 1000 + MUCH_LESS
