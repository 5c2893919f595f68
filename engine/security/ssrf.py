"""Where the engine may send requests (it sends load, faults and notifications: this is an SSRF guard).

One guard, two policies. Instances (checks, scrapes, the proxy, load tests): an address inside INSTANCE_ALLOWLIST
(`Policy.instances`). Alert channels: any address (`Policy.channels`). Both refuse the same link-local and cloud
metadata addresses and names (ALWAYS_REFUSED, METADATA_HOSTS; an IPv4-mapped IPv6 address counts as its IPv4) unless
INSTANCE_ALLOWLIST names that exact address (`169.254.10.20`, `169.254.10.20/32`); a wider CIDR never does.

The policy is checked when a URL is saved (`refusal`, `channel_refusal`) and again where each connection is made:
`GuardedConnector` is an aiohttp connector whose resolver (`GuardedResolver`) checks every address a name resolves
to and hands only checked ones to the dialer, and which checks an IP literal (aiohttp resolves none) itself; so a
name that resolves elsewhere by then (DNS rebinding) is refused, and only a checked address is dialled.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_exceptions import ClientConnectorError

from contract.settings import parse_allowlist

__all__ = [
    "ALWAYS_REFUSED",
    "METADATA_HOSTS",
    "AddressRefused",
    "GuardedConnector",
    "GuardedResolver",
    "Policy",
    "SocketResolver",
    "channel_refusal",
    "checked_addresses",
    "forbidden",
    "parse_allowlist",
    "refusal",
]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# link-local (most clouds' metadata lives at 169.254.169.254), the metadata addresses outside it (AWS over IPv6,
# Alibaba, Oracle's legacy one, Azure's wire server) and the unspecified addresses: refused unless listed exactly
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
# names of metadata services, refused whatever they resolve to here (unless INSTANCE_ALLOWLIST names one)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal"})
Resolver = Callable[[str], list[IP]]


class AddressRefused(OSError):
    """The guard refused a connection. An OSError (errno EACCES) because that is what aiohttp expects of a resolver:
    it turns it into a ClientConnectorError whose text ends `[refused: <reason>]`."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, f"refused: {reason}")
        self.reason = reason


def resolve(host: str) -> list[IP]:
    """Every address the host name resolves to (an IP literal resolves to itself)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _literal(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _plain(ip: IP) -> IP:
    """An IPv4-mapped IPv6 address as its IPv4, any other as is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _host(host: str) -> str:
    return host.lower().strip("[]").rstrip(".")


def forbidden(ip: IP) -> bool:
    """Whether ip is link-local, a metadata address or unspecified (an IPv4-mapped IPv6 address counts as its IPv4)."""
    ip = _plain(ip)
    return any(ip in net for net in ALWAYS_REFUSED)


@dataclass(frozen=True)
class Policy:
    """Which addresses one kind of outbound connection may reach (picklable: load-test workers get a copy).

    networks: the CIDRs an address must be in (None: any address); names: host names allowed whatever they resolve
    to; exact: link-local or metadata addresses allowed because the allowlist names exactly them.
    """

    networks: tuple[Network, ...] | None
    names: frozenset[str] = frozenset()
    exact: frozenset[IP] = frozenset()

    @classmethod
    def instances(cls, allowlist: Iterable[str]) -> Policy:
        """INSTANCE_ALLOWLIST's policy: `*`, host names, IP addresses and CIDRs."""
        entries = tuple(e.strip().lower() for e in allowlist)
        networks: list[Network] = []
        names: set[str] = set()
        for entry in entries:
            if entry == "*":
                continue
            if "/" in entry or _literal(entry) is not None:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            else:
                names.add(_host(entry))
        exact = frozenset(_plain(net.network_address) for net in networks
                          if net.prefixlen == net.max_prefixlen)
        return cls(None if "*" in entries else tuple(networks), frozenset(names), exact)

    @classmethod
    def channels(cls, allowlist: Iterable[str] = ()) -> Policy:
        """Alert channels' policy: any address but the refused ones (receivers are often internal); an exact
        address in the allowlist is allowed here too."""
        return cls(None, frozenset(), cls.instances(allowlist).exact)

    def name_refusal(self, host: str) -> str | None:
        """Why host may not be used whatever it resolves to (a cloud metadata name), or None."""
        host = _host(host)
        if host in METADATA_HOSTS and host not in self.names:
            return f"{host} is a cloud metadata host"
        return None

    def address_refusal(self, host: str, ip: IP) -> str | None:
        """Why host may not be reached at ip, or None when it may."""
        ip = _plain(ip)
        if forbidden(ip) and ip not in self.exact:
            return f"{ip} is a link-local or metadata address"
        if self.networks is None or _host(host) in self.names:
            return None
        if not any(ip in net for net in self.networks):
            return f"{ip} is not in INSTANCE_ALLOWLIST"
        return None

    def check(self, host: str, addresses: Iterable[IP]) -> None:
        """AddressRefused naming the first reason host may not be reached at one of these addresses."""
        if (reason := self.name_refusal(host)) is not None:
            raise AddressRefused(reason)
        for ip in addresses:
            if (reason := self.address_refusal(host, ip)) is not None:
                raise AddressRefused(reason)


