"""Where the engine may send requests (it sends load, faults and notifications: this is an SSRF guard).

Instances: their URLs must resolve inside INSTANCE_ALLOWLIST (`refusal`). Notification channels: any address but
link-local and cloud metadata ones (`channel_refusal` at save time; `ChannelResolver` and `checked_addresses` at
connect time, so a name that resolves elsewhere by then is refused too and only a checked address is dialled).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from contract.settings import parse_allowlist

__all__ = [
    "ALWAYS_REFUSED",
    "METADATA_HOSTS",
    "ChannelResolver",
    "channel_refusal",
    "checked_addresses",
    "forbidden",
    "parse_allowlist",
    "refusal",
]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# link-local (most clouds' metadata lives at 169.254.169.254), the metadata addresses outside it (AWS over IPv6,
# Alibaba, Oracle's legacy one, Azure's wire server) and the unspecified addresses: refused unless listed by CIDR
ALWAYS_REFUSED: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("192.0.0.192/32"),
    ipaddress.ip_network("168.63.129.16/32"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::/128"),
)
# names of metadata services, refused whatever they resolve to here
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal"})
Resolver = Callable[[str], list[IP]]


def resolve(host: str) -> list[IP]:
    """Every address the host name resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def forbidden(ip: IP) -> bool:
    """Whether ip is link-local, a metadata address or unspecified (an IPv4-mapped IPv6 address counts as its IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in ALWAYS_REFUSED)


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
        if forbidden(ip) and not any(ip in net for net in networks):
            return f"{ip} is a link-local or metadata address"
    if "*" in allowlist or host in allowlist:
        return None
    outside = [ip for ip in addresses if not any(ip in net for net in networks)]
    if outside:
        return f"{outside[0]} is not in INSTANCE_ALLOWLIST"
    return None


def channel_refusal(host: str, resolver: Resolver = resolve) -> str | None:
    """Why a notification channel may not use host, or None: link-local and metadata addresses are refused;
    loopback and private ones are allowed (receivers are often internal). A name that does not resolve now is
    allowed: it is resolved and checked again at every connection."""
    host = host.lower().strip("[]").rstrip(".")
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        addresses = resolver(host)
    except (OSError, UnicodeError):
        return None
    for ip in addresses:
        if forbidden(ip):
            return f"{ip} is a link-local or metadata address"
    return None


async def checked_addresses(host: str, port: int) -> list[IP]:
    """host's addresses resolved now, each checked (OSError naming the first refused one, or when none resolve):
    dial these and nothing else."""
    host = host.lower().strip("[]").rstrip(".")
    if host in METADATA_HOSTS:
        raise OSError(f"{host} is a cloud metadata host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
    if not addresses:
        raise OSError(f"host {host!r} does not resolve")
    for ip in addresses:
        if forbidden(ip):
            raise OSError(f"{ip} is a link-local or metadata address")
    return addresses


class ChannelResolver(ThreadedResolver):
    """aiohttp's resolver, refusing a name any of whose addresses is link-local or metadata: the connector dials
    only what this returns. (aiohttp does not resolve an IP literal: the caller checks those with `forbidden`.)"""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        """The checked addresses of host; OSError naming a refused one."""
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise OSError(f"{host} is a cloud metadata host")
        results = await super().resolve(host, port, family)
        for result in results:
            if forbidden(ipaddress.ip_address(result["host"].split("%")[0])):
                raise OSError(f"{result['host']} is a link-local or metadata address")
        return results
