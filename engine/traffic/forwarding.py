"""What crosses a proxy hop and what does not: the hop-by-hop header rules both proxy front ends apply."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["HOP_BY_HOP", "HOP_BY_HOP_BYTES", "KEY_HEADER", "forwardable", "forwardable_raw"]

# RFC 9110 7.6.1 hop-by-hop fields, plus what the client's connection to us alone should carry
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "authorization",
})
HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
KEY_HEADER = "X-Route-Key"  # consistent hashing uses it


def forwardable(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers minus hop-by-hop ones and those the Connection header names."""
    headers = list(headers)
    named = {v.strip().lower() for k, v in headers if k.lower() == "connection" for v in v.split(",")}
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def forwardable_raw(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """forwardable() over raw byte pairs (an upstream's answer), without decoding them."""
    out = []
    named: set[bytes] | None = None
    for name, value in headers:
        low = name.lower()
        if low in HOP_BY_HOP_BYTES:
            if low == b"connection":
                named = (named or set()) | {v.strip().lower() for v in value.split(b",")}
            continue
        out.append((name, value))
    if named:
        named -= HOP_BY_HOP_BYTES  # `Connection: keep-alive` names nothing left to drop
        if named:
            out = [(k, v) for k, v in out if k.lower() not in named]
    return out
