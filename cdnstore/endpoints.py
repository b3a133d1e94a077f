"""Which storage endpoints cdnstore may talk to: a guard against server registration as an SSRF tool.

Storage servers live on private and loopback addresses, so those stay allowed. Refused: link-local
addresses (169.254.0.0/16, fe80::/10, where most cloud metadata services answer), the metadata addresses
that live elsewhere (AWS's IPv6 fd00:ec2::254, Google's IPv6 fd20:ce::254, Alibaba's 100.100.100.200,
Oracle's 192.0.0.192), the IPv4-mapped and NAT64 forms of those, and URLs with user info. The literal
host and every address its name resolves to are checked when a server is added or moved
(`check_endpoint`), and again on every connection by the S3 clients' resolver (`GuardedResolver`), so a
name that later resolves to a metadata address (DNS rebinding) gets no connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from .errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: 169.254.169.254 is the metadata service of most clouds
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS's IPv6 metadata address
        "fd20:ce::254/128",  # Google Cloud's IPv6 metadata address
        "100.100.100.200/32",  # Alibaba Cloud's metadata service (in the shared 100.64.0.0/10, otherwise allowed)
        "192.0.0.192/32",  # Oracle Cloud's older metadata address
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: an IPv4 address in disguise


class EndpointNotAllowed(OSError):
    """A connection to an address cdnstore refuses to reach (raised by the resolver; an OSError, so
    aiohttp and botocore report it as a connection failure: the server is unreachable)."""


def refused(address: Address) -> bool:
    """Is this address one cdnstore never connects to (in any of its spellings)?"""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refused(embedded)
    return any(address in network for network in REFUSED_NETWORKS)


def _not_allowed(detail: str) -> Invalid:
    return Invalid("endpoint_url", detail, code="endpoint_not_allowed")


async def check_endpoint(url: str) -> None:
    """Invalid(`endpoint_not_allowed`) for user info in the URL, or a host that is, or resolves to, a
    refused address. A name that does not resolve passes here: the S3 check then says it is unreachable."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise _not_allowed(
            "must not carry user info (user:password@); give the credentials as access_key and secret_key"
        )
    host = parts.hostname or ""
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = {literal}
    else:
        addresses = await _resolve(host, parts.port)
    for address in addresses:
        if refused(address):
            where = "is" if literal is not None else f"resolves to {address}, which is"
            raise _not_allowed(
                f"the host {where} a link-local or cloud metadata address; storage servers may not live there"
            )


async def _resolve(host: str, port: int | None) -> set[Address]:
    # The loop's getaddrinfo runs in a thread: resolving never blocks the loop.
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with the refused addresses left out: every connection an S3 client opens
    goes through it, so what `check_endpoint` allowed cannot later reach a refused address."""

    def __init__(self) -> None:
        # Made on first use: aiohttp's resolver binds to the running loop, and a Storage (which holds
        # this resolver) may be built before there is one (the CLI, presigning in plain functions).
        self._inner: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()  # getaddrinfo in a thread, as check_endpoint
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if not refused(ipaddress.ip_address(r["host"].split("%", 1)[0]))]
        if not allowed:
            raise EndpointNotAllowed(f"{host} resolves only to refused (link-local or metadata) addresses")
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
