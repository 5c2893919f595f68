"""The health checks' fetch: one GET of an instance's health path, judged on its status.

`Fetch` is what the checker calls: (url, timeout s) -> status code, raising TimeoutError or FetchError (whose text
is the check's failure text). `ProbeClient` is the production one: HTTP/1.1 over asyncio protocols with httptools,
one kept-alive connection per (host, port), every new connection's address checked by the SSRF policy
(`checked_addresses`: a name is resolved and each of its addresses checked; an IP literal is checked as is). At most
`body_limit` bytes of an answer's body are read; a longer body closes the connection after that much (the rest is
never read). `httpx_fetch` adapts an httpx.AsyncClient (tests hand one in with a mock transport).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlsplit

import httptools
import httpx

from engine.security.ssrf import AddressRefused, Policy, checked_addresses
from engine.traffic.http import failure_text

__all__ = ["Fetch", "FetchError", "ProbeClient", "httpx_fetch"]

Fetch = Callable[[str, float], Awaitable[int]]
IDLE_S = 120.0  # a kept connection unused this long is closed


class FetchError(Exception):
    """A check that got no answer; str() is its failure text."""


class _Conn(asyncio.Protocol):
    """One connection to one instance; one request at a time."""

    __slots__ = ("body_read", "closed", "done", "keep", "limit", "parser", "status", "transport", "used_at", "waiter")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.status = 0
        self.body_read = 0
        self.keep = True
        self.closed = False
        self.done = False
        self.used_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of asyncio's

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.done:
            self._close()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(FetchError(f"bad HTTP answer: {exc}"[:300]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.done:
            self._finish(FetchError("ConnectError: connection closed before the answer"))
        self.transport = None  # no cycle through the transport left behind
    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body_read += len(body)
        if self.body_read >= self.limit and not self.done:
            self.keep = False  # the rest is never read: this connection cannot carry another request
            self._finish(None)

    def on_message_complete(self) -> None:
        if not self.done:
            self._finish(None)

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.status = self.body_read = 0
        self.done = False
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(request)
        return self.waiter

    def _finish(self, error: Exception | None) -> None:
        self.done = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(self.status)
            else:
                waiter.set_exception(error)
        if error is not None or not self.keep:
            self._close()

    def _close(self) -> None:
        self.keep = False
        if self.transport is not None and not self.closed:
            self.transport.close()
            self.closed = True


class ProbeClient:
    """GETs with one kept-alive connection per (host, port); used from one event loop."""

    def __init__(self, policy: Policy, body_limit: int = 64 * 1024) -> None:
        self._policy = policy
        self._limit = body_limit
        self._idle: dict[tuple[str, int], _Conn] = {}
        self._requests: dict[str, tuple[tuple[str, int], bytes]] = {}  # url -> (key, request bytes)
        self.connects = 0  # new connections made (a kept-alive one reused is not counted)
        self._swept_at = 0.0

    async def get(self, url: str, timeout: float) -> int:
        """The status of a GET of url (its body read up to the limit); TimeoutError past timeout, FetchError when
        no answer came."""
        prepared = self._requests.get(url)
        if prepared is None:
            prepared = self._prepare(url)
        key, request = prepared
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = self._idle.pop(key, None)
        reused = conn is not None and not conn.closed
        if conn is None or conn.closed:
            conn = await self._connect(key, deadline)
        try:
            status = await self._exchange(conn, request, deadline)
        except FetchError:
            if not reused or conn.body_read or conn.status:
                raise
            # the instance closed the idle connection as we reused it: once more on a new one
            conn = await self._connect(key, deadline)
            status = await self._exchange(conn, request, deadline)
        if conn.keep and not conn.closed:
            old = self._idle.pop(key, None)
            if old is not None:
                old._close()
            conn.used_at = now = loop.time()
            self._idle[key] = conn
            if now - self._swept_at >= IDLE_S:
                self._sweep(now)
        return status

    def _sweep(self, now: float) -> None:
        """Close connections idle for IDLE_S (an instance removed, or checked less often than that)."""
        self._swept_at = now
        stale = [key for key, conn in self._idle.items() if now - conn.used_at >= IDLE_S]
        for key in stale:
            self._idle.pop(key)._close()

    def _prepare(self, url: str) -> tuple[tuple[str, int], bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise FetchError(f"unsupported URL for a check: {url}"[:300])
        port = parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        request = (f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: microservice-monitor\r\n"
                   "Accept: */*\r\n\r\n").encode("latin-1")
        prepared = ((parts.hostname, port), request)
        if len(self._requests) >= 65536:
            self._requests.clear()
        self._requests[url] = prepared
        return prepared

    async def _connect(self, key: tuple[str, int], deadline: float) -> _Conn:
        loop = asyncio.get_running_loop()
        host, port = key
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await checked_addresses(host, port, self._policy)
                last: OSError | None = None
                for ip in addresses:
                    try:
                        _, conn = await loop.create_connection(lambda: _Conn(self._limit), str(ip), port)
                    except OSError as exc:
                        last = exc
                        continue
                    self.connects += 1
                    return conn
        except AddressRefused as exc:
            raise FetchError(str(exc.strerror)) from exc
        except TimeoutError:
            raise
        except OSError as exc:
            raise FetchError(f"ConnectError: {exc}"[:300]) from exc
        raise FetchError(f"ConnectError: {last}"[:300])

    async def _exchange(self, conn: _Conn, request: bytes, deadline: float) -> int:
        waiter = conn.send(request)
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        except TimeoutError:
            conn._close()
            raise
        except asyncio.CancelledError:
            conn._close()
            raise
        finally:
            timer.cancel()

    async def aclose(self) -> None:
        """Close every kept connection."""
        idle, self._idle = self._idle, {}
        for conn in idle.values():
            conn._close()


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def httpx_fetch(client: httpx.AsyncClient, body_limit: int = 64 * 1024) -> Fetch:
    """A Fetch over an httpx client (its transport does the connecting; errors become FetchError)."""

    async def get(url: str, timeout: float) -> int:
        try:
            async with asyncio.timeout(timeout):
                async with client.stream("GET", url) as response:
                    read = 0
                    async for chunk in response.aiter_bytes():
                        read += len(chunk)
                        if read >= body_limit:
                            break
                    return response.status_code
        except httpx.HTTPError as exc:
            raise FetchError(failure_text(exc, timeout)) from exc

    return get
