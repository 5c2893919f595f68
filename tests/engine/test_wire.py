"""The wire client against real servers on loopback: an asyncio server whose answers each test scripts by path
(counting connections and requests), http.server in a thread (it closes idle connections), and the SSRF policy."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvloop

from engine.security.ssrf import AddressRefused, Policy
from engine.traffic.wire import ConnectionClosed, HttpClient, ResponseTooLarge, Url, parse_url, prepare
from tests.conftest import free_port

LOOPBACK = Policy.instances(("127.0.0.0/8",))
ONLY_ONE = Policy.instances(("127.0.0.1/32",))


@dataclass
class Seen:
    """What the scripted server saw."""

    connections: int = 0
    requests: list[tuple[str, str, bytes, bytes]] = field(default_factory=list)  # method, path, head, body
    sent: int = 0  # body bytes written by /endless


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return method, path, head, body


async def _answer(method: str, path: str, body: bytes, writer: asyncio.StreamWriter, seen: Seen) -> bool:
    """Write the answer path asks for; False: close the connection after it."""
    if path == "/ok":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pair: A\r\nX-Pair: b\r\n\r\n"
                     + (b"" if method == "HEAD" else b"ok"))
    elif path == "/echo":
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    elif path == "/chunked":
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"hello ", b"chunked ", b"world"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
    elif path.startswith("/big/"):
        size = int(path.rsplit("/", 1)[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
    elif path == "/endless":  # chunked, until the reader goes (at most 64 MiB)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"y" * 65_536
        for _ in range(1024):
            if writer.is_closing():
                return False
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            try:
                await writer.drain()
            except ConnectionError:
                return False
            seen.sent += len(chunk)
        return False
    elif path == "/close":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nclose")
        return False
    elif path == "/until-close":
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        return False
    elif path == "/204":
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    elif path == "/304":
        writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
    elif path == "/slow":
        await asyncio.sleep(2.0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
    elif path == "/drop":  # reads the request, then closes without a byte
        return False
    else:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    return True


async def scripted(host: str = "127.0.0.1", port: int | None = None) -> tuple[asyncio.Server, int, Seen]:
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        drop_next = False  # /then-drop: answered, but the next request on this connection gets no answer
        try:
            for _ in range(10_000):
                request = await _read_request(reader)
                if request is None:
                    break
                seen.requests.append(request)
                method, path, _, body = request
                if drop_next:
                    break
                drop_next = path == "/then-drop"
                if not await _answer(method, "/ok" if drop_next else path, body, writer, seen):
                    break
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    port = port or free_port()
    server = await asyncio.start_server(handle, host, port)
    return server, port, seen


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """Each test on asyncio's own loop and on uvloop (what the engine runs on)."""
    return asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop


def run(scenario: Callable[[], Awaitable[Any]], loop_factory: LoopFactory) -> Any:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(asyncio.wait_for(scenario(), 30))


def test_keep_alive_reuses_one_connection_and_keeps_raw_headers(loop_factory):
    async def scenario() -> tuple[Seen, list[Any], int, int]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        try:
            out = [await client.request("GET", f"http://127.0.0.1:{port}/ok") for _ in range(20)]
            return seen, out, client.connections(), port
        finally:
            await client.close()
            server.close()

    seen, out, open_, port = run(scenario, loop_factory)
    assert seen.connections == 1 and len(seen.requests) == 20 and open_ == 1
    assert {(r.status, r.body) for r in out} == {(200, b"ok")}
    assert out[0].raw_headers == ((b"Content-Length", b"2"), (b"X-Pair", b"A"), (b"X-Pair", b"b"))
    head = seen.requests[0][2]
    assert head.startswith(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)


def test_concurrent_requests_stay_under_the_per_host_cap(loop_factory):
    async def scenario() -> tuple[Seen, list[Any]]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK, per_host=3)
        try:
            out = await asyncio.gather(*(client.request("GET", f"http://127.0.0.1:{port}/chunked")
                                         for _ in range(12)))
            return seen, out
        finally:
            await client.close()
            server.close()

    seen, out = run(scenario, loop_factory)
    assert seen.connections == 3 and len(seen.requests) == 12
    assert {r.body for r in out} == {b"hello chunked world"}


