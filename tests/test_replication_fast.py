"""The domain's core stories in the fast tier: the daemon built on the in-memory storage
(testbed/memory_storage.py, handed to `create_app(store=...)`) instead of S3, on both engines, its jobs run
with `JobWorker.run_until_idle` (which raises when a job failed). They complement the integration tests
on real SeaweedFS (test_replication.py, test_scrub.py, test_files.py), which stay."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from apihelp import US_IP, Api, Session, object_key
from conftest import MakeApi

from cdnstore import appkeys
from cdnstore.job_worker import JobsFailed
from cdnstore.models import S3Target
from testbed.demo import ORIGINAL_LAYOUT
from testbed.memory_storage import MemoryStorage

DATA = b"replicate me " * 1000
USA = {"newyork", "dallas"}  # the active servers of the zone a US upload lands in (Detroit is inactive)


@dataclass
class Fleet:
    api: Api
    admin: Session
    memory: MemoryStorage
    servers: dict[str, S3Target]  # name -> its bucket

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

    async def put(self, upload: dict[str, Any], data: bytes) -> None:
        sent = await self.memory.send("PUT", upload["url"], headers=upload["headers"], body=data, timeout=10)
        assert sent.status == 200, sent


@pytest.fixture
async def fleet(make_api: MakeApi) -> Fleet:
    """The original's five servers, each a bucket of the in-memory storage."""
    memory = MemoryStorage(part_size=5 << 20)
    api = await make_api(store=memory, jobs={"max_attempts": 3})
    admin = await api.user("root", admin=True)
    servers = {}
    for port, site in enumerate(ORIGINAL_LAYOUT, start=9100):
        body = {**site.registration(), "endpoint_url": f"http://127.0.0.1:{port}", "bucket": "fleet"}
        made = (await admin.post("/api/v1/servers", json={**body, "access_key": "k", "secret_key": "s" * 8})).expect(
            201
        )
        servers[site.name] = api.app[appkeys.SERVERS].get(made["id"]).s3
    return Fleet(api, admin, memory, servers)


async def test_an_upload_stored_via_complete_is_copied_to_every_active_server_of_its_zone(fleet: Fleet) -> None:
    file_id, key = await fleet.stored("us.bin")
    await fleet.run_jobs()
    assert fleet.holders(key) == USA
    file = (await fleet.admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert file["status"] == "stored" and file["sha256"] == hashlib.sha256(DATA).hexdigest()


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


async def test_a_deleted_file_is_removed_from_every_server(fleet: Fleet) -> None:
    file_id, key = await fleet.stored("bye.bin")
    await fleet.run_jobs()
    assert fleet.holders(key) == USA
    (await fleet.admin.delete(f"/api/v1/files/{file_id}")).expect(204)
    await fleet.run_jobs()
    assert all(key not in fleet.memory.objects(target) for target in fleet.servers.values())
    (await fleet.admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")


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
