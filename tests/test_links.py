"""Share links, through the public API, on the `s3` servers (tests/s3bed.py): in memory (the fast tier) and
real SeaweedFS, but for the tests marked REAL_ONLY."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from apihelp import RUSSIA_IP, US_IP, Answer, Api, Clock, GatedArgon2, Session, from_ip, png, wait_for
from conftest import MakeApi
from s3bed import REAL_ONLY, S3Bed, store_of

from cdnstore import appkeys
from cdnstore.config import Config
from cdnstore.models import Health
from testbed.clock import FakeClock

DATA = b"shared through a link\n" * 100
PNG = png(3, 2)
SECRET_WORD = "open sesame"


@pytest.fixture
def api(s3_api: Api) -> Api:
    """The daemon on this test's `s3` servers."""
    return s3_api


LINK_KEYS = {
    *("id", "file_id", "token", "url", "has_password", "expires_at", "max_downloads", "downloads", "created_at"),
    *("files", "state"),
}


async def owner_with_file(api: Api, s3: S3Bed, bucket: str, name: str = "shared.txt") -> tuple[Session, str]:
    """alice (an ordinary user) owns a stored file on the Dallas server."""
    admin = await api.user("root", admin=True)
    await admin.add_server(s3, "dallas", bucket)
    alice = await api.user("alice")
    file_id = (await alice.upload(name, DATA))["file"]["id"]
    await alice.wait_stored(file_id)
    return alice, file_id


async def new_link(owner: Session, file_id: str, **body: Any) -> dict[str, Any]:
    return dict((await owner.post(f"/api/v1/files/{file_id}/links", json=body)).expect(201))


async def look(api: Api, token: str) -> Answer:
    return await api.call("GET", f"/api/v1/public/links/{token}")


async def pull(api: Api, token: str, password: str | None = None, *, ip: str = US_IP, query: str = "") -> Answer:
    body = None if password is None else {"password": password}
    return await api.call("POST", f"/api/v1/public/links/{token}/download{query}", json=body, headers=from_ip(ip))


async def links_of(owner: Session, file_id: str) -> list[dict[str, Any]]:
    return list((await owner.get(f"/api/v1/files/{file_id}/links")).expect(200)["items"])


