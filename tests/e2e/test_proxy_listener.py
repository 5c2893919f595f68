"""The traffic listener (PROXY_PORT) end to end: a started engine, echo servers as upstreams, real sockets on
loopback. What the API port's `/proxy` route does, the listener does the same (tests/e2e/test_proxy.py); what
only a server of its own must do (limits, keep-alive, pipelining, hostile clients, stop) is here."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from contract.errors import ConfigError
from contract.roles import Role
from contract.settings import Settings
from engine.clock import Clock, FakeClock
from engine.runtime import Runtime
from tests.conftest import free_port, token_for, wait_for
from tests.e2e.echo import ANSWER_HEADERS, EchoServer, echo_servers
from tests.e2e.test_proxy import FORWARDED, ORDINARY, SENT_HOP_BY_HOP, _only_seen, proxied

pytestmark = pytest.mark.e2e


@contextmanager
def listener(settings: Settings, echoes: list[EchoServer], clock: Clock | None = None,
             **overrides: Any) -> Iterator[tuple[Runtime, httpx.Client]]:
    """The engine with service `echo` on the echo servers, and an operator's client of the traffic listener."""
    with proxied(settings, echoes, clock, **overrides) as (rt, _):
        assert rt.proxy.port not in (0, settings.api_port)
        client = httpx.Client(base_url=rt.proxy.url, trust_env=False, timeout=10,
                              headers={"Authorization": "Bearer " + token_for(Role.OPERATOR)})
        try:
            yield rt, client
        finally:
            client.close()


@pytest.fixture
def echoes() -> Iterator[list[EchoServer]]:
    with echo_servers("e0", "e1", "e2") as servers:
        yield servers


