"""The wire client's known-head path: an answer whose head it parsed before, byte for byte, and which came whole in
one read is taken from the buffer; everything else (split heads or bodies, chunked, bodiless statuses, HEAD,
malformed heads, bodies past the cap) goes through httptools as before."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import uvloop

from engine.security.ssrf import Policy
from engine.traffic.heads import scan_head
from engine.traffic.wire import HttpClient, ProtocolError, Response, ResponseTooLarge
from tests.conftest import free_port

LOOPBACK = Policy.instances(("127.0.0.0/8",))
OK = b"HTTP/1.1 200 OK\r\nServer: t\r\nX-Pair: A\r\nx-pair: b\r\nContent-Length: 5\r\n\r\n"

Pieces = Sequence[bytes]  # one answer, written as these pieces with a pause between them


async def pieced(answers: list[Pieces]) -> tuple[asyncio.Server, int, list[int]]:
    """A server answering the n-th request (over all connections) with answers[n], piece by piece; the list it
    returns counts connections."""
    served = [0]
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                pieces = answers[served[0]]
                served[0] += 1
                for i, piece in enumerate(pieces):
                    if i:
                        await asyncio.sleep(0.05)  # its own read on the client's side
                    writer.write(piece)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, port, connections


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """Each test on asyncio's own loop and on uvloop (what the engine runs on)."""
    return asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop


def exchange(answers: list[Pieces], requests: list[tuple[str, dict[str, Any]]],
             loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> tuple[list[Response | BaseException], int, int]:
    """Send requests ((method, request() keywords)) one after the other to a server giving answers: each answer
    or error, the connections the server saw and those left open."""
    async def scenario() -> tuple[list[Response | BaseException], int, int]:
        server, port, connections = await pieced(answers)
        client = HttpClient(LOOPBACK, timeout=3.0)
        out: list[Response | BaseException] = []
        try:
            for method, options in requests:
                try:
                    out.append(await client.request(method, f"http://127.0.0.1:{port}/x", **options))
                except (OSError, ResponseTooLarge, TimeoutError) as exc:
                    out.append(exc)
            return out, connections[0], client.connections()
        finally:
            await client.close()
            server.close()

    def run(scenario_: Callable[[], Awaitable[Any]]) -> Any:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(asyncio.wait_for(scenario_(), 20))

    return run(scenario)  # type: ignore[no-any-return]


def test_a_head_seen_before_gives_the_same_pairs_duplicates_and_case_kept(loop_factory):
    out, connections, _ = exchange([[OK + b"first"], [OK + b"again"]], [("GET", {}), ("GET", {})], loop_factory)
    first, second = out
    assert isinstance(first, Response) and isinstance(second, Response)
    assert (first.status, first.body, second.status, second.body) == (200, b"first", 200, b"again")
    assert first.raw_headers == ((b"Server", b"t"), (b"X-Pair", b"A"), (b"x-pair", b"b"), (b"Content-Length", b"5"))
    assert second.raw_headers is first.raw_headers  # taken from the known head, not parsed again
    assert connections == 1


@pytest.mark.parametrize("pieces", [
    [OK[:20], OK[20:] + b"split"],        # the head across reads
    [OK[:-2], b"\r\nsplit"],               # the blank line across reads
    [OK + b"sp", b"lit"],                  # the body across reads
    [OK, b"split"],                        # the head alone, then the body
], ids=["head", "blank-line", "body", "head-then-body"])
def test_answers_split_across_reads_are_read_whole_before_and_after_the_head_is_known(pieces, loop_factory):
    out, connections, left = exchange([pieces, [OK + b"whole"], pieces], [("GET", {})] * 3, loop_factory)
    assert [(r.status, r.body) for r in out if isinstance(r, Response)] == [
        (200, b"split"), (200, b"whole"), (200, b"split")]
    assert connections == 1 and left == 1


def test_a_chunked_answer_and_bodiless_statuses_go_through_the_parser(loop_factory):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    answers: list[Pieces] = [[chunked], [chunked], [no_content], [not_modified], [not_modified],
                             [interim + OK + b"after"], [OK + b"plain"]]
    out, connections, left = exchange(answers, [("GET", {})] * 7, loop_factory)
    assert [(r.status, r.body) for r in out if isinstance(r, Response)] == [
        (200, b"hello"), (200, b"hello"), (204, b""), (304, b""), (304, b""), (200, b"after"), (200, b"plain")]
    assert connections == 1 and left == 1


def test_head_requests_never_wait_for_the_body_a_known_head_announces(loop_factory):
    out, connections, left = exchange([[OK + b"first"], [OK], [OK + b"third"]],
                                      [("GET", {}), ("HEAD", {}), ("GET", {})], loop_factory)
    assert [(r.status, r.body) for r in out if isinstance(r, Response)] == [
        (200, b"first"), (200, b""), (200, b"third")]
    assert connections == 1 and left == 1


def test_a_known_head_saying_close_closes_and_a_known_head_past_the_cap_is_refused_or_truncated(loop_factory):
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n"
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    answers: list[Pieces] = [[close + b"one"], [close + b"two"], [big + b"0123456789"], [big + b"0123456789"],
                             [big + b"0123456789"]]
    requests = [("GET", {}), ("GET", {}), ("GET", {}), ("GET", {"max_body": 4}),
                ("GET", {"max_body": 4, "truncate": True})]
    out, connections, left = exchange(answers, requests, loop_factory)
    assert [(r.status, r.body) for r in out[:3] if isinstance(r, Response)] == [
        (200, b"one"), (200, b"two"), (200, b"0123456789")]
    assert isinstance(out[3], ResponseTooLarge)
    assert isinstance(out[4], Response) and out[4].body == b"0123"
    assert connections == 4 and left == 0  # each close, the refusal and the truncation closed theirs


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
], ids=["no-colon", "bad-status", "two-lengths", "garbage"])
def test_a_malformed_head_is_an_error_every_time_not_a_hang(head, loop_factory):
    out, _, left = exchange([[head + b"ok"], [head + b"ok"]], [("GET", {}), ("GET", {})], loop_factory)
    assert all(isinstance(r, ProtocolError) for r in out), out
    assert left == 0


@pytest.mark.parametrize(("head", "expected"), [
    (OK, (200, 4, 5, True)),
    (b"HTTP/1.1 503 Busy\r\ncontent-LENGTH: 0\r\nConnection: close\r\n\r\n", (503, 2, 0, False)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", (200, 1, 1, False)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", (200, 2, 1, True)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\nServer: t\r\n\r\n", None),  # until close
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", None),
    (b"HTTP/1.1 101 Switching\r\nContent-Length: 0\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok\r\n\r\n", None),  # bare LF: the head ends before the CRLFs
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", None),
], ids=["nginx-like", "close", "http10", "http10-keep-alive", "chunked", "length-and-chunked", "until-close", "204",
        "101", "bare-lf", "two-lengths", "signed-length"])
def test_scan_head_accepts_only_heads_whose_answer_is_a_content_length_body(head, expected):
    found = scan_head(head)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.status, len(found.headers), found.length, found.keep_alive) == expected
