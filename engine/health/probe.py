"""The health package's requests on the engine's HTTP client (engine.traffic.wire): the checks' fetch and what a
failed request says.

`Fetch` is what the checker calls: (url, timeout s) -> status code, raising TimeoutError or FetchError (whose text
is the check's failure text). `check_fetch(client)` is the production one: a GET of the health path on the wire
client (kept-alive connections per instance, every new connection's address checked by the SSRF policy), reading
at most `CHECK_BODY_BYTES` of the body (a longer one is cut there and its connection closed, the rest never read).
`failure_text` maps the client's exceptions to the texts checks and scrapes record: `refused: <reason>` (the SSRF
policy), `timeout after N s`, `ConnectError: …` (no connection, or it closed before the answer) and
`bad HTTP answer: …`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.security.ssrf import AddressRefused
from engine.traffic.wire import HttpClient, Prepared, ProtocolError, ResponseTooLarge, prepare

__all__ = ["CHECK_BODY_BYTES", "Fetch", "FetchError", "check_fetch", "failure_text", "prepared_get"]

Fetch = Callable[[str, float], Awaitable[int]]
# a check is judged on its status and latency: this much of the body is read, the rest never is
CHECK_BODY_BYTES = 64 * 1024
_HEADERS = (("User-Agent", "microservice-monitor"), ("Accept", "*/*"))
_MAX_PREPARED = 65536


class FetchError(Exception):
    """A check that got no answer; str() is its failure text."""


def failure_text(exc: BaseException, timeout: float) -> str:
    """What a failed request on the wire client says (TimeoutError is an OSError: it is tested first)."""
    if isinstance(exc, TimeoutError):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, AddressRefused):
        return str(exc.strerror)
    if isinstance(exc, ProtocolError):
        return f"bad HTTP answer: {exc}"[:300]
    if isinstance(exc, ResponseTooLarge):
        return str(exc)
    if isinstance(exc, OSError):
        return f"ConnectError: {exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def prepared_get(url: str, cache: dict[str, Prepared]) -> Prepared:
    """The GET of url with the health package's headers, kept in cache (cleared when it grows past 65,536 URLs);
    FetchError for a URL that cannot be sent."""
    prepared = cache.get(url)
    if prepared is None:
        try:
            prepared = prepare("GET", url, _HEADERS)
        except ValueError as exc:
            raise FetchError(f"unsupported URL: {exc}"[:300]) from exc
        if len(cache) >= _MAX_PREPARED:
            cache.clear()
        cache[url] = prepared
    return prepared


def check_fetch(client: HttpClient, body_limit: int = CHECK_BODY_BYTES) -> Fetch:
    """The checks' Fetch on a wire client: the status of a GET (its body read up to body_limit bytes)."""
    cache: dict[str, Prepared] = {}
    request = client.request

    async def get(url: str, timeout: float) -> int:
        prepared = cache.get(url) or prepared_get(url, cache)
        try:
            response = await request("GET", prepared, timeout=timeout, max_body=body_limit, truncate=True)
        except TimeoutError:
            raise
        except OSError as exc:
            raise FetchError(failure_text(exc, timeout)) from exc
        return response.status

    return get
