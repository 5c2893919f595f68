"""Real notification receivers on loopback: an HTTP hook that records each request and answers a scripted status,
an SMTP server (aiosmtpd) that keeps each message, and an address that accepts a connection and never answers."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port

__all__ = ["Hook", "Mail", "SmtpServer", "hook", "silent_address", "smtp_server"]


@dataclass(frozen=True)
class Received:
    """One request as the hook received it (at: time.monotonic() when its body was read)."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    """A recording HTTP receiver; statuses are answered in turn, the last one repeated."""

    port: int
    statuses: list[int]
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        """The receiver's URL at path."""
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, request: Received) -> int:
        """Record the request; the status to answer it with."""
        with self.lock:
            self.received.append(request)
            n = len(self.received)
        return self.statuses[min(n, len(self.statuses)) - 1]

    def count(self) -> int:
        """Requests received so far."""
        with self.lock:
            return len(self.received)


def _handler(receiver: Hook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer(Received(time.monotonic(), self.path, dict(self.headers.items()), body))
            answer = b"ok" if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def hook(statuses: tuple[int, ...] = (200,)) -> Iterator[Hook]:
    """A recording HTTP receiver on a free loopback port."""
    receiver = Hook(free_port(), list(statuses))
    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-hook", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_address() -> Iterator[int]:
    """A loopback port whose listener takes connections into its backlog and never reads or answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@dataclass(frozen=True)
class Mail:
    """One message the SMTP server accepted."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class SmtpServer:
    """What the SMTP server received."""

    port: int
    mails: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message, login))
        return "250 OK"


@contextmanager
def smtp_server(user: tuple[str, str] | None = None) -> Iterator[SmtpServer]:
    """aiosmtpd on a free loopback port, without TLS; with user, AUTH is offered (over plain text, a test) and only
    that login and password pass."""
    state = SmtpServer(free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and user is not None and \
            (data.login.decode(), data.password.decode()) == user
        if isinstance(data, LoginPassword):
            state.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=ok)

    extra: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": False} if user else {}
    controller = Controller(_Handler(state), hostname="127.0.0.1", port=state.port, **extra)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()