@pytest.fixture
def fast(clean_db, settings, echoes):
    with listener(settings, echoes) as pair:
        yield pair


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send data on a fresh connection and read until the server closes it (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := s.recv(65_536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def _read_responses(s: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """count responses read off one keep-alive connection (each framed by its Content-Length)."""
    buffer = b""
    out: list[tuple[int, dict[str, str], bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = s.recv(65_536)
            assert chunk, f"closed after {len(out)} response(s)"
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(buffer) < length:
            chunk = s.recv(65_536)
            assert chunk
            buffer += chunk
        out.append((int(lines[0].split()[1]), headers, buffer[:length]))
        buffer = buffer[length:]
    return out


def _get(path: str, token: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n".encode()


# --- what crosses ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "query", "body"), FORWARDED,
                         ids=[f"{m}-{i}" for i, (m, *_) in enumerate(FORWARDED)])
def test_method_path_query_and_body_are_forwarded_byte_for_byte(fast, echoes, method, path, query, body):
    _, client = fast
    url = f"/proxy/echo/{path}" + (f"?{query.decode()}" if query else "")
    r = client.request(method, url, content=body)
    assert r.status_code == 200, r.text
    seen = _only_seen(echoes)
    assert (seen.method, seen.path, seen.query, seen.body) == (method, "/" + path, query, body)
    assert base64.b64decode(r.json()["body"]) == body
    assert r.headers["X-Upstream-Instance"] == next(e.url for e in echoes if e.name == seen.instance)
    assert r.headers["X-Upstream-Attempts"] == "1"


def test_repeated_varied_and_long_targets_reach_their_paths_and_each_answer_names_its_instance(fast, echoes):
    _, client = fast
    long_path = "l/" + "x" * 1500  # longer than the targets the listener remembers
    targets = [("items/7", b"x=1"), ("items/7", b"x=1"), ("items/7", b"x=2"), ("items/8", b""),
               ("upload/%C3%A9t%C3%A9%20x", b"v=%E2%9C%93"), (long_path, b"y=1"), (long_path, b"y=1")] * 3
    for path, query in targets:
        before = {e.name: len(e.seen) for e in echoes}
        r = client.get(f"/proxy/echo/{path}" + (f"?{query.decode()}" if query else ""))
        assert r.status_code == 200, r.text
        (echo,) = [e for e in echoes if len(e.seen) > before[e.name]]
        seen = echo.seen[-1]
        assert (seen.path, seen.query) == ("/" + path, query)
        assert r.headers["X-Upstream-Instance"] == echo.url
        assert r.headers["X-Upstream-Attempts"] == "1"
        assert r.headers["X-Echo-Answer"] == ANSWER_HEADERS["X-Echo-Answer"]
    assert client.get("/proxy/echo").status_code == 404  # a target naming no path: refused each time
    assert client.get("/proxy/echo").status_code == 404


def test_hop_by_hop_and_our_token_are_stripped_both_ways_and_a_chunked_body_arrives_whole(fast, echoes):
    _, client = fast
    token = client.headers["Authorization"].split()[1]
    body = b"chunked \xc3\xa9t\xc3\xa9 \x00\xff" * 100

    def pieces() -> Iterator[bytes]:  # no length known: httpx sends it chunked
        yield body[:500]
        yield body[500:]

    r = client.post("/proxy/echo/headers", content=pieces(),
                    headers={**{k: v for k, v in SENT_HOP_BY_HOP.items() if k != "Transfer-Encoding"}, **ORDINARY})
    assert r.status_code == 200, r.text
    seen = _only_seen(echoes)
    assert seen.body == body
    assert token not in repr(seen.headers)
    for name in [*SENT_HOP_BY_HOP, "Authorization"]:
        assert name.lower() not in seen.header_names, f"{name} was forwarded"
    for name, value in ORDINARY.items():
        assert seen.header(name) == [value], name
    assert r.headers["X-Echo-Answer"] == ANSWER_HEADERS["X-Echo-Answer"]
    assert "Proxy-Authenticate" not in r.headers


def test_head_and_the_upstreams_own_status_and_an_unknown_service(fast, echoes):
    _, client = fast
    r = client.head("/proxy/echo/items/7?x=1")
    assert (r.status_code, r.content) == (200, b"")
    assert (_only_seen(echoes).method, _only_seen(echoes).query) == ("HEAD", b"x=1")
    r = client.post("/proxy/echo/teapot", content=b"brew", headers={"X-Echo-Status": "418"})
    assert r.status_code == 418 and base64.b64decode(r.json()["body"]) == b"brew"
    r = client.get("/proxy/nope/work")
    assert (r.status_code, r.json()) == (404, {"error": "service 'nope' not found", "details": []})
    assert client.get("/api/health").status_code == 404  # the listener serves traffic only
    r = client.request("TRACE", "/proxy/echo/x")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


# --- who may send ---------------------------------------------------------------------------------------------

def test_an_operator_token_is_required(fast, echoes):
    rt, client = fast
    r = httpx.get(rt.proxy.url + "/proxy/echo/x", trust_env=False)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json() == {"error": "a bearer token is required (POST /api/auth/token)", "details": []}
    r = httpx.get(rt.proxy.url + "/proxy/echo/x", headers={"Authorization": "Bearer not.a.token"}, trust_env=False)
    assert r.status_code == 401 and r.json()["error"].startswith("invalid token")
    viewer = token_for(Role.VIEWER)
    r = httpx.get(rt.proxy.url + "/proxy/echo/x", headers={"Authorization": f"Bearer {viewer}"}, trust_env=False)
    assert (r.status_code, r.json()["error"]) == (403, "the operator role is required; this token is viewer")
    assert sum(len(e.seen) for e in echoes) == 0  # none reached an upstream
    assert client.get("/proxy/echo/x").status_code == 200


def test_a_revoked_token_is_refused_within_about_a_second(fast, clean_db):
    _, client = fast
    assert client.get("/proxy/echo/x").status_code == 200  # verified and cached
    with clean_db.begin() as c:  # as another engine on the same database would: no forget() here
        c.execute(text("UPDATE users SET token_version = token_version + 1 WHERE username = 'test-operator'"))
    revoked = time.monotonic()
    codes = []
    while time.monotonic() - revoked < 3.0:
        codes.append(client.get("/proxy/echo/x").status_code)
        if codes[-1] == 401:
            break
    took = time.monotonic() - revoked
    assert codes[-1] == 401 and took < 1.6, (took, codes)
    r = client.get("/proxy/echo/x")
    assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_the_proxy_rate_limit_applies_with_retry_after(clean_db, settings, echoes):
    clock = FakeClock(datetime.now(UTC))
    with listener(settings, echoes, clock, proxy_rate_limit=0.5, proxy_rate_burst=3) as (_, client):
        codes = [client.get("/proxy/echo/n").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/proxy/echo/n")
        assert limited.headers["Retry-After"] == "2"
        assert limited.json() == {"error": "too many requests; retry after 2 s", "details": []}
        assert sum(len(e.seen) for e in echoes) == 3
        clock.advance(2.0)
        assert [client.get("/proxy/echo/n").status_code for _ in range(2)] == [200, 429]


# --- when the upstream cannot answer --------------------------------------------------------------------------

def test_an_open_breaker_and_no_healthy_instance_are_503_and_a_slow_upstream_is_504(clean_db, settings, echoes):
    with listener(settings, echoes, route_timeout=0.3, route_retries=0) as (rt, client):
        r = client.get("/proxy/echo/slow", headers={"X-Echo-Delay-Ms": "1500"})
        assert (r.status_code, r.json()) == (504, {"error": "no answer within 0.3 s", "details": []})
        breaker = rt.breakers.get("echo")
        rt.run_soon(_force_open(breaker)).result(5)
        r = client.get("/proxy/echo/x")
        assert (r.status_code, r.json()["error"]) == (503, "circuit breaker of echo is OPEN")
        api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=10,
                           headers={"Authorization": "Bearer " + token_for(Role.OPERATOR)})
        with api:  # a service whose one instance has nothing listening: never healthy
            r = api.post("/api/services", json={"name": "ghost", "instances": [f"http://127.0.0.1:{free_port()}"]})
            assert r.status_code == 201, r.text
        r = client.get("/proxy/ghost/x")
        assert (r.status_code, r.json()["error"]) == (503, "no healthy instance of ghost")


async def _force_open(breaker: Any) -> None:
    for _ in range(200):
        if breaker.state.value == "OPEN":
            return
        breaker.record_failure("forced by the test")


# --- limits and hostile clients -------------------------------------------------------------------------------

def test_a_body_past_the_limit_is_413_and_headers_past_theirs_431_and_garbage_400(clean_db, settings, echoes):
    with listener(settings, echoes, route_max_body=4000, max_header_bytes=2048) as (rt, client):
        # (the limit is also the one on the upstream's answer, which echoes the body in base64)
        assert client.post("/proxy/echo/b", content=b"x" * 1500).status_code == 200
        r = client.post("/proxy/echo/b", content=b"x" * 4001)
        assert r.status_code == 413 and r.json()["details"] == [{"field": "body", "message": "larger than 4000 bytes"}]

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b"y" * 300

        r = client.post("/proxy/echo/b", content=chunks())  # chunked: the limit counts what arrives
        assert r.status_code == 413
        r = client.get("/proxy/echo/h", headers={"X-Big": "v" * 2100})
        assert r.status_code == 431 and r.json()["details"][0]["field"] == "headers"
        assert client.get("/proxy/echo/h", headers={"X-Big": "v" * 1500}).status_code == 200
        answer = _raw(rt.proxy.port, b"\x16\x03\x01 not http at all\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"error":"Bad Request"' in answer
        # a header line that never ends is refused once past the limit, not buffered for ever
        with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
            s.sendall(b"GET /proxy/echo/x HTTP/1.1\r\nX-Endless: ")
            refused = b""
            for _ in range(200):
                try:
                    s.sendall(b"z" * 65_536)
                except OSError:
                    break
            refused = _read_all(s)
        assert refused.startswith(b"HTTP/1.1 431 "), refused[:80]
        bodies = [len(e.seen) for e in echoes]
        assert sum(bodies) == 2  # only the two requests within the limits went upstream
        assert client.get("/proxy/echo/after").status_code == 200


def test_idle_and_half_sent_requests_do_not_hold_others_and_are_closed_after_the_idle_timeout(
        clean_db, settings, echoes):
    with listener(settings, echoes, api_idle_timeout=1) as (rt, client):
        stalled = []
        for n in range(100):
            s = socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5)
            s.sendall(b"POST /proxy/echo/x HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf" if n % 2 else b"GET /pro")
            stalled.append(s)
        began = time.monotonic()
        for _ in range(20):
            assert client.get("/proxy/echo/fine").status_code == 200
        assert time.monotonic() - began < 5
        assert wait_for(lambda: len(rt.proxy.connections) <= 1, 5), len(rt.proxy.connections)
        for s in stalled:
            s.settimeout(1)
            with suppress(ConnectionResetError):  # closed (reset or end of stream), never answered; a timeout fails
                assert s.recv(100) == b""
            s.close()


def test_keep_alive_serves_many_requests_on_one_connection_and_pipelined_ones_in_order(fast, echoes):
    rt, client = fast
    token = client.headers["Authorization"].split()[1]
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        for n in range(3):
            s.sendall(_get(f"/proxy/echo/one/{n}", token))
            [(status, _, body)] = _read_responses(s, 1)
            assert status == 200 and f"/one/{n}".encode() in body
        s.sendall(b"".join(_get(f"/proxy/echo/p/{n}", token, f"X-Echo-Delay-Ms: {30 - 10 * n}\r\n")
                           for n in range(3)) + _get("/proxy/nope/x", token))
        answers = _read_responses(s, 4)
        assert [a[0] for a in answers] == [200, 200, 200, 404]
        assert [json.loads(a[2])["path"] for a in answers[:3]] == ["/p/0", "/p/1", "/p/2"]  # the slowest first
        assert len(rt.proxy.connections) >= 1
        s.sendall(_get("/proxy/echo/last", token, "Connection: close\r\n"))
        last = _read_all(s)
        assert last.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in last
    assert sum(len(e.seen) for e in echoes) == 7


def test_http10_closes_unless_kept_alive_and_expect_100_continue_is_answered(fast, echoes):
    rt, client = fast
    token = client.headers["Authorization"].split()[1]
    answer = _raw(rt.proxy.port, f"GET /proxy/echo/old HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer  # then closed: _raw returned
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        s.sendall(f"GET /proxy/echo/kept HTTP/1.0\r\nConnection: keep-alive\r\nAuthorization: Bearer {token}\r\n\r\n"
                  .encode())
        [(status, headers, _)] = _read_responses(s, 1)
        assert (status, headers["connection"]) == (200, "keep-alive")
        s.sendall(f"POST /proxy/echo/exp HTTP/1.1\r\nAuthorization: Bearer {token}\r\nExpect: 100-continue\r\n"
                  "Content-Length: 5\r\n\r\n".encode())
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before the body is sent
        s.sendall(b"hello")
        [(status, _, body)] = _read_responses(s, 1)
        assert status == 200 and json.loads(body)["body"] == base64.b64encode(b"hello").decode()


def test_a_taken_port_fails_the_start_naming_the_setting(clean_db, settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        rt = Runtime.open(settings.replace(proxy_port=taken.getsockname()[1]))
        try:
            with pytest.raises(ConfigError, match="PROXY_PORT"):
                rt.start()
        finally:
            rt.stop()


def test_stop_leaves_no_listening_socket(clean_db, settings, echoes):
    with listener(settings, echoes) as (rt, client):
        port = rt.proxy.port
        assert client.get("/proxy/echo/x").status_code == 200
        held = socket.create_connection(("127.0.0.1", port), timeout=5)  # an idle keep-alive client
    # the context has stopped the engine
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    held.settimeout(2)
    assert held.recv(10) == b""  # the idle connection was closed, not left open
    held.close()
    assert not rt.proxy.serving
