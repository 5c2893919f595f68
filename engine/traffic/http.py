"""The one factory for outbound HTTP clients (timeouts, pool limits, transport, no proxies from the env, the SSRF
guard at every connection), and a bounded read of an answer's body."""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from engine.security.ssrf import AddressRefused, GuardedConnector, Policy

__all__ = ["BodyTooLarge", "failure_text", "make_async_client", "read_capped"]


class BodyTooLarge(ValueError):
    """An answer's body is larger than the reader accepts (the rest was not read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


def make_async_client(
    timeout: float, policy: Policy, max_connections: int = 100, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An AsyncClient for checks and scrapes, on aiohttp's transport unless one is given (tests).

    httpx's own async pool serialises concurrent requests on a lock, so under concurrency a check's
    latency would mostly be our client's, not the instance's; aiohttp's transport underneath does not.
    Its connector dials only addresses the policy allows, checked at each connection (a refused one is an
    httpx.ConnectError whose text ends `[refused: <reason>]`).
    trust_env=False: registered instances are addressed directly, never through a proxy
    that happens to be set in the environment. Redirects are not followed: a 3xx from a
    health path is an answer, not an invitation to another host.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    def session() -> aiohttp.ClientSession:
        connector = GuardedConnector(policy, limit=max_connections, keepalive_timeout=limits.keepalive_expiry)
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=limits,
        trust_env=False,
        follow_redirects=False,
        transport=transport or AiohttpTransport(trust_env=False, limits=limits, client=session),
    )


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The (decoded) body of a streamed response, at most `limit` bytes; BodyTooLarge past it (the rest is not
    read)."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit and "content-encoding" not in response.headers:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


def failure_text(exc: BaseException, timeout: float) -> str:
    """What a failed request says: the guard's refusal (`refused: <reason>`), a timeout, or the error.

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, so the aiohttp error underneath,
    when there is one, says what happened."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        if isinstance(cause.os_error, AddressRefused):
            return str(cause.os_error.strerror)
        return f"ConnectError: {cause}"[:300]
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout after {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"[:300]
