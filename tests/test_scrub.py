"""Scrub: the replica table against what the buckets really hold, on real SeaweedFS servers."""

from __future__ import annotations

from datetime import UTC, datetime

from apihelp import US_IP, Api, object_key, put_bytes

from cdnstore import appkeys
from cdnstore.seaweed import WeedCluster

DATA = b"scrub me " * 500


async def test_scrub_finds_and_repairs_an_object_deleted_behind_cdnstores_back(api: Api, weed: WeedCluster,
                                                                               bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    answer = await admin.upload("precious.bin", DATA, ip=US_IP)
    await admin.wait_stored(answer["file"]["id"])
    await api.app[appkeys.WORKER].drain()
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    await storage.delete(weed.target("newyork", bucket), key)  # an operator's slip

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert (drifts["newyork"].missing, drifts["newyork"].lost) == (1, 0)
    assert drifts["dallas"].clean and drifts["dallas"].objects == 1
    await api.app[appkeys.WORKER].drain()
    assert (await storage.head(weed.target("newyork", bucket), key)) is not None
    assert all(d.clean for d in await api.app[appkeys.SCRUB].scrub())


async def test_scrub_removes_orphans_adopts_strays_and_leaves_unknown_objects(api: Api, weed: WeedCluster,
                                                                             bucket: str) -> None:
    admin = await api.user("root", admin=True)
    # Registered under other names, the servers' own webhooks reach no known server: what happens
    # behind cdnstore's back stays hidden from it, as it would with a lost event.
    await admin.add_server(weed, "dallas", bucket, name="dallas-quiet")
    newyork = await admin.add_server(weed, "newyork", bucket, name="newyork-quiet", is_active=False)
    answer = await admin.upload("a.bin", DATA, ip=US_IP)
    file_id = answer["file"]["id"]
    (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    put = storage.presign_put(weed.target("newyork", bucket), key, content_type="text/plain", size=len(DATA),
                              expires_in=60)
    assert await put_bytes({"method": "PUT", "url": put[0], "headers": put[1]}, DATA) == 200  # a stray copy
    stray = storage.presign_put(weed.target("dallas", bucket), "not-ours.txt", content_type="text/plain", size=3,
                                expires_in=60)
    assert await put_bytes({"method": "PUT", "url": stray[0], "headers": stray[1]}, b"abc") == 200

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert (drifts["newyork-quiet"].adopted, drifts["dallas-quiet"].unknown) == (1, 1)
    servers = (await admin.get(f"/api/v1/servers/{newyork['id']}")).expect(200)
    assert servers["files"] == 1

    await admin.delete(f"/api/v1/files/{file_id}")
    await api.app[appkeys.WORKER].drain()
    # Put the deleted object back behind cdnstore's back: an orphan.
    again = storage.presign_put(weed.target("dallas", bucket), key, content_type="text/plain", size=len(DATA),
                                expires_in=60)
    assert await put_bytes({"method": "PUT", "url": again[0], "headers": again[1]}, DATA) == 200
    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert drifts["dallas-quiet"].orphans == 1
    await api.app[appkeys.WORKER].drain()
    assert await storage.head(weed.target("dallas", bucket), key) is None
    assert await storage.head(weed.target("dallas", bucket), "not-ours.txt") is not None


async def test_scrub_aborts_multipart_uploads_that_a_crash_left_behind(make_api: object, weed: WeedCluster,
                                                                       bucket: str) -> None:
    api = await make_api(scrub={"stale_upload_after": 0})  # type: ignore[operator]
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    answer = await admin.upload("big.bin", DATA, ip=US_IP)
    await admin.wait_stored(answer["file"]["id"])
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    target = weed.target("newyork", bucket)
    client = await storage._client(target)  # a copy that died after its first part
    upload = await client.create_multipart_upload(Bucket=bucket, Key=key)
    await client.create_multipart_upload(Bucket=bucket, Key="someone-elses.bin")
    assert len(await storage.stale_uploads(target, datetime.now(UTC))) == 2

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert drifts["newyork"].aborted == 1
    left = await storage.stale_uploads(target, datetime.now(UTC))
    assert [k for k, _ in left] == ["someone-elses.bin"]  # not ours: left alone
    assert upload["UploadId"] not in {u for _, u in left}
