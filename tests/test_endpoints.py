"""The address policy for storage endpoints (cdnstore/endpoints.py), without any storage server."""

from __future__ import annotations

import ipaddress

import pytest

from cdnstore.endpoints import EndpointNotAllowed, GuardedResolver, refused
from cdnstore.storage import Storage


@pytest.mark.parametrize(
    ("address", "is_refused"),
    [
        ("169.254.169.254", True),
        ("169.254.0.1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("::ffff:169.254.169.254", True),
        ("64:ff9b::a9fe:a9fe", True),
        ("100.100.100.200", True),  # Alibaba's metadata service
        ("::ffff:100.100.100.200", True),
        ("64:ff9b::6464:64c8", True),  # 100.100.100.200 through NAT64
        ("192.0.0.192", True),  # Oracle's
        ("fd20:ce::254", True),  # Google's IPv6 one
        ("100.100.100.201", False),  # the rest of the shared address space (carrier-grade NAT) may hold servers
        ("100.64.0.1", False),
        ("192.0.0.191", False),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("192.168.1.2", False),
        ("::1", False),
        ("fd00::1", False),
        ("8.8.8.8", False),
    ],
)
def test_only_link_local_and_metadata_addresses_are_refused(address: str, is_refused: bool) -> None:
    assert refused(ipaddress.ip_address(address)) is is_refused


async def test_the_connect_time_resolver_refuses_names_that_resolve_to_metadata_addresses() -> None:
    resolver = GuardedResolver()
    # "2852039166" is a name to aiohttp (not an IP literal) that getaddrinfo resolves to 169.254.169.254:
    # as a name whose DNS answer changed to a metadata address would be.
    with pytest.raises(EndpointNotAllowed):
        await resolver.resolve("2852039166", 80)
    assert [r["host"] for r in await resolver.resolve("localhost", 80)]
    async with Storage() as storage:  # every S3 client (health checks too) connects through it
        assert isinstance(storage._config.connector_args["resolver"], GuardedResolver)


@pytest.mark.parametrize(
    ("address", "is_refused"),
    [
        ("127.0.0.1", True),
        ("10.0.0.5", True),
        ("172.16.3.4", True),
        ("192.168.1.2", True),
        ("100.64.0.1", True),  # shared address space (carrier-grade NAT)
        ("0.0.0.0", True),
        ("224.0.0.1", True),  # multicast
        ("::1", True),
        ("fd00::1", True),
        ("::ffff:10.0.0.5", True),
        ("64:ff9b::a00:5", True),  # 10.0.0.5 through NAT64
        ("169.254.169.254", True),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_without_private_addresses_only_global_ones_are_allowed(address: str, is_refused: bool) -> None:
    assert refused(ipaddress.ip_address(address), private_allowed=False) is is_refused


async def test_the_webhooks_resolver_refuses_names_that_resolve_to_loopback_or_private_addresses() -> None:
    resolver = GuardedResolver(private_allowed=False)
    try:
        for name in ("localhost", "2130706433"):  # (2130706433: a name that getaddrinfo resolves to 127.0.0.1)
            with pytest.raises(EndpointNotAllowed, match="non-public"):
                await resolver.resolve(name, 80)
    finally:
        await resolver.close()
