"""The traffic listener: `/proxy/<service>/<path>` on its own port (PROXY_PORT), served on the engine's event loop.

An asyncio Protocol per connection parses requests with httptools and routes each through the same Router as the
API's `/proxy` route (balancer, breaker, retries, faults), with the same operator-token check, the same `/proxy`
rate-limit bucket, the same header rules (engine.traffic.forwarding) and the same JSON errors. No thread is held
while an upstream answers, so proxied traffic is bounded by the loop, not by the API's worker threads.

    ProxyListener             the listening socket, its connections, the idle sweep, start and stop
    ├── TokenGate             bearer token -> claims (engine.traffic.tokengate)
    └── _Connection           one client: keep-alive, pipelined requests answered in order, limits on header
                              bytes (431), body bytes (413), idle and half-sent requests (closed), garbage (400)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import NamedTuple, cast

import httptools

from contract.errors import ApiError, ConfigError, Forbidden, RateLimited, Unauthorized
from contract.responses import ErrorOut
from contract.roles import Role
from engine.security.ratelimit import RateLimiter
from engine.security.tokens import Claims
from engine.store.logs import event_logger
from engine.traffic.forwarding import HOP_BY_HOP_BYTES, forwardable_raw
from engine.traffic.request_heads import (
    REQUEST_HEAD_KEPT_BYTES,
    REQUEST_HEADS_KEPT,
    KnownRequest,
    scan_request_head,
    split_headers,
)
from engine.traffic.router import Flight, Router, Upstream
from engine.traffic.tokengate import TokenGate
from engine.traffic.wire import HttpClient

__all__ = ["ListenerLimits", "ProxyListener"]

log = event_logger("proxy")
bugs = logging.getLogger("engine.traffic.listener")

METHODS = frozenset({b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS"})
_ALLOW = b", ".join(sorted(METHODS))
_PREFIX = b"/proxy/"
_READ_CHUNK_BOUND = 262_144  # the most one data_received can bring (uvloop's read buffer)
_PIPELINE_DEPTH = 16  # requests queued on one connection before it is read no further
_ROUTES_KEPT, _ROUTE_KEPT_BYTES = 4096, 1024  # request targets' routes remembered, up to this long (_launch)
_ANSWER_HEADS_KEPT, _ANSWER_HEAD_KEPT_BYTES = 1024, 4096  # answers' header lines remembered, up to this long (_reply)
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


@dataclass(frozen=True)
class ListenerLimits:
    """What the listener gives its clients: request sizes, idle time, open connections, and the grace at stop."""

    max_header_bytes: int = 65_536
    max_body_bytes: int = 10 * 1024 * 1024
    idle_timeout_s: float = 30.0
    connections: int = 10_000
    linger_s: float = 2.0
    grace_s: float = 2.0


class _Request(NamedTuple):
    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]
    body: bytes
    keep_alive: bool
    http10: bool
    known: KnownRequest | None  # read by its head's bytes, not by the parser


_new = tuple.__new__  # a NamedTuple made without its Python __new__ (one a request)


class _Refusal(NamedTuple):
    """An answer the connection gives before routing (431, 413, 400), after which it closes."""

    status: int
    message: str
    details: list[dict[str, str]]


class _Refuse(Exception):
    """Raised in a parser callback to stop parsing with a refusal."""

    def __init__(self, refusal: _Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class _HttpError(ApiError):
    """A 404 or 405 of the listener's own URL space, in the API's words."""

    def __init__(self, status: int, description: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.headers = headers or []


_CLOSE = _Refusal(0, "", [])  # a queue mark: close once what is before it is answered


def error_bytes(status: int, message: str, details: list[dict[str, str]] | None = None,
                headers: Iterable[tuple[bytes, bytes]] = (), *, close: bool = False) -> bytes:
    """A whole HTTP/1.1 response carrying the API's JSON error shape."""
    body = ErrorOut(error=message, details=list(details or [])).model_dump_json(by_alias=True).encode()
    head = [_STATUS_LINES.get(status, b"HTTP/1.1 %d Error\r\n" % status),
            b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)]
    head.extend(b"%s: %s\r\n" % pair for pair in headers)
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


