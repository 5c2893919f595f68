"""Clients that hold connections open or send too much, against the real REST API on a loopback port (plain
sockets): they cost the server a connection each, never a worker thread, and are refused or closed in bounded
time."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from contract.settings import Settings
from engine.api import create_app
from engine.runtime import Runtime

HALF_REQUEST = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # the header never ends


@pytest.fixture
def served(clean_db: Engine, settings: Settings) -> Iterator[Runtime]:
    """A real engine serving the REST API on settings.api_port, idle clients closed after 2 s."""
    rt = Runtime.open(settings.replace(api_idle_timeout=2))
    rt.start(app=create_app(rt))
    try:
        yield rt
    finally:
        rt.stop()


def connect(rt: Runtime) -> socket.socket:
    return socket.create_connection(("127.0.0.1", rt.settings.api_port), timeout=5)


def exchange(rt: Runtime, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a new connection; the status, headers and body of the answer (read to the close)."""
    with connect(rt) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_healthy(rt: Runtime) -> None:
    """GET /api/health answers 200 with the engine up within 2 s."""
    started = time.monotonic()
    response = httpx.get(f"http://127.0.0.1:{rt.settings.api_port}/api/health", timeout=2.0, trust_env=False)
    assert response.status_code == 200
    assert response.json()["engine"]["status"] == "up"
    assert time.monotonic() - started < 2.0


def test_forty_idle_half_requests_leave_the_api_answering(served):
    idle = [connect(served) for _ in range(40)]
    try:
        for s in idle:
            s.sendall(HALF_REQUEST)
        time.sleep(0.3)  # every one of them accepted and read by now
        assert_healthy(served)
    finally:
        for s in idle:
            s.close()


def test_a_200_kb_header_is_431_and_the_server_keeps_serving(served):
    request = (b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 200_000
               + b"\r\nConnection: close\r\n\r\n")
    status, headers, body = exchange(served, request)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["details"][0]["field"] == "headers"
    assert_healthy(served)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_past_the_limit_is_413_naming_the_body(served, chunked):
    limit = served.settings.max_body_bytes
    body = b'{"username": "' + b"a" * limit + b'"}'
    if chunked:
        framing = b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    else:
        framing = b"Content-Length: %d\r\n\r\n" % len(body) + body
    request = (b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\n" + framing)
    status, headers, answer = exchange(served, request)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert [d["field"] for d in json.loads(answer)["details"]] == ["body"]
    assert_healthy(served)


def test_a_body_at_the_limit_is_read_and_judged(served):
    limit = served.settings.max_body_bytes
    body = b'{"username": "' + b"a" * (limit - 16) + b'"}'
    body += b" " * (limit - len(body))  # exactly the limit
    request = (b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    status, _, answer = exchange(served, request)
    assert status == 422  # parsed: the fields are wrong, the size is not
    assert "password" in [d["field"] for d in json.loads(answer)["details"]]


@pytest.mark.parametrize("sent", [b"", HALF_REQUEST], ids=["nothing", "half-a-request"])
def test_an_idle_client_is_closed_after_the_idle_timeout(served, sent):
    with connect(served) as s:
        s.sendall(sent)
        s.settimeout(1.0)
        with pytest.raises(TimeoutError):
            s.recv(1)  # still open at half the timeout
        s.settimeout(5.0)
        started = time.monotonic()
        assert s.recv(1) == b""  # closed by the server (a timeout here raises)
        assert time.monotonic() - started < 4.0  # 2 s idle timeout, checked every second
