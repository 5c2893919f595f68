"""Where the engine's work runs: the asyncio loop on its own thread, and the WSGI server of the REST API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from cheroot.wsgi import Server as WSGIServer

from contract.errors import Unavailable

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["ApiServer", "EngineLoop"]

T = TypeVar("T")


class EngineLoop:
    """One asyncio event loop on a daemon thread: the traffic plane and the scheduled jobs run on it."""

    def __init__(self, name: str = "engine-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the loop runs (between start() and stop())."""
        return self._loop is not None

    def start(self) -> None:
        """Create the loop and run it on its thread."""
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
        self._thread.start()
        self._loop = loop

    def run_soon(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the loop from another thread (Unavailable, a 503, when the loop is not running)."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise Unavailable("the engine's traffic loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and join its thread; nothing when it is not running."""
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        loop.close()


class ApiServer:
    """The REST API on a production WSGI server (cheroot) with its own thread pool."""

    def __init__(self, host: str, port: int, threads: int = 16) -> None:
        self.host = host
        self.port = port
        self._threads = threads
        self._server: WSGIServer | None = None

    def start(self, app: WSGIApplication) -> None:
        """Bind now (a taken port fails the start, not a thread later) and serve app on a daemon thread."""
        server = WSGIServer((self.host, self.port), app, numthreads=self._threads, server_name="microservice-monitor")
        server.prepare()
        threading.Thread(target=server.serve, name="api-server", daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Stop serving; nothing when not serving."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