def _api_error(exc: ApiError, close: bool) -> bytes:
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(exc, Unauthorized):
        extra.append((b"WWW-Authenticate", b'Bearer realm="microservice-monitor"'))
    if isinstance(exc, RateLimited):
        extra.append((b"Retry-After", str(exc.retry_after).encode()))
    if isinstance(exc, _HttpError):
        extra.extend(exc.headers)
    return error_bytes(exc.status, exc.message, exc.details, extra, close=close)


_NOT_FOUND = "The requested URL was not found on the server."


class ProxyListener:
    """The traffic listener (see the module docstring): start() and stop() run on the engine loop."""

    def __init__(self, router: Router, gate: TokenGate, limiter: RateLimiter, host: str, port: int,
                 limits: ListenerLimits | None = None) -> None:
        self.router = router
        self.gate = gate
        self.limiter = limiter
        self.host = host
        self.port = port  # the bound one after start (PROXY_PORT=0 picks a free port)
        self.limits = limits or ListenerLimits()
        self.connections: set[_Connection] = set()
        # (upstream header pairs, instance URL, attempts) -> the answer's header lines
        self.routes: dict[bytes, tuple[str, str, str]] = {}  # request target -> (service, path, query)
        self.answer_heads: dict[tuple[tuple[tuple[bytes, bytes], ...], str, int], bytes] = {}
        self.request_heads: dict[bytes, KnownRequest | None] = {}  # a request head's bytes -> its reading (None: unfit)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.stopping = False

    @property
    def url(self) -> str:
        """Where clients send traffic: http://host:port."""
        return f"http://{self.host}:{self.port}"

    @property
    def serving(self) -> bool:
        """Whether the listening socket is open."""
        return self._server is not None

    async def start(self) -> None:
        """Bind now (a taken port fails the start) and accept connections on the running loop."""
        loop = asyncio.get_running_loop()
        self.stopping = False
        try:
            self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024,
                                                    reuse_address=True)
        except OSError as exc:
            raise ConfigError("PROXY_PORT", f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = loop.create_task(self._sweep())
        log.info("traffic listener on %s", self.url, extra={"meta": {"proxyPort": self.port}})

    async def stop(self) -> None:
        """Stop listening, close idle connections, let requests in flight finish for at most grace_s, then close
        what is left; nothing when not serving."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping = True
        server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.connections):
            conn.close_when_idle()
        deadline = time.monotonic() + self.limits.grace_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()
        await server.wait_closed()

    async def _sweep(self) -> None:
        """Close connections idle, or holding a half-sent request, for longer than idle_timeout_s."""
        timeout = self.limits.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for conn in list(self.connections):
                conn.sweep(now, timeout)


class _Connection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, listener: ProxyListener) -> None:
        self._listener = listener
        self._limits = listener.limits
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer = "unknown"
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._raw_head = 0
        self._in_head = True  # reading a request line and headers (or waiting for one)
        self._body: list[bytes] = []
        self._body_len = 0
        self._started = 0.0  # when the request being read began (0: none)
        self._last_active = time.monotonic()
        self._queue: deque[_Request | _Refusal] = deque()
        self._busy = False  # a task is answering the queue
        self._done = False  # nothing more is parsed: refused, upgraded or closing
        self._lingering: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._read_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast("asyncio.Transport", transport)  # uvloop's is not an asyncio.Transport subclass
        self._transport = transport
        listener = self._listener
        if len(listener.connections) >= self._limits.connections or listener.stopping:
            transport.write(error_bytes(503, "too many connections", close=True))
            transport.close()
            return
        listener.connections.add(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self._peer = str(peer[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)
        self._done = True
        if self._lingering is not None:
            self._lingering.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._transport = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # lingering after a refusal, or closing: dropped
        self._last_active = time.monotonic()
        if not self._started:  # at a request boundary: heads read before are not parsed again
            data = self._read_known(data)
            if not data:
                return
        if self._in_head:
            self._raw_head += len(data)
            if self._raw_head > self._limits.max_header_bytes + _READ_CHUNK_BOUND:
                self._refuse(self._too_large_head())
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refuse):
                self._refuse(refused.refusal)
            else:
                bugs.error("proxy request parsing failed", exc_info=refused)
                self._refuse(_Refusal(400, "Bad Request", [{"message": "the request could not be read"}]))
        except httptools.HttpParserUpgrade:
            self._enqueue(_CLOSE)  # the request before it is answered; no protocol switch is offered
            self._done = True
        except httptools.HttpParserError as exc:
            self._refuse(_Refusal(400, "Bad Request", [{"message": str(exc) or type(exc).__name__}]))

    def _read_known(self, data: bytes) -> bytes:
        """Queue the requests at data's start whose heads are known (each with its whole body in data); what is left
        for the parser. A head not seen before is scanned alone once (the parser then reads this one)."""
        heads = self._listener.request_heads
        pos = 0
        size = len(data)
        while True:
            end = data.find(b"\r\n\r\n", pos) + 4
            if end < 4 or end - pos > REQUEST_HEAD_KEPT_BYTES:
                break
            head = data[pos:end]
            known = heads.get(head)
            if known is None:
                if head not in heads:
                    if len(heads) >= REQUEST_HEADS_KEPT:
                        heads.clear()
                    limits = self._limits
                    heads[head] = scan_request_head(head, limits.max_header_bytes, limits.max_body_bytes)
                break
            stop = end + known.length
            if stop > size:
                break  # the body is split across reads: the parser reads it
            request: _Request = _new(_Request, (known.method, known.url, known.headers,
                                                data[end:stop] if known.length else b"", True, known.http10, known))
            self._enqueue(request)
            pos = stop
        return data[pos:] if pos else data

    def eof_received(self) -> bool | None:
        if not self._busy and not self._queue:
            return None  # closes
        self._enqueue(_CLOSE)  # a client may half-close after sending: it still gets its answers
        self._done = True
        return True

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._started = self._last_active  # the time of the read it begins in
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._body = []
        self._body_len = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._limits.max_header_bytes:
            raise _Refuse(self._too_large_head())

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._limits.max_header_bytes:
            raise _Refuse(self._too_large_head())

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._raw_head = 0
        limit = self._limits.max_body_bytes
        expect = False
        for name, value in self._headers:
            low = name.lower()
            if low == b"content-length":
                if int(value) > limit:  # llhttp has checked it is a number
                    raise _Refuse(self._too_large_body())
            elif low == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
        if expect and not self._busy and not self._queue and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            raise _Refuse(self._too_large_body())
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request: _Request = _new(_Request, (parser.get_method(), self._url, self._headers, body,
                                            parser.should_keep_alive(), parser.get_http_version() == "1.0", None))
        self._in_head = True
        self._started = 0.0
        self._enqueue(request)

    # -- answering --------------------------------------------------------------------------------

    def _too_large_head(self) -> _Refusal:
        return _Refusal(431, "Request Header Fields Too Large", [
            {"field": "headers",
             "message": f"request line and headers larger than {self._limits.max_header_bytes} bytes"}])

    def _too_large_body(self) -> _Refusal:
        return _Refusal(413, "Request Entity Too Large",
                        [{"field": "body", "message": f"larger than {self._limits.max_body_bytes} bytes"}])

    def _refuse(self, refusal: _Refusal) -> None:
        self._done = True
        self._enqueue(refusal)

    def _enqueue(self, item: _Request | _Refusal) -> None:
        if self._busy:
            self._queue.append(item)
            if len(self._queue) >= _PIPELINE_DEPTH and not self._read_paused and self._transport is not None:
                self._transport.pause_reading()
                self._read_paused = True
            return
        self._busy = True
        # on the next loop turn: the turn's reads are all parsed first, then their requests go out together
        # (alternated with dispatching at once in the parser callback: about 10 us a request less CPU)
        asyncio.get_running_loop().call_soon(self._dispatch, item)

    def _dispatch(self, item: _Request | _Refusal) -> None:
        """Answer item (the connection is busy): a request whose first attempt went out on a pooled connection is
        finished by a callback on its answer, with no task (see _landed); anything else by a task (_run)."""
        if isinstance(item, _Request):
            try:
                launched = self._launch(item)
            except Exception as exc:
                self._proceed(self._reply_error(item, exc))
                return
            if isinstance(launched, Flight) and launched.exchange is not None:
                HttpClient.when_done(launched.exchange, partial(self._landed, item, launched))
                return
            asyncio.get_running_loop().create_task(self._run(item, launched))
            return
        asyncio.get_running_loop().create_task(self._run(item))

    def _landed(self, request: _Request, flight: Flight) -> None:
        """The first attempt's answer is in: written now when it is a success, else a task finishes the request."""
        try:
            upstream = self._listener.router.land(flight)
        except Exception as exc:
            self._proceed(self._reply_error(request, exc))
            return
        if upstream is None:
            asyncio.get_running_loop().create_task(self._run(request, flight))
            return
        self._proceed(self._reply(request, upstream))

    def _proceed(self, keep: bool) -> None:
        """After an answer written outside a task: the next queued item, or idle (as _run's loop)."""
        transport = self._transport
        if transport is None:
            self._busy = False
            return
        if not keep:
            transport.close()
            self._done = True
            self._busy = False
            return
        if self._write_paused:
            asyncio.get_running_loop().create_task(self._run(None))
            return
        if self._queue:
            self._dispatch(self._queue.popleft())
            return
        self._busy = False
        self._idle()

    def _idle(self) -> None:
        self._last_active = time.monotonic()
        if self._read_paused and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()
        if self._listener.stopping:
            self.close_when_idle()

    async def _run(self, item: _Request | _Refusal | None,
                   launched: Flight | Coroutine[None, None, Upstream] | None = None) -> None:
        """Answer item (None: wait for the writes to drain first), then each queued one in order, until the queue
        is empty or the connection ends."""
        try:
            while True:
                if item is not None:
                    if isinstance(item, _Refusal):
                        self._send_refusal(item)
                        return
                    keep = await self._answer(item, launched)
                    launched = None
                    if self._transport is None:
                        return
                    if not keep:
                        self._transport.close()
                        self._done = True
                        return
                if self._write_paused:
                    self._drained = asyncio.get_running_loop().create_future()
                    await self._drained
                    self._drained = None
                    if self._transport is None:
                        return
                if not self._queue:
                    break
                item = self._queue.popleft()
        finally:
            self._busy = False
        self._idle()

    def _send_refusal(self, refusal: _Refusal) -> None:
        transport = self._transport
        if transport is None:
            return
        self._done = True
        if refusal is _CLOSE:
            transport.close()
            return
        transport.write(error_bytes(refusal.status, refusal.message, refusal.details, close=True))
        if not transport.can_write_eof():
            transport.close()
            return
        # lingering close: our side is shut once the refusal is flushed, what the client still sends (the rest of
        # a huge header or body) is read and dropped for at most linger_s, so it reads the refusal, not a reset
        transport.write_eof()
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        self._lingering = asyncio.get_running_loop().call_later(self._limits.linger_s, transport.close)

    async def _answer(self, request: _Request, launched: Flight | Coroutine[None, None, Upstream] | None = None
                      ) -> bool:
        """Route one request (or finish one launched) and write its answer; whether the connection stays open."""
        try:
            if launched is None:
                launched = self._launch(request)
            if isinstance(launched, Flight):
                router = self._listener.router
                upstream = router.land(launched) or await router.resume(launched)
            else:
                upstream = await launched
        except Exception as exc:
            return self._reply_error(request, exc)
        return self._reply(request, upstream)

    def _reply_error(self, request: _Request, exc: Exception) -> bool:
        """Write the JSON error of a failed request (ApiError: its own; else a bug: the API's 500, the next request
        is served); whether the connection stays open."""
        keep = request.keep_alive and not self._listener.stopping
        transport = self._transport
        if isinstance(exc, ApiError):
            data = _api_error(exc, close=not keep)
        else:
            bugs.error("proxy request failed", exc_info=exc)
            data = error_bytes(500, "internal error", [{"type": type(exc).__name__}], close=not keep)
        if transport is not None:
            transport.write(data)
        return keep

    def _reply(self, request: _Request, upstream: Upstream) -> bool:
        """Write the upstream's answer; whether the connection stays open."""
        keep = request.keep_alive and not self._listener.stopping
        body = upstream.body
        status = upstream.status
        # the upstream's client hands the same header tuple back for a head it has read before: its lines are
        # filtered and formatted once (a dict keyed by it, its inner pairs' hashes cached by the bytes themselves)
        key = (upstream.raw_headers, upstream.instance_url, upstream.attempts)
        heads = self._listener.answer_heads
        head = heads.get(key)
        if head is None:
            head = _answer_head(*key)
            if len(head) <= _ANSWER_HEAD_KEPT_BYTES:
                if len(heads) >= _ANSWER_HEADS_KEPT:
                    heads.clear()
                heads[key] = head
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status, head,
                 b"Content-Length: %d\r\n" % len(body)]
        if not keep:
            parts.append(b"Connection: close\r\n")
        elif request.http10:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if request.method != b"HEAD" and body:
            parts.append(body)
        transport = self._transport
        if transport is not None:
            transport.write(b"".join(parts))
        return keep

    def _launch(self, request: _Request) -> Flight | Coroutine[None, None, Upstream]:
        """Check and route a request up to its first wait: the router's Flight, or (the token's user must be read
        first) the coroutine that routes it; ApiError for every refusal (JSON error answers)."""
        routes = self._listener.routes
        route = routes.get(request.url)
        if route is None:
            route = _route(request.url)
            if len(request.url) <= _ROUTE_KEPT_BYTES:
                if len(routes) >= _ROUTES_KEPT:
                    routes.clear()
                routes[request.url] = route
        if request.method not in METHODS:
            raise _HttpError(405, "The method is not allowed for the requested URL.",
                             [(b"Allow", _ALLOW)])
        known = request.known
        if known is not None:  # its headers' reading is the head's
            forward, auth, key, method = known.forward, known.auth, known.key, known.method_name
        else:
            forward, auth, key = split_headers(request.headers)  # forward as received: sent on as they came
            method = request.method.decode()
        bucket = self._listener.gate.admitted(auth) if auth is not None else None
        if bucket is not None:  # a current operator token by the caches (one call): its user's bucket spent
            wait = self._listener.limiter.hit(bucket)
            if wait is not None:
                raise RateLimited(wait)
            pending = None
        else:
            pending = self._authorize(auth)
        service, path, query = route
        if pending is not None:  # the user's token version must be read: the only await before routing
            return self._route_after(pending, service, method, path, query, forward, request.body, key)
        return self._listener.router.begin(service, method, path, query=query, headers=forward, body=request.body,
                                           key=key)

    async def _route_after(self, pending: Coroutine[None, None, None], service: str, method: str, path: str,
                           query: str, headers: tuple[tuple[bytes, bytes], ...], body: bytes, key: str | None
                           ) -> Upstream:
        await pending
        return await self._listener.router.send(service, method, path, query=query, headers=headers, body=body,
                                                key=key)

    def _authorize(self, auth: bytes | None) -> Coroutine[None, None, None] | None:
        """As the API's `/proxy` route: the caller's bucket spent first (its user's, else its address'), then an
        operator token required. Decided here when the token's user is cached (raises, or None: allowed); else the
        coroutine that reads it and decides."""
        claims: Claims | None = None
        error: ApiError | None = None
        if auth is not None:
            scheme, _, raw = auth.partition(b" ")
            token = raw.strip()
            if token and scheme.lower() == b"bearer":
                gate = self._listener.gate
                try:
                    claims = gate.verify(token.decode("latin-1"))
                    if not gate.known_current(claims, auth, "user:" + claims.username):
                        return self._authorize_read(claims)
                except ApiError as exc:  # 401
                    claims, error = None, exc
        self._admit(claims, error)
        return None

    async def _authorize_read(self, claims: Claims) -> None:
        current: Claims | None = claims
        error: ApiError | None = None
        try:
            await self._listener.gate.current(claims)
        except ApiError as exc:  # 401, or 503 when the database cannot tell
            current, error = None, exc
        self._admit(current, error)

    def _admit(self, claims: Claims | None, error: ApiError | None) -> None:
        wait = self._listener.limiter.hit("user:" + claims.username if claims is not None else "addr:" + self._peer)
        if wait is not None:
            raise RateLimited(wait)
        if claims is None:
            raise error or Unauthorized("a bearer token is required (POST /api/auth/token)")
        if claims.role < Role.OPERATOR:
            raise Forbidden(f"the {Role.OPERATOR.label} role is required; this token is {claims.role.label}")

    # -- housekeeping -----------------------------------------------------------------------------

    def sweep(self, now: float, timeout: float) -> None:
        """Close the connection when idle, or reading one request, for longer than timeout (never while answering)."""
        if self._busy or self._transport is None or self._lingering is not None:
            return
        since = self._started or self._last_active
        if now - since > timeout:
            if self._started:
                self.abort()  # a request half sent: nothing to flush
            else:
                self._close()

    def close_when_idle(self) -> None:
        """Close now when nothing is being answered; else after the answer in progress (it says Connection: close)."""
        if not self._busy and self._lingering is None:
            self._close()

    def _close(self) -> None:
        self._done = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is unsent."""
        self._done = True
        if self._transport is not None:
            self._transport.abort()


def _answer_head(raw_headers: Iterable[tuple[bytes, bytes]], instance_url: str, attempts: int) -> bytes:
    """The upstream's header lines that cross the hop (forwardable_raw's rules, in one pass), then ours."""
    lines = []
    named: set[bytes] | None = None
    for name, value in raw_headers:
        low = name.lower()
        if low in HOP_BY_HOP_BYTES:
            if low == b"connection" and value != b"keep-alive":  # keep-alive (the usual) names nothing to drop
                named = (named or set()) | {v.strip().lower() for v in value.split(b",")}
            continue
        lines.append(b"%s: %s\r\n" % (name, value))
    if named and named - HOP_BY_HOP_BYTES:  # it names more to drop (`Connection: keep-alive` does not): rare
        lines = [b"%s: %s\r\n" % pair for pair in forwardable_raw(raw_headers)]
    lines.append(b"X-Upstream-Instance: %s\r\nX-Upstream-Attempts: %d\r\n" % (
        instance_url.encode("latin-1", "replace"), attempts))
    return b"".join(lines)


def _route(url: bytes) -> tuple[str, str, str]:
    """The service, path under it and query a request target names (_HttpError 404 when it names none)."""
    if not url.startswith(b"/"):
        path = httptools.parse_url(url).path or b"/"  # absolute-form: its path only; the query is below
        query = httptools.parse_url(url).query or b""
    else:
        path, _, query = url.partition(b"?")
    if not path.startswith(_PREFIX):
        raise _HttpError(404, _NOT_FOUND)
    service, sep, rest = path[7:].partition(b"/")
    if not service or not sep or not rest or rest.startswith(b"/"):
        raise _HttpError(404, _NOT_FOUND)
    return _unquote(service), _unquote(rest), query.decode("utf-8", "surrogateescape")


def _unquote(raw: bytes) -> str:
    """A percent-decoded path segment (as the API's router decodes one: UTF-8, undecodable bytes replaced)."""
    if b"%" not in raw:
        return raw.decode("utf-8", "replace")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(raw).decode("utf-8", "replace")