def test_request_body_headers_and_bodiless_answers(loop_factory):
    async def scenario() -> list[Any]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        base = f"http://127.0.0.1:{port}"
        try:
            echo = await client.request("POST", f"{base}/echo", headers=[("X-One", "1"), (b"X-Two", b"2"),
                                                                          ("Host", "evil"), ("Content-Length", "9")],
                                        body=b"payload")
            empty_post = await client.request("POST", f"{base}/echo")
            head = await client.request("HEAD", f"{base}/ok")
            after_head = await client.request("GET", f"{base}/ok")
            no_content = await client.request("GET", f"{base}/204")
            not_modified = await client.request("GET", f"{base}/304")
            last = await client.request("GET", f"{base}/ok")
            return [echo, empty_post, head, after_head, no_content, not_modified, last, seen]
        finally:
            await client.close()
            server.close()

    echo, empty_post, head, after_head, no_content, not_modified, last, seen = run(scenario, loop_factory)
    assert (echo.status, echo.body) == (201, b"payload")
    sent_head = seen.requests[0][2]
    assert b"X-One: 1\r\n" in sent_head and b"X-Two: 2\r\n" in sent_head and b"Content-Length: 7\r\n" in sent_head
    assert b"evil" not in sent_head and b"Content-Length: 9" not in sent_head
    assert (empty_post.status, empty_post.body) == (201, b"")
    assert b"Content-Length: 0\r\n" in seen.requests[1][2]
    assert (head.status, head.body) == (200, b"")
    assert (after_head.status, after_head.body) == (200, b"ok")  # the HEAD answer left nothing behind
    assert (no_content.status, no_content.body) == (204, b"")
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert (last.status, last.body) == (200, b"ok")
    assert seen.connections == 1


def test_connection_close_and_until_close_bodies_are_honoured(loop_factory):
    async def scenario() -> tuple[list[Any], Seen]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        base = f"http://127.0.0.1:{port}"
        try:
            out = [await client.request("GET", f"{base}/close"), await client.request("GET", f"{base}/until-close"),
                   await client.request("GET", f"{base}/ok")]
            return out, seen
        finally:
            await client.close()
            server.close()

    (closing, until_close, ok), seen = run(scenario, loop_factory)
    assert closing.body == b"close" and until_close.body == b"all of it" and ok.body == b"ok"
    assert seen.connections == 3  # neither of the first two went back to the pool


def test_a_body_past_the_cap_raises_and_the_rest_is_not_read(loop_factory):
    async def scenario() -> tuple[list[BaseException], Seen, Any]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK, max_body=100_000)
        base = f"http://127.0.0.1:{port}"
        errors: list[BaseException] = []
        try:
            within = await client.request("GET", f"{base}/big/100000")
            for path in ("/big/100001", "/endless"):
                try:
                    await client.request("GET", base + path)
                except ResponseTooLarge as exc:
                    errors.append(exc)
            await asyncio.sleep(0.3)  # the server notices the reader went
            return errors, seen, within
        finally:
            await client.close()
            server.close()

    errors, seen, within = run(scenario, loop_factory)
    assert len(within.body) == 100_000
    assert [type(e) for e in errors] == [ResponseTooLarge, ResponseTooLarge]
    assert seen.sent < 32 * 1024 * 1024  # stopped long before the 64 MiB an endless answer would send


def test_a_truncating_read_keeps_the_status_and_the_first_bytes_and_does_not_pool_the_connection(loop_factory):
    async def scenario() -> tuple[list[Any], Seen]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        base = f"http://127.0.0.1:{port}"
        try:
            out = [await client.request("GET", base + path, max_body=1000, truncate=True)
                   for path in ("/big/1000", "/big/1000", "/big/5000", "/endless", "/ok")]
            await asyncio.sleep(0.3)  # the server notices the reader went
            return out, seen
        finally:
            await client.close()
            server.close()

    out, seen = run(scenario, loop_factory)
    assert [(r.status, len(r.body)) for r in out] == [(200, 1000), (200, 1000), (200, 1000), (200, 1000), (200, 2)]
    assert out[3].body == b"y" * 1000
    # exactly the cap: read whole, the connection kept; past it (twice): each closed, so /ok needs a third
    assert seen.connections == 3
    assert seen.sent < 32 * 1024 * 1024


def test_fixed_headers_of_a_prepared_request_go_with_every_use(loop_factory):
    async def scenario() -> Seen:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        prepared = prepare("GET", f"http://127.0.0.1:{port}/ok", (("User-Agent", "mm"), ("Accept", "*/*")))
        try:
            await client.request("GET", prepared)
            await client.request("GET", prepared, headers=[("X-More", "1")])
            return seen
        finally:
            await client.close()
            server.close()

    seen = run(scenario, loop_factory)
    bare, more = seen.requests[0][2], seen.requests[1][2]
    assert bare.endswith(b"\r\nUser-Agent: mm\r\nAccept: */*\r\n\r\n")
    assert b"User-Agent: mm\r\nAccept: */*\r\nX-More: 1\r\n\r\n" in more
    with pytest.raises(ValueError):
        prepare("GET", "http://127.0.0.1/ok", (("X-Bad", "a\r\nInjected: 1"),))