def seconds_until(when: str) -> float:
    return (datetime.fromisoformat(when.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


async def test_a_link_shares_the_file_with_anyone(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id)
    assert set(link) == LINK_KEYS
    assert link["file_id"] == file_id and link["downloads"] == 0
    assert link["has_password"] is False and link["expires_at"] is None and link["max_downloads"] is None
    assert link["files"] == [{"id": file_id, "name": "shared.txt", "size": len(DATA)}] and link["state"] == "active"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", link["token"])  # token_urlsafe(32): 256 random bits
    assert link["url"] == f"{api.app[appkeys.CONFIG].http.public_url}/s/{link['token']}"
    assert await links_of(alice, file_id) == [link]

    info = (await look(api, link["token"])).expect(200)
    assert info == {
        "name": "shared.txt",
        "size": len(DATA),
        "has_password": False,
        "expires_at": None,
        "downloads_left": None,
        "files": [{"id": file_id, "name": "shared.txt", "size": len(DATA), "content_type": "text/plain"}],
    }
    got = (await pull(api, link["token"])).expect(200)
    assert set(got) == {"url", "expires_at", "server", "sha256"} and got["server"]["name"] == "dallas"
    status, body, _ = await api.fetch(got["url"])
    assert status == 200 and body == DATA
    redirect = await pull(api, link["token"], query="?redirect=true")
    assert redirect.status == 302
    assert (await api.fetch(redirect.headers["Location"]))[1] == DATA
    assert (await links_of(alice, file_id))[0]["downloads"] == 2
    (await look(api, "no-such-token")).problem(404, "link_not_found")
    (await pull(api, "no-such-token")).problem(404, "link_not_found")
    # Without links.max_expires_in, an explicit null asks for no expiry too.
    assert (await new_link(alice, file_id, expires_in=None, max_downloads=None))["expires_at"] is None


async def test_a_link_download_goes_to_the_nearest_holder_that_is_up(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    servers = await admin.add_layout(s3, bucket)
    file_id = (await admin.upload("everywhere.txt", DATA, ip=US_IP))["file"]["id"]
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()  # copied to New York too
    token = (await new_link(admin, file_id))["token"]
    assert (await pull(api, token, ip=US_IP)).expect(200)["server"]["name"] == "dallas"
    # From Russia the nearest holder is New York (Vladivostok holds nothing: another zone).
    got = (await pull(api, token, ip=RUSSIA_IP)).expect(200)
    assert got["server"]["name"] == "newyork" and (await api.fetch(got["url"]))[1] == DATA
    await api.app[appkeys.SERVERS].set_health({servers["dallas"]["id"]: Health.DOWN})
    got = (await pull(api, token, ip=US_IP)).expect(200)
    assert got["server"]["name"] == "newyork" and (await api.fetch(got["url"]))[1] == DATA


async def test_a_password_is_required_checked_and_never_shown(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id, password=SECRET_WORD)
    assert link["has_password"] is True and SECRET_WORD not in str(link)
    stored = await api.app[appkeys.DB].fetchval("SELECT password_hash FROM links WHERE uuid = ?", (link["id"],))
    assert stored.startswith("$argon2id$") and SECRET_WORD not in stored
    assert (await look(api, link["token"])).expect(200)["has_password"] is True

    (await pull(api, link["token"])).problem(401, "password_required")
    (await pull(api, link["token"], "open sesame!")).problem(401, "invalid_password")
    (await pull(api, link["token"], "")).problem(401, "invalid_password")
    got = (await pull(api, link["token"], SECRET_WORD)).expect(200)
    assert (await api.fetch(got["url"]))[1] == DATA
    assert (await links_of(alice, file_id))[0]["downloads"] == 1  # the refusals counted nothing
    history = (await alice.get("/api/v1/history")).expect(200)["items"]
    assert SECRET_WORD not in str(history)


async def test_a_limit_of_5_grants_exactly_5_downloads_under_20_concurrent_requests(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id, max_downloads=5)
    answers = await asyncio.gather(*(pull(api, link["token"]) for _ in range(20)))
    assert Counter(a.status for a in answers) == {200: 5, 410: 15}
    for answer in answers:
        if answer.status == 410:
            answer.problem(410, "link_expired")
    assert (await links_of(alice, file_id))[0]["downloads"] == 5
    (await look(api, link["token"])).problem(410, "link_expired")
    (await pull(api, link["token"])).problem(410, "link_expired")
    downloaded = (await alice.get("/api/v1/history?event=link.downloaded")).expect(200)["items"]
    assert sorted(i["data"]["downloads"] for i in downloaded) == [1, 2, 3, 4, 5]


async def test_a_link_expires(make_api: MakeApi, s3: S3Bed, bucket: str) -> None:
    clock = FakeClock()
    api = await make_api(store=store_of(s3), clock=clock)
    alice, file_id = await owner_with_file(api, s3, bucket)
    short = await new_link(alice, file_id, expires_in=1)
    assert short["expires_at"] == clock.iso_in(1)
    long = await new_link(alice, file_id, expires_in=3600)
    assert long["expires_at"] == clock.iso_in(3600)
    (await pull(api, short["token"])).expect(200)
    clock.advance(1.1)
    (await look(api, short["token"])).problem(410, "link_expired")
    (await pull(api, short["token"])).problem(410, "link_expired")
    (await look(api, long["token"])).expect(200)
    clock.advance(3600)  # an hour has passed
    (await pull(api, long["token"])).problem(410, "link_expired")
    # The owner still sees both (and may revoke them), signed in again: her access token expired meanwhile.
    alice = await api.login("alice")
    assert [link["id"] for link in await links_of(alice, file_id)] == [long["id"], short["id"]]


async def test_a_revoked_link_stops_working_at_once(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id, password=SECRET_WORD)
    kept = await new_link(alice, file_id)
    (await pull(api, link["token"], SECRET_WORD)).expect(200)
    (await alice.delete(f"/api/v1/files/{file_id}/links/{link['id']}")).expect(204)
    (await look(api, link["token"])).problem(404, "link_not_found")
    (await pull(api, link["token"], SECRET_WORD)).problem(404, "link_not_found")
    (await alice.delete(f"/api/v1/files/{file_id}/links/{link['id']}")).problem(404, "link_not_found")
    assert [x["id"] for x in await links_of(alice, file_id)] == [kept["id"]]
    (await pull(api, kept["token"])).expect(200)


async def test_the_links_of_a_deleted_file_are_gone(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id)
    (await alice.delete(f"/api/v1/files/{file_id}")).expect(204)
    (await look(api, link["token"])).problem(410, "link_expired")
    (await pull(api, link["token"])).problem(410, "link_expired")
    (await alice.get(f"/api/v1/files/{file_id}/links")).problem(404, "file_not_found")
    (await alice.post(f"/api/v1/files/{file_id}/links", json={})).problem(404, "file_not_found")


async def test_a_link_to_a_file_still_uploading_counts_nothing(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(s3, "dallas", bucket)
    file_id = (await admin.announce("later.txt", DATA))["file"]["id"]
    link = await new_link(admin, file_id, max_downloads=1)
    assert (await look(api, link["token"])).expect(200)["size"] == len(DATA)
    (await pull(api, link["token"])).problem(409, "file_not_ready")
    assert (await links_of(admin, file_id))[0]["downloads"] == 0


async def guessed_link(
    make_api: Any, s3: S3Bed, bucket: str, links: dict[str, int], *, ip: str = US_IP, clock: Clock | None = None
) -> tuple[Api, str]:
    """The daemon (3 wrong link passwords per address, and `links` settings), a link with a password, and the
    link's token after three wrong guesses from `ip`. `clock`: the link throttles' clock."""
    api = await make_api(store=store_of(s3), links={"max_password_failures": 3, **links})
    alice, file_id = await owner_with_file(api, s3, bucket)
    token = (await new_link(alice, file_id, password=SECRET_WORD))["token"]
    if clock is not None:
        throttles = api.app[appkeys.LINKS]
        throttles.by_client._clock = throttles.by_link._clock = throttles.by_ip._clock = clock
    for _ in range(3):
        (await pull(api, token, "guess", ip=ip)).problem(401, "invalid_password")
    return api, token


async def test_wrong_passwords_lock_that_address_out_of_the_link_until_the_window_ends(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    clock = Clock()  # the throttles' clock, moved by hand
    api, token = await guessed_link(make_api, s3, bucket, {"password_lockout": 1}, clock=clock)
    # Locked for this link from this address, even with the right password ...
    refused = await pull(api, token, SECRET_WORD)
    refused.problem(429, "too_many_attempts")
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    # ... until the window ends.
    clock.advance(1.1)
    (await pull(api, token, SECRET_WORD)).expect(200)


async def test_wrong_passwords_from_one_address_lock_out_no_other_address_but_the_link_has_a_ceiling(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    # (Checked on main: 5 wrong guesses from anywhere locked the link for everyone, and the per-address key
    # was the raw IPv6 address, so each address of one /64 had tries of its own.)
    api, token = await guessed_link(make_api, s3, bucket, {"max_password_failures_per_link": 8}, ip=RUSSIA_IP)
    (await pull(api, token, SECRET_WORD, ip=RUSSIA_IP)).problem(429, "too_many_attempts")
    (await pull(api, token, SECRET_WORD, ip=US_IP)).expect(200)  # another address is not locked out
    # IPv6: one /64 is one client, whichever of its addresses it picks.
    for _ in range(3):
        (await pull(api, token, "guess", ip="2001:4860:4860::1")).problem(401, "invalid_password")
    (await pull(api, token, SECRET_WORD, ip="2001:4860:4860::8888")).problem(429, "too_many_attempts")
    (await pull(api, token, SECRET_WORD, ip="2001:4860:4860:1::8888")).expect(200)  # another /64
    # Guesses spread over many addresses meet the link's ceiling (8): then it is locked for everyone.
    for n in (1, 2):
        (await pull(api, token, "guess", ip=f"8.8.4.{n}")).problem(401, "invalid_password")
    (await pull(api, token, SECRET_WORD, ip="8.8.4.9")).problem(429, "too_many_attempts")


async def test_wrong_passwords_are_throttled_per_client_address(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api = await make_api(store=store_of(s3), links={"max_password_failures": 100, "max_password_failures_per_ip": 3})
    alice, file_id = await owner_with_file(api, s3, bucket)
    first = (await new_link(alice, file_id, password=SECRET_WORD))["token"]
    second = (await new_link(alice, file_id, password="another secret"))["token"]
    for token in (first, first, second):
        (await pull(api, token, "guess", ip=RUSSIA_IP)).problem(401, "invalid_password")
    (await pull(api, second, "another secret", ip=RUSSIA_IP)).problem(429, "too_many_attempts")
    (await pull(api, first, SECRET_WORD, ip=RUSSIA_IP)).problem(429, "too_many_attempts")
    (await pull(api, second, "another secret", ip=US_IP)).expect(200)


async def test_concurrent_guesses_get_no_more_tries_than_sequential_ones(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api = await make_api(store=store_of(s3), links={"max_password_failures": 5})
    alice, file_id = await owner_with_file(api, s3, bucket)
    token = (await new_link(alice, file_id, password=SECRET_WORD))["token"]
    answers = await asyncio.gather(*(pull(api, token, f"guess {i}") for i in range(20)))
    assert Counter((a.status, a.body["code"]) for a in answers) == {
        (401, "invalid_password"): 5,
        (429, "too_many_attempts"): 15,
    }


async def test_history_records_link_events_on_the_owners_side(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id, password=SECRET_WORD, max_downloads=3)
    (await pull(api, link["token"], SECRET_WORD)).expect(200)
    (await alice.delete(f"/api/v1/files/{file_id}/links/{link['id']}")).expect(204)
    items = (await alice.get("/api/v1/history?limit=3")).expect(200)["items"]
    assert [i["event"] for i in items] == ["link.deleted", "link.downloaded", "link.created"]
    assert {i["object_id"] for i in items} == {file_id}
    assert all(i["data"]["link_id"] == link["id"] and i["data"]["name"] == "shared.txt" for i in items)
    assert items[1]["data"]["server"] == "dallas"
    assert items[2]["data"]["has_password"] is True and items[2]["data"]["max_downloads"] == 3


async def test_another_user_cannot_list_create_or_delete_your_links(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id)
    eve = await api.user("eve")
    (await eve.get(f"/api/v1/files/{file_id}/links")).problem(404, "file_not_found")
    (await eve.post(f"/api/v1/files/{file_id}/links", json={})).problem(404, "file_not_found")
    (await eve.delete(f"/api/v1/files/{file_id}/links/{link['id']}")).problem(404, "file_not_found")
    # Her own file's path with alice's link id: no such link there either.
    eves = (await eve.upload("eve.txt", DATA))["file"]["id"]
    (await eve.delete(f"/api/v1/files/{eves}/links/{link['id']}")).problem(404, "link_not_found")
    assert [x["id"] for x in await links_of(alice, file_id)] == [link["id"]]
    (await pull(api, link["token"])).expect(200)
    assert (await eve.get("/api/v1/history?event=link.downloaded")).expect(200)["items"] == []
    viewer = await api.user("viewer", permissions=["can_view_file"])
    (await viewer.post(f"/api/v1/files/{file_id}/links", json={})).problem(403, "forbidden")
    (await viewer.get(f"/api/v1/files/{file_id}/links")).problem(403, "forbidden")
    (await viewer.delete(f"/api/v1/files/{file_id}/links/{link['id']}")).problem(403, "forbidden")
    (await api.call("GET", f"/api/v1/files/{file_id}/links")).problem(401, "unauthorized")


async def test_links_are_listed_newest_first_in_pages(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    made = [await new_link(alice, file_id, max_downloads=n) for n in (1, 2, 3)]
    first = (await alice.get(f"/api/v1/files/{file_id}/links?limit=2")).expect(200)
    assert [x["max_downloads"] for x in first["items"]] == [3, 2]
    rest = (await alice.get(f"/api/v1/files/{file_id}/links?limit=2&cursor={first['next_cursor']}")).expect(200)
    assert rest == {"items": [made[0]], "next_cursor": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_downloads": -1}, "max_downloads"),
        ({"max_downloads": 0}, "max_downloads"),
        ({"max_downloads": "5"}, "max_downloads"),
        ({"max_downloads": 2.5}, "max_downloads"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"expires_in": 10**12}, "expires_in"),
        ({"password": "x" * 1025}, "password"),
        ({"password": ""}, "password"),
        ({"password": 1234}, "password"),
    ],
)
async def test_bad_link_input_is_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    alice = await api.user("alice")
    problem = (await alice.post("/api/v1/files/00000000-0000-0000-0000-000000000000/links", json=body)).problem(
        422, "invalid_field"
    )
    assert problem["detail"].startswith(f"{field}:")


async def test_unknown_fields_are_422(api: Api) -> None:
    alice = await api.user("alice")
    nowhere = "/api/v1/files/00000000-0000-0000-0000-000000000000/links"
    problem = (await alice.post(nowhere, json={"colour": "red"})).problem(422, "unknown_field")
    assert problem["detail"].startswith("colour:")
    (await alice.post(nowhere, data="{")).problem(400, "malformed_json")
    (await api.call("POST", "/api/v1/public/links/x/download", json={"pasword": "x"})).problem(422, "unknown_field")
    (await api.call("POST", "/api/v1/public/links/x/download", json={"password": 5})).problem(422, "invalid_field")


async def test_the_expiry_default_and_ceiling_come_from_the_config(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api = await make_api(store=store_of(s3), links={"default_expires_in": 600, "max_expires_in": 3600})
    alice, file_id = await owner_with_file(api, s3, bucket)
    assert 590 < seconds_until((await new_link(alice, file_id))["expires_at"]) <= 600
    assert 3590 < seconds_until((await new_link(alice, file_id, expires_in=3600))["expires_at"]) <= 3600
    for body in ({"expires_in": 3601}, {"expires_in": None}):
        problem = (await alice.post(f"/api/v1/files/{file_id}/links", json=body)).problem(422, "invalid_field")
        assert problem["detail"].startswith("expires_in:") and "3600" in problem["detail"]
    assert len(await links_of(alice, file_id)) == 2


async def test_without_a_default_a_link_lives_until_the_ceiling(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api = await make_api(store=store_of(s3), links={"max_expires_in": 60})
    alice, file_id = await owner_with_file(api, s3, bucket)
    assert 50 < seconds_until((await new_link(alice, file_id))["expires_at"]) <= 60
    assert 20 < seconds_until((await new_link(alice, file_id, expires_in=30))["expires_at"]) <= 30


def test_a_default_above_the_ceiling_is_a_config_error() -> None:
    from cdnstore.config import _validate
    from cdnstore.errors import ConfigError

    with pytest.raises(ConfigError, match="default_expires_in"):
        _validate({"links": {"default_expires_in": 120, "max_expires_in": 60}}, {})
    assert Config().links.default_expires_in == 0 and Config().links.max_expires_in == 0


def url_expires(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


async def test_a_link_download_url_lives_links_url_ttl_not_the_owners_hour(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    token = (await new_link(alice, file_id))["token"]
    got = (await pull(api, token)).expect(200)
    assert url_expires(got["url"]) == 300 and 290 < seconds_until(got["expires_at"]) <= 300
    # The owner's URL of the same file is signed apart (reused URLs are kept by lifetime too).
    own = (await alice.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    assert url_expires(own["url"]) == Config().downloads.url_ttl == 3600
    redirect = await pull(api, token, query="?redirect=true")
    assert redirect.status == 302 and url_expires(redirect.headers["Location"]) == 300
    assert (await api.fetch(got["url"]))[1] == DATA


# --- editing a link --------------------------------------------------------------------------------


async def edit(owner: Session, link: dict[str, Any], **body: Any) -> Answer:
    return await owner.patch(f"/api/v1/files/{link['file_id']}/links/{link['id']}", json=body)


async def test_an_owner_edits_a_links_password_expiry_and_limit_in_place(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id, password=SECRET_WORD, max_downloads=2, expires_in=60)
    (await pull(api, link["token"], SECRET_WORD)).expect(200)

    opened = (await edit(alice, link, password=None)).expect(200)  # null removes the password
    assert opened["has_password"] is False and opened["token"] == link["token"] and opened["url"] == link["url"]
    (await pull(api, link["token"])).expect(200)  # the same token, no password now: the limit (2) is reached
    assert (await edit(alice, link, expires_in=3600)).expect(200)["state"] == "used_up"
    (await pull(api, link["token"])).problem(410, "link_expired")

    more = (await edit(alice, link, max_downloads=None, password="a new secret")).expect(200)
    assert more["max_downloads"] is None and more["downloads"] == 2 and more["has_password"] is True
    assert 3590 < seconds_until(more["expires_at"]) <= 3600 and more["state"] == "active"
    (await pull(api, link["token"], SECRET_WORD)).problem(401, "invalid_password")
    (await pull(api, link["token"], "a new secret")).expect(200)
    never = (await edit(alice, link, expires_in=None)).expect(200)
    assert never["expires_at"] is None

    # A limit below the downloads made is refused, naming the field, unless the count starts again.
    refused = (await edit(alice, link, max_downloads=1)).problem(422, "invalid_field")
    assert refused["detail"].startswith("max_downloads:") and "3 downloads" in refused["detail"]
    reset = (await edit(alice, link, max_downloads=1, reset_downloads=True)).expect(200)
    assert (reset["downloads"], reset["max_downloads"], reset["state"]) == (0, 1, "active")
    (await pull(api, link["token"], "a new secret")).expect(200)
    assert (await look(api, link["token"])).status == 410

    # The same link through /links/{id}; history tells each edit and never a password.
    (await alice.patch(f"/api/v1/links/{link['id']}", json={"reset_downloads": True})).expect(200)
    (await pull(api, link["token"], "a new secret")).expect(200)
    edits = (await alice.get("/api/v1/history?event=link.updated")).expect(200)["items"]
    assert len(edits) == 6 and all(e["data"]["link_id"] == link["id"] for e in edits)
    named = {"link_id": link["id"], "name": "shared.txt"}
    assert edits[-1]["data"] == {**named, "has_password": False}
    assert edits[1]["data"] == {**named, "max_downloads": 1, "downloads_reset": True}
    assert edits[0]["data"] == {**named, "downloads_reset": True}
    assert SECRET_WORD not in str(edits) and "a new secret" not in str(edits)


async def test_editing_a_link_refuses_nothing_to_change_unknown_fields_and_other_users(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), links={"max_expires_in": 3600})
    alice, file_id = await owner_with_file(api, s3, bucket)
    link = await new_link(alice, file_id)
    (await edit(alice, link)).problem(422, "invalid_field")
    (await edit(alice, link, colour="red")).problem(422, "unknown_field")
    for body, field in (
        ({"expires_in": None}, "expires_in"),  # never: not with links.max_expires_in
        ({"expires_in": 3601}, "expires_in"),
        ({"max_downloads": 0}, "max_downloads"),
        ({"password": ""}, "password"),
        ({"reset_downloads": "yes"}, "reset_downloads"),
    ):
        assert (await edit(alice, link, **body)).problem(422, "invalid_field")["detail"].startswith(f"{field}:")
    eve = await api.user("eve")
    (await edit(eve, link, max_downloads=5)).problem(404, "file_not_found")
    (await eve.patch(f"/api/v1/links/{link['id']}", json={"max_downloads": 5})).problem(404, "link_not_found")
    (await eve.delete(f"/api/v1/links/{link['id']}")).problem(404, "link_not_found")
    other = (await alice.upload("other.txt", DATA))["file"]["id"]
    wrong_file = f"/api/v1/files/{other}/links/{link['id']}"  # her link, through a file it does not share
    (await alice.patch(wrong_file, json={"max_downloads": 5})).problem(404, "link_not_found")
    viewer = await api.user("viewer", permissions=["can_view_file", "can_view_filesharelink"])
    (await viewer.patch(f"/api/v1/links/{link['id']}", json={"max_downloads": 5})).problem(403, "forbidden")
    assert (await links_of(alice, file_id))[0]["max_downloads"] is None


# --- one link for several files --------------------------------------------------------------------


async def three_files(owner: Session) -> list[dict[str, Any]]:
    made = []
    for name, data, kind in (
        ("notes.txt", b"notes\n" * 50, "text/plain"),
        ("photo.png", PNG, "image/png"),
        ("empty.bin", b"", "application/octet-stream"),
    ):
        file = (await owner.upload(name, data, content_type=kind))["file"]
        await owner.wait_stored(file["id"])
        made.append({**file, "data": data})
    return made


async def many_link(owner: Session, file_ids: list[str], **body: Any) -> dict[str, Any]:
    return dict((await owner.post("/api/v1/links", json={"file_ids": file_ids, **body})).expect(201))


async def test_one_link_shares_several_files_each_downloadable_alone(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, _ = await owner_with_file(api, s3, bucket)
    notes, photo, empty = await three_files(alice)
    order = [photo["id"], notes["id"], empty["id"], photo["id"]]  # (named twice: once in the link)
    link = await many_link(alice, order, max_downloads=10)
    assert set(link) == LINK_KEYS and link["file_id"] is None and link["state"] == "active"
    assert [f["name"] for f in link["files"]] == ["photo.png", "notes.txt", "empty.bin"]

    info = (await look(api, link["token"])).expect(200)
    assert info["name"] == "3 files" and info["size"] == len(PNG) + len(notes["data"]) and info["downloads_left"] == 10
    assert [(f["id"], f["content_type"]) for f in info["files"]] == [
        (photo["id"], "image/png"),
        (notes["id"], "text/plain"),
        (empty["id"], "application/octet-stream"),
    ]
    problem = (await pull(api, link["token"])).problem(422, "invalid_field")
    assert problem["detail"].startswith("file_id:")
    for file in (notes, photo, empty):
        got = (
            await api.call(
                "POST",
                f"/api/v1/public/links/{link['token']}/download",
                json={"file_id": file["id"]},
                headers=from_ip(US_IP),
            )
        ).expect(200)
        assert (await api.fetch(got["url"]))[1] == file["data"]
    stranger = (await alice.upload("not shared.txt", DATA))["file"]["id"]
    (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={"file_id": stranger})).problem(
        404, "file_not_found"
    )
    assert (await alice.get(f"/api/v1/links/{link['id']}")).expect(200)["downloads"] == 3
    # It is among the links of each of its files, and the history names it by its first file.
    assert [x["id"] for x in await links_of(alice, notes["id"])] == [link["id"]]
    created = (await alice.get("/api/v1/history?event=link.created&limit=1")).expect(200)["items"][0]
    assert created["object_id"] == link["id"] and created["data"]["name"] == "photo.png and 2 more"


async def test_a_link_to_files_not_all_yours_is_404_and_makes_nothing(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    eve = await api.user("eve")
    eves = (await eve.upload("eve.txt", DATA))["file"]["id"]
    problem = (await alice.post("/api/v1/links", json={"file_ids": [file_id, eves]})).problem(404, "file_not_found")
    assert eves in problem["detail"]
    (await alice.post("/api/v1/links", json={"file_ids": [file_id, "not-a-file"]})).problem(404, "file_not_found")
    bodies: list[dict[str, Any]] = [{"file_ids": []}, {"file_ids": [file_id] * 1001}, {"file_ids": file_id}, {}]
    for body in bodies:
        assert (
            (await alice.post("/api/v1/links", json=body))
            .problem(422, "invalid_field")["detail"]
            .startswith("file_ids")
        )
    assert (await alice.get("/api/v1/links")).expect(200)["items"] == []
    (await api.call("POST", "/api/v1/links", json={"file_ids": [file_id]})).problem(401, "unauthorized")


async def test_a_deleted_file_leaves_its_links_and_a_link_with_none_left_is_410(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    alice, _ = await owner_with_file(api, s3, bucket)
    notes, photo, _empty = await three_files(alice)
    link = await many_link(alice, [notes["id"], photo["id"]])
    single = await new_link(alice, photo["id"])
    (await alice.delete(f"/api/v1/files/{notes['id']}")).expect(204)
    info = (await look(api, link["token"])).expect(200)
    assert [f["name"] for f in info["files"]] == ["photo.png"] and info["name"] == "1 file"
    (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={"file_id": notes["id"]})).problem(
        404, "file_not_found"
    )
    (await alice.delete(f"/api/v1/files/{photo['id']}")).expect(204)
    for token in (link["token"], single["token"]):
        (await look(api, token)).problem(410, "link_expired")
    mine = {x["id"]: x for x in (await alice.get("/api/v1/links")).expect(200)["items"]}
    assert (mine[link["id"]]["state"], mine[link["id"]]["files"]) == ("files_gone", [])
    assert mine[single["id"]]["state"] == "files_gone"


async def test_my_links_lists_every_link_of_every_kind_with_its_state(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, file_id = await owner_with_file(api, s3, bucket)
    notes, photo, _ = await three_files(alice)
    active = await new_link(alice, file_id)
    used_up = await new_link(alice, notes["id"], max_downloads=1)
    (await pull(api, used_up["token"])).expect(200)
    expired = await many_link(alice, [photo["id"], notes["id"]], expires_in=60)
    async with api.app[appkeys.DB].transaction() as tx:  # its minute has passed
        await tx.execute("UPDATE links SET expires_at = '2000-01-01T00:00:00.000Z' WHERE uuid = ?", (expired["id"],))
    brief = (await alice.upload("brief.txt", DATA))["file"]["id"]
    await alice.wait_stored(brief)  # (deleted while its storage event is handled, PostgreSQL may see a deadlock)
    gone = await new_link(alice, brief)
    (await alice.delete(f"/api/v1/files/{gone['file_id']}")).expect(204)
    eve = await api.user("eve")
    await new_link(eve, (await eve.upload("eve.txt", DATA))["file"]["id"])

    listed = (await alice.get("/api/v1/links")).expect(200)
    assert [(x["id"], x["state"]) for x in listed["items"]] == [
        (gone["id"], "files_gone"),
        (expired["id"], "expired"),
        (used_up["id"], "used_up"),
        (active["id"], "active"),
    ]
    assert listed["items"][1]["file_id"] is None and len(listed["items"][1]["files"]) == 2
    for state, made in (("active", active), ("expired", expired), ("used_up", used_up), ("files_gone", gone)):
        only = (await alice.get(f"/api/v1/links?state={state}")).expect(200)["items"]
        assert [x["id"] for x in only] == [made["id"]], state
    first = (await alice.get("/api/v1/links?limit=3")).expect(200)
    rest = (await alice.get(f"/api/v1/links?limit=3&cursor={first['next_cursor']}")).expect(200)
    assert [x["id"] for x in first["items"] + rest["items"]] == [x["id"] for x in listed["items"]]
    assert rest["next_cursor"] is None
    (await alice.get("/api/v1/links?state=broken")).problem(422, "invalid_field")
    viewer = await api.user("viewer", permissions=["can_view_file"])
    (await viewer.get("/api/v1/links")).problem(403, "forbidden")


async def test_two_downloads_racing_for_the_last_allowed_one_exactly_one_wins(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, _ = await owner_with_file(api, s3, bucket)
    notes, photo, _ = await three_files(alice)
    link = await many_link(alice, [notes["id"], photo["id"]], max_downloads=3)

    async def one(file: dict[str, Any]) -> Answer:
        path = f"/api/v1/public/links/{link['token']}/download"
        return await api.call("POST", path, json={"file_id": file["id"]}, headers=from_ip(US_IP))

    for _ in range(5):  # each round: two downloads made, two more race for the last one
        (await one(notes)).expect(200)
        (await one(photo)).expect(200)
        answers = await asyncio.gather(one(notes), one(photo))
        assert sorted(a.status for a in answers) == [200, 410]
        assert (await alice.get(f"/api/v1/links/{link['id']}")).expect(200)["downloads"] == 3
        (await alice.patch(f"/api/v1/links/{link['id']}", json={"reset_downloads": True})).expect(200)
    counted = (await alice.get("/api/v1/history?event=link.downloaded&limit=1000")).expect(200)["items"]
    assert len(counted) == 15


# --- previews ----------------------------------------------------------------------------------


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_previews_are_inline_for_media_pdf_and_text_and_attachments_for_the_rest(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    alice, _ = await owner_with_file(api, s3, bucket)
    cases = [  # (name, stored type, served inline as)
        ("photo.png", "image/png", "image/png"),
        ("clip.webm", "video/webm", "video/webm"),
        ("song.mp3", "audio/mpeg", "audio/mpeg"),
        ("paper.pdf", "application/pdf", "application/pdf"),
        ("latin.txt", "text/plain; charset=iso-8859-1", "text/plain; charset=iso-8859-1"),
        ("page.html", "text/html", None),
        ("drawing.svg", "image/svg+xml", None),
        ("data.xml", "application/xml", None),
        ("blob.bin", "application/octet-stream", None),
    ]
    for name, stored, shown in cases:
        file_id = (await alice.upload(name, PNG, content_type=stored))["file"]["id"]
        await alice.wait_stored(file_id)
        got = (await alice.get(f"/api/v1/files/{file_id}/download?inline=true", headers=from_ip(US_IP))).expect(200)
        asked = query_of(got["url"])
        status, _, headers = await api.fetch(got["url"])
        assert status == 200, name
        if shown is None:  # an attachment whatever was asked, served as stored
            assert asked["response-content-disposition"][0].startswith("attachment;"), name
            assert "response-content-type" not in asked and headers["Content-Disposition"].startswith("attachment;")
        else:
            assert asked["response-content-type"] == [shown], name
            assert headers["Content-Disposition"].startswith("inline;") and headers["Content-Type"] == shown, name
        plain = (await alice.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
        assert query_of(plain["url"])["response-content-disposition"][0].startswith("attachment;"), name
    previews = (await alice.get("/api/v1/history?event=file.downloaded&limit=100")).expect(200)["items"]
    assert sum(bool(i["data"].get("preview")) for i in previews) == 5


@REAL_ONLY  # ranges (the server's own reads)
async def test_a_link_preview_is_inline_counted_and_seekable(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, _ = await owner_with_file(api, s3, bucket)
    _, photo, _ = await three_files(alice)
    link = await new_link(alice, photo["id"], max_downloads=2)
    got = (await pull(api, link["token"], query="?inline=true")).expect(200)
    assert query_of(got["url"])["response-content-type"] == ["image/png"]
    async with aiohttp.ClientSession() as http:
        async with http.get(got["url"], headers={"Range": "bytes=8-15"}) as resp:  # (what a video's seek asks)
            assert resp.status == 206 and await resp.read() == PNG[8:16]
            assert resp.headers["Content-Disposition"].startswith("inline;")
    assert (await links_of(alice, photo["id"]))[0]["downloads"] == 1
    previewed = (await alice.get("/api/v1/history?event=link.downloaded&limit=1")).expect(200)["items"][0]
    assert previewed["data"]["preview"] is True


async def test_making_links_is_limited_per_user_a_minute_and_their_hashes_wait_in_the_bounded_queue(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    # (Checked on main: links.max_per_minute was no setting, and every password's hash waited, without a cap,
    # in front of the logins' checks.)
    api = await make_api(
        store=store_of(s3), links={"max_per_minute": 12}, auth={"argon2_max_running": 1, "argon2_max_waiting": 2}
    )
    alice, file_id = await owner_with_file(api, s3, bucket)
    argon2 = GatedArgon2(api)
    made = [
        asyncio.create_task(alice.post(f"/api/v1/files/{file_id}/links", json={"password": f"secret {n}"}))
        for n in range(10)
    ]
    # One hashes (held), two wait, seven are refused at once, while the hashing is still held.
    await wait_for(lambda: sum(t.done() for t in made) == 7, "the links beyond the queue answered at once")
    argon2.let_through(3)
    answers = await asyncio.gather(*made)
    assert Counter((a.status, a.body.get("code")) for a in answers) == {(201, None): 3, (429, "too_many_attempts"): 7}
    argon2.let_through(100)
    for _ in range(2):  # the other refused ones counted too: 12 a minute, 10 made or tried
        (await alice.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    refused = await alice.post(f"/api/v1/files/{file_id}/links", json={"password": "one more"})
    assert refused.problem(429, "too_many_links")["detail"].startswith("at most 12 links a minute")
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    bob = await api.user("bob")  # per user: bob makes his own
    bobs = (await bob.upload("bobs.txt", DATA))["file"]["id"]
    await bob.wait_stored(bobs)
    (await bob.post(f"/api/v1/files/{bobs}/links", json={"password": "his own"})).expect(201)
