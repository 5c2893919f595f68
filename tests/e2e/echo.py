"""An echo backend: a real HTTP/1.1 server on a free loopback port that records each request and answers with it.

Every request except GET of the health path is recorded as a `Seen` (method, raw path, raw query, headers in
the order received, raw body) and answered with JSON describing it. A request header `X-Echo-Status: <code>` picks
the answer's status, `X-Echo-Delay-Ms: <ms>` delays it; `fail_status`, when set, answers every recorded request
with that status instead.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ANSWER_HEADERS", "EchoServer", "Seen", "echo_servers"]

# headers every recorded answer carries: one ordinary, one hop-by-hop the proxy must not pass back
ANSWER_HEADERS = {"X-Echo-Answer": "yes", "Proxy-Authenticate": 'Basic realm="echo"'}


@dataclass(frozen=True)
class Seen:
    """One request as the echo server received it."""

    instance: str
    method: str
    path: str
    query: bytes
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of the header, case-insensitively, in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def header_names(self) -> set[str]:
        """Lower-cased names of the headers received."""
        return {k.lower() for k, _ in self.headers}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the router's pool expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        echo = self.server.echo
        path, _, query = self.path.partition("?")
        body = self._body()
        if self.command == "GET" and path == echo.health_path:
            self._answer(200, b'{"status": "UP"}', {"Content-Type": "application/json"})
            return
        seen = Seen(echo.name, self.command, path, query.encode("latin-1"), tuple(self.headers.items()), body)
        echo.record(seen)
        if seen.header("X-Echo-Delay-Ms"):
            time.sleep(float(seen.header("X-Echo-Delay-Ms")[0]) / 1000)
        status = echo.fail_status or int(seen.header("X-Echo-Status")[0] if seen.header("X-Echo-Status") else 200)
        answer = json.dumps({
            "instance": seen.instance, "method": seen.method, "path": seen.path, "query": query,
            "headers": [list(h) for h in seen.headers], "body": base64.b64encode(body).decode(),
        }).encode()
        self._answer(status, answer, {"Content-Type": "application/json", **ANSWER_HEADERS})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    echo: EchoServer


class EchoServer:
    """A recording HTTP server on 127.0.0.1 and a port the OS picked."""

    def __init__(self, name: str, health_path: str = "/health") -> None:
        self.name = name
        self.health_path = health_path
        self.fail_status: int | None = None
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.echo = self
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"echo-{name}", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to register as an instance."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, seen: Seen) -> None:
        """Keep one received request."""
        with self._lock:
            self._seen.append(seen)

    @property
    def seen(self) -> list[Seen]:
        """The requests received so far (health checks excluded), oldest first."""
        with self._lock:
            return list(self._seen)

    def start(self) -> EchoServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def echo_servers(*names: str) -> Iterator[list[EchoServer]]:
    """Started echo servers, one per name, stopped on exit."""
    servers = [EchoServer(name).start() for name in names]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
