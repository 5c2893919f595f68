"""The proxy end to end, over real HTTP on loopback: the demo fleet for balancing and breaking, echo servers
(tests/e2e/echo.py) for what crosses `/proxy/<service>/<path>` byte for byte."""

from __future__ import annotations

import base64
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from contract.roles import Role
from contract.settings import Settings
from db.models import BreakerTransitionRow, MetricRow
from engine.api import create_app
from engine.clock import Clock, FakeClock
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for
from tests.e2e.conftest import running_fleet
from tests.e2e.echo import ANSWER_HEADERS, EchoServer, Seen, echo_servers

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


# --- echo backends -------------------------------------------------------------------------------------------

# every hop-by-hop field we send, and one named only by Connection (which names no other, so each is stripped
# for being hop-by-hop itself): none may reach the upstream
SENT_HOP_BY_HOP = {
    "Connection": "X-Hop-Named", "Keep-Alive": "timeout=5", "X-Hop-Named": "for-the-first-hop",
    "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0", "TE": "trailers", "Trailer": "X-Checksum",
    "Upgrade": "h2c", "Transfer-Encoding": "chunked",
}
ORDINARY = {
    "X-Request-Id": "req-0001", "Accept-Language": "fr-CH, fr;q=0.9", "Cookie": "session=abc; theme=dark",
    "User-Agent": "echo-test/1.0", "Content-Type": "application/octet-stream", "X-Route-Key": "customer-7",
}


@contextmanager
def proxied(settings: Settings, echoes: list[EchoServer], clock: Clock | None = None,
            **overrides: Any) -> Iterator[tuple[Runtime, httpx.Client]]:
    """The engine (loop and API on a real port) with service `echo` on the echo servers, every instance healthy,
    and an operator's client; the client's API calls before the test's are exactly one (the registration)."""
    rt = Runtime.open(settings.replace(**overrides), clock)
    rt.start(app=create_app(rt))
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=10,
                       headers={"Authorization": "Bearer " + token_for(Role.OPERATOR)})
    try:
        r = api.post("/api/services", json={"name": "echo", "instances": [e.url for e in echoes]})
        assert r.status_code == 201, r.text
        assert wait_for(lambda: _all_healthy(rt, len(echoes)), 15), "the echo servers never became healthy"
        yield rt, api
    finally:
        api.close()
        rt.stop()


def _all_healthy(rt: Runtime, count: int = 3) -> bool:
    """Service echo has count instances, every one healthy."""
    spec = rt.registry.by_name("echo")
    return spec is not None and len(spec.instances) == count and all(
        rt.health_of(i.id).value == "healthy" for i in spec.instances)


@pytest.fixture
def echoes() -> Iterator[list[EchoServer]]:
    with echo_servers("e0", "e1", "e2") as servers:
        yield servers


@pytest.fixture
def echo_proxy(clean_db, settings, echoes):
    with proxied(settings, echoes) as pair:
        yield pair


def _only_seen(echoes: list[EchoServer]) -> Seen:
    seen = [s for e in echoes for s in e.seen]
    assert len(seen) == 1, f"expected one upstream request, got {len(seen)}"
    return seen[0]


def test_proxy_strips_our_token_and_hop_by_hop_headers_and_passes_the_others(echo_proxy, echoes):
    _, api = echo_proxy
    token = api.headers["Authorization"]
    body = b"chunked \xc3\xa9t\xc3\xa9 \x00\xff"
    r = api.post("/proxy/echo/headers", content=body, headers={**SENT_HOP_BY_HOP, **ORDINARY})
    assert r.status_code == 200, r.text
    seen = _only_seen(echoes)
    assert seen.body == body  # the chunked framing was the first hop's: the upstream gets the bytes
    assert "authorization" not in seen.header_names
    assert token.split()[1] not in repr(seen.headers)  # nor our token under any other name
    for name in SENT_HOP_BY_HOP:
        assert name.lower() not in seen.header_names, f"{name} was forwarded"
    for name, value in ORDINARY.items():
        assert seen.header(name) == [value], name
    upstream = next(e for e in echoes if e.name == seen.instance)
    assert seen.header("Host") == [upstream.url.removeprefix("http://")]  # the upstream's own host, not the API's
    assert seen.header("Content-Length") == [str(len(body))]
    # the answer: the upstream's ordinary header comes back, its hop-by-hop one does not
    assert r.headers["X-Echo-Answer"] == ANSWER_HEADERS["X-Echo-Answer"]
    assert "Proxy-Authenticate" not in r.headers


STRIPPED = ["authorization", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
            "trailer", "transfer-encoding", "upgrade"]


