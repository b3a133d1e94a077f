"""Running cdnstore for a team, against real SeaweedFS: disabled and deleted users, quotas, data residency and
download statistics."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from apihelp import SOUTH_AFRICA_IP, US_IP, Api, Session, from_ip, put_bytes, wait_for
from conftest import MakeApi

from cdnstore import appkeys
from testbed.demo import ORIGINAL_LAYOUT
from testbed.seaweed import WeedCluster

SERVERS = [site.name for site in ORIGINAL_LAYOUT]
MIB = 1 << 20


async def team(api: Api, weed: WeedCluster, bucket: str) -> tuple[Session, Session]:
    """An administrator with the five servers, and a user alice."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    return admin, await api.user("alice")


async def stored(session: Session, name: str, data: bytes, ip: str = US_IP) -> dict[str, Any]:
    file = (await session.upload(name, data, ip=ip))["file"]
    return await session.wait_stored(file["id"])


async def keys_in(api: Api, weed: WeedCluster, server: str, bucket: str) -> set[str]:
    return {o.key async for o in api.app[appkeys.STORAGE].list_objects(weed.target(server, bucket))}


async def used(admin: Session, user: Session) -> int:
    return int((await admin.get(f"/api/v1/users/{user.user['id']}")).expect(200)["used_bytes"])


async def used_is(admin: Session, user: Session, expected: int) -> bool:
    return await used(admin, user) == expected


# --- disable and delete ------------------------------------------------------------------------------


