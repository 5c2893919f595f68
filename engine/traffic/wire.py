"""A lean HTTP/1.1 client on asyncio protocols and httptools' response parser: the traffic plane's outbound wire.

It owns keep-alive connection pools (one per scheme, host and port, each capped), the dial (only to addresses the
SSRF policy allows: every address a name resolves to is checked, an IP literal is checked itself, and only checked
addresses are dialled; `checked_addresses` in engine.security.ssrf), the request's total timeout (dial, wait for a
pooled connection, send, answer), reading an answer (Content-Length, chunked, until close; no body for HEAD, 1xx,
204 and 304), a cap on the body (past it: ResponseTooLarge, or with truncate=True the answer with the body's first
max_body bytes; either way the connection is closed, the rest is not read) and the raw header pairs as bytes.
An answer whose head is byte for byte one httptools parsed before (a server's heads differ by little more than their
Date) and which came whole in one read is taken from the buffer without the parser: the status, header pairs (the
same tuple as before), Content-Length and keep-alive are the remembered ones (`scan_head`). Anything else goes
through the parser: split heads or bodies, chunked, no Content-Length, 1xx, 204, 304, HEAD, a body past the cap.

A connection goes back to its pool when the answer said it may stay open (`Connection: close` and HTTP/1.0 without
keep-alive close it). A pooled connection the server has closed meanwhile is dropped before anything is sent on it;
when one fails after the request went out but before any byte of an answer came back, an idempotent request is sent
once more on a fresh connection (the server closed it while it sat idle), any other raises ConnectionClosed.

Errors: TimeoutError (the total timeout passed), ResponseTooLarge, AddressRefused (an OSError: the policy refused the
address; its strerror reads `refused: <reason>`), and OSError for the rest (ConnectionClosed, ProtocolError, a
refused or failed dial).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import httptools

from engine.security.ssrf import Policy, checked_addresses
from engine.traffic.heads import HEAD_KEPT_BYTES, HEADS_KEPT, KnownHead, scan_head

__all__ = [
    "ConnectionClosed", "Exchange", "Header", "HttpClient", "Prepared", "ProtocolError", "Response", "ResponseTooLarge",
    "Url", "parse_url", "prepare",
]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # these say Content-Length: 0 when they carry nothing
_OWN_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})  # written from the request itself
_DEFAULT_PORTS = {"http": 80, "https": 443}
Header = tuple[str | bytes, str | bytes]


class Url(NamedTuple):
    """Where a request goes: scheme (http or https), host (no brackets), port, and the request target as sent
    (path and query, already percent-encoded)."""

    scheme: str
    host: str
    port: int
    target: str


class Response(NamedTuple):
    """An answer: status, header pairs as received (bytes), body."""

    status: int
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class ResponseTooLarge(Exception):
    """The answer's body is larger than the request's max_body (the rest was not read; the connection is closed)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


class ConnectionClosed(ConnectionError):
    """The server closed the connection before its answer was complete."""


class ProtocolError(ConnectionError):
    """The server's answer is not valid HTTP/1.x."""


_UNKNOWN: Any = object()  # a head not parsed before
_new = tuple.__new__  # a NamedTuple made without its Python __new__ (on the per-request path)


class _Stale(Exception):
    """A connection ended after the request was written and before any byte of an answer."""


class _Truncated(Exception):
    """Raised out of the parser once a truncated answer went back: nothing more of it is parsed."""


