"""The one factory for outbound HTTP clients (timeouts, pool limits, no proxies from the env)."""

from __future__ import annotations

import httpx

__all__ = ["make_async_client"]


def make_async_client(
    timeout: float, max_connections: int = 100, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An AsyncClient for checks and scrapes.

    trust_env=False: registered instances are addressed directly, never through a proxy
    that happens to be set in the environment. Redirects are not followed: a 3xx from a
    health path is an answer, not an invitation.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        trust_env=False,
        follow_redirects=False,
        transport=transport,
    )
