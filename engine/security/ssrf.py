"""Which instance URLs the engine may send requests to (it sends load and faults: this is an SSRF guard)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from contract.settings import parse_allowlist

__all__ = ["ALWAYS_REFUSED", "parse_allowlist", "refusal"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# link-local (cloud metadata lives here) and the AWS IPv6 metadata address: refused unless listed by CIDR
ALWAYS_REFUSED: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::/128"),
)
Resolver = Callable[[str], list[IP]]


def resolve(host: str) -> list[IP]:
    """Every address the host name resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def refusal(url: str, allowlist: tuple[str, ...], resolver: Resolver = resolve) -> str | None:
    """Why the engine may not send requests to url, or None when it may."""
    host = (urlsplit(url).hostname or "").lower()
    try:
        addresses = resolver(host)
    except (OSError, UnicodeError):
        return f"host {host!r} does not resolve"
    if not addresses:
        return f"host {host!r} does not resolve"
    networks = [ipaddress.ip_network(e, strict=False) for e in allowlist if "/" in e]
    for ip in addresses:
        if any(ip in net for net in ALWAYS_REFUSED) and not any(ip in net for net in networks):
            return f"{ip} is a link-local or metadata address"
    if "*" in allowlist or host in allowlist:
        return None
    outside = [ip for ip in addresses if not any(ip in net for net in networks)]
    if outside:
        return f"{outside[0]} is not in INSTANCE_ALLOWLIST"
    return None
