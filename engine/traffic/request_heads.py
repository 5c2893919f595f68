"""Request heads known by their bytes: what httptools read in a client's request head, kept so that a request whose
head is byte for byte one parsed before is read without the parser (engine.traffic.listener).

Only a head that keeps the connection open, with no body or a body of Content-Length bytes, qualifies
(`scan_request_head`); the parser has read it once alone, so a head equal to it, at a request boundary, is what the
parser would read again. What comes with each request (its body, the peer it came from) is never part of the
head's record; its Authorization value is, as bytes of the head, and is checked per request all the same.
"""

from __future__ import annotations

from typing import NamedTuple

import httptools

from engine.traffic.forwarding import HOP_BY_HOP_BYTES

__all__ = ["REQUEST_HEADS_KEPT", "REQUEST_HEAD_KEPT_BYTES", "KnownRequest", "scan_request_head", "split_headers"]

REQUEST_HEADS_KEPT = 1024  # heads remembered per listener (those found unfit too, so they are scanned once)
REQUEST_HEAD_KEPT_BYTES = 4096  # a longer head is parsed every time

Header = tuple[bytes, bytes]


class KnownRequest(NamedTuple):
    """A request head httptools parsed, and what the listener derives from its headers, for a request read from one
    buffer when the head comes again."""

    method: bytes
    url: bytes
    headers: tuple[Header, ...]
    length: int  # the body's Content-Length (0: none)
    http10: bool
    method_name: str
    forward: tuple[Header, ...]
    auth: bytes | None
    key: str | None


def split_headers(headers: tuple[Header, ...] | list[Header]) -> tuple[tuple[Header, ...], bytes | None, str | None]:
    """A request's headers that go on to the upstream (as they came: hop-by-hop ones and those its Connection
    names dropped), its Authorization value and its X-Route-Key."""
    forward: list[Header] = []
    auth: bytes | None = None
    key: str | None = None
    named: set[bytes] | None = None
    for pair in headers:
        low = pair[0].lower()
        if low in HOP_BY_HOP_BYTES:
            if low == b"authorization" and auth is None:
                auth = pair[1]
            elif low == b"connection":
                named = (named or set()) | {v.strip().lower() for v in pair[1].split(b",")}
            continue
        if key is None and low == b"x-route-key":
            key = pair[1].decode("latin-1")
        forward.append(pair)
    if named:
        forward = [pair for pair in forward if pair[0].lower() not in named]
    return tuple(forward), auth, key


class _HeadScan:
    """httptools' reading of one request head alone (its callbacks record what it found)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[Header] = []
        self.heads = 0
        self.complete = 0
        self.body = False
        self.keep_alive = False

    def on_url(self, url: bytes) -> None:
        """The request target, maybe in pieces."""
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header pair."""
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The head ended: whether the connection stays open."""
        self.heads += 1
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        """Bytes past the head (the head ended before the buffer did)."""
        self.body = True

    def on_message_complete(self) -> None:
        """A request without a body ended with its head."""
        self.complete += 1


def scan_request_head(head: bytes, max_header_bytes: int, max_body_bytes: int) -> KnownRequest | None:
    """The KnownRequest of head (a request line, header lines and the blank line, CRLF-terminated, ending at its
    first blank line), or None when requests with it must go through the parser: bare LF line ends, no keep-alive,
    Transfer-Encoding, more than one Content-Length, Expect, an upgrade, a head or body past the limits, or anything
    httptools refuses."""
    if head.count(b"\n") != head.count(b"\r\n") or head.find(b"\r\n\r\n") != len(head) - 4:
        return None
    scan = _HeadScan()
    try:
        scan.parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    if scan.heads != 1 or scan.body or not scan.keep_alive or not scan.url:
        return None
    length: int | None = None
    size = len(scan.url)
    for name, value in scan.headers:
        size += len(name) + len(value) + 4
        low = name.lower()
        if low == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif low in (b"transfer-encoding", b"expect", b"upgrade"):
            return None
    length = length or 0
    if size > max_header_bytes or length > max_body_bytes or scan.complete != (0 if length else 1):
        return None
    method = scan.parser.get_method()
    headers = tuple(scan.headers)
    forward, auth, key = split_headers(headers)
    return KnownRequest(method, scan.url, headers, length, scan.parser.get_http_version() == "1.0",
                        method.decode(), forward, auth, key)