@pytest.mark.parametrize("name", STRIPPED)
def test_each_hop_by_hop_header_alone_is_stripped(echo_proxy, echoes, name):
    _, api = echo_proxy
    value = "chunked" if name == "transfer-encoding" else "x-probe-value"
    headers = {name: value}
    if name != "connection":
        headers["Connection"] = "close"  # the client's default `keep-alive` would strip Keep-Alive by naming it
    if name == "authorization":
        headers = {}  # the client's own bearer token is the one under test
    r = api.put("/proxy/echo/one", content=b"payload", headers=headers)
    assert r.status_code == 200, r.text
    seen = _only_seen(echoes)
    assert name not in seen.header_names
    assert seen.body == b"payload"


BINARY = bytes(range(256)) * 3 + "été ✓ 漢字".encode()
FORWARDED = [  # (method, path under the service as sent, raw query, body)
    ("GET", "items/42", b"a=1&a=2&a=&name=%C3%A9t%C3%A9&plus=x+y&amp=a%26b", b""),
    ("GET", "search", b"r=http%3A%2F%2Fhost%2Fp%3Fq%3D1&t=%7E%41%2f", b""),
    ("POST", "upload/bin", b"", BINARY),
    ("PUT", "upload/%C3%A9t%C3%A9%20x", b"v=%E2%9C%93", BINARY[::-1]),
    ("PATCH", "p", b"k", b"\x00"),
    ("DELETE", "items/42", b"force=true", b""),
    ("OPTIONS", "items", b"", b""),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), FORWARDED,
                         ids=[f"{m}-{i}" for i, (m, *_) in enumerate(FORWARDED)])
def test_method_path_query_and_body_are_forwarded_byte_for_byte(echo_proxy, echoes, method, path, query, body):
    _, api = echo_proxy
    url = f"/proxy/echo/{path}" + (f"?{query.decode()}" if query else "")
    r = api.request(method, url, content=body)
    assert r.status_code == 200, r.text
    seen = _only_seen(echoes)
    assert (seen.method, seen.path, seen.query, seen.body) == (method, "/" + path, query, body)
    answer = r.json()  # the upstream's answer comes back unchanged
    assert (answer["instance"], base64.b64decode(answer["body"])) == (seen.instance, body)
    assert r.headers["X-Upstream-Instance"] == next(e.url for e in echoes if e.name == seen.instance)


def test_raw_non_ascii_query_bytes_arrive_percent_encoded(echo_proxy, echoes):
    rt, api = echo_proxy
    # our API server answers such a request line 400 itself; a WSGI server that lets it through hands the app
    # raw bytes, as the Flask test client does here
    client = create_app(rt).test_client()
    raw = b"q=caf\xc3\xa9&bad=\xff&ok=%41"
    r = client.get("/proxy/echo/raw", environ_overrides={"QUERY_STRING": raw.decode("latin-1")},  # as PEP 3333 says
                   headers={"Authorization": api.headers["Authorization"]})
    assert r.status_code == 200, r.text
    seen = _only_seen(echoes)
    assert seen.query == b"q=caf%C3%A9&bad=%FF&ok=%41"  # the only way the same bytes may stand in a request line


def test_head_is_forwarded_and_answered_without_a_body(echo_proxy, echoes):
    _, api = echo_proxy
    r = api.head("/proxy/echo/items/7?x=1")
    assert (r.status_code, r.content) == (200, b"")
    seen = _only_seen(echoes)
    assert (seen.method, seen.path, seen.query, seen.body) == ("HEAD", "/items/7", b"x=1", b"")


def test_the_upstreams_own_status_and_body_come_back_and_an_unknown_service_is_404(echo_proxy, echoes):
    _, api = echo_proxy
    r = api.post("/proxy/echo/teapot", content=b"brew", headers={"X-Echo-Status": "418"})
    assert r.status_code == 418  # a 4xx is the upstream's answer: not retried, not rewritten
    assert base64.b64decode(r.json()["body"]) == b"brew"
    assert (r.headers["X-Upstream-Attempts"], r.headers["X-Echo-Answer"]) == ("1", "yes")
    assert len(_only_seen(echoes).body) == 4
    r = api.get("/proxy/nope/work")
    assert (r.status_code, r.json()) == (404, {"error": "service 'nope' not found", "details": []})


