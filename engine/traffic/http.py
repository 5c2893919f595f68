"""The one factory for outbound HTTP clients (timeouts, pool limits, transport, no proxies from the env)."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["make_async_client"]


def make_async_client(
    timeout: float, max_connections: int = 100, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An AsyncClient for checks and scrapes, on aiohttp's transport unless one is given (tests).

    httpx's own async pool serialises concurrent requests on a lock, so under concurrency a check's
    latency would mostly be our client's, not the instance's; aiohttp's transport underneath does not.
    trust_env=False: registered instances are addressed directly, never through a proxy
    that happens to be set in the environment. Redirects are not followed: a 3xx from a
    health path is an answer, not an invitation to another host.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=limits,
        trust_env=False,
        follow_redirects=False,
        transport=transport or AiohttpTransport(trust_env=False, limits=limits),
    )
