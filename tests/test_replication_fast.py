"""The domain's core stories in the fast tier: the daemon built on the in-memory storage
(testbed/memory_storage.py, handed to `create_app(store=...)`) instead of S3, on both engines, its jobs run
with `JobWorker.run_until_idle` (which raises when a job failed), each told by its faults (lose, corrupt,
refuse, stall). The stories the use-case modules tell on both sides (tests/s3bed.py: in memory and on real
SeaweedFS) are theirs: copies to a zone and removals after delete in test_replication.py."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from apihelp import US_IP, Api, Session, from_ip, object_key, wait_for
from conftest import MakeApi

from cdnstore import appkeys
from cdnstore.job_worker import JobsFailed
from cdnstore.models import Health, S3Target
from testbed.demo import ORIGINAL_LAYOUT
from testbed.memory_storage import MemoryStorage

DATA = b"replicate me " * 1000
MIB = 1 << 20
BIG = bytes(range(256)) * (11 * MIB // 256) + b"tail"  # three parts of 5 MiB
USA = {"newyork", "dallas"}  # the active servers of the zone a US upload lands in (Detroit is inactive)


@dataclass
class Fleet:
    api: Api
    admin: Session
    memory: MemoryStorage
    servers: dict[str, S3Target]  # name -> its bucket
    ids: dict[str, str]  # name -> its id in the API

    async def run_jobs(self) -> None:
        await self.api.app[appkeys.WORKER].run_until_idle(within=60)

    def holders(self, key: str, data: bytes = DATA) -> set[str]:
        """The servers whose bucket holds exactly `data` under `key` (asked of the storage, not of cdnstore)."""
        return {name for name, target in self.servers.items() if self.memory.objects(target).get(key) == data}

    async def stored(self, name: str, data: bytes = DATA) -> tuple[str, str]:
        """`name` announced from the US, PUT as a client would, confirmed by /complete: (file id, object key)."""
        answer = await self.admin.announce(name, data, ip=US_IP)
        await self.put(answer["upload"], data)
        (await self.admin.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
        return str(answer["file"]["id"]), object_key(answer["upload"])

    async def stored_in_parts(self, name: str, data: bytes, sha256: str) -> tuple[str, str]:
        """`name` announced declaring `sha256`, its parts PUT as a client would, /complete: (file id, key)."""
        body = {"name": name, "size": len(data), "sha256": sha256}
        answer = await self.admin.post("/api/v1/files", json=body, headers=from_ip(US_IP))
        announced = answer.expect(201)
        file_id, upload = announced["file"]["id"], announced["upload"]
        assert upload["method"] == "multipart", upload
        numbers = list(range(1, upload["parts"] + 1))
        items = (await self.admin.post(f"/api/v1/files/{file_id}/upload/parts", json={"numbers": numbers})).expect(200)
        for item in items["items"]:
            offset = (item["number"] - 1) * upload["part_size"]
            await self.put(item, data[offset : offset + upload["part_size"]])
        (await self.admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
        return str(file_id), object_key(items["items"][0])

    async def put(self, upload: dict[str, Any], data: bytes) -> None:
        sent = await self.memory.send("PUT", upload["url"], headers=upload["headers"], body=data, timeout=10)
        assert sent.status == 200, sent


@pytest.fixture
async def fleet(make_api: MakeApi) -> Fleet:
    return await make_fleet(make_api)


async def make_fleet(make_api: MakeApi, **options: Any) -> Fleet:
    """The original's five servers, each a bucket of the in-memory storage; `options`: make_api's (a clock,
    config sections other than jobs and uploads)."""
    memory = MemoryStorage(part_size=5 << 20)
    api = await make_api(store=memory, jobs={"max_attempts": 3}, uploads={"multipart_threshold": 5 * MIB}, **options)
    admin = await api.user("root", admin=True)
    servers, ids = {}, {}
    for port, site in enumerate(ORIGINAL_LAYOUT, start=9100):
        body = {**site.registration(), "endpoint_url": f"http://127.0.0.1:{port}", "bucket": "fleet"}
        made = (await admin.post("/api/v1/servers", json={**body, "access_key": "k", "secret_key": "s" * 8})).expect(
            201
        )
        servers[site.name] = api.app[appkeys.SERVERS].get(made["id"]).s3
        ids[site.name] = made["id"]
    return Fleet(api, admin, memory, servers, ids)


async def test_a_replica_lost_behind_cdnstores_back_is_found_by_the_scrub_and_copied_again(fleet: Fleet) -> None:
    _, key = await fleet.stored("lost.bin")
    await fleet.run_jobs()
    fleet.memory.lose(fleet.servers["newyork"].endpoint_url, key)
    drifts = {d.server: d for d in await fleet.api.app[appkeys.SCRUB].scrub()}
    assert (drifts["newyork"].missing, drifts["newyork"].lost) == (1, 0)
    await fleet.run_jobs()
    assert fleet.holders(key) == USA
    assert all(d.clean for d in await fleet.api.app[appkeys.SCRUB].scrub())


async def test_a_corrupted_replica_is_found_by_the_deep_scrub_and_repaired_from_a_good_one(fleet: Fleet) -> None:
    _, key = await fleet.stored("rot.bin")
    await fleet.run_jobs()
    fleet.memory.corrupt(fleet.servers["dallas"].endpoint_url, key)
    assert fleet.holders(key) == USA - {"dallas"}
    assert all(d.clean for d in await fleet.api.app[appkeys.SCRUB].scrub())  # sizes and ETags cannot tell
    report = await fleet.api.app[appkeys.DEEP_SCRUB].scrub()
    assert report is not None and (report.corrupt, report.without_good_holder) == (1, 0)
    await fleet.run_jobs()
    assert fleet.holders(key) == USA
    again = await fleet.api.app[appkeys.DEEP_SCRUB].scrub()
    assert again is not None and again.corrupt == 0


async def test_a_copy_the_destination_refuses_once_is_retried_and_lands(fleet: Fleet) -> None:
    answer = await fleet.admin.announce("retry.bin", DATA, ip=US_IP)
    key = object_key(answer["upload"])
    uploaded_to = next(n for n, t in fleet.servers.items() if answer["upload"]["url"].startswith(t.endpoint_url))
    other = (USA - {uploaded_to}).pop()
    fleet.memory.refuse(server=fleet.servers[other].endpoint_url, key=key, times=1)
    await fleet.put(answer["upload"], DATA)
    (await fleet.admin.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
    await fleet.run_jobs()  # the first attempt refused, the retry after its backoff copied
    assert fleet.memory.refused == 1
    assert fleet.holders(key) == USA


async def test_a_copy_the_destination_always_refuses_fails_and_run_until_idle_says_which(fleet: Fleet) -> None:
    answer = await fleet.admin.announce("never.bin", DATA, ip=US_IP)
    key = object_key(answer["upload"])
    uploaded_to = next(n for n, t in fleet.servers.items() if answer["upload"]["url"].startswith(t.endpoint_url))
    other = (USA - {uploaded_to}).pop()
    fleet.memory.refuse(server=fleet.servers[other].endpoint_url, key=key)
    await fleet.put(answer["upload"], DATA)
    (await fleet.admin.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
    with pytest.raises(JobsFailed) as failed:
        await fleet.run_jobs()
    assert [kind for _, kind, _ in failed.value.failed] == ["copy"]
    assert "500 InternalError" in str(failed.value)
    assert fleet.holders(key) == {uploaded_to}


async def test_a_file_uploaded_in_parts_is_assembled_copied_to_the_zone_and_its_download_link_serves_it(
    fleet: Fleet,
) -> None:
    sha256 = hashlib.sha256(BIG).hexdigest()
    file_id, key = await fleet.stored_in_parts("video.mp4", BIG, sha256)
    await fleet.run_jobs()
    assert fleet.holders(key, BIG) == USA
    file = (await fleet.admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert (file["status"], file["size"], file["sha256"]) == ("stored", len(BIG), sha256)
    link = (await fleet.admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    got = await fleet.memory.send("GET", link["url"], timeout=10)
    assert got.status == 200 and 'filename="video.mp4"' in got.headers["content-disposition"]
    assert got.headers["content-length"] == str(len(BIG))


async def test_parts_whose_bytes_differ_from_the_declared_sha256_never_become_a_file(fleet: Fleet) -> None:
    file_id, key = await fleet.stored_in_parts("liar.bin", BIG, "0" * 64)
    await fleet.run_jobs()  # the zone's first copy reads other bytes: the version is rejected, its objects go
    (await fleet.admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    events = (await fleet.admin.get("/api/v1/history?event=file.corrupt")).expect(200)["items"]
    assert [e["data"]["found"] for e in events] == [hashlib.sha256(BIG).hexdigest()]
    assert fleet.holders(key, BIG) == set()


async def test_a_share_link_is_served_by_the_nearest_holder_and_by_another_while_that_one_is_down(fleet: Fleet) -> None:
    file_id, _ = await fleet.stored("shared.txt")
    await fleet.run_jobs()
    token = (await fleet.admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)["token"]

    async def pulled() -> tuple[str, str]:
        path = f"/api/v1/public/links/{token}/download"
        got = (await fleet.api.call("POST", path, json={}, headers=from_ip(US_IP))).expect(200)
        served = await fleet.memory.send("GET", got["url"], timeout=10)
        assert served.status == 200, served
        return got["server"]["name"], served.text

    assert await pulled() == ("dallas", DATA.decode())
    await fleet.api.app[appkeys.SERVERS].set_health({fleet.ids["dallas"]: Health.DOWN})
    assert await pulled() == ("newyork", DATA.decode())
    links = (await fleet.admin.get(f"/api/v1/files/{file_id}/links")).expect(200)["items"]
    assert [link["downloads"] for link in links] == [2]


async def test_while_a_copy_waits_on_a_server_that_does_not_answer_the_file_is_served_and_the_copy_lands_after(
    fleet: Fleet,
) -> None:
    answer = await fleet.admin.announce("patient.bin", DATA, ip=US_IP)
    key = object_key(answer["upload"])
    gate = fleet.memory.stall(server=fleet.servers["newyork"].endpoint_url, key=key)
    await fleet.put(answer["upload"], DATA)
    file_id = answer["file"]["id"]
    (await fleet.admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    jobs = asyncio.create_task(fleet.run_jobs())
    worker = fleet.api.app[appkeys.WORKER]
    await wait_for(lambda: worker._running > 0, "the copy to New York to be running")
    link = (await fleet.admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    assert link["server"]["name"] == "dallas" and fleet.holders(key) == {"dallas"}
    assert not jobs.done()
    gate.set()
    await jobs
    assert fleet.holders(key) == USA
