"""One guard for instance and alert-channel URLs: the same metadata and link-local addresses and names refused on
both paths, at save time and at connect time, unless INSTANCE_ALLOWLIST names that exact address (a CIDR around it
never does). Pure: the resolver is injected, nothing is dialled."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from engine.security.ssrf import AddressRefused, GuardedConnector, GuardedResolver, Policy, channel_refusal, refusal

# host -> what it resolves to (names of metadata services resolve to loopback here: only their name refuses them)
TABLE = {
    "::ffff:169.254.169.254": ["::ffff:169.254.169.254"], "100.100.100.200": ["100.100.100.200"],
    "168.63.129.16": ["168.63.129.16"], "fd00:ec2::254": ["fd00:ec2::254"],
    "metadata.google.internal": ["127.0.0.1"], "rebound.example": ["127.0.0.1", "::ffff:168.63.129.16"],
}
REFUSED = [
    ("::ffff:169.254.169.254", "169.254.169.254 is a link-local or metadata address"),
    ("100.100.100.200", "100.100.100.200 is a link-local or metadata address"),
    ("168.63.129.16", "168.63.129.16 is a link-local or metadata address"),
    ("fd00:ec2::254", "fd00:ec2::254 is a link-local or metadata address"),
    ("metadata.google.internal", "metadata.google.internal is a cloud metadata host"),
    ("rebound.example", "168.63.129.16 is a link-local or metadata address"),
]
IDS = ["v4-mapped-aws", "alibaba", "azure", "aws-v6", "gcp-name", "mapped-in-an-answer"]
# every address in the table inside a CIDR: none of them may let a metadata address through
WIDE = ("127.0.0.0/8", "::/0", "0.0.0.0/0", "169.254.0.0/16")


def dns(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if host not in TABLE:
        raise OSError("unknown host")
    return [ipaddress.ip_address(a) for a in TABLE[host]]


class TableResolver(AbstractResolver):
    """aiohttp's resolver interface over TABLE."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return [{"hostname": host, "host": str(ip), "port": port, "family": socket.AF_INET6 if ip.version == 6
                 else socket.AF_INET, "proto": 0, "flags": 0} for ip in dns(host)]

    async def close(self) -> None:
        pass


def host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@pytest.mark.parametrize(("host", "reason"), REFUSED, ids=IDS)
def test_instance_urls_refuse_them_even_inside_a_listed_cidr(host, reason):
    assert refusal(f"http://{host_in_url(host)}:80/", ("*",), dns) == reason
    assert refusal(f"http://{host_in_url(host)}:80/", WIDE, dns) == reason


@pytest.mark.parametrize(("host", "reason"), REFUSED, ids=IDS)
def test_channel_hosts_refuse_them(host, reason):
    assert channel_refusal(host, dns) == reason
    assert channel_refusal(host, dns, Policy.channels(WIDE)) == reason


@pytest.mark.parametrize(("host", "reason"), REFUSED, ids=IDS)
def test_the_connect_time_resolver_refuses_them_on_both_policies(host, reason):
    for policy in (Policy.instances(("*",)), Policy.instances(WIDE), Policy.channels(), Policy.channels(WIDE)):
        with pytest.raises(AddressRefused) as refused:
            asyncio.run(GuardedResolver(policy, TableResolver()).resolve(host, 80))
        assert refused.value.reason == reason


@pytest.mark.parametrize("literal", ["::ffff:169.254.169.254", "100.100.100.200", "168.63.129.16", "fd00:ec2::254"])
def test_an_ip_literal_is_refused_before_any_connection(literal):
    async def attempt(policy: Policy) -> aiohttp.ClientConnectorError:
        async with aiohttp.ClientSession(connector=GuardedConnector(policy, TableResolver())) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as failed:
                await session.get(f"http://{host_in_url(literal)}:9/")
            return failed.value

    for policy in (Policy.instances(("*",)), Policy.instances(WIDE), Policy.channels(WIDE)):
        error = asyncio.run(attempt(policy))
        assert isinstance(error.os_error, AddressRefused)
        assert str(error).endswith("is a link-local or metadata address]")


@pytest.mark.parametrize(("host", "exact"), [
    ("::ffff:169.254.169.254", "169.254.169.254"),
    ("100.100.100.200", "100.100.100.200/32"),
    ("168.63.129.16", "168.63.129.16"),
    ("fd00:ec2::254", "fd00:ec2::254/128"),
], ids=["v4-mapped-aws", "alibaba", "azure", "aws-v6"])
def test_an_exact_address_in_the_allowlist_lets_that_address_through_on_both_paths(host, exact):
    assert refusal(f"http://{host_in_url(host)}/", ("*", exact), dns) is None
    assert channel_refusal(host, dns, Policy.channels((exact,))) is None
    assert asyncio.run(GuardedResolver(Policy.instances(("*", exact)), TableResolver()).resolve(host, 80))
    # the exact address only: its neighbour stays refused
    neighbour = str(ipaddress.ip_address(exact.split("/")[0]) + 1)
    assert refusal(f"http://{host_in_url(neighbour)}/", ("*", exact), dns) is not None


def test_an_instance_address_outside_the_allowlist_is_refused_at_connect_time():
    policy = Policy.instances(("127.0.0.1/32",))
    with pytest.raises(AddressRefused, match=r"refused: 127\.0\.0\.2 is not in INSTANCE_ALLOWLIST"):
        policy.check("rebound.example", [ipaddress.ip_address("127.0.0.2")])
    policy.check("rebound.example", [ipaddress.ip_address("127.0.0.1")])
    Policy.channels().check("rebound.example", [ipaddress.ip_address("10.0.0.1")])  # channels: any other address
