"""The traffic listener's known request heads end to end: a request whose head is byte for byte one read before is
queued without the parser, and answered exactly as the parser's reading of it would be (pipelined, split across
reads, with bodies, each with its own Authorization verdict); what does not qualify goes through the parser."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from contract.roles import Role
from engine.traffic.request_heads import KnownRequest
from tests.conftest import token_for
from tests.e2e.echo import EchoServer, echo_servers
from tests.e2e.test_proxy_listener import _raw, _read_all, _read_responses, listener

pytestmark = pytest.mark.e2e


@pytest.fixture
def echoes() -> Iterator[list[EchoServer]]:
    with echo_servers("e0", "e1", "e2") as servers:
        yield servers


@pytest.fixture
def fast(clean_db, settings, echoes):
    with listener(settings, echoes) as pair:
        yield pair


def _head(method: str, path: str, token: str, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n".encode()


def _token(client: httpx.Client) -> str:
    return str(client.headers["Authorization"].split()[1])


def test_a_repeated_head_is_read_by_its_bytes_one_at_a_time_and_pipelined_in_order(fast, echoes):
    rt, client = fast
    head = _head("GET", "/proxy/echo/known?q=1", _token(client), "X-Route-Key: k\r\nX-Test: a\r\n")
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        for _ in range(3):
            s.sendall(head)
            [(status, _, body)] = _read_responses(s, 1)
            assert status == 200 and json.loads(body)["path"] == "/known"
        known = rt.proxy.request_heads[head]
        assert isinstance(known, KnownRequest)
        assert (known.method, known.url, known.length, known.key) == (b"GET", b"/proxy/echo/known?q=1", 0, "k")
        assert all(name.lower() != b"authorization" for name, _ in known.forward)
        s.sendall(head * 5)  # one read, five requests
        answers = _read_responses(s, 5)
    assert [a[0] for a in answers] == [200] * 5
    seen = [x for e in echoes for x in e.seen]
    assert len(seen) == 8 and {(x.path, x.query) for x in seen} == {("/known", b"q=1")}
    assert all(dict(x.headers).get("X-Test") == "a" and "Authorization" not in dict(x.headers) for x in seen)


def test_known_heads_with_bodies_pipelined_split_and_mixed_with_unknown_ones(fast, echoes):
    rt, client = fast
    token = _token(client)
    post = _head("POST", "/proxy/echo/b", token, "Content-Length: 5\r\n")
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        s.sendall(post + b"first")  # read by the parser, its head learned
        assert json.loads(_read_responses(s, 1)[0][2])["body"] == base64.b64encode(b"first").decode()
        assert isinstance(rt.proxy.request_heads[post], KnownRequest)
        bodies = [b"aaaaa", b"bbbbb", b"ccccc"]
        other = _head("GET", "/proxy/echo/other", token, "X-Other: 1\r\n")
        s.sendall(post + bodies[0] + other + post + bodies[1] + post + bodies[2])  # known, new, known, known
        answers = _read_responses(s, 4)
        assert [a[0] for a in answers] == [200] * 4
        assert [base64.b64decode(json.loads(a[2])["body"]) for a in answers] == [bodies[0], b"", bodies[1],
                                                                                  bodies[2]]
        s.sendall(post + b"ab")  # the body split across reads: the parser reads the rest
        time.sleep(0.05)
        s.sendall(b"cde")
        assert base64.b64decode(json.loads(_read_responses(s, 1)[0][2])["body"]) == b"abcde"
        s.sendall(post[:20])  # the head split across reads
        time.sleep(0.05)
        s.sendall(post[20:] + b"12345" + post + b"67890")
        answers = _read_responses(s, 2)
        assert [base64.b64decode(json.loads(a[2])["body"]) for a in answers] == [b"12345", b"67890"]
    assert sum(len(e.seen) for e in echoes) == 8


def test_each_request_on_a_known_head_gets_its_own_authorization_verdict(fast, echoes, clean_db):
    rt, _ = fast
    heads = {role: _head("GET", "/proxy/echo/auth", token_for(role)) for role in (Role.VIEWER, Role.OPERATOR)}
    bad = _head("GET", "/proxy/echo/auth", "not.a.token")
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        for head, status in ((heads[Role.OPERATOR], 200), (heads[Role.VIEWER], 403), (bad, 401)):
            s.sendall(head)  # each learned (a read learns the first head it does not know)
            assert _read_responses(s, 1)[0][0] == status
        assert all(isinstance(rt.proxy.request_heads[h], KnownRequest) for h in (*heads.values(), bad))
        for _ in range(2):
            s.sendall(heads[Role.OPERATOR] + heads[Role.VIEWER] + bad + heads[Role.OPERATOR] + heads[Role.VIEWER]
                      + bad + heads[Role.OPERATOR])
            answers = _read_responses(s, 7)
            assert [a[0] for a in answers] == [200, 403, 401, 200, 403, 401, 200]
        with clean_db.begin() as c:  # revoked, and told to this process as its own API would
            c.execute(text("UPDATE users SET token_version = token_version + 1 WHERE username = 'test-operator'"))
        rt.token_versions.forget("test-operator")
        s.sendall(heads[Role.OPERATOR])
        [(status, _, body)] = _read_responses(s, 1)
        assert status == 401 and "revoked" in json.loads(body)["error"]
    assert sum(len(e.seen) for e in echoes) == 7


def test_malformed_closing_chunked_and_expecting_heads_go_through_the_parser(fast, echoes):
    rt, client = fast
    token = _token(client)
    garbage = b"GET /proxy/echo/x HTTP/1.1\r\nBad Header\r\n\r\n"
    for _ in range(2):  # refused each time, and closed: never a hang
        answer = _raw(rt.proxy.port, garbage, timeout=3)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer
    assert rt.proxy.request_heads[garbage] is None
    good = _head("GET", "/proxy/echo/g", token)
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        s.sendall(good)
        _read_responses(s, 1)
        s.sendall(good + garbage)  # a known head, then garbage in the same read
        answers = _read_all(s)
        assert answers.startswith(b"HTTP/1.1 200 ") and answers.count(b"HTTP/1.1 400 ") == 1
    closing = _head("GET", "/proxy/echo/c", token, "Connection: close\r\n")
    for _ in range(2):
        answer = _raw(rt.proxy.port, closing + closing)  # the second is not read: the first closes
        assert answer.count(b"HTTP/1.1 200 ") == 1 and b"Connection: close" in answer
    assert rt.proxy.request_heads[closing] is None
    chunked = _head("POST", "/proxy/echo/ch", token, "Transfer-Encoding: chunked\r\n")
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(chunked + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            [(status, _, body)] = _read_responses(s, 1)
            assert status == 200 and base64.b64decode(json.loads(body)["body"]) == b"abcde"
    assert rt.proxy.request_heads[chunked] is None
    expecting = _head("POST", "/proxy/echo/e", token, "Expect: 100-continue\r\nContent-Length: 2\r\n")
    with socket.create_connection(("127.0.0.1", rt.proxy.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(expecting)
            assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(b"ok")
            assert _read_responses(s, 1)[0][0] == 200
    assert rt.proxy.request_heads[expecting] is None
    assert sum(len(e.seen) for e in echoes) == 2 + 2 + 2 + 2
