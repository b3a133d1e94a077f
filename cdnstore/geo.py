"""Where is a client, and which server is nearest to it.

Pure functions plus one small class (`GeoLocator`) around a local MaxMind GeoLite2/GeoIP2 City
database. Nothing here touches the network, and nothing is loaded at import time: the database is
opened once, when a `GeoLocator` is built, and repeat lookups are served from a bounded cache.

Typical use on the request path::

    ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), trusted)
    where = locator.locate(ip)
    server = nearest([s for s in servers if s.takes_uploads], where)
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, Self, TypeVar, cast, overload

import geoip2.database
import geoip2.errors
import maxminddb

from .records import fast_init

__all__ = [
    "DATABASE_FILE",
    "EARTH_RADIUS_KM",
    "OUTDATED_AFTER",
    "GeoDatabaseError",
    "GeoLocator",
    "IPAddress",
    "IPNetwork",
    "Located",
    "Point",
    "client_ip",
    "default_database_path",
    "great_circle_km",
    "nearest",
    "parse_networks",
    "rank",
]

EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius
DATABASE_FILE = "GeoLite2-City.mmdb"
_GEOLITE2_PACKAGE = "_maxminddb_geolite2"  # the import name of the maxminddb-geolite2 distribution

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class GeoDatabaseError(ValueError):
    """The GeoIP database is missing, unreadable or of the wrong kind."""


@fast_init
@dataclass(frozen=True, slots=True)
class Point:
    """A position on Earth in decimal degrees."""

    lat: float
    lon: float


# --------------------------------------------------------------------------- addresses


def _parse_ip(text: str | None) -> IPAddress | None:
    """Parse one address as it may appear in a peer name or a forwarding header.

    Accepts surrounding spaces and quotes, ``[v6]``, ``[v6]:port``, ``v4:port`` and ``%zone``
    suffixes; IPv4-mapped IPv6 addresses come back as plain IPv4. Returns None when unparsable.
    """
    if not text:
        return None
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # "1.2.3.4:5678"; a bare IPv6 address has at least two colons
        text = text.partition(":")[0]
    text = text.partition("%")[0]  # zone / scope id: "fe80::1%eth0"
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _is_routable(addr: IPAddress) -> bool:
    """True for public unicast addresses, i.e. the ones a GeoIP database can place."""
    return not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_multicast
        or addr.is_unspecified
        or not addr.is_global  # e.g. 100.64.0.0/10 (carrier-grade NAT)
    )


def parse_networks(items: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    """Parse trusted-proxy entries: single addresses (``10.0.0.1``, ``::1``) or CIDRs.

    A single string is split on commas and whitespace, so an environment variable can be passed
    straight through. Blank entries are skipped; host bits in a CIDR are tolerated
    (``10.0.0.1/8`` means ``10.0.0.0/8``). Raises ValueError naming the first bad entry.
    """
    if isinstance(items, str):
        items = items.replace(",", " ").split()
    networks: list[IPNetwork] = []
    for item in items:
        entry = item.strip()
        if not entry:
            continue
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"invalid trusted proxy address or network: {item!r}") from None
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:  # "::ffff:10.0.0.0/104" -> "10.0.0.0/8", as peers are unmapped
                net = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
        networks.append(net)
    return tuple(networks)


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: Sequence[IPNetwork],
) -> str:
    """The address of the client behind a request.

    That is the peer address, unless the peer is one of the trusted proxies and sent an
    ``X-Forwarded-For`` header, in which case it is the first (left-most, original client) entry of
    that header. An unparsable first entry is ignored and the peer used. The result is normalised:
    no brackets, port or zone, and IPv4-mapped IPv6 turned into IPv4. An unparsable peer (a unix
    socket, say) is returned stripped, or ``""`` when there is none.

    Note: the left-most entry is whatever the client chose to send; it is fine for picking a
    nearby server, not for anything security related.
    """
    addr = _parse_ip(peer)
    if addr is None:
        return (peer or "").strip()
    if forwarded_for and trusted_proxies and any(addr in net for net in trusted_proxies):
        forwarded = _parse_ip(forwarded_for.partition(",")[0])
        if forwarded is not None:
            return str(forwarded)
    return str(addr)


def origin_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: Sequence[IPNetwork],
) -> str:
    """The address to count failures against (throttling): the right-most ``X-Forwarded-For`` entry
    that is not a trusted proxy, i.e. the last hop a trusted proxy saw. Entries left of it are the
    client's own words and could be forged to dodge a per-address limit."""
    addr = _parse_ip(peer)
    if addr is None:
        return (peer or "").strip()
    if not (forwarded_for and trusted_proxies and any(addr in net for net in trusted_proxies)):
        return str(addr)
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse_ip(entry)
        if hop is None:
            break  # garbage where a proxy would have written an address: trust nothing left of it
        if not any(hop in net for net in trusted_proxies):
            return str(hop)
        addr = hop
    return str(addr)


