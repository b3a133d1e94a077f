"""One zone of two vendors: a real SeaweedFS server ("dallas") and a real Ceph RGW ("newyork-rgw"), each
confirming uploads by its own events. Uploads land on either (by the client's location), are copied both
ways byte for byte, in one PUT or in parts; the deep scrub reads every replica on both and repairs a
tampered RGW replica from SeaweedFS; deleting the files empties both buckets.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from apihelp import EVENTS_TOKEN, US_IP, Api, Session, copies_held, events_unheard, from_ip, put_bytes, s3_storage
from conftest import MakeApi
from test_multipart import md5_b64, part_urls, parts_of

from cdnstore import appkeys
from cdnstore.deepscrub import DeepReport
from cdnstore.models import S3Target
from testbed.rgw import RgwBed
from testbed.seaweed import WeedCluster

pytestmark = pytest.mark.timeout(300)

MIB = 1 << 20
NEW_YORK_IP = "24.29.99.1"  # GeoLite2: New York, nearer the RGW ("newyork") than Dallas; US_IP is nearer Dallas
WHERE = {US_IP: "dallas", NEW_YORK_IP: "newyork-rgw"}


async def mixed_zone(
    make_api: MakeApi, weed: WeedCluster, rgw: RgwBed, bucket: str, daemon_port: int
) -> tuple[Api, Session, dict[str, S3Target]]:
    api = await make_api(uploads={"multipart_threshold": 5 * MIB}, scrub={"deep_interval": 0})
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket)  # its filer webhook reaches /events/s3/dallas
    await admin.add_server(rgw, "newyork", bucket, name="newyork-rgw")
    await rgw.notify(bucket, f"http://127.0.0.1:{daemon_port}/api/v1/events/s3/newyork-rgw/{EVENTS_TOKEN}")
    return api, admin, {"dallas": weed.target("dallas", bucket), "newyork-rgw": rgw.target(bucket)}


async def upload_in_one_put(admin: Session, name: str, data: bytes, ip: str) -> dict[str, Any]:
    answer = await admin.upload(name, data, ip=ip)
    assert answer["upload"]["server"]["name"] == WHERE[ip]
    await admin.wait_stored(answer["file"]["id"])  # by the server's own event: no /complete
    return answer


async def upload_in_parts(admin: Session, name: str, size: int, ip: str) -> tuple[dict[str, Any], bytes]:
    announced = await admin.post(
        "/api/v1/files",
        json={"name": name, "size": size, "content_type": "application/octet-stream"},
        headers=from_ip(ip),
    )
    answer = dict(announced.expect(201))
    upload, file_id = answer["upload"], answer["file"]["id"]
    assert (upload["method"], upload["server"]["name"]) == ("multipart", WHERE[ip])
    parts = dict(parts_of(size, upload["part_size"]))
    urls = await part_urls(admin, file_id, list(parts), {str(n): md5_b64(d) for n, d in parts.items()})
    for number, data in parts.items():
        assert await put_bytes(urls[number], data) == 200
    assert (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)["status"] == "stored"
    return answer, b"".join(parts.values())


async def current_key(api: Api, file_id: str) -> str:
    return str(
        await api.app[appkeys.DB].fetchval(
            "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?",
            (file_id,),
        )
    )


async def held(api: Api, target: S3Target, key: str) -> bytes:
    return b"".join([piece async for piece in api.app[appkeys.STORAGE].read(target, key)])


async def deep_scrub(api: Api) -> DeepReport:
    report = await api.app[appkeys.DEEP_SCRUB].scrub()
    assert report is not None
    return report


async def statuses(admin: Session, file_id: str) -> dict[str, str]:
    found = (await admin.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
    return {item["server"]["name"]: item["status"] for item in found}


async def test_a_zone_of_seaweedfs_and_rgw_copies_both_ways_scrubs_repairs_and_deletes(
    make_api: MakeApi, weed: WeedCluster, rgw: RgwBed, bucket: str, daemon_port: int
) -> None:
    api, admin, targets = await mixed_zone(make_api, weed, rgw, bucket, daemon_port)
    small = {US_IP: os.urandom(300_000), NEW_YORK_IP: os.urandom(200_000)}
    files: dict[str, tuple[str, bytes]] = {}  # object key -> (file id, bytes)
    for ip, data in small.items():
        answer = await upload_in_one_put(admin, f"small-{WHERE[ip]}.bin", data, ip)
        files[await current_key(api, answer["file"]["id"])] = (answer["file"]["id"], data)
    for ip in (NEW_YORK_IP, US_IP):
        answer, data = await upload_in_parts(admin, f"parts-{WHERE[ip]}.bin", 12 * MIB + 4321, ip)
        files[await current_key(api, answer["file"]["id"])] = (answer["file"]["id"], data)
    await api.app[appkeys.WORKER].run_until_idle()

    for key, (file_id, data) in files.items():  # every file on both vendors, byte for byte
        assert await statuses(admin, file_id) == {"dallas": "present", "newyork-rgw": "present"}
        for target in targets.values():
            assert await held(api, target, key) == data
        for ip, server in WHERE.items():  # and each client downloads from its nearest one
            link, body = await admin.download(file_id, ip=ip)
            assert (link["server"]["name"], body) == (server, data)

    report = await deep_scrub(api)
    assert (report.verified, report.corrupt) == (2 * len(files), 0)

    key, (file_id, data) = next(iter(files.items()))  # uploaded to SeaweedFS, copied to RGW
    await events_unheard(api, admin, "newyork-rgw")  # else its event's re-check would find it first
    client = await s3_storage(api)._client(targets["newyork-rgw"])
    await client.put_object(Bucket=bucket, Key=key, Body=bytes(reversed(data)))  # behind cdnstore's back
    async with copies_held(api):
        report = await deep_scrub(api)
        assert (report.corrupt, report.without_good_holder) == (1, 0)
        assert await statuses(admin, file_id) == {"dallas": "present", "newyork-rgw": "corrupt"}
    await api.app[appkeys.WORKER].run_until_idle()  # the repair, from SeaweedFS to RGW
    assert await held(api, targets["newyork-rgw"], key) == data
    assert await statuses(admin, file_id) == {"dallas": "present", "newyork-rgw": "present"}

    for file_id, _ in files.values():
        (await admin.delete(f"/api/v1/files/{file_id}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    for target in targets.values():
        assert [o.key async for o in api.app[appkeys.STORAGE].list_objects(target)] == []
    assert rgw.running
