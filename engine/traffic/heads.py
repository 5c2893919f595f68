"""Answer heads known by their bytes: what httptools read in a head, kept so that an answer whose head is byte for
byte one parsed before is read without the parser (engine.traffic.wire).

Only a head whose answer is a final status with a body of Content-Length bytes qualifies (`scan_head`); the parser
has read it once, so a head equal to it is what the parser would read again.
"""

from __future__ import annotations

from typing import NamedTuple

import httptools

__all__ = ["HEADS_KEPT", "HEAD_KEPT_BYTES", "KnownHead", "scan_head"]

HEADS_KEPT = 256  # heads remembered per client (a server's heads differ by little more than their Date)
HEAD_KEPT_BYTES = 4096  # a longer head is parsed every time


class KnownHead(NamedTuple):
    """An answer head httptools parsed whose answer is read from one buffer when it comes again: a final status
    with a body of Content-Length bytes (not chunked, not 1xx, 204 or 304)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    length: int
    keep_alive: bool


class _HeadScan:
    """httptools' reading of one answer head alone (its callbacks record what it found)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.heads = 0
        self.body = False
        self.status = 0
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header pair."""
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The head ended: its status and whether the connection may stay open."""
        self.heads += 1
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        """Bytes past the head (the head ended before the buffer did)."""
        self.body = True


def scan_head(head: bytes) -> KnownHead | None:
    """The KnownHead of head (a status line, header lines and the blank line, CRLF-terminated), or None when its
    answer must go through the parser: no single Content-Length, Transfer-Encoding, a status without a body, bare
    LF line ends, or anything httptools refuses."""
    if head.count(b"\n") != head.count(b"\r\n"):
        return None  # a bare LF ends a line for httptools: the head may end before its first blank CRLF line
    scan = _HeadScan()
    try:
        scan.parser.feed_data(head)
    except httptools.HttpParserError:
        return None
    status = scan.status
    if scan.heads != 1 or scan.body or status < 200 or status in (204, 304):
        return None
    length: int | None = None
    for name, value in scan.headers:
        low = name.lower()
        if low == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif low == b"transfer-encoding":
            return None
    if length is None:
        return None
    return KnownHead(status, tuple(scan.headers), length, scan.keep_alive)
