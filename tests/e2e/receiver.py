"""A webhook receiver: a real HTTP server on a free loopback port that records every POST and answers with the
next status of a script (200 once the script is used up)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Received", "Receiver", "webhook_receiver"]


@dataclass(frozen=True)
class Received:
    """One POST as it arrived: when (monotonic), its path, headers and raw body, and the status it was answered."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class Receiver:
    """What a running receiver has seen; `script` is the statuses to answer, in order."""

    def __init__(self, port: int, script: list[int]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self._script = list(script)
        self._lock = threading.Lock()
        self.received: list[Received] = []

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Record one POST; the status to answer it with."""
        with self._lock:
            status = self._script.pop(0) if self._script else 200
            self.received.append(Received(time.monotonic(), path, headers, body, status))
            return status

    def bodies(self) -> list[bytes]:
        """The raw bodies received so far, in order."""
        with self._lock:
            return [r.body for r in self.received]


@contextmanager
def webhook_receiver(script: list[int] | None = None) -> Iterator[Receiver]:
    """A receiver on a free loopback port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = Receiver(server.server_address[1], script or [])
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.receiver.answer(self.path, dict(self.headers.items()), body)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what was received."""
