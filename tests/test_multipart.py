"""Big files in parts: multipart announcements, part URLs, the resume view, completion, abort and the sweep,
through the API on the `s3` servers (tests/s3bed.py: in memory, the fast tier, and real SeaweedFS), and a
300 MiB file through a real `cdnstore serve` (parts of the 5 MiB minimum, generated on the fly)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import aiohttp
from apihelp import US_IP, Api, Session, from_ip, put_bytes, wait_for
from daemonproc import admin_session, write_config
from s3bed import S3Bed, store_of
from weedbed import md5_of_get

from cdnstore import appkeys
from cdnstore.parts import MAX_PARTS, MIN_PART, part_size_for
from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.demo import ORIGINAL_LAYOUT
from testbed.seaweed import WeedCluster

MIB = 1 << 20
# A low threshold, so that a file of a few parts is uploaded in parts.
SMALL_THRESHOLD = {"uploads": {"multipart_threshold": 5 * MIB}}


def part_bytes(number: int, size: int) -> bytes:
    """Part `number`'s bytes: a pattern of its own, made on the fly."""
    block = hashlib.sha256(f"part {number}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def parts_of(size: int, part_size: int) -> Iterator[tuple[int, bytes]]:
    number, left = 1, size
    while left > 0:
        yield number, part_bytes(number, min(part_size, left))
        number, left = number + 1, left - part_size


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


async def announce(user: Session, name: str, size: int, expect: int = 201) -> dict[str, Any]:
    answer = await user.post(
        "/api/v1/files",
        json={"name": name, "size": size, "content_type": "application/octet-stream"},
        headers=from_ip(US_IP),
    )
    return dict(answer.expect(expect))


async def put_part(item: dict[str, Any], data: bytes) -> int:
    """A part PUT straight to a real server (what `cdnstore serve`'s tests send)."""
    return await put_bytes(item, data)


async def part_urls(
    user: Session, file_id: str, numbers: list[int], md5: dict[str, str] | None = None
) -> dict[int, dict[str, Any]]:
    body: dict[str, Any] = {"numbers": numbers}
    if md5 is not None:
        body["md5"] = md5
    items = (await user.post(f"/api/v1/files/{file_id}/upload/parts", json=body)).expect(200)["items"]
    return {item["number"]: item for item in items}


async def multipart_uploads(api: Api, s3: S3Bed, bucket: str, server: str = "dallas") -> list[Any]:
    """The multipart uploads a server holds in the bucket (asked of S3 directly)."""
    future = datetime.now(UTC) + timedelta(days=1)
    return await api.app[appkeys.STORAGE].stale_uploads(s3.target(server, bucket), future)


async def setup(make_api: Any, s3: S3Bed, bucket: str, **sections: Any) -> tuple[Api, Session]:
    sections["uploads"] = {**SMALL_THRESHOLD["uploads"], **sections.get("uploads", {})}
    api: Api = await make_api(store=store_of(s3), **sections)
    admin = await api.user("root", admin=True)
    await admin.add_layout(s3, bucket)
    return api, admin


def test_the_part_size_fits_5_tib_in_10000_parts_and_is_never_under_5_mib() -> None:
    assert part_size_for(1) == MIN_PART and part_size_for(300 * MIB) == MIN_PART
    for size in (6 << 30, 100 << 30, 1 << 40, 5 << 40):
        part = part_size_for(size)
        assert part >= MIN_PART and -(-size // part) <= MAX_PARTS and part % MIB == 0


async def test_a_6_gib_announcement_gets_a_multipart_upload(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api, admin = await setup(make_api, s3, bucket, uploads={"multipart_threshold": 64 * MIB})
    answer = await announce(admin, "disk.img", 6 << 30)
    upload = answer["upload"]
    assert upload["method"] == "multipart" and "url" not in upload
    assert upload["part_size"] == 5 * MIB and upload["parts"] == -(-(6 << 30) // (5 * MIB))
    assert upload["server"]["name"] == "dallas" and answer["file"]["status"] == "uploading"
    assert len(await multipart_uploads(api, s3, bucket)) == 1
    huge = await announce(admin, "huge.img", 5 << 40)
    assert huge["upload"]["parts"] <= MAX_PARTS
    (await admin.post("/api/v1/files", json={"name": "too.img", "size": (5 << 40) + 1})).problem(413, "file_too_large")


async def test_a_file_at_the_threshold_is_one_put(make_api: Any, s3: S3Bed, bucket: str) -> None:
    _, admin = await setup(make_api, s3, bucket)
    answer = await announce(admin, "edge.bin", 5 * MIB)
    assert answer["upload"]["method"] == "PUT"
    file_id = answer["file"]["id"]
    view = (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)
    assert view["method"] == "PUT" and view["parts"] == 1 and view["uploaded"] == [] and view["url"]
    (await admin.post(f"/api/v1/files/{file_id}/upload/parts", json={"numbers": [1]})).problem(409, "not_multipart")
    assert await admin.api.put_bytes(view, part_bytes(1, 5 * MIB)) == 200
    (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    (await admin.get(f"/api/v1/files/{file_id}/upload")).problem(404, "no_upload")


async def test_parts_are_resumed_from_the_servers_list_and_assembled(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api, admin = await setup(make_api, s3, bucket)
    size = 11 * MIB + 123
    answer = await announce(admin, "video.mp4", size)
    file_id, upload = answer["file"]["id"], answer["upload"]
    assert (upload["method"], upload["part_size"], upload["parts"]) == ("multipart", 5 * MIB, 3)
    parts = dict(parts_of(size, 5 * MIB))
    urls = await part_urls(admin, file_id, [3, 1])
    assert [urls[3]["headers"], urls[1]["headers"]] == [
        {"Content-Length": str(MIB + 123)},
        {"Content-Length": str(5 * MIB)},
    ]
    assert await admin.api.put_bytes(urls[3], parts[3]) == 200 and await admin.api.put_bytes(urls[1], parts[1]) == 200

    view = (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)
    assert view["method"] == "multipart" and view["parts"] == 3
    assert [(p["number"], p["size"]) for p in view["uploaded"]] == [(1, 5 * MIB), (3, MIB + 123)]
    problem = (await admin.post(f"/api/v1/files/{file_id}/complete")).problem(409, "upload_incomplete")
    assert problem["missing"] == [2] and "2" in problem["detail"]

    urls = await part_urls(admin, file_id, [2])
    assert await admin.api.put_bytes(urls[2], parts[2]) == 200
    stored = (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    assert stored["status"] == "stored" and stored["size"] == size
    link = (await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    status, body, _ = await api.fetch(link["url"])
    assert status == 200, (link, body[:300])
    assert body == parts[1] + parts[2] + parts[3]
    assert await multipart_uploads(api, s3, bucket) == []
    (await admin.get(f"/api/v1/files/{file_id}/upload")).problem(404, "no_upload")


async def test_a_part_with_a_wrong_md5_is_refused_by_the_storage_server(make_api: Any, s3: S3Bed, bucket: str) -> None:
    _, admin = await setup(make_api, s3, bucket)
    answer = await announce(admin, "backup.tar", 6 * MIB)
    file_id = answer["file"]["id"]
    good = part_bytes(1, 5 * MIB)
    urls = await part_urls(admin, file_id, [1], md5={"1": md5_b64(good)})
    assert urls[1]["headers"]["Content-MD5"] == md5_b64(good)
    corrupted = b"X" + good[1:]
    status, text = await admin.api.put_answer(urls[1], corrupted)
    assert status == 400 and "BadDigest" in text
    assert (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)["uploaded"] == []
    assert await admin.api.put_bytes(urls[1], good) == 200
    assert [p["number"] for p in (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)["uploaded"]] == [1]


async def test_part_numbers_outside_the_upload_are_422(make_api: Any, s3: S3Bed, bucket: str) -> None:
    _, admin = await setup(make_api, s3, bucket)
    file_id = (await announce(admin, "a.bin", 6 * MIB))["file"]["id"]
    path = f"/api/v1/files/{file_id}/upload/parts"
    for body, field in (
        ({"numbers": [3]}, "numbers"),
        ({"numbers": [0]}, "numbers.0"),
        ({"numbers": list(range(1, 102))}, "numbers"),
        ({"numbers": []}, "numbers"),
        ({"numbers": [1], "md5": {"2": md5_b64(b"x")}}, "md5"),
        ({"numbers": [1], "md5": {"1": "not base64"}}, "md5.1"),
    ):
        problem = (await admin.post(path, json=body)).problem(422, "invalid_field")
        assert field in problem["detail"], (body, problem)


async def test_abort_leaves_no_parts_and_the_file_keeps_its_stored_content(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    api, admin = await setup(make_api, s3, bucket)
    first = await admin.upload("report.pdf", b"version one\n")
    file_id = first["file"]["id"]
    (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    again = await announce(admin, "report.pdf", 6 * MIB, expect=200)
    assert again["file"]["id"] == file_id and again["upload"]["method"] == "multipart"
    urls = await part_urls(admin, file_id, [1])
    assert await admin.api.put_bytes(urls[1], part_bytes(1, 5 * MIB)) == 200
    _, body = await admin.download(file_id)  # the old content, while the new one uploads
    assert body == b"version one\n"

    (await admin.delete(f"/api/v1/files/{file_id}/upload")).expect(204)
    assert await multipart_uploads(api, s3, bucket) == []
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["size"] == len(b"version one\n")
    _, body = await admin.download(file_id)
    assert body == b"version one\n"
    (await admin.delete(f"/api/v1/files/{file_id}/upload")).problem(404, "no_upload")

    fresh = (await announce(admin, "never.bin", 6 * MIB))["file"]["id"]
    (await admin.delete(f"/api/v1/files/{fresh}/upload")).expect(204)
    (await admin.get(f"/api/v1/files/{fresh}")).problem(404, "file_not_found")
    assert await multipart_uploads(api, s3, bucket) == []


async def test_a_file_deleted_while_uploading_in_parts_leaves_no_parts(make_api: Any, s3: S3Bed, bucket: str) -> None:
    api, admin = await setup(make_api, s3, bucket)
    file_id = (await announce(admin, "gone.bin", 6 * MIB))["file"]["id"]
    urls = await part_urls(admin, file_id, [1])
    assert await admin.api.put_bytes(urls[1], part_bytes(1, 5 * MIB)) == 200
    (await admin.delete(f"/api/v1/files/{file_id}")).expect(204)

    async def no_uploads() -> bool:
        return await multipart_uploads(api, s3, bucket) == []

    await wait_for(no_uploads, "the removal job to abort the upload")


async def test_an_abandoned_multipart_upload_is_aborted_by_the_sweep(make_api: Any, s3: S3Bed, bucket: str) -> None:
    # (scrub's stale_upload_after 0: scrub would abort any unfinished upload of cdnstore's at once)
    api, admin = await setup(make_api, s3, bucket, scrub={"stale_upload_after": 0})
    left = (await announce(admin, "left.bin", 6 * MIB))["file"]["id"]
    going = (await announce(admin, "going.bin", 6 * MIB))["file"]["id"]
    # Both announced long ago (past uploads.abandon_after); "going" got a part just now: it is continued.
    async with api.app[appkeys.DB].transaction() as tx:
        await tx.execute("UPDATE versions SET created_at = '2000-01-01T00:00:00.000Z'")
    urls = await part_urls(admin, going, [1])
    assert await admin.api.put_bytes(urls[1], part_bytes(1, 5 * MIB)) == 200
    assert len(await multipart_uploads(api, s3, bucket)) == 2

    await api.app[appkeys.UPLOADS].sweep()
    assert len(await multipart_uploads(api, s3, bucket)) == 1
    (await admin.get(f"/api/v1/files/{left}")).problem(404, "file_not_found")
    assert [p["number"] for p in (await admin.get(f"/api/v1/files/{going}/upload")).expect(200)["uploaded"]] == [1]
    drifts = await api.app[appkeys.SCRUB].scrub()  # scrub leaves the running upload alone too
    assert sum(d.aborted for d in drifts) == 0
    assert len(await multipart_uploads(api, s3, bucket)) == 1


async def test_an_assembled_upload_whose_event_was_lost_is_stored_by_the_sweep(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    # Events off (the servers' webhooks are refused), and a client that assembled the parts itself.
    api, admin = await setup(make_api, s3, bucket, events={"token": ""}, uploads={"sweep_after": 0})
    answer = await announce(admin, "lost.bin", 6 * MIB)
    file_id = answer["file"]["id"]
    urls = await part_urls(admin, file_id, [1, 2])
    for n, data in parts_of(6 * MIB, 5 * MIB):
        assert await admin.api.put_bytes(urls[n], data) == 200
    held = await api.app[appkeys.STORAGE].list_parts(s3.target("dallas", bucket), *(await upload_of(api, file_id)))
    assert held is not None
    etags = {p.number: p.etag for p in held}
    await api.app[appkeys.STORAGE].complete_upload(s3.target("dallas", bucket), *(await upload_of(api, file_id)), etags)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "uploading"
    assert await api.app[appkeys.UPLOADS].sweep() == 1
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "stored"


async def upload_of(api: Api, file_id: str) -> tuple[str, str]:
    row = await api.app[appkeys.DB].fetchone(
        "SELECT v.object_key, v.upload_id FROM files f JOIN versions v ON v.id = f.latest_version_id WHERE f.uuid = ?",
        (file_id,),
    )
    assert row is not None
    return row["object_key"], row["upload_id"]


async def test_a_new_version_in_parts_replaces_the_old_content_only_once_stored(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    _, admin = await setup(make_api, s3, bucket)
    file_id = (await admin.upload("disk.img", b"old content\n"))["file"]["id"]
    await admin.wait_stored(file_id)
    assert (await announce(admin, "disk.img", 6 * MIB, expect=200))["file"]["id"] == file_id
    urls = await part_urls(admin, file_id, [1, 2])
    parts = dict(parts_of(6 * MIB, 5 * MIB))
    for n, data in parts.items():
        assert await admin.api.put_bytes(urls[n], data) == 200
    _, body = await admin.download(file_id)
    assert body == b"old content\n"
    (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    _, body = await admin.download(file_id)
    assert body == parts[1] + parts[2]


# --- a file of several hundred MiB through a real `cdnstore serve`, restarted halfway ------------------

BIG_PARTS = 60  # of the 5 MiB minimum: 300 MiB, made part by part, never held whole


async def send_parts(user: Session, file_id: str, numbers: list[int], parallel: int = 4) -> None:
    """PUT these parts straight to the storage server, `parallel` at a time, each with its MD5."""
    gate = asyncio.Semaphore(parallel)

    async def one(number: int) -> None:
        async with gate:
            data = part_bytes(number, 5 * MIB)
            urls = await part_urls(user, file_id, [number], md5={str(number): md5_b64(data)})
            assert await put_part(urls[number], data) == 200

    async with asyncio.TaskGroup() as tasks:
        for number in numbers:
            tasks.create_task(one(number))


async def test_a_300_mib_file_is_sent_in_parallel_parts_resumed_after_a_restart_and_replicated(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    write_config(tmp_path, daemon.port, health={"interval": 1.0})
    await daemon.start()
    size = BIG_PARTS * 5 * MIB
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        usa = [site for site in ORIGINAL_LAYOUT if site.zone == "USA" and site.is_active]
        for site in usa:
            await admin.add_server(weed, site.name, bucket)
        answer = await announce(admin, "dataset.tar", size)
        file_id, upload = answer["file"]["id"], answer["upload"]
        assert (upload["method"], upload["parts"], upload["part_size"]) == ("multipart", BIG_PARTS, 5 * MIB)

        await send_parts(admin, file_id, list(range(1, 21)))  # ... then the connection drops
        assert await daemon.stop(30) == (0, ANY)
        await daemon.start()
        view = (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)
        held = [p["number"] for p in view["uploaded"]]
        assert held == list(range(1, 21)) and view["parts"] == BIG_PARTS
        await send_parts(admin, file_id, [n for n in range(1, BIG_PARTS + 1) if n not in held])
        stored = (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
        assert stored["status"] == "stored" and stored["size"] == size

        async def everywhere() -> bool:
            items = (await admin.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
            return sorted(i["server"]["name"] for i in items if i["status"] == "present") == sorted(s.name for s in usa)

        await wait_for(everywhere, "the copies on every active server of the zone", within=120)
        key = await object_key_of(tmp_path, file_id)

    want = hashlib.md5()
    for number in range(1, BIG_PARTS + 1):
        want.update(part_bytes(number, 5 * MIB))
    async with Storage() as storage, aiohttp.ClientSession() as plain:
        for site in usa:
            url = storage.presign_get(weed.target(site.name, bucket), key, filename="dataset.tar", expires_in=60)
            digest, got, _ = await md5_of_get(plain, url)
            assert (digest, got) == (want.hexdigest(), size), site.name
            assert await storage.stale_uploads(weed.target(site.name, bucket), datetime.now(UTC) + timedelta(1)) == []


async def object_key_of(tmp_path: Path, file_id: str) -> str:
    db = sqlite3.connect(tmp_path / "cdnstore.sqlite3")
    try:
        row = db.execute(
            "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?",
            (file_id,),
        ).fetchone()
    finally:
        db.close()
    return str(row[0])
