"""A stand-in for the checks' Fetch in unit tests of the checker: answers scripted per port (a status, or
FetchError for no answer), cut at the check's timeout as the wire client's are."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from engine.health.probe import Fetch

Answer = Callable[[int], int | Awaitable[int]]


def fetch_by_port(answer: Answer) -> Fetch:
    """A Fetch whose status is answer(port of the URL) (awaited when it is a coroutine)."""

    async def fetch(url: str, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            status = answer(urlsplit(url).port or 80)
            return await status if inspect.isawaitable(status) else status

    return fetch