def test_a_redirect_is_an_answer_and_the_environment_proxy_is_not_used(monkeypatch, loop_factory):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")

    async def scenario() -> tuple[Any, Seen]:
        other, other_port, other_seen = await scripted()

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/ok\r\nContent-Length: 0\r\n\r\n"
                         % other_port)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(redirect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HttpClient(LOOPBACK)
        try:
            return await client.request("GET", f"http://127.0.0.1:{port}/health"), other_seen
        finally:
            await client.close()
            server.close()
            other.close()

    answer, other_seen = run(scenario, loop_factory)
    assert answer.status == 302 and dict(answer.raw_headers)[b"Location"].endswith(b"/ok")
    assert other_seen.requests == []


def test_total_timeout_covers_a_slow_answer(loop_factory):
    async def scenario() -> tuple[float, int]:
        server, port, _ = await scripted()
        client = HttpClient(LOOPBACK)
        loop = asyncio.get_running_loop()
        try:
            start = loop.time()
            with pytest.raises(TimeoutError):
                await client.request("GET", f"http://127.0.0.1:{port}/slow", timeout=0.3)
            return loop.time() - start, client.connections()
        finally:
            await client.close()
            server.close()

    took, open_ = run(scenario, loop_factory)
    assert 0.25 < took < 1.5
    assert open_ == 0  # the timed-out connection is dropped, not pooled


def test_a_connection_that_ends_without_an_answer_is_an_error_unless_reused_and_idempotent(loop_factory):
    async def scenario() -> tuple[list[str], Seen]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        out = []
        try:
            for method in ("GET", "POST"):
                try:
                    await client.request(method, f"http://127.0.0.1:{port}/drop")
                except ConnectionClosed as exc:
                    out.append(f"{method}: {exc}")
            return out, seen
        finally:
            await client.close()
            server.close()

    out, seen = run(scenario, loop_factory)
    assert len(out) == 2 and all("closed the connection before answering" in o for o in out)
    assert len(seen.requests) == 2  # a fresh connection's failure is not retried


def test_a_reused_connection_closed_before_any_answer_is_retried_once_for_idempotent_methods_only(loop_factory):
    async def scenario() -> tuple[list[str], Seen]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK)
        base = f"http://127.0.0.1:{port}"
        out = []
        try:
            for method in ("GET", "POST"):
                await client.request("GET", f"{base}/then-drop")
                try:
                    response = await client.request(method, f"{base}/ok")
                    out.append(f"{method}: {response.status} {response.body!r}")
                except ConnectionClosed as exc:
                    out.append(f"{method}: {exc}")
            return out, seen
        finally:
            await client.close()
            server.close()

    out, seen = run(scenario, loop_factory)
    assert out == ["GET: 200 b'ok'", "POST: the server closed the connection before answering"]
    # GET: /then-drop, the dropped GET, its retry on a fresh connection; POST: /then-drop (on that one), dropped POST
    assert [(m, p) for m, p, _, _ in seen.requests] == [("GET", "/then-drop"), ("GET", "/ok"), ("GET", "/ok"),
                                                         ("GET", "/then-drop"), ("POST", "/ok")]
    assert seen.connections == 2


class _Idle(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 0.2  # an idle keep-alive connection is closed after this
    counts: dict[str, int]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.counts["connections"] += 1

    def _reply(self) -> None:
        self.counts["requests"] += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"done")

    do_GET = _reply
    do_POST = _reply


@contextmanager
def idle_closing_server() -> Iterator[tuple[int, dict[str, int]]]:
    counts = {"connections": 0, "requests": 0}
    handler = type("Handler", (_Idle,), {"counts": counts})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], counts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_pooled_connection_the_server_closed_is_replaced():
    async def scenario(port: int) -> list[Any]:
        client = HttpClient(LOOPBACK)
        try:
            out = []
            for method in ("GET", "GET", "POST"):
                out.append(await client.request(method, f"http://127.0.0.1:{port}/x", body=b"b" * (method == "POST")))
                await asyncio.sleep(0.5)  # the server closes the idle connection meanwhile
            return out
        finally:
            await client.close()

    with idle_closing_server() as (port, counts):
        out = asyncio.run(scenario(port))
    assert [r.body for r in out] == [b"done"] * 3
    assert counts == {"connections": 3, "requests": 3}  # each on a new connection, each sent once


