"""A real HTTP upstream on a loopback address that counts what reaches it: `/metrics`, `/padded/<bytes>` (a metrics
page padded to that size), `/big/<bytes>` (a body with a Content-Length), `/endless` (a chunked body that ends only at
ENDLESS_CAP or when the reader goes) and `{"ok": true}` on any other path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["Upstream", "upstream"]

METRICS = b"process_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 1048576\n"
CHUNK = b"x" * 65_536
ENDLESS_CAP = 256 * 1024 * 1024  # an "endless" body still ends here, so no test can loop for ever


@dataclass
class Upstream:
    """What the server saw: requests by path, and bytes of body it managed to send."""

    host: str
    port: int
    paths: list[str] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{self.host}:{self.port}"

    def count(self) -> int:
        """Requests received so far."""
        with self.lock:
            return len(self.paths)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        with state.lock:
            state.paths.append(parts.path)
        head, _, size = parts.path.rpartition("/")
        if head == "/padded":  # a metrics page padded with comments to about `size` bytes
            self._fixed(b"# padding\n" * (int(size) // 10) + METRICS)
        elif head == "/big":
            self._fixed(b"x" * int(size))
        elif parts.path == "/metrics":
            self._fixed(METRICS, "text/plain; version=0.0.4")
        elif parts.path == "/endless":
            self._endless()
        else:
            self._fixed(b'{"ok": true}', "application/json")

    def _fixed(self, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        while sent < ENDLESS_CAP and self._write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)):
            sent += len(CHUNK)
        self._write(b"0\r\n\r\n")
        self.close_connection = True

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
        except OSError:  # the client stopped reading and closed: what we have sent is counted
            self.close_connection = True
            return False
        with self.server.state.lock:
            self.server.state.sent += len(data)
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, state: Upstream) -> None:
        self.state = state
        super().__init__((host, state.port), _Handler)


@contextmanager
def upstream(host: str, port: int) -> Iterator[Upstream]:
    """The server on host:port (a loopback address) until the block ends."""
    state = Upstream(host, port)
    server = _Server(host, state)
    thread = threading.Thread(target=server.serve_forever, name=f"upstream-{host}", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