def _first_refusal(policy: Policy, host: str, resolver: Resolver, unresolved: str | None) -> str | None:
    if (reason := policy.name_refusal(host)) is not None:
        return reason
    try:
        addresses = resolver(host)
    except (OSError, UnicodeError):
        return unresolved
    if not addresses:
        return unresolved
    # a link-local or metadata address anywhere in the answer is named before one outside the allowlist
    ordered = sorted(addresses, key=lambda ip: not forbidden(ip))
    return next((r for ip in ordered if (r := policy.address_refusal(host, ip)) is not None), None)


def refusal(url: str, allowlist: tuple[str, ...], resolver: Resolver = resolve) -> str | None:
    """Why the engine may not send requests to url, or None when it may."""
    host = _host(urlsplit(url).hostname or "")
    return _first_refusal(Policy.instances(allowlist), host, resolver, f"host {host!r} does not resolve")


def channel_refusal(host: str, resolver: Resolver = resolve, policy: Policy | None = None) -> str | None:
    """Why a notification channel may not use host, or None: link-local and metadata addresses are refused;
    loopback and private ones are allowed (receivers are often internal). A name that does not resolve now is
    allowed: it is resolved and checked again at every connection."""
    return _first_refusal(policy or Policy.channels(), _host(host), resolver, None)


async def checked_addresses(host: str, port: int, policy: Policy) -> list[IP]:
    """host's addresses resolved now, each checked (AddressRefused naming the first refused one; OSError when none
    resolve): dial these and nothing else."""
    host = _host(host)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        policy.check(host, ())
        infos = await _getaddrinfo(host, port)
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
    if not addresses:
        raise OSError(f"host {host!r} does not resolve")
    policy.check(host, addresses)
    return addresses


async def _getaddrinfo(host: str, port: int, family: int = 0) -> list[Any]:
    """socket.getaddrinfo in a thread, as asyncio's own loop does it on any loop (uvloop's would bypass the
    socket module)."""
    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(socket.getaddrinfo, host, port, family, socket.SOCK_STREAM))


class SocketResolver(AbstractResolver):
    """aiohttp's resolver over socket.getaddrinfo in a thread, whatever the event loop."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        """Every IPv4 / IPv6 address of host."""
        infos = await _getaddrinfo(host, port, family)
        return [ResolveResult(hostname=host, host=str(address[0]), port=int(address[1]), family=fam, proto=proto,
                              flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
                for fam, _, proto, _, address in infos if fam in (socket.AF_INET, socket.AF_INET6)]

    async def close(self) -> None:
        """Nothing to close."""


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver under a policy: a name any of whose addresses the policy refuses is refused whole
    (AddressRefused); otherwise its addresses, which are all the connector dials (and all its DNS cache holds)."""

    def __init__(self, policy: Policy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or SocketResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        """The checked addresses of host."""
        self.policy.check(host, ())
        results = await self._inner.resolve(host, port, family)
        self.policy.check(host, (ipaddress.ip_address(r["host"].split("%")[0]) for r in results))
        return results

    async def close(self) -> None:
        """Close the resolver underneath."""
        await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector on a GuardedResolver that checks IP literals too (aiohttp dials those without resolving):
    a refused one fails the request as a refused name does, with a ClientConnectorError."""

    def __init__(self, policy: Policy, resolver: AbstractResolver | None = None, **kwargs: Any) -> None:
        super().__init__(resolver=GuardedResolver(policy, resolver), **kwargs)
        self.policy = policy
        self._literals: dict[str, str | None] = {}  # host -> why refused (None: allowed or not a literal)

    async def connect(self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
                      ) -> aiohttp.connector.Connection:
        """Check an IP literal host, then connect as aiohttp does (a pooled connection or a new one)."""
        host = req.host
        if host in self._literals:
            reason = self._literals[host]
        else:
            literal = _literal(host)
            reason = None if literal is None else (
                self.policy.name_refusal(host) or self.policy.address_refusal(host, literal))
            if len(self._literals) >= 4096:
                self._literals.clear()
            self._literals[host] = reason
        if reason is not None:
            raise ClientConnectorError(req.connection_key, AddressRefused(reason))
        return await super().connect(req, traces, timeout)
