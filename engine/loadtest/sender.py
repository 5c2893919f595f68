"""A load test's Send through the router: the engine's share and every worker process use the same one.

Request k uses request spec k mod len(specs) (method, path with its query, headers, body) and, with a route key
pattern, carries `X-Route-Key` with `{n}` and `{n%M}` filled in from k; the key also picks the instance under
consistent hashing. Headers go out as their UTF-8 bytes, the body as its UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.errors import ApiError, NotFound
from contract.loadtest import LoadRequest, route_key_parts
from engine.loadtest.generator import Send
from engine.traffic.forwarding import KEY_HEADER
from engine.traffic.router import CircuitOpen, NoInstance, Router, UpstreamRefused, UpstreamTimeout, UpstreamTooLarge
from engine.traffic.wire import Header

__all__ = ["route_key", "router_sender"]

_Spec = tuple[str, str, str, tuple[Header, ...], bytes, str | None]  # method, path, query, headers, body, key


def route_key(pattern: str, n: int) -> str:
    """The route key of request n: `{n}` is n, `{n%M}` is n mod M."""
    return "".join(p if isinstance(p, str) else str(n if p is None else n % p) for p in route_key_parts(pattern))


def _spec(method: str, path: str, headers: dict[str, str], body: str | None) -> _Spec:
    path, _, query = path.partition("?")
    pairs = tuple((name.encode("ascii"), value.encode()) for name, value in headers.items())
    key = next((v for n, v in headers.items() if n.lower() == KEY_HEADER.lower()), None)
    return method.upper(), path, query, pairs, (body or "").encode(), key


_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (CircuitOpen, "circuit_open"), (NoInstance, "no_instance"), (UpstreamTimeout, "timeout"),
    (UpstreamRefused, "refused"), (UpstreamTooLarge, "too_large"), (NotFound, "service_gone"),
)


def _failure(exc: Exception) -> str:
    """The failure kind of a send that raised: the first class it is an instance of, else "connection"."""
    return next((kind for cls, kind in _FAILURES if isinstance(exc, cls)), "connection")


def router_sender(router: Router, service: str, method: str, path: str, *,
                  requests: Sequence[LoadRequest] = (), route_key_pattern: str | None = None) -> Send:
    """A Send that routes request k (path may end in ?query) and names the failure kind (4xx, 5xx fail)."""
    if not requests and route_key_pattern is None:
        path, _, query = path.partition("?")

        async def send_one(k: int) -> str | None:  # one request, no key: the shortest path
            try:
                upstream = await router.send(service, method, path, query=query)
            except ApiError as exc:
                return _failure(exc)
            return None if upstream.status < 400 else f"http_{upstream.status}"

        return send_one

    specs = tuple(_spec(r.method, r.path, r.headers, r.body) for r in requests) or (_spec(method, path, {}, None),)
    count = len(specs)
    parts = route_key_parts(route_key_pattern) if route_key_pattern is not None else None
    key_name = KEY_HEADER.encode("ascii")

    async def send(k: int) -> str | None:
        m, p, q, headers, body, key = specs[k % count]
        if parts is not None:
            key = "".join(x if isinstance(x, str) else str(k if x is None else k % x) for x in parts)
            headers = (*headers, (key_name, key.encode()))
        try:
            upstream = await router.send(service, m, p, query=q, headers=headers, body=body, key=key)
        except ApiError as exc:
            return _failure(exc)
        return None if upstream.status < 400 else f"http_{upstream.status}"

    return send
