"""cdnstore.geo against the real GeoLite2-City database shipped by maxminddb-geolite2.

That database dates from July 2018. It places 8.8.8.8 at the centroid of the USA (37.751, -97.822),
77.88.8.8 at the centroid of Russia's Moscow area (55.7386, 37.6068) and 196.25.1.1 in Johannesburg
(-26.2309, 28.0583); the assertions use regions, not exact points, so a newer database also passes.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdnstore.geo import (
    GeoDatabaseError,
    GeoLocator,
    NearestCache,
    Point,
    client_ip,
    default_database_path,
    great_circle_km,
    nearest,
    parse_networks,
    rank,
)
from cdnstore.models import Health, Server

GOOGLE_DNS = "8.8.8.8"
YANDEX_DNS = "77.88.8.8"
TELKOM_ZA = "196.25.1.1"


@pytest.fixture(scope="module")
def locator() -> Iterator[GeoLocator]:
    with GeoLocator() as located:
        yield located


def make_server(name: str, lat: float, lon: float, *, id: str | None = None) -> Server:
    return Server(
        id=id or f"id-{name}",
        pk=0,  # (geo never reads it)
        name=name,
        endpoint_url=f"https://{name.lower().replace(' ', '-')}.example",
        bucket="files",
        region="us-east-1",
        access_key="key",
        secret_key="secret",
        location=name,
        zone="",
        latitude=lat,
        longitude=lon,
        is_on=True,
        is_active=True,
        health=Health.UP,
        created_at="2024-01-01T00:00:00Z",
        updated_at="2024-01-01T00:00:00Z",
    )


CITIES = {
    "Cape Town": Point(-33.92, 18.42),
    "Vladivostok": Point(43.12, 131.89),
    "New York": Point(40.71, -74.01),
    "Dallas": Point(32.78, -96.80),
    "Detroit": Point(42.33, -83.05),
}
US_CITIES = {"New York", "Dallas", "Detroit"}


@pytest.fixture
def servers() -> list[Server]:
    return [make_server(name, p.lat, p.lon) for name, p in CITIES.items()]


# --------------------------------------------------------------------------- the database


def test_default_database_is_the_geolite2_city_file() -> None:
    path = default_database_path()
    assert path.name == "GeoLite2-City.mmdb"
    assert path.is_file()


def test_missing_geolite2_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(GeoDatabaseError, match="maxminddb-geolite2"):
        default_database_path()


@pytest.mark.parametrize("path", [None, ""])
def test_no_path_opens_the_default_database(path: str | None) -> None:
    with GeoLocator(path) as located:
        assert located.path == default_database_path()
        assert "City" in located.database_type


def test_missing_database_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    with pytest.raises(GeoDatabaseError, match=r"nope\.mmdb"):
        GeoLocator(missing)


def test_corrupt_database_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"this is not a MaxMind database" * 100)
    with pytest.raises(ValueError, match=r"bogus\.mmdb"):
        GeoLocator(str(bogus))


def test_the_shipped_database_says_when_it_was_built_and_that_it_is_outdated(locator: GeoLocator) -> None:
    assert locator.built_at == datetime(2018, 7, 3, 21, 26, 56, tzinfo=UTC)
    assert locator.describe() == "GeoLite2-City, built 2018-07-03"
    assert locator.outdated() and not locator.outdated(now=locator.built_at + timedelta(days=364))


def test_a_replaced_database_file_is_used_and_a_bad_one_is_not(tmp_path: Path) -> None:
    """An update (geoipupdate, or a download moved into place) replaces the file: the locator opens it
    again; a file that is no City database (half-written, the wrong edition) leaves the one in use."""
    path = tmp_path / "GeoLite2-City.mmdb"
    shutil.copy(default_database_path(), path)
    with GeoLocator(path) as located:
        assert located.locate(GOOGLE_DNS) is not None and located.reload_if_changed() is False
        bad = tmp_path / "half.mmdb"
        bad.write_bytes(default_database_path().read_bytes()[:4096])
        bad.replace(path)
        with pytest.raises(GeoDatabaseError, match="cannot open GeoIP database"):
            located.reload_if_changed()
        assert located.locate(GOOGLE_DNS) is not None  # the one opened before serves on
        assert located.reload_if_changed() is False  # said once, not at every look
        shutil.copy(default_database_path(), tmp_path / "new.mmdb")
        (tmp_path / "new.mmdb").replace(path)
        assert located.reload_if_changed() is True
        assert located.locate(YANDEX_DNS) is not None and located.describe() == "GeoLite2-City, built 2018-07-03"


async def test_the_daemon_says_once_that_its_geoip_database_is_outdated_and_logs_a_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    from cdnstore import app as app_module
    from cdnstore import appkeys

    monkeypatch.setattr(app_module, "_SAID_OUTDATED", set())
    path = tmp_path / "GeoLite2-City.mmdb"
    shutil.copy(default_database_path(), path)
    apps = [web.Application(), web.Application()]  # `demo --daemons 2`: two daemons in one process
    for app in apps:
        app[appkeys.GEO] = GeoLocator(path)
    with caplog.at_level(logging.INFO, logger="cdnstore.app"):
        for app in apps * 2:
            await app_module.geoip_current(app)
        said = [r.getMessage() for r in caplog.records if "is over a year old" in r.getMessage()]
        assert said == [f"the GeoIP database {path} (GeoLite2-City, built 2018-07-03) is over a year old: clients "
                        "may be placed wrongly, and sent to farther servers than the nearest; update it "
                        '(docs/operations.md, "GeoIP data")']  # fmt: skip
        shutil.copy(default_database_path(), tmp_path / "new.mmdb")
        (tmp_path / "new.mmdb").replace(path)
        await app_module.geoip_current(apps[0])
    assert f"GeoIP database {path} reloaded: GeoLite2-City, built 2018-07-03" in caplog.text
    for app in apps:
        app[appkeys.GEO].close()


# --------------------------------------------------------------------------- locating


def test_google_dns_is_located_in_the_usa(locator: GeoLocator) -> None:
    where = locator.locate(GOOGLE_DNS)
    assert where is not None
    assert 25 < where.lat < 50
    assert -125 < where.lon < -65


def test_yandex_dns_is_located_in_russia(locator: GeoLocator) -> None:
    where = locator.locate(YANDEX_DNS)
    assert where is not None
    assert where.lat > 40
    assert where.lon > 30


def test_south_african_address_is_located_in_south_africa(locator: GeoLocator) -> None:
    where = locator.locate(TELKOM_ZA)
    assert where is not None
    assert where.lat < -20
    assert 15 < where.lon < 35


def test_ipv6_address_is_located(locator: GeoLocator) -> None:
    where = locator.locate("2001:4860:4860::8888")  # Google DNS over IPv6
    assert where is not None
    assert 25 < where.lat < 50
    assert -125 < where.lon < -65


def test_ipv4_mapped_ipv6_address_is_located_like_the_ipv4_one(locator: GeoLocator) -> None:
    assert locator.locate(f"::ffff:{YANDEX_DNS}") == locator.locate(YANDEX_DNS)


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",  # private
        "192.168.1.10",  # private
        "172.16.5.4",  # private
        "100.64.0.1",  # carrier-grade NAT
        "127.0.0.1",  # loopback
        "::1",  # loopback
        "169.254.1.1",  # link-local
        "fe80::1%eth0",  # link-local with zone
        "fd00::1",  # unique local
        "240.0.0.1",  # reserved
        "224.0.0.1",  # multicast
        "0.0.0.0",  # unspecified
        "192.0.2.1",  # documentation
        "garbage",
        "999.1.1.1",
        "",
    ],
)
def test_addresses_that_cannot_be_placed_are_not_located(locator: GeoLocator, ip: str) -> None:
    assert locator.locate(ip) is None


def test_none_is_not_located(locator: GeoLocator) -> None:
    assert locator.locate(None) is None


def test_fallback_address_is_used_when_the_client_address_is_private(locator: GeoLocator) -> None:
    assert locator.locate_client("10.0.0.1", YANDEX_DNS) == locator.locate(YANDEX_DNS)


def test_client_address_wins_over_the_fallback(locator: GeoLocator) -> None:
    assert locator.locate_client(TELKOM_ZA, YANDEX_DNS) == locator.locate(TELKOM_ZA)


def test_no_usable_address_locates_nothing(locator: GeoLocator) -> None:
    assert locator.locate_client("127.0.0.1", "garbage") is None
    assert locator.locate_client(None, None) is None


def test_repeated_lookups_are_served_from_the_cache() -> None:
    with GeoLocator(cache_size=8) as located:
        first = located.locate(GOOGLE_DNS)
        for _ in range(100):
            assert located.locate(GOOGLE_DNS) == first
        info = located.cache_info()
        assert info.misses == 1
        assert info.hits == 100
        for n in range(50):
            located.locate(f"8.8.4.{n}")
        assert located.cache_info().currsize == 8


def test_closed_locator_forgets_its_cache() -> None:
    located = GeoLocator()
    located.locate(GOOGLE_DNS)
    located.close()
    assert located.cache_info().currsize == 0


# --------------------------------------------------------------------------- client address


TRUSTED = parse_networks(["10.0.0.0/8", "fd00::/8", "192.168.1.1"])


def test_peer_is_the_client_without_forwarded_header() -> None:
    assert client_ip("203.0.113.7", None, TRUSTED) == "203.0.113.7"


def test_forwarded_header_from_untrusted_peer_is_ignored() -> None:
    assert client_ip("203.0.113.7", "8.8.8.8", TRUSTED) == "203.0.113.7"


def test_forwarded_header_is_ignored_when_no_proxy_is_trusted() -> None:
    assert client_ip("10.0.0.2", "8.8.8.8", ()) == "10.0.0.2"


def test_first_forwarded_address_is_the_client_behind_a_trusted_proxy() -> None:
    assert client_ip("10.1.2.3", " 77.88.8.8 , 10.0.0.5, 10.1.2.3", TRUSTED) == "77.88.8.8"


def test_single_trusted_proxy_address_is_a_network() -> None:
    assert client_ip("192.168.1.1", "8.8.8.8", TRUSTED) == "8.8.8.8"
    assert client_ip("192.168.1.2", "8.8.8.8", TRUSTED) == "192.168.1.2"


def test_invalid_first_forwarded_address_falls_back_to_the_peer() -> None:
    assert client_ip("10.1.2.3", "unknown, 8.8.8.8", TRUSTED) == "10.1.2.3"
    assert client_ip("10.1.2.3", "", TRUSTED) == "10.1.2.3"
    assert client_ip("10.1.2.3", " , 8.8.8.8", TRUSTED) == "10.1.2.3"


def test_ipv6_trusted_proxy_forwards_an_ipv6_client() -> None:
    assert client_ip("fd00::1", "[2001:4860:4860::8888]:443", TRUSTED) == "2001:4860:4860::8888"
    assert client_ip("fd00::1", "2001:DB8::0:1", TRUSTED) == "2001:db8::1"


def test_forwarded_address_with_port_loses_the_port() -> None:
    assert client_ip("10.0.0.9", "8.8.8.8:51234", TRUSTED) == "8.8.8.8"


def test_ipv4_mapped_peer_is_plain_ipv4_and_matches_ipv4_proxies() -> None:
    assert client_ip("::ffff:203.0.113.7", None, TRUSTED) == "203.0.113.7"
    assert client_ip("::ffff:10.0.0.2", "77.88.8.8", TRUSTED) == "77.88.8.8"


def test_ipv4_mapped_forwarded_address_is_plain_ipv4() -> None:
    assert client_ip("10.0.0.2", "::ffff:196.25.1.1", TRUSTED) == "196.25.1.1"


def test_peer_brackets_and_zone_are_stripped() -> None:
    assert client_ip("[2001:db8::7]", None, TRUSTED) == "2001:db8::7"
    assert client_ip("fe80::1%eth0", None, TRUSTED) == "fe80::1"


def test_peer_that_is_not_an_address_is_returned_as_is() -> None:
    assert client_ip(None, "8.8.8.8", TRUSTED) == ""
    assert client_ip(" /run/cdnstore.sock ", "8.8.8.8", TRUSTED) == "/run/cdnstore.sock"


def test_trusted_proxies_accept_addresses_and_cidrs() -> None:
    assert parse_networks(["10.0.0.0/8", " 192.168.1.1 ", "::1", "", "fd00::/8"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_trusted_proxies_from_a_comma_separated_string() -> None:
    assert parse_networks("10.0.0.0/8, 127.0.0.1") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )


def test_trusted_proxy_cidr_with_host_bits_is_its_network() -> None:
    assert parse_networks(["10.1.2.3/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)


def test_bad_trusted_proxy_entry_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks(["127.0.0.1", "10.0.0.0/33"])
    with pytest.raises(ValueError, match=r"'proxy\.internal'"):
        parse_networks(["proxy.internal"])


# --------------------------------------------------------------------------- distances


def test_new_york_to_dallas_is_about_2200_km() -> None:
    assert great_circle_km(CITIES["New York"], CITIES["Dallas"]) == pytest.approx(2200, abs=30)


def test_cape_town_to_vladivostok_is_about_14300_km() -> None:
    assert great_circle_km(CITIES["Cape Town"], CITIES["Vladivostok"]) == pytest.approx(14290, abs=50)


def test_distance_is_symmetric_and_zero_to_itself() -> None:
    a, b = CITIES["Detroit"], CITIES["Vladivostok"]
    assert great_circle_km(a, b) == pytest.approx(great_circle_km(b, a))
    assert great_circle_km(a, a) == 0.0


def test_antipodes_are_half_the_circumference_apart() -> None:
    assert great_circle_km(Point(0, 0), Point(0, 180)) == pytest.approx(20015.1, abs=1)


# --------------------------------------------------------------------------- ranking


def names(ranked: list[Server]) -> list[str]:
    return [s.name for s in ranked]


def test_american_client_is_nearest_to_a_us_city(locator: GeoLocator, servers: list[Server]) -> None:
    best = nearest(servers, locator.locate(GOOGLE_DNS))
    assert best is not None
    assert best.name in US_CITIES
    assert set(names(rank(servers, locator.locate(GOOGLE_DNS)))[:3]) == US_CITIES


def test_russian_client_is_nearest_to_vladivostok(locator: GeoLocator, servers: list[Server]) -> None:
    best = nearest(servers, locator.locate(YANDEX_DNS))
    assert best is not None
    assert best.name == "Vladivostok"


def test_south_african_client_is_nearest_to_cape_town(locator: GeoLocator, servers: list[Server]) -> None:
    ranked = rank(servers, locator.locate(TELKOM_ZA))
    assert ranked[0].name == "Cape Town"


def test_rank_orders_every_server_by_distance(servers: list[Server]) -> None:
    chicago = Point(41.88, -87.63)
    assert names(rank(servers, chicago)) == [
        "Detroit",  # ~380 km
        "New York",  # ~1150 km
        "Dallas",  # ~1290 km
        "Vladivostok",
        "Cape Town",
    ]


def test_equally_distant_servers_are_ordered_by_name_then_id() -> None:
    here = Point(10.0, 20.0)
    servers = [
        make_server("b", 10.0, 20.0, id="2"),
        make_server("a", 10.0, 20.0, id="9"),
        make_server("b", 10.0, 20.0, id="1"),
        make_server("far", 50.0, 50.0),
    ]
    ranked = rank(servers, here)
    assert [(s.name, s.id) for s in ranked] == [("a", "9"), ("b", "1"), ("b", "2"), ("far", "id-far")]


def test_unknown_client_location_orders_servers_by_name(servers: list[Server]) -> None:
    assert names(rank(servers, None)) == sorted(CITIES)
    best = nearest(servers, None)
    assert best is not None
    assert best.name == "Cape Town"


def test_rank_does_not_change_its_input(servers: list[Server]) -> None:
    before = list(servers)
    rank(servers, CITIES["Dallas"])
    assert servers == before


def test_no_servers_means_no_nearest_server() -> None:
    assert rank([], CITIES["Dallas"]) == []
    assert nearest([], CITIES["Dallas"]) is None
    assert nearest([], None) is None


def test_server_with_unusable_coordinates_is_ranked_last() -> None:
    broken = make_server("aaa", float("nan"), 0.0)
    dallas = make_server("Dallas", 32.78, -96.80)
    assert names(rank([broken, dallas], CITIES["Detroit"])) == ["Dallas", "aaa"]


@dataclass(frozen=True)
class Site:
    name: str
    where: tuple[float, float]


def test_rank_takes_a_coordinate_accessor_for_other_records() -> None:
    sites = [Site("north", (60.0, 10.0)), Site("south", (-60.0, 10.0))]
    ranked = rank(sites, Point(-50.0, 0.0), lambda s: Point(*s.where))
    assert [s.name for s in ranked] == ["south", "north"]
    best = nearest(sites, Point(55.0, 5.0), lambda s: Point(*s.where))
    assert best is not None
    assert best.name == "north"


def test_the_origin_for_throttling_is_the_last_hop_a_trusted_proxy_saw() -> None:
    from cdnstore.geo import origin_ip

    proxies = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    # The client wrote its own X-Forwarded-For ("1.1.1.1"); the proxy appended the real address.
    assert origin_ip("127.0.0.1", "1.1.1.1, 203.0.113.7", proxies) == "203.0.113.7"
    assert origin_ip("127.0.0.1", "9.9.9.9, 203.0.113.7, 10.1.2.3", proxies) == "203.0.113.7"
    assert origin_ip("127.0.0.1", "203.0.113.7", proxies) == "203.0.113.7"
    assert origin_ip("198.51.100.1", "1.1.1.1", proxies) == "198.51.100.1"  # not a proxy: ignored
    assert origin_ip("127.0.0.1", "1.1.1.1, garbage", proxies) == "127.0.0.1"
    assert origin_ip("127.0.0.1", None, proxies) == "127.0.0.1"


def test_the_nearest_cache_answers_as_nearest_does_and_sees_a_server_changed() -> None:
    dallas, moscow = make_server("dallas", 32.78, -96.8), make_server("moscow", 55.75, 37.62)
    cache = NearestCache()
    us, russia = Point(37.751, -97.822), Point(55.7386, 37.6068)
    for client in (us, russia, None):
        assert cache.nearest([dallas, moscow], client) == nearest([dallas, moscow], client)
        assert cache.nearest([dallas, moscow], client) == nearest([dallas, moscow], client)  # (remembered)
    assert cache.nearest([], us) is None
    # A server changed is a new object: ranked afresh.
    moved = replace(dallas, latitude=russia.lat, longitude=russia.lon)
    assert cache.nearest([moved, moscow], russia) is moved
    assert cache.nearest([moscow], us) is moscow