async def test_a_disabled_users_share_links_answer_410_until_they_are_enabled(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    file = await stored(alice, "shared.txt", b"shared\n")
    token = (await alice.post(f"/api/v1/files/{file['id']}/links", json={})).expect(201)["token"]
    (await api.call("GET", f"/api/v1/public/links/{token}")).expect(200)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": True})).expect(200)
    (await api.call("GET", f"/api/v1/public/links/{token}")).problem(410, "link_expired")
    (await api.call("POST", f"/api/v1/public/links/{token}/download", json={})).problem(410, "link_expired")
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": False})).expect(200)
    (await api.call("POST", f"/api/v1/public/links/{token}/download", json={})).expect(200)


async def test_a_deleted_users_objects_are_removed_from_every_server_and_their_links_stop(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    mine = await stored(admin, "admins.txt", b"the admin's\n")
    files = [await stored(alice, f"file{i}.txt", b"alice's bytes\n" * (i + 1)) for i in range(3)]
    token = (await alice.post(f"/api/v1/files/{files[0]['id']}/links", json={})).expect(201)["token"]
    await alice.announce("never-sent.txt", b"x" * 10)  # an upload in progress goes too
    await api.app[appkeys.WORKER].run_until_idle()
    before = {server: await keys_in(api, weed, server, bucket) for server in SERVERS}
    assert sum(len(keys) for keys in before.values()) >= 2 * 4  # dallas and newyork hold every file
    (await admin.delete(f"/api/v1/users/{alice.user['id']}")).expect(204)
    (await api.call("GET", f"/api/v1/public/links/{token}")).problem(404, "link_not_found")
    await api.app[appkeys.WORKER].run_until_idle()
    admins_key = await api.app[appkeys.DB].fetchval(
        "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?",
        (mine["id"],),
    )
    for server in SERVERS:
        assert await keys_in(api, weed, server, bucket) <= {admins_key}, server
    history = await api.app[appkeys.DB].fetchval(
        "SELECT count(*) FROM history h JOIN users u ON u.id = h.user_id WHERE u.uuid = ?", (alice.user["id"],)
    )
    assert history == 0
    (await admin.get(f"/api/v1/files/{mine['id']}")).expect(200)


async def test_a_deleted_users_multipart_upload_in_progress_is_aborted_by_the_deletions_jobs(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    api = await make_api(uploads={"multipart_threshold": 5 << 20})
    admin, alice = await team(api, weed, bucket)
    announced = await alice.post(
        "/api/v1/files",
        json={"name": "big.bin", "size": 6 << 20, "content_type": "application/octet-stream"},
        headers=from_ip(US_IP),
    )
    file_id = announced.expect(201)["file"]["id"]
    part = (await alice.post(f"/api/v1/files/{file_id}/upload/parts", json={"numbers": [1]})).expect(200)["items"][0]
    assert await put_bytes(part, b"p" * (5 << 20)) == 200
    name = await api.app[appkeys.DB].fetchval(
        "SELECT s.name FROM files f JOIN versions v ON v.id = f.latest_version_id "
        "JOIN servers s ON s.id = v.upload_server_id WHERE f.uuid = ?",
        (file_id,),
    )
    target, storage = weed.target(name, bucket), api.app[appkeys.STORAGE]
    in_progress = functools.partial(storage.stale_uploads, target, datetime.now(UTC) + timedelta(days=1))
    assert len(await in_progress()) == 1
    (await admin.delete(f"/api/v1/users/{alice.user['id']}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await in_progress() == []  # aborted by the deletion's jobs, not left for scrub


async def test_admins_see_how_many_files_each_user_has_and_would_lose_with_them(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    await api.user("bob")
    for i in range(2):
        await stored(alice, f"file{i}.txt", b"alice's\n")
    await alice.announce("on-its-way.txt", b"x" * 10)  # an upload in progress is hers too
    gone = await stored(alice, "gone.txt", b"deleted\n")
    (await alice.delete(f"/api/v1/files/{gone['id']}")).expect(204)
    listed = {u["username"]: u["files"] for u in (await admin.get("/api/v1/users")).expect(200)["items"]}
    assert listed == {"root": 0, "alice": 3, "bob": 0}
    assert (await admin.get(f"/api/v1/users/{alice.user['id']}")).expect(200)["files"] == 3
    assert "files" not in (await alice.get("/api/v1/me")).expect(200)  # an admin's view of others only


# --- quotas --------------------------------------------------------------------------------------------


async def test_used_bytes_is_the_size_of_the_stored_current_versions(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin, alice = await team(api, weed, bucket)
    a = await stored(alice, "a.txt", b"a" * 100)
    await stored(alice, "b.txt", b"b" * 200)
    await alice.announce("c.txt", b"c" * 1000)  # uploading: not stored, not used
    assert await used(admin, alice) == 300
    assert (await alice.get("/api/v1/me")).expect(200)["used_bytes"] == 300
    await alice.upload("a.txt", b"a" * 40, expect=200)  # a new version replaces the old one's bytes
    assert await wait_for(lambda: used_is(admin, alice, 240), "used_bytes to follow the new version")
    (await alice.delete(f"/api/v1/files/{a['id']}")).expect(204)
    assert await used(admin, alice) == 200


async def test_two_concurrent_announcements_that_together_pass_the_quota_get_one_507(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"quota_bytes": 1000})).expect(200)
    await stored(alice, "first.txt", b"f" * 200)
    answers = await asyncio.gather(
        *(
            alice.post("/api/v1/files", json={"name": f"big{i}.bin", "size": 500}, headers=from_ip(US_IP))
            for i in range(2)
        )
    )
    assert sorted(a.status for a in answers) == [201, 507], answers
    refused = next(a for a in answers if a.status == 507).problem(507, "quota_exceeded")
    assert refused["available_bytes"] == 300 and "300" in refused["detail"], refused
    (await alice.post("/api/v1/files", json={"name": "fits.bin", "size": 300}, headers=from_ip(US_IP))).expect(201)
    (await alice.post("/api/v1/files", json={"name": "one.bin", "size": 1}, headers=from_ip(US_IP))).problem(
        507, "quota_exceeded"
    )


async def test_a_new_version_counts_only_what_it_adds_to_the_file(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin, alice = await team(api, weed, bucket)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"quota_bytes": 1000})).expect(200)
    await stored(alice, "doc.txt", b"d" * 800)
    (await alice.post("/api/v1/files", json={"name": "doc.txt", "size": 900}, headers=from_ip(US_IP))).expect(200)
    (await alice.post("/api/v1/files", json={"name": "doc.txt", "size": 10}, headers=from_ip(US_IP))).expect(200)
    (await alice.post("/api/v1/files", json={"name": "other.txt", "size": 101}, headers=from_ip(US_IP))).problem(
        507, "quota_exceeded"
    )
    (await alice.post("/api/v1/files", json={"name": "other.txt", "size": 100}, headers=from_ip(US_IP))).expect(201)


async def test_uploads_stored_but_awaiting_verification_count_against_the_quota(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    # Multipart uploads declaring their SHA-256, to Cape Town (alone in its zone): each is stored, but its
    # file's content only once the verifier's read confirms it; meanwhile its bytes take space all the same.
    api = await make_api(uploads={"multipart_threshold": 5 * MIB})
    admin, alice = await team(api, weed, bucket)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"quota_bytes": 20 * MIB})).expect(200)
    big = bytes(range(256)) * (6 * MIB // 256)
    sha256 = hashlib.sha256(big).hexdigest()
    for i in range(3):  # back to back: announced, sent and completed one after another
        file_id = await alice.upload_in_parts(f"big{i}.bin", big, sha256, ip=SOUTH_AFRICA_IP)
        assert (await alice.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "uploading"
    assert await used(admin, alice) == 0  # used_bytes: the stored content only, as the contract says
    announce = {"name": "big3.bin", "size": len(big), "sha256": sha256}
    refused = (await alice.post("/api/v1/files", json=announce, headers=from_ip(SOUTH_AFRICA_IP))).problem(
        507, "quota_exceeded"
    )
    assert (refused["pending_bytes"], refused["available_bytes"]) == (18 * MIB, 2 * MIB), refused

    assert await api.app[appkeys.INTEGRITY].verify() == 3  # confirmed: now their files' content
    assert await used(admin, alice) == 18 * MIB
    refused = (await alice.post("/api/v1/files", json=announce, headers=from_ip(SOUTH_AFRICA_IP))).problem(
        507, "quota_exceeded"
    )
    assert (refused["pending_bytes"], refused["available_bytes"]) == (0, 2 * MIB), refused


async def test_new_users_get_the_configured_default_quota(make_api: Any) -> None:
    api = await make_api(users={"default_quota_bytes": 5000})
    admin = await api.user("root", admin=True)
    made = (await admin.post("/api/v1/users", json={"username": "alice", "password": "pass-word-1"})).expect(201)
    assert made["quota_bytes"] == 5000
    free = (
        await admin.post("/api/v1/users", json={"username": "bob", "password": "pass-word-1", "quota_bytes": None})
    ).expect(201)
    assert free["quota_bytes"] is None


# --- residency -----------------------------------------------------------------------------------------


async def test_a_user_limited_to_africa_uploading_from_the_us_gets_cape_town(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    limited = (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"zones": ["Africa"]})).expect(200)
    assert limited["zones"] == ["Africa"]
    answer = await alice.upload("local.txt", b"stays in Africa\n", ip=US_IP)
    assert answer["upload"]["server"] == {"name": "capetown", "location": "Cape Town", "zone": "Africa"}
    file = await alice.wait_stored(answer["file"]["id"])
    assert file["zone"] == "Africa"
    await api.app[appkeys.WORKER].run_until_idle()
    where = (await admin.get(f"/api/v1/files/{file['id']}/servers")).expect(200)["items"]
    assert [item["server"]["name"] for item in where] == ["capetown"]


async def test_changing_zones_moves_nothing_and_admins_see_the_files_outside_them(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    before = await stored(alice, "american.txt", b"stored in the USA\n", ip=US_IP)
    changed = (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"zones": ["Africa"]})).expect(200)
    assert changed["files_outside_zones"] == 1
    assert (await alice.get(f"/api/v1/files/{before['id']}")).expect(200)["zone"] == "USA"
    await stored(alice, "african.txt", b"stored in Africa\n", ip=US_IP)
    listed = {u["username"]: u for u in (await admin.get("/api/v1/users")).expect(200)["items"]}
    assert listed["alice"]["files_outside_zones"] == 1
    assert "files_outside_zones" not in listed["root"]  # (any zone: nothing is outside)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"zones": ["Russia"]})).expect(200)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": False})).expect(200)
    again = (await admin.get(f"/api/v1/users/{alice.user['id']}")).expect(200)
    assert again["files_outside_zones"] == 2


# --- download statistics -------------------------------------------------------------------------------


async def test_the_statistics_count_owner_and_link_downloads_per_server_and_day_exactly(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    american = await stored(alice, "american.bin", b"u" * 1000, ip=US_IP)
    african = await stored(alice, "african.bin", b"a" * 300, ip=SOUTH_AFRICA_IP)
    token = (await alice.post(f"/api/v1/files/{american['id']}/links", json={})).expect(201)["token"]
    for _ in range(3):
        (await alice.get(f"/api/v1/files/{american['id']}/download", headers=from_ip(US_IP))).expect(200)
    for _ in range(2):
        (await api.call("POST", f"/api/v1/public/links/{token}/download", json={}, headers=from_ip(US_IP))).expect(200)
    (await alice.get(f"/api/v1/files/{african['id']}/download", headers=from_ip(SOUTH_AFRICA_IP))).expect(200)
    (await alice.get(f"/api/v1/files/{american['id']}/download?redirect=true", headers=from_ip(US_IP))).expect(302)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    stats = (await admin.get("/api/v1/stats/downloads?days=30")).expect(200)["items"]
    assert stats == [
        {"day": today, "server": "capetown", "downloads": 1, "bytes": 300},
        {"day": today, "server": "dallas", "downloads": 6, "bytes": 6000},
    ]
    assert (await admin.get("/api/v1/stats/downloads")).expect(200)["items"] == stats
    (await alice.get("/api/v1/stats/downloads")).problem(403, "forbidden")
    for days in ("0", "367", "many"):
        (await admin.get(f"/api/v1/stats/downloads?days={days}")).problem(422, "invalid_field")


async def test_the_statistics_keep_earlier_days_newest_first(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin, alice = await team(api, weed, bucket)
    file = await stored(alice, "daily.bin", b"d" * 10)
    dallas = await api.app[appkeys.DB].fetchval("SELECT id FROM servers WHERE name = 'dallas'")
    async with api.app[appkeys.DB].transaction() as tx:  # two earlier days, as a long-running daemon has them
        await tx.executemany(
            "INSERT INTO download_stats (day, server_id, downloads, bytes) VALUES (?, ?, ?, ?)",
            [(day_ago(1), dallas, 4, 40), (day_ago(40), dallas, 9, 90)],
        )
    (await alice.get(f"/api/v1/files/{file['id']}/download", headers=from_ip(US_IP))).expect(200)
    days = [(s["day"], s["downloads"]) for s in (await admin.get("/api/v1/stats/downloads")).expect(200)["items"]]
    assert days == [(day_ago(0), 1), (day_ago(1), 4)]
    assert len((await admin.get("/api/v1/stats/downloads?days=366")).expect(200)["items"]) == 3


def day_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")