def test_a_refused_address_is_never_dialled(loop_factory):
    async def scenario() -> tuple[str, Seen]:
        server, port, seen = await scripted("127.0.0.2")
        client = HttpClient(ONLY_ONE)
        try:
            with pytest.raises(AddressRefused) as refused:
                await client.request("GET", f"http://127.0.0.2:{port}/ok")
            return str(refused.value.strerror), seen
        finally:
            await client.close()
            server.close()

    reason, seen = run(scenario, loop_factory)
    assert reason == "refused: 127.0.0.2 is not in INSTANCE_ALLOWLIST"
    assert seen.connections == 0


def test_a_name_that_resolves_elsewhere_later_is_refused_at_the_next_dial(monkeypatch, loop_factory):
    name = "rebind.test"
    answer = {"address": "127.0.0.1"}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.rstrip(".").lower() == name:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer["address"], port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def scenario() -> tuple[int, str, Seen, Seen]:
        server, port, seen = await scripted("127.0.0.1")
        moved, _, moved_seen = await scripted("127.0.0.2", port)
        client = HttpClient(ONLY_ONE, per_host=1)
        try:
            first = await client.request("GET", f"http://{name}:{port}/close")  # not pooled: the next one dials
            answer["address"] = "127.0.0.2"
            with pytest.raises(AddressRefused) as refused:
                await client.request("GET", f"http://{name}:{port}/ok")
            return first.status, str(refused.value.strerror), seen, moved_seen
        finally:
            await client.close()
            server.close()
            moved.close()

    status, reason, seen, moved_seen = run(scenario, loop_factory)
    assert status == 200 and seen.connections == 1
    assert reason == "refused: 127.0.0.2 is not in INSTANCE_ALLOWLIST"
    assert moved_seen.connections == 0


def test_urls_parse_once_and_bad_ones_are_refused():
    assert parse_url("http://127.0.0.1:81/a/b?x=%2F") == Url("http", "127.0.0.1", 81, "/a/b?x=%2F")
    assert parse_url("https://example.test") == Url("https", "example.test", 443, "/")
    assert parse_url("http://[::1]:9/") == Url("http", "::1", 9, "/")
    for bad in ("ftp://x/", "http:///nohost", "http://u:p@h/", "http://h/a b"):
        with pytest.raises(ValueError):
            parse_url(bad)
    with pytest.raises(ValueError):
        asyncio.run(HttpClient(LOOPBACK).request("GET", "http://127.0.0.1:9/", headers=[("X", "a\r\nB: c")]))


def test_each_request_times_out_at_its_own_deadline(loop_factory):
    async def scenario() -> tuple[list[str], list[float]]:
        server, port, _ = await scripted()
        client = HttpClient(LOOPBACK)
        loop = asyncio.get_running_loop()
        start = loop.time()
        ended: list[float] = []

        async def one(delay: float, timeout: float) -> str:
            await asyncio.sleep(delay)
            try:
                r = await client.request("GET", f"http://127.0.0.1:{port}/slow", timeout=timeout)
                return f"{r.status}"
            except TimeoutError:
                return "timeout"
            finally:
                ended.append(loop.time() - start)

        try:
            out = list(await asyncio.gather(one(0.0, 0.8), one(0.1, 0.2), one(0.0, 3.0)))
            return out, ended
        finally:
            await client.close()
            server.close()

    out, ended = run(scenario, loop_factory)
    assert out == ["timeout", "timeout", "200"]
    # the later request with the shorter timeout ends first, each at its own deadline
    assert 0.28 <= ended[0] < 0.6 and 0.78 <= ended[1] < 1.4


def test_idle_connections_are_closed_after_the_idle_timeout(loop_factory):
    async def scenario() -> tuple[int, int, int, Seen]:
        server, port, seen = await scripted()
        client = HttpClient(LOOPBACK, timeout=0.2, idle_timeout=0.3)
        try:
            await asyncio.gather(*(client.request("GET", f"http://127.0.0.1:{port}/chunked") for _ in range(3)))
            pooled = client.connections()
            await asyncio.sleep(1.2)  # past the last deadline (0.2 s) and the idle timeout (0.3 s)
            left = client.connections()
            await client.request("GET", f"http://127.0.0.1:{port}/ok")
            return pooled, left, client.connections(), seen
        finally:
            await client.close()
            server.close()

    pooled, left, after, seen = run(scenario, loop_factory)
    assert (pooled, left, after) == (3, 0, 1)
    assert seen.connections == 4  # the next request dialled afresh