def test_consistent_hash_keeps_each_key_on_one_instance_and_a_new_instance_takes_about_a_quarter(
        clean_db, settings, echoes):
    with proxied(settings, echoes) as (rt, api), echo_servers("e3") as (joiner,):

        def place(key: str) -> str:
            r = api.get("/proxy/echo/k", headers={"X-Route-Key": key})
            assert r.status_code == 200
            return r.headers["X-Upstream-Instance"]

        assert len({place("same") for _ in range(6)}) == 3  # round-robin ignores the key
        r = api.put("/api/load-balancer", json={"algorithm": "consistent-hash"})
        assert (r.status_code, r.json()["algorithm"]) == (200, "consistent-hash")
        keys = [f"customer-{n}" for n in range(200)]
        before = {k: place(k) for k in keys}
        assert {k: place(k) for k in keys} == before  # the same key, the same instance, every time
        assert all(v >= 40 for v in Counter(before.values()).values()), Counter(before.values())
        received = {s.header("X-Route-Key")[0]: e.url for e in echoes for s in e.seen if s.header("X-Route-Key")}
        assert {k: received[k] for k in keys} == before  # and the instance named is the one that answered

        service_id = api.get("/api/services").json()[0]["id"]
        r = api.put(f"/api/services/{service_id}", json={"instances": [e.url for e in [*echoes, joiner]]})
        assert r.status_code == 200, r.text
        assert wait_for(lambda: _all_healthy(rt, 4), 15), "the new instance never became healthy"
        after = {k: place(k) for k in keys}
        moved = [k for k in keys if after[k] != before[k]]
        # a ring moves ~1/4 of keys going from 3 to 4 instances; a modulo hash would move ~3/4
        assert 0.10 <= len(moved) / len(keys) <= 0.40, f"{len(moved)} of {len(keys)} keys moved"
        assert {after[k] for k in moved} == {joiner.url}  # keys move only to the new instance


def test_a_failed_attempt_is_retried_elsewhere_and_the_answer_names_instance_and_attempts(echo_proxy, echoes):
    _, api = echo_proxy
    echoes[0].fail_status = 503  # its health path still answers 200: it stays a candidate
    attempts = []
    for n in range(3):
        r = api.get("/proxy/echo/work", headers={"X-Request-Id": f"r{n}"})
        assert r.status_code == 200, r.text
        tried = [s.instance for e in echoes for s in e.seen if s.header("X-Request-Id") == [f"r{n}"]]
        served = next(e for e in echoes if e.url == r.headers["X-Upstream-Instance"])
        assert served.name != "e0" and served.name == r.json()["instance"]  # named: the one that answered 200
        assert r.headers["X-Upstream-Attempts"] == str(len(tried))  # counted: every instance that was sent it
        assert sorted(tried) == sorted(["e0", served.name] if len(tried) == 2 else [served.name])
        attempts.append(r.headers["X-Upstream-Attempts"])
    # round-robin starts at the first instance, the failing one: the first request took two attempts
    assert attempts[0] == "2" and echoes[0].seen[0].header("X-Request-Id") == ["r0"]
    # a POST is not retried: over one round-robin turn the failing instance's 503 comes back after one attempt
    answers = [api.post("/proxy/echo/work", content=b"once") for _ in range(3)]
    assert sorted((r.status_code, r.headers["X-Upstream-Attempts"]) for r in answers) == [
        (200, "1"), (200, "1"), (503, "1")]
    assert next(r for r in answers if r.status_code == 503).headers["X-Upstream-Instance"] == echoes[0].url


def test_the_proxy_has_its_own_rate_limit_with_retry_after_apart_from_the_apis(clean_db, settings, echoes):
    clock = FakeClock(datetime.now(UTC))  # the buckets refill only when the test advances it
    limits = {"proxy_rate_limit": 0.5, "proxy_rate_burst": 3, "rate_limit": 0.25, "rate_burst": 6}
    with proxied(settings, echoes, clock, **limits) as (_, api):
        codes = [api.get("/proxy/echo/n").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.get("/proxy/echo/n")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"  # 1 token at 0.5/s
        assert limited.json() == {"error": "too many requests; retry after 2 s", "details": []}
        assert sum(len(e.seen) for e in echoes) == 3  # a refused request never reaches an upstream
        # the API's bucket (6, one spent registering the service) is untouched by the proxy's
        assert [api.get("/api/load-balancer").status_code for _ in range(6)] == [200] * 5 + [429]
        assert api.get("/api/load-balancer").headers["Retry-After"] == "4"  # 1 token at 0.25/s
        clock.advance(2.0)  # one proxy token back; the API's bucket is still short of one
        assert [api.get("/proxy/echo/n").status_code for _ in range(2)] == [200, 429]
        assert api.get("/api/load-balancer").status_code == 429
        assert sum(len(e.seen) for e in echoes) == 4


def _instance_id(rt, url):
    return next(i.id for s in rt.registry.services() for i in s.instances if i.url == url)
