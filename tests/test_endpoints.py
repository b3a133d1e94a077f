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
