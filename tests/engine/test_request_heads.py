"""scan_request_head: which request heads are read by their bytes, and what their reading holds."""

from __future__ import annotations

import pytest

from engine.traffic.request_heads import KnownRequest, scan_request_head, split_headers

LIMITS = (65_536, 1024)
GET = b"GET /proxy/s/a?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\nX-Route-Key: k\r\nX-A: 1\r\n\r\n"


def test_a_keep_alive_get_and_a_content_length_post_are_known_with_their_headers_read():
    known = scan_request_head(GET, *LIMITS)
    assert known == KnownRequest(
        b"GET", b"/proxy/s/a?x=1",
        ((b"Host", b"h"), (b"Authorization", b"Bearer t"), (b"X-Route-Key", b"k"), (b"X-A", b"1")),
        0, False, "GET", ((b"X-Route-Key", b"k"), (b"X-A", b"1")), b"Bearer t", "k")  # Host is the hop's
    post = scan_request_head(b"POST /p HTTP/1.1\r\nContent-Length: 12\r\n\r\n", *LIMITS)
    assert post is not None and (post.method_name, post.length, post.auth, post.key) == ("POST", 12, None, None)
    old = scan_request_head(b"GET /p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", *LIMITS)
    assert old is not None and old.http10 and old.forward == ()


@pytest.mark.parametrize("head", [
    b"GET /p HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /p HTTP/1.0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
    b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    b"GET /p HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /p HTTP/1.1\nHost: h\r\n\r\n",
    b"GET /p HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /p HTTP/1.1\r\n\r\nGET /q HTTP/1.1\r\n\r\n",
    b"\r\n\r\n",
    b"GET /p HTTP/1.1\r\nX-Big: " + b"y" * 70_000 + b"\r\n\r\n",
], ids=["close", "http10", "chunked", "two-lengths", "body-past-limit", "expect", "upgrade", "bare-lf", "garbage",
        "two-heads", "blank", "head-past-limit"])
def test_heads_that_must_go_through_the_parser_are_not_known(head):
    assert scan_request_head(head, *LIMITS) is None


def test_split_headers_drops_hop_by_hop_and_what_connection_names():
    headers = [(b"Connection", b"keep-alive, X-Drop"), (b"X-Drop", b"1"), (b"Keep-Alive", b"t=5"), (b"X-Keep", b"2"),
               (b"authorization", b"Bearer a"), (b"Authorization", b"Bearer b")]
    assert split_headers(headers) == (((b"X-Keep", b"2"),), b"Bearer a", None)
