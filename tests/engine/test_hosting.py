"""The API server alone, with a small WSGI app on a loopback port: binding, stopping, what it trusts and how it
refuses."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvloop

from engine.hosting import ApiLimits, ApiServer, EngineLoop
from tests.conftest import free_port


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The client address, scheme and forwarded header the app sees, as JSON."""
    seen = {"remote": environ["REMOTE_ADDR"], "scheme": environ["wsgi.url_scheme"],
            "forwardedFor": environ.get("HTTP_X_FORWARDED_FOR")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


@pytest.fixture
def server() -> Iterator[ApiServer]:
    api = ApiServer("127.0.0.1", free_port(), ApiLimits(threads=2, idle_timeout_s=5, max_header_bytes=4096,
                                                        max_body_bytes=1024))
    api.start(echo)
    yield api
    api.stop()


def url(api: ApiServer) -> str:
    return f"http://127.0.0.1:{api.port}/"


def test_a_taken_port_fails_the_start_at_once(server):
    other = ApiServer("127.0.0.1", server.port)
    with pytest.raises(OSError):
        other.start(echo)
    assert httpx.get(url(server), trust_env=False).status_code == 200  # the first one serves on


def test_stop_closes_the_port_and_ends_every_thread_it_started():
    before = set(threading.enumerate())
    api = ApiServer("127.0.0.1", free_port(), ApiLimits(threads=3))
    api.start(echo)
    with httpx.Client(trust_env=False) as client:  # a kept-alive connection open at the stop
        assert client.get(url(api)).status_code == 200
        api.stop()
        with pytest.raises(httpx.TransportError):
            client.get(url(api))
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []
    api.stop()  # a second stop does nothing


def test_forwarded_headers_are_passed_on_and_trusted_by_nothing(server):
    seen = httpx.get(url(server), headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                                           "Forwarded": "for=203.0.113.9;proto=https"}, trust_env=False).json()
    assert seen == {"remote": "127.0.0.1", "scheme": "http", "forwardedFor": "203.0.113.9"}


def test_the_server_names_itself_and_refuses_as_the_api_does(server):
    ok = httpx.get(url(server), trust_env=False)
    assert ok.headers["server"] == "microservice-monitor"
    big = httpx.get(url(server), headers={"X-Pad": "a" * 5000}, trust_env=False)
    assert big.status_code == 431
    assert big.json() == {"error": "Request Header Fields Too Large",
                          "details": [{"field": "headers", "message": "request line and headers larger than 4096 "
                                                                      "bytes"}]}
    assert httpx.post(url(server), content=b"x" * 1024, trust_env=False).status_code == 200  # at the limit
    large = httpx.post(url(server), content=b"x" * 1025, trust_env=False)
    assert (large.status_code, large.json()["details"]) == (
        413, [{"field": "body", "message": "larger than 1024 bytes"}])
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):  # the server closes after an error
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request") and json.loads(body)["error"] == "Bad Request"


@pytest.mark.parametrize(("use_uvloop", "kind"), [(True, uvloop.Loop), (False, asyncio.BaseEventLoop)])
def test_the_engine_loop_runs_on_uvloop_unless_told_not_to(use_uvloop, kind):
    engine = EngineLoop(use_uvloop=use_uvloop)
    engine.start()
    try:
        async def which() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        loop = engine.run_soon(which()).result(5)
    finally:
        engine.stop()
    assert isinstance(loop, kind)
    assert isinstance(loop, uvloop.Loop) is use_uvloop