@lru_cache(maxsize=4096)
def parse_url(url: str) -> Url:
    """An absolute http(s) URL as a Url (cached); ValueError for anything else. The path and query go out as
    given, so they must already be percent-encoded."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    if parts.username or parts.password:
        raise ValueError("credentials in a URL are not sent")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c <= " " or c == "\x7f" for c in target):
        raise ValueError(f"the request target has a space or control character: {target!r}")
    return Url(scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme], target)


class Prepared:
    """A (method, url) pair ready to send: its request line, Host header and fixed headers (sent with every use) as
    bytes, the whole request when it carries no other headers and no body, and its pool's key (make one with
    prepare(); reuse it)."""

    __slots__ = ("bare", "body_method", "head", "head_only", "idempotent", "method", "pool_key", "url")

    def __init__(self, method: str, url: Url, headers: Iterable[Header] = ()) -> None:
        if not method.isascii() or not method.isalpha():
            raise ValueError(f"not an HTTP method: {method!r}")
        host = f"[{url.host}]" if ":" in url.host else url.host
        if url.port != _DEFAULT_PORTS[url.scheme]:
            host = f"{host}:{url.port}"
        self.method = method
        self.url = url
        self.head = f"{method} {url.target} HTTP/1.1\r\nHost: {host}\r\n".encode("idna" if not host.isascii()
                                                                                    else "ascii")
        if headers:
            self.head = _render(self.head, "", headers, b"")[:-2]  # the fixed headers, without the blank line
        self.body_method = method in _BODY_METHODS
        self.bare = self.head + (b"Content-Length: 0\r\n\r\n" if self.body_method else b"\r\n")
        self.head_only = method == "HEAD"
        self.idempotent = method in IDEMPOTENT
        self.pool_key = f"{url.scheme}://{host}"  # a str: its hash is computed once


@lru_cache(maxsize=4096)
def prepare(method: str, url: str | Url, headers: tuple[Header, ...] = ()) -> Prepared:
    """The Prepared request of (method, url) with fixed headers, cached; ValueError for a method, URL or header
    that cannot be sent."""
    return Prepared(method, parse_url(url) if isinstance(url, str) else url, headers)


def _bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")  # a WSGI header's value is its bytes decoded as latin-1: this restores them
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _render(head: bytes, method: str, headers: Iterable[Header], body: bytes) -> bytes:
    parts = [head]
    for name, value in headers:
        key, val = _bytes(name), _bytes(value)
        if b"\r" in key or b"\n" in key or b":" in key or not key or b"\r" in val or b"\n" in val:
            raise ValueError(f"header {key!r} has a line break, a colon in its name or no name")
        if key.lower() in _OWN_HEADERS:
            continue
        parts.append(b"%s: %s\r\n" % (key, val))
    if body or method in _BODY_METHODS:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


class Exchange(NamedTuple):
    """A request written on a connection: what finish() needs to read its answer (or send it once more)."""

    pool: _Pool
    conn: _Connection
    waiter: asyncio.Future[Response]
    prepared: Prepared
    data: bytes
    limit: int
    truncate: bool
    deadline: float


class _Connection(asyncio.Protocol):
    """One connection: writes a request, parses its answer (httptools calls the on_* methods; an answer whose
    head was parsed before, byte for byte, and which came whole in one read is taken from the buffer as is)."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self._heads = pool.client.heads
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.keep_alive = False
        self._waiter: asyncio.Future[Response] | None = None
        self.notify: Callable[[], object] | None = None  # told once the waiter is done (HttpClient.when_done)
        self.deadline = 0.0  # when the request in flight times out
        self._error: BaseException | None = None
        self._head_only = False
        self._max_body = 0
        self._truncate = False
        self._received = False
        self._headers_done = False
        self._interim = False
        self._until_close = False
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of asyncio's

    def data_received(self, data: bytes) -> None:
        """Feed the parser (or take a whole answer with a known head as is); an answer nobody asked for closes the
        connection."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()
            return
        if not self._received:
            self._received = True
            end = data.find(b"\r\n\r\n") + 4
            if end > 4 and not self._head_only:
                heads = self._heads
                key = data[:end]
                head = heads.get(key, _UNKNOWN)
                if head is _UNKNOWN:
                    head = scan_head(key)
                    if len(key) <= HEAD_KEPT_BYTES:
                        if len(heads) >= HEADS_KEPT:
                            heads.clear()
                        heads[key] = head
                if head is not None and len(data) - end == head.length <= self._max_body:
                    # the whole answer, nothing after it: the parser (at a message's start) is not needed
                    self._waiter = None
                    self.keep_alive = head.keep_alive
                    waiter.set_result(_new(Response, (head.status, head.headers, data[end:])))
                    notify = self.notify
                    if notify is not None:  # told at once: nothing of this read is left to do
                        self.notify = None
                        notify()
                    return
        try:
            self.parser.feed_data(data)
        except _Truncated:
            self.close()  # the answer went back with the body's first max_body bytes; the rest is never read
        except Exception as exc:  # a callback's own error first (ResponseTooLarge), else the parser's
            self._fail(self._error or ProtocolError(f"invalid HTTP answer: {exc}"))
        if self._head_only and self._waiter is None:
            self.parser = httptools.HttpResponseParser(self)  # it still expects the body HEAD never gets

    def eof_received(self) -> bool:
        """Let the transport close (connection_lost follows)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; an answer in progress ends (until-close bodies) or fails."""
        self.closed = True
        self.pool.lost(self)
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and self._until_close:
            self.keep_alive = False
            self._complete()
        elif not self._received:
            self._fail(_Stale())
        else:
            self._fail(ConnectionClosed("the server closed the connection mid-answer"))

    # -- httptools

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header pair."""
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        """Status known: interim answers are skipped, HEAD ends here, a Content-Length past the cap fails now."""
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200:
            self._interim = True
            return
        self._status = status
        self._headers_done = True
        length: int | None = None
        chunked = False
        for name, value in self._headers:
            if len(name) == 14 and name.lower() == b"content-length":
                length = int(value) if value.strip().isdigit() else None
            elif len(name) == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if self._head_only or status in (204, 304):
            self.keep_alive = parser.should_keep_alive()
            if self._head_only:
                self._complete()
            return
        if length is not None and length > self._max_body and not self._truncate:
            self._error = ResponseTooLarge(self._max_body)
            raise self._error
        self._until_close = length is None and not chunked

    def on_body(self, body: bytes) -> None:
        """A piece of the body (at most max_body bytes in all: past them the answer fails, or when truncating goes
        back with its first max_body bytes)."""
        self._size += len(body)
        if self._size > self._max_body:
            if not self._truncate:
                self._error = ResponseTooLarge(self._max_body)
                raise self._error
            self._body.append(body[:len(body) - (self._size - self._max_body)])
            self.keep_alive = False
            self._complete()
            raise _Truncated
        self._body.append(body)

    def on_message_complete(self) -> None:
        """The answer is complete (an interim one: wait for the next)."""
        if self._interim:
            self._interim = False
            self._headers = []
            return
        if self._waiter is None:
            return  # HEAD's answer already went back
        self.keep_alive = self.parser.should_keep_alive()
        self._complete()

    # -- the client's side

    def send(self, data: bytes, head_only: bool, max_body: int, truncate: bool, deadline: float
             ) -> asyncio.Future[Response]:
        """Write one request; the future gets its answer (TimeoutError once the client's sweep finds the deadline
        passed)."""
        assert self.transport is not None
        self._waiter = waiter = self.pool.loop.create_future()
        self.notify = None
        self.deadline = deadline
        self._head_only = head_only
        self._max_body = max_body
        self._truncate = truncate
        self._received = self._headers_done = self._until_close = self._interim = False
        self._error = None
        self._headers = []
        self._body = []
        self._size = 0
        self.transport.write(data)
        return waiter

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        body = self._body
        response: Response = _new(Response, (self._status, tuple(self._headers),
                                             body[0] if len(body) == 1 else b"".join(body)))
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
            self._told()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            self._told()

    def _told(self) -> None:
        """The waiter is done: its notify callback, if any, on the next loop turn (as a done callback would be)."""
        notify = self.notify
        if notify is not None:
            self.notify = None
            self.pool.loop.call_soon(notify)

    def in_flight_until(self) -> float | None:
        """The deadline of the request in flight, or None."""
        waiter = self._waiter
        return None if waiter is None or waiter.done() else self.deadline

    def expire(self) -> None:
        """The request's time is up: fail it with TimeoutError and drop the connection."""
        self._fail(TimeoutError())

    def close(self) -> None:
        """Drop the connection at once (what is in flight is not read)."""
        if not self.closed:
            self.closed = True
            self.pool.lost(self)
            if self.transport is not None:
                self.transport.abort()


