"""Where the engine's work runs: the asyncio loop on its own thread, and the WSGI server of the REST API.

The REST API is served by waitress: one thread reads every connection without blocking and hands a request to a
worker thread only once it has arrived whole, so a client that sends slowly or not at all costs a connection, never
a worker; idle connections are closed, and headers and bodies past their limits are refused (431, 413) before the
app sees them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from contract.errors import Unavailable
from contract.responses import ErrorOut

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from waitress.parser import HTTPRequestParser
    from waitress.wasyncore import _SocketMap

__all__ = ["ApiLimits", "ApiServer", "EngineLoop", "new_event_loop"]

log = logging.getLogger("engine.hosting")

T = TypeVar("T")

LINGER_S = 2.0  # how long a refused client's remaining bytes are read and dropped before the close


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when use_uvloop and it is installed, else asyncio's own."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class EngineLoop:
    """One asyncio event loop on a daemon thread: the traffic plane and the scheduled jobs run on it (uvloop's
    when use_uvloop and it is installed)."""

    def __init__(self, name: str = "engine-loop", *, use_uvloop: bool = True) -> None:
        self._name = name
        self.use_uvloop = use_uvloop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the loop runs (between start() and stop())."""
        return self._loop is not None

    def start(self) -> None:
        """Create the loop and run it on its thread."""
        loop = new_event_loop(self.use_uvloop)
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


@dataclass(frozen=True)
class ApiLimits:
    """What the API server gives its clients: worker threads, open connections, idle time, request sizes."""

    threads: int = 16
    connections: int = 500
    idle_timeout_s: int = 30
    max_header_bytes: int = 65_536
    max_body_bytes: int = 65_536


class _JsonErrorTask(ErrorTask):
    """A request the server refuses before the app sees it (431, 413, 400 malformed), as the API's JSON error."""

    def execute(self) -> None:
        error = cast("HTTPRequestParser", self.request).error  # the stubs type the parser as its error
        assert error is not None  # an error task is made only for a request with one
        adj = self.channel.server.adj
        if error.code == 431:
            detail = {"field": "headers",
                      "message": f"request line and headers larger than {adj.max_request_header_size - 1} bytes"}
        elif error.code == 413:
            detail = {"field": "body", "message": f"larger than {adj.max_request_body_size - 1} bytes"}
        else:
            detail = {"message": str(error.body)}
        body = ErrorOut(error=error.reason, details=[detail]).model_dump_json(by_alias=True).encode()
        cast("_Channel", self.channel).linger = True
        self.status = f"{error.code} {error.reason}"
        self.response_headers = [("Content-Type", "application/json")]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    """A connection that, after refusing a request, lingers before it closes: it shuts its sending side and reads
    and drops what the client still sends (the rest of a huge header or body) for at most LINGER_S, so the client
    reads the refusal instead of a reset (what nginx's lingering_close does)."""

    error_task_class = _JsonErrorTask
    linger = False  # set by the error task: the client may still be sending
    _linger_until: float | None = None

    def handle_close(self) -> None:
        sock = self.socket
        if self.linger and self._linger_until is None and self.connected and sock is not None:
            try:
                sock.shutdown(socket.SHUT_WR)  # the refusal is flushed: the client sees its end
            except OSError:
                pass
            else:
                self._linger_until = time.monotonic() + LINGER_S
                self.will_close = False
                return
        super().handle_close()

    def readable(self) -> bool:
        return True if self._linger_until is not None else bool(super().readable())

    def writable(self) -> bool:
        # while lingering, only the idle sweep's will_close (through handle_write) ends it early
        return self.will_close if self._linger_until is not None else bool(super().writable())

    def handle_read(self) -> None:
        sock = self.socket
        if self._linger_until is None or sock is None:
            super().handle_read()
            return
        try:
            data = sock.recv(65_536)
        except OSError:
            data = b""
        if not data or time.monotonic() > self._linger_until:
            self.linger = False
            super().handle_close()


class _Server(TcpWSGIServer):
    channel_class = _Channel


class ApiServer:
    """The REST API on waitress (see the module docstring), its connections read on one thread, requests run on a
    pool of worker threads."""

    def __init__(self, host: str, port: int, limits: ApiLimits | None = None) -> None:
        self.host = host
        self.port = port
        self.limits = limits or ApiLimits()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sockets: _SocketMap = {}

    def _adjustments(self) -> Adjustments:
        limits = self.limits
        return Adjustments(
            host=self.host, port=self.port, ident="microservice-monitor",
            threads=limits.threads, connection_limit=limits.connections,
            channel_timeout=limits.idle_timeout_s,
            cleanup_interval=max(1, limits.idle_timeout_s // 2),  # an idle connection lives at most 1.5 timeouts
            # waitress refuses a size it reaches; ours refuse only past the limit
            max_request_header_size=limits.max_header_bytes + 1, max_request_body_size=limits.max_body_bytes + 1,
            expose_tracebacks=False,
            # X-Forwarded-* and Forwarded reach the app as sent and are trusted by nothing: the client address is
            # the socket's peer, the scheme the one spoken
            trusted_proxy=None, clear_untrusted_proxy_headers=False,
            asyncore_use_poll=True,  # select() cannot watch descriptors past 1023
        )

    def start(self, app: WSGIApplication) -> None:
        """Bind now (a taken port fails the start, not a thread later) and serve app on a daemon thread."""
        self._sockets = {}
        server = _Server(app, map=self._sockets, adj=self._adjustments())
        thread = threading.Thread(target=server.run, name="api-server", daemon=True)
        thread.start()
        self._server, self._thread = server, thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: every connection and the listening socket closed, the serving thread ended and the workers
        after the requests they run (at most timeout each); nothing when not serving."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        sockets = self._sockets  # the listener, every connection and the trigger: the loop ends once it is empty

        def close_all() -> None:  # on the serving thread, between two polls
            for dispatcher in list(sockets.values()):
                dispatcher.close()

        try:
            server.trigger.pull_trigger(close_all)  # type: ignore[attr-defined]
        except OSError:  # the wake-up pipe is closed (the loop ended on its own): close what is left from here
            log.warning("the API server's loop had ended before stop; closing its sockets from the caller")
            close_all()
        thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=max(1, round(timeout)))