# --------------------------------------------------------------------------- the database


def default_database_path() -> Path:
    """The GeoLite2-City database shipped by the ``maxminddb-geolite2`` distribution."""
    spec = importlib.util.find_spec(_GEOLITE2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GeoDatabaseError(
            f"no GeoIP database configured and the maxminddb-geolite2 package ({_GEOLITE2_PACKAGE}) is not installed"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DATABASE_FILE
    if not path.is_file():
        raise GeoDatabaseError(f"GeoIP database not found at {path}")
    return path


OUTDATED_AFTER = timedelta(days=365)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is replaced or rewritten: (inode, size, modification time)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


def _open_city(path: Path) -> geoip2.database.Reader:
    try:
        reader = geoip2.database.Reader(str(path), mode=maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc}") from exc
    database_type = reader.metadata().database_type
    if "City" not in database_type:
        reader.close()
        raise GeoDatabaseError(f"GeoIP database {path} is a {database_type} database, not a City database")
    return reader


def _lookup_in(reader: geoip2.database.Reader, cache_size: int) -> functools._lru_cache_wrapper[Point | None]:
    """The cached lookup of one reader (it closes over the reader, not over the locator: no reference cycle)."""

    @functools.lru_cache(maxsize=cache_size)
    def lookup(ip: str) -> Point | None:
        addr = _parse_ip(ip)
        if addr is None or not _is_routable(addr):
            return None
        try:
            location = reader.city(addr).location
        except geoip2.errors.AddressNotFoundError:
            return None
        lat, lon = location.latitude, location.longitude
        if lat is None or lon is None:
            return None
        return Point(lat, lon)

    return lookup


class GeoLocator:
    """Locates IP addresses with a local MaxMind City database.

    Open once at start-up and share; `locate` is cheap for addresses already seen (bounded LRU
    cache) and never touches the network. `reload_if_changed` opens the file again once it was replaced
    (an update: geoipupdate or a download moved into place). Also a context manager.
    """

    def __init__(self, path: str | Path | None = None, *, cache_size: int = 65536) -> None:
        resolved = default_database_path() if not path else Path(path).expanduser()
        self.path = resolved
        self.cache_size = cache_size
        self._stamp = _stamp(resolved)
        self._reader = _open_city(resolved)
        self._lookup = _lookup_in(self._reader, cache_size)

    @property
    def database_type(self) -> str:
        return str(self._reader.metadata().database_type)

    @property
    def built_at(self) -> datetime:
        """When MaxMind built the database (its metadata's build_epoch), UTC."""
        return datetime.fromtimestamp(self._reader.metadata().build_epoch, UTC)

    def outdated(self, now: datetime | None = None) -> bool:
        """Built over a year ago: addresses move between networks and places, and it no longer knows them."""
        return (now or datetime.now(UTC)) - self.built_at > OUTDATED_AFTER

    def describe(self) -> str:
        """ "GeoLite2-City, built 2018-07-03"."""
        return f"{self.database_type}, built {self.built_at:%Y-%m-%d}"

    def reload_if_changed(self) -> bool:
        """Open the database again when its file was replaced since it was opened: True when it was. The file
        is only used once it opens as a City database (a half-written or wrong file raises
        GeoDatabaseError and the one in use stays)."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # (a bad file is reported once, not at every look)
        reader = _open_city(self.path)
        old, self._reader, self._lookup = self._reader, reader, _lookup_in(reader, self.cache_size)
        old.close()
        return True

    def locate(self, ip: str | None) -> Point | None:
        """Where `ip` is, or None if it is private, reserved, unparsable or unknown."""
        if not ip:
            return None
        return self._lookup(ip)

    def locate_client(self, ip: str | None, fallback_ip: str | None) -> Point | None:
        """Locate `ip`, else `fallback_ip` (e.g. the peer when a forwarded address is private)."""
        return self.locate(ip) or self.locate(fallback_ip)

    def cache_info(self) -> functools._CacheInfo:
        return self._lookup.cache_info()

    def close(self) -> None:
        """Release the database. Idempotent; the locator is unusable afterwards."""
        self._lookup.cache_clear()
        self._reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GeoLocator({str(self.path)!r})"


# --------------------------------------------------------------------------- distances


def great_circle_km(a: Point, b: Point) -> float:
    """Great-circle distance between two points in kilometres (haversine formula)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


class Located(Protocol):
    """What `rank` needs from a server when no `coords` function is given (e.g. models.Server)."""

    @property
    def name(self) -> str: ...
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...


T = TypeVar("T")
L = TypeVar("L", bound=Located)


def _server_point(server: object) -> Point:
    located = cast("Located", server)
    return Point(located.latitude, located.longitude)


def _tie_key(server: object) -> tuple[str, str]:
    return (str(getattr(server, "name", "")), str(getattr(server, "id", "")))


@overload
def rank(servers: Iterable[L], client: Point | None) -> list[L]: ...
@overload
def rank(servers: Iterable[T], client: Point | None, coords: Callable[[T], Point]) -> list[T]: ...
def rank(
    servers: Iterable[T],
    client: Point | None,
    coords: Callable[[T], Point] | None = None,
) -> list[T]:
    """`servers` ordered nearest to `client` first.

    Equal distances are ordered by the server's ``name``, then ``id``; with no client location
    the whole list is ordered that way. Servers with unusable (NaN) coordinates go last. Nothing is
    filtered out: pick the eligible servers (on, active, healthy) before ranking.
    """
    if client is None:
        return sorted(servers, key=_tie_key)
    to_point: Callable[[T], Point] = coords or _server_point

    def key(server: T) -> tuple[float, str, str]:
        distance = great_circle_km(client, to_point(server))
        if math.isnan(distance):
            distance = math.inf
        name, ident = _tie_key(server)
        return (distance, name, ident)

    return sorted(servers, key=key)


@overload
def nearest(servers: Iterable[L], client: Point | None) -> L | None: ...
@overload
def nearest(servers: Iterable[T], client: Point | None, coords: Callable[[T], Point]) -> T | None: ...
def nearest(
    servers: Iterable[T],
    client: Point | None,
    coords: Callable[[T], Point] | None = None,
) -> T | None:
    """The first server `rank` would give, or None when there are none."""
    ranked = rank(servers, client, coords or _server_point)
    return ranked[0] if ranked else None


class NearestCache:
    """`nearest` remembered per (client location, candidate servers): a download ranks the same few holders
    for the same clients over and over. Candidates are keyed by identity; the entry keeps them alive (so an
    id is never reused while cached), and a server changed in any way is a new object, so a new key."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._found: dict[tuple[object, ...], tuple[tuple[object, ...], object]] = {}

    def nearest(self, servers: Sequence[L], client: Point | None) -> L | None:
        key = (client, *map(id, servers))
        hit = self._found.get(key)
        if hit is not None:
            return cast("L | None", hit[1])
        found = nearest(servers, client)
        if len(self._found) >= self.size:
            self._found.clear()
        self._found[key] = (tuple(servers), found)
        return found