class _Pool:
    """The connections to one (scheme, host, port): idle ones (newest first) and a cap on all of them."""

    def __init__(self, client: HttpClient, url: Url) -> None:
        self.client = client
        self.loop = client.loop
        self.scheme, self.host, self.port = url.scheme, url.host, url.port
        self.idle: list[_Connection] = []
        self.size = 0  # open or being dialled
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._members: set[_Connection] = set()

    def take(self) -> _Connection | None:
        """An idle connection the server has not closed, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if not conn.closed and transport is not None and not transport.is_closing():
                return conn
            conn.close()
        return None

    async def acquire(self, deadline: float) -> _Connection:
        """An idle connection, a new one (under the cap), or the next one released; TimeoutError past deadline."""
        while True:
            conn = self.take()
            if conn is not None:
                conn.reused = True
                return conn
            if self.size < self.client.per_host:
                return await self._dial(deadline)
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiters.append(waiter)
            handle = self.loop.call_at(deadline, _expire_waiter, waiter)
            try:
                conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    given = waiter.result()  # handed over just as this request was cancelled: pass it on
                    if given is not None:
                        self.release(given)
                    else:
                        self._wake(None)
                raise
            finally:
                handle.cancel()
            if conn is not None and not conn.closed:
                conn.reused = True
                return conn

    async def _dial(self, deadline: float) -> _Connection:
        self.size += 1
        try:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(min(remaining, self.client.connect_timeout)):
                addresses = await checked_addresses(self.host, self.port, self.client.policy)
                failure: OSError | None = None
                for ip in addresses:
                    try:
                        _, conn = await self.loop.create_connection(
                            lambda: _Connection(self), str(ip), self.port,
                            ssl=self.client.ssl_context if self.scheme == "https" else None,
                            server_hostname=self.host if self.scheme == "https" else None,
                        )
                    except OSError as exc:
                        failure = exc
                        continue
                    break
                else:
                    assert failure is not None
                    raise failure
        except BaseException:
            self.size -= 1
            self._wake(None)
            raise
        self._members.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """A connection whose answer is complete: to a waiter, back to the pool, or closed."""
        if not conn.keep_alive or conn.closed or self.client.closed:
            conn.close()
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        """A connection closed: its place under the cap goes to a waiter (which dials)."""
        if conn in self._members:
            self._members.discard(conn)
            self.size -= 1
            if conn in self.idle:
                self.idle.remove(conn)
            self._wake(None)

    def _wake(self, conn: _Connection | None) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return

    def close(self) -> None:
        """Close every connection (busy ones fail their requests)."""
        for conn in list(self._members):
            conn.close()

    def sweep(self, now: float, idle_timeout: float) -> float | None:
        """Expire requests past their deadline and close connections idle too long (idle counts from the last
        request's deadline, so at most its timeout more); when the next of either falls due, or None."""
        earliest: float | None = None
        for conn in list(self._members):
            due = conn.in_flight_until()
            if due is None:  # idle (in the pool, or handed over and about to send: its deadline is ahead)
                due = conn.deadline + idle_timeout
                if due <= now and conn in self.idle:
                    conn.close()
                    continue
            elif due <= now:
                conn.expire()
                continue
            if earliest is None or due < earliest:
                earliest = due
        return earliest


def _expire_waiter(waiter: asyncio.Future[_Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class HttpClient:
    """Keep-alive HTTP/1.1 pools under an SSRF policy; use on one event loop (the first request's).

    per_host caps the connections to one (scheme, host, port); timeout is a request's default total timeout,
    connect_timeout bounds a dial within it; a connection idle for idle_timeout (counted from its last request's
    deadline) is closed; max_body is the default cap on an answer's body."""

    def __init__(
        self,
        policy: Policy,
        *,
        per_host: int = 200,
        connect_timeout: float = 5.0,
        timeout: float = 5.0,
        idle_timeout: float = 30.0,
        max_body: int = 10 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if per_host < 1:
            raise ValueError("per_host must be >= 1")
        self.policy = policy
        self.per_host = per_host
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.max_body = max_body
        self._ssl_context = ssl_context
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[str, _Pool] = {}
        self.heads: dict[bytes, KnownHead | None] = {}  # answer heads seen (as their bytes): see _Connection
        # requests' deadlines are enforced by one timer at the earliest deadline known (not a timer per request)
        self._sweep_at: float | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of https pools (the default one, made on first use: it reads the CA store)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the client runs on."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def connections(self) -> int:
        """Connections open (or being dialled) in all pools."""
        return sum(p.size for p in self._pools.values())

    async def request(
        self,
        method: str,
        url: str | Url | Prepared,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        timeout: float | None = None,
        max_body: int | None = None,
        truncate: bool = False,
    ) -> Response:
        """Send one request and read its answer (redirects are answers). Raises TimeoutError, ResponseTooLarge,
        AddressRefused, ValueError (a URL or header that cannot be sent) or another OSError. url may be a
        Prepared request (of this method): the fast path, nothing is parsed or built but headers and body.
        truncate=True: a body longer than max_body is not an error, the answer keeps its first max_body bytes (and
        the connection is closed, not pooled)."""
        if self.closed:
            raise ConnectionClosed("the client is closed")
        prepared = url if isinstance(url, Prepared) else prepare(method, url)
        data = _render(prepared.head, prepared.method, headers, body) if headers or body else prepared.bare
        pool, limit, deadline = self._arm(prepared, timeout, max_body)
        conn = pool.take()
        if conn is not None:
            conn.reused = True
        else:
            conn = await pool.acquire(deadline)
        return await self.finish(
            Exchange(pool, conn, conn.send(data, prepared.head_only, limit, truncate, deadline), prepared, data, limit,
                     truncate, deadline))

    def start(self, prepared: Prepared, headers: Iterable[Header], body: bytes, timeout: float, max_body: int
              ) -> Exchange | None:
        """request()'s first step without a coroutine: the request written on an idle pooled connection, or None
        (closed client, no idle connection, a header that cannot be sent) and nothing done: request() then. Its
        answer: done(), else finish()."""
        if self.closed:
            return None
        try:
            data = _render(prepared.head, prepared.method, headers, body) if headers or body else prepared.bare
        except ValueError:
            return None
        pool = self._pools.get(prepared.pool_key)
        conn = pool.take() if pool is not None else None
        if conn is None:
            return None
        assert pool is not None
        conn.reused = True
        deadline = (self._loop or self.loop).time() + timeout  # _arm's work, the pool already known
        sweep_at = self._sweep_at
        if sweep_at is None or deadline < sweep_at:
            self._schedule_sweep(deadline)
        return _new(Exchange, (pool, conn, conn.send(data, prepared.head_only, max_body, False, deadline), prepared,
                               data, max_body, False, deadline))

    @staticmethod
    def when_done(exchange: Exchange, notify: Callable[[], object]) -> None:
        """Call notify() once the exchange's future is done, instead of a done callback on it: at once when the
        answer came whole in one read (inside that read's callback, its last step), else on the next loop turn."""
        if exchange.waiter.done():
            exchange.pool.loop.call_soon(notify)
        else:
            exchange.conn.notify = notify

    @staticmethod
    def done(exchange: Exchange) -> Response | None:
        """The exchange's answer once its future holds one (the connection goes back to its pool), else None: the
        future failed (finish() raises what request() would), or is pending."""
        waiter = exchange.waiter
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return None
        exchange.pool.release(exchange.conn)
        return waiter.result()

    async def finish(self, exchange: Exchange) -> Response:
        """The answer of an exchange started (request()'s rest: a stale pooled connection retried once when
        idempotent)."""
        pool, conn, waiter, prepared = exchange.pool, exchange.conn, exchange.waiter, exchange.prepared
        retried = False
        while True:
            try:
                response = await waiter
            except _Stale:
                if conn.reused and not retried and prepared.idempotent:
                    retried = True
                    fresh = pool.take()
                    if fresh is not None:
                        fresh.reused = True
                    else:
                        fresh = await pool.acquire(exchange.deadline)
                    conn = fresh
                    waiter = conn.send(exchange.data, prepared.head_only, exchange.limit, exchange.truncate,
                                       exchange.deadline)
                    continue
                raise ConnectionClosed("the server closed the connection before answering") from None
            except BaseException:
                conn.close()  # timed out, too large, cancelled: what else arrives is not read
                raise
            pool.release(conn)
            return response

    def _arm(self, prepared: Prepared, timeout: float | None, max_body: int | None) -> tuple[_Pool, int, float]:
        """The request's pool, body cap and deadline (the sweep scheduled by it when it is the earliest)."""
        loop = self._loop or self.loop
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        sweep_at = self._sweep_at
        if sweep_at is None or deadline < sweep_at:
            self._schedule_sweep(deadline)
        pool = self._pools.get(prepared.pool_key)
        if pool is None:
            pool = self._pools[prepared.pool_key] = _Pool(self, prepared.url)
        return pool, self.max_body if max_body is None else max_body, deadline

    def _schedule_sweep(self, when: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep_at = when
        self._sweeper = self.loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Time out what is past its deadline, close what sat idle too long; schedule the next sweep at the
        earliest of both left."""
        self._sweeper = self._sweep_at = None
        now = self.loop.time()
        earliest: float | None = None
        for key, pool in list(self._pools.items()):
            ahead = pool.sweep(now, self.idle_timeout)
            if ahead is not None and (earliest is None or ahead < earliest):
                earliest = ahead
            if pool.size == 0 and not pool.waiters:
                del self._pools[key]  # an instance no longer called keeps nothing here
        if earliest is not None:
            self._schedule_sweep(earliest)

    async def close(self) -> None:
        """Close every connection; later requests raise ConnectionClosed."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = self._sweep_at = None
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        await asyncio.sleep(0)  # let the transports finish closing
