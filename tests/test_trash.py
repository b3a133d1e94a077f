"""Files that expire, and the trash: against real SeaweedFS servers, through the public API."""

from __future__ import annotations

from typing import Any

from apihelp import US_IP, Api, Session, from_ip, object_key, put_bytes

from cdnstore import appkeys
from cdnstore.db import iso_in
from testbed.seaweed import WeedCluster

DATA = b"kept for a while\n" * 64
WEEK = 7 * 86400


async def team(api: Api, weed: WeedCluster, bucket: str) -> tuple[Session, Session]:
    """root (an admin) registered the Dallas server; alice is an ordinary user."""
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket)
    return admin, await api.user("alice")


async def with_trash(make_api: Any, **sections: Any) -> Api:
    """A daemon that keeps deleted files a week (the suite's daemons delete at once: conftest)."""
    api: Api = await make_api(files={"trash_days": 7}, **sections)
    return api


async def stored(user: Session, name: str, data: bytes = DATA, **body: Any) -> dict[str, Any]:
    """A new file announced (with more of `body`), sent and confirmed; the announcement's answer."""
    fields = {"name": name, "size": len(data), "content_type": "text/plain", **body}
    answer = dict((await user.post("/api/v1/files", json=fields, headers=from_ip(US_IP))).expect(201))
    assert await put_bytes(answer["upload"], data) == 200
    (await user.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
    return answer


async def on_server(api: Api, weed: WeedCluster, bucket: str, key: str) -> bool:
    """Whether Dallas holds the object `key`."""
    return await api.app[appkeys.STORAGE].head(weed.target("dallas", bucket), key) is not None


async def used(user: Session) -> int:
    return int((await user.get("/api/v1/me")).expect(200)["used_bytes"])


async def trash_of(user: Session) -> list[dict[str, Any]]:
    return list((await user.get("/api/v1/trash")).expect(200)["items"])


async def test_a_deleted_file_waits_in_the_trash_kept_counted_unseen_and_comes_back_with_its_links(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await with_trash(make_api)
    _, alice = await team(api, weed, bucket)
    answer = await stored(alice, "notes.txt")
    file_id, key = answer["file"]["id"], object_key(answer["upload"])
    link = (await alice.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    (await alice.delete(f"/api/v1/files/{file_id}")).expect(204)

    assert (await alice.get("/api/v1/files")).expect(200)["items"] == []
    (await alice.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    (await alice.get(f"/api/v1/files/{file_id}/download")).problem(404, "file_not_found")
    (await api.call("GET", f"/api/v1/public/links/{link['token']}")).problem(410, "link_expired")
    (await api.call("POST", f"/api/v1/public/links/{link['token']}/download")).problem(410, "link_expired")
    [trashed] = await trash_of(alice)
    assert trashed["id"] == file_id and trashed["name"] == "notes.txt" and trashed["size"] == len(DATA)
    assert iso_in(WEEK - 60) < trashed["purge_at"] <= iso_in(WEEK) and trashed["deleted_at"] <= iso_in(0)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await on_server(api, weed, bucket, key)  # its bytes stay where they were
    assert await used(alice) == len(DATA)  # and still count in the quota
    deleted = (await alice.get("/api/v1/history", params={"event": "file.deleted"})).expect(200)["items"]
    assert deleted[0]["data"] == {"name": "notes.txt", "purge_at": trashed["purge_at"]}

    restored = (await alice.post(f"/api/v1/trash/{file_id}/restore")).expect(200)
    assert restored["id"] == file_id and restored["status"] == "stored"
    assert await trash_of(alice) == []
    assert [f["id"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == [file_id]
    got = (await api.call("POST", f"/api/v1/public/links/{link['token']}/download")).expect(200)
    assert got["server"]["name"] == "dallas"
    assert (await alice.download(file_id))[1] == DATA
    assert await used(alice) == len(DATA)
    (await alice.post(f"/api/v1/trash/{file_id}/restore")).problem(404, "file_not_found")


async def test_restoring_over_a_new_file_of_the_same_name_is_409_until_it_is_renamed(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await with_trash(make_api)
    _, alice = await team(api, weed, bucket)
    old = (await stored(alice, "plan.txt", b"the old plan"))["file"]["id"]
    (await alice.delete(f"/api/v1/files/{old}")).expect(204)
    new = (await stored(alice, "plan.txt", b"the new plan"))["file"]["id"]  # the name is free: a new file
    assert new != old
    (await alice.post(f"/api/v1/trash/{old}/restore")).problem(409, "name_taken")
    (await alice.patch(f"/api/v1/files/{new}", json={"name": "plan v2.txt"})).expect(200)
    (await alice.post(f"/api/v1/trash/{old}/restore")).expect(200)
    assert (await alice.download(old))[1] == b"the old plan"
    assert (await alice.download(new))[1] == b"the new plan"


async def test_a_purged_file_is_removed_everywhere_and_leaves_the_quota(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await with_trash(make_api)
    _, alice = await team(api, weed, bucket)
    answer = await stored(alice, "gone.txt")
    file_id, key = answer["file"]["id"], object_key(answer["upload"])
    kept = (await stored(alice, "kept.txt", b"k" * 10))["file"]["id"]
    for each in (file_id, kept):
        (await alice.delete(f"/api/v1/files/{each}")).expect(204)
    (await alice.delete(f"/api/v1/trash/{file_id}")).expect(204)
    (await alice.delete(f"/api/v1/trash/{file_id}")).problem(404, "file_not_found")
    (await alice.post(f"/api/v1/trash/{file_id}/restore")).problem(404, "file_not_found")
    assert [f["id"] for f in await trash_of(alice)] == [kept]
    assert await used(alice) == 10
    await api.app[appkeys.WORKER].run_until_idle()
    assert not await on_server(api, weed, bucket, key)
    purged = (await alice.get("/api/v1/history", params={"event": "file.purged"})).expect(200)["items"]
    assert [(p["object_id"], p["data"]["reason"]) for p in purged] == [(file_id, "purged_by_owner")]


async def test_the_trash_is_emptied_of_the_files_whose_time_is_up(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await with_trash(make_api)
    _, alice = await team(api, weed, bucket)
    answer = await stored(alice, "old.txt")
    key = object_key(answer["upload"])
    (await alice.delete(f"/api/v1/files/{answer['file']['id']}")).expect(204)
    later = (await stored(alice, "later.txt"))["file"]["id"]
    (await alice.delete(f"/api/v1/files/{later}")).expect(204)
    async with api.app[appkeys.DB].transaction() as tx:  # old.txt was deleted a week ago
        await tx.execute("UPDATE files SET purge_at = ? WHERE uuid = ?", (iso_in(-1), answer["file"]["id"]))
    assert await api.app[appkeys.TRASH].sweep() == 1
    assert [f["id"] for f in await trash_of(alice)] == [later]
    await api.app[appkeys.WORKER].run_until_idle()
    assert not await on_server(api, weed, bucket, key)
    assert await used(alice) == len(DATA)
    assert await api.app[appkeys.TRASH].sweep(now=iso_in(WEEK + 60)) == 1  # a week on: later.txt too
    assert await trash_of(alice) == []


async def test_with_trash_days_0_a_deletion_removes_the_file_at_once(api: Api, weed: WeedCluster, bucket: str) -> None:
    _, alice = await team(api, weed, bucket)  # (conftest: files.trash_days = 0)
    answer = await stored(alice, "now.txt")
    (await alice.delete(f"/api/v1/files/{answer['file']['id']}")).expect(204)
    assert await trash_of(alice) == [] and await used(alice) == 0
    await api.app[appkeys.WORKER].run_until_idle()
    assert not await on_server(api, weed, bucket, object_key(answer["upload"]))


async def test_a_file_still_uploading_is_deleted_at_once_not_kept(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await with_trash(make_api)
    _, alice = await team(api, weed, bucket)
    file_id = (await alice.announce("never-sent.txt", DATA))["file"]["id"]
    (await alice.delete(f"/api/v1/files/{file_id}")).expect(204)
    assert await trash_of(alice) == []
    # A stored file's new version still under way is given up; the stored content waits in the trash.
    answer = await stored(alice, "doc.txt", b"version one")
    await alice.announce("doc.txt", b"version two", expect=200)
    (await alice.delete(f"/api/v1/files/{answer['file']['id']}")).expect(204)
    statuses = await api.app[appkeys.DB].fetchall(
        "SELECT v.status FROM versions v JOIN files f ON f.id = v.file_id WHERE f.uuid = ? ORDER BY v.id",
        (answer["file"]["id"],),
    )
    assert [r["status"] for r in statuses] == ["stored", "deleted"]
    (await alice.post(f"/api/v1/trash/{answer['file']['id']}/restore")).expect(200)
    assert (await alice.download(answer["file"]["id"]))[1] == b"version one"


async def test_an_expired_file_is_deleted_as_its_owner_would_into_the_trash(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await with_trash(make_api)
    _, alice = await team(api, weed, bucket)
    soon = iso_in(3600)
    answer = await stored(alice, "temporary.txt", expires_at=soon)
    file_id = answer["file"]["id"]
    assert answer["file"]["expires_at"] == soon
    forever = (await stored(alice, "forever.txt"))["file"]["id"]
    link = (await alice.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    trash = api.app[appkeys.TRASH]
    assert await trash.sweep() == 0  # not yet
    assert await trash.sweep(now=iso_in(3601)) == 1  # an hour on
    assert [f["id"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == [forever]
    assert [f["id"] for f in await trash_of(alice)] == [file_id]
    (await api.call("GET", f"/api/v1/public/links/{link['token']}")).problem(410, "link_expired")
    deleted = (await alice.get("/api/v1/history", params={"event": "file.deleted"})).expect(200)["items"]
    assert deleted[0]["data"]["reason"] == "expired"
    async with api.app[appkeys.DB].transaction() as tx:  # the hour has passed indeed
        await tx.execute("UPDATE files SET expires_at = ? WHERE uuid = ?", (iso_in(-1), file_id))
    back = (await alice.post(f"/api/v1/trash/{file_id}/restore")).expect(200)
    assert back["expires_at"] is None  # not deleted again at once: alice has no default lifetime
    (await api.call("GET", f"/api/v1/public/links/{link['token']}")).expect(200)


async def test_expiry_is_set_at_upload_and_changed_later_within_the_owners_maximum(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await team(api, weed, bucket)
    path = f"/api/v1/files/{(await stored(alice, 'a.txt'))['file']['id']}"
    assert (await alice.get(path)).expect(200)["expires_at"] is None
    for wrong in ("2000-01-01T00:00:00Z", "tomorrow", "2030-01-01T00:00:00"):  # past, no time, no offset
        (await alice.patch(path, json={"expires_at": wrong})).problem(422, "invalid_field")
    moved = (await alice.patch(path, json={"expires_at": "2099-05-01T12:00:00+02:00"})).expect(200)
    assert moved["expires_at"] == "2099-05-01T10:00:00.000Z"  # stored as every time is: UTC, milliseconds
    assert (await alice.patch(path, json={"expires_at": None})).expect(200)["expires_at"] is None

    limits = {"max_file_lifetime": 86400, "default_file_lifetime": 3600}
    answer = (await admin.patch(f"/api/v1/users/{alice.user['id']}", json=limits)).expect(200)
    assert (answer["max_file_lifetime"], answer["default_file_lifetime"]) == (86400, 3600)
    (await alice.patch(path, json={"expires_at": None})).problem(422, "invalid_field")
    (await alice.patch(path, json={"expires_at": iso_in(2 * 86400)})).problem(422, "invalid_field")
    (await alice.patch(path, json={"expires_at": iso_in(3600 * 20)})).expect(200)
    new = (await stored(alice, "b.txt", expires_at=iso_in(600)))["file"]
    assert new["expires_at"] <= iso_in(600)
    default = (await alice.announce("c.txt", DATA))["file"]
    assert iso_in(3500) < default["expires_at"] <= iso_in(3600)  # absent: the default lifetime
    again = (await alice.announce("c.txt", DATA, expect=200))["file"]
    assert again["expires_at"] == default["expires_at"]  # a new version keeps its file's expiry
    (await alice.post("/api/v1/files", json={"name": "d.txt", "size": 1, "expires_at": None})).problem(
        422, "invalid_field"
    )


async def test_deleting_a_user_empties_their_trash_too(make_api: Any, weed: WeedCluster, bucket: str) -> None:
    api = await with_trash(make_api)
    admin, alice = await team(api, weed, bucket)
    answer = await stored(alice, "private.txt")
    (await alice.delete(f"/api/v1/files/{answer['file']['id']}")).expect(204)
    (await admin.delete(f"/api/v1/users/{alice.user['id']}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    assert not await on_server(api, weed, bucket, object_key(answer["upload"]))
    left = await api.app[appkeys.DB].fetchval("SELECT count(*) FROM files WHERE purge_at IS NOT NULL")
    assert left == 0
