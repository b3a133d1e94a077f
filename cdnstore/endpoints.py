"""Which addresses cdnstore may talk to: a guard against server registration and webhooks as SSRF tools.

Storage servers live on private and loopback addresses, so those stay allowed for them. Refused always:
link-local addresses (169.254.0.0/16, fe80::/10, where most cloud metadata services answer), the metadata
addresses that live elsewhere (AWS's IPv6 fd00:ec2::254, Google's IPv6 fd20:ce::254, Alibaba's
100.100.100.200, Oracle's 192.0.0.192), the IPv4-mapped and NAT64 forms of those, and URLs with user info.
Webhook endpoints are any user's choice, so there loopback, private and other non-global addresses
(127/8, 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, multicast ...) are refused too, unless
`webhooks.allow_private` is on (`private_allowed=False` below). The literal host and every address its
name resolves to are checked when a server or webhook is added or moved (`check_endpoint`), and again on
every connection by the clients' resolver (`GuardedResolver`), so a name that later resolves to a refused
address (DNS rebinding) gets no connection.
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


def refused(address: Address, *, private_allowed: bool = True) -> bool:
    """Is this address one cdnstore never connects to (in any of its spellings)? With
    `private_allowed=False`, every address that is not global (loopback, private, shared, reserved) and
    multicast ones too."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refused(embedded, private_allowed=private_allowed)
    if any(address in network for network in REFUSED_NETWORKS):
        return True
    return not private_allowed and (not address.is_global or address.is_multicast)


def literal_address(host: str) -> Address | None:
    """The host as an IP address when it is one (aiohttp connects to those without asking the resolver)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def check_endpoint(url: str, *, field: str = "endpoint_url", private_allowed: bool = True) -> None:
    """Invalid(`endpoint_not_allowed`, naming `field`) for user info in the URL, or a host that is, or
    resolves to, a refused address. A name that does not resolve passes here: a server's S3 check then says
    it is unreachable, a webhook's deliveries fail until it resolves."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        hint = "; give the credentials as access_key and secret_key" if field == "endpoint_url" else ""
        raise Invalid(field, f"must not carry user info (user:password@){hint}", code="endpoint_not_allowed")
    host = parts.hostname or ""
    literal = literal_address(host)
    addresses = {literal} if literal is not None else await _resolve(host, parts.port)
    for address in addresses:
        if refused(address, private_allowed=private_allowed):
            where = "is" if literal is not None else f"resolves to {address}, which is"
            raise Invalid(field, f"the host {where} {_refusal(address)}", code="endpoint_not_allowed")


def _refusal(address: Address) -> str:
    """What a refused address is, in words that say which setting (if any) would allow it."""
    if refused(address):
        return "a link-local or cloud metadata address, which cdnstore never connects to"
    return "a loopback, private or otherwise non-public address (webhooks.allow_private allows those)"


async def _resolve(host: str, port: int | None) -> set[Address]:
    # The loop's getaddrinfo runs in a thread: resolving never blocks the loop.
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with the refused addresses left out: every connection an S3 client (or the
    webhook worker, with `private_allowed=webhooks.allow_private`) opens by name goes through it, so what
    `check_endpoint` allowed cannot later reach a refused address. (IP literals never reach a resolver:
    their callers check them with `refused`.)"""

    def __init__(self, *, private_allowed: bool = True) -> None:
        self.private_allowed = private_allowed
        # Made on first use: aiohttp's resolver binds to the running loop, and a Storage (which holds
        # this resolver) may be built before there is one (the CLI, presigning in plain functions).
        self._inner: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()  # getaddrinfo in a thread, as check_endpoint
        found = await self._inner.resolve(host, port, family)
        allowed = [
            r
            for r in found
            if not refused(ipaddress.ip_address(r["host"].split("%", 1)[0]), private_allowed=self.private_allowed)
        ]
        if not allowed:
            kinds = "link-local or metadata" if self.private_allowed else "non-public"
            raise EndpointNotAllowed(f"{host} resolves only to refused ({kinds}) addresses")
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
