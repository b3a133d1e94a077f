"""Replication on the `s3` servers (tests/s3bed.py): in memory (the fast tier) and real SeaweedFS, a server
killed and restarted included (a process on one side, a refusing server in memory on the other). Every stored
file on every active server of its zone, nowhere after delete, servers filled when activated or moved, outages
waited out, failed jobs kept for an admin's retry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from apihelp import SOUTH_AFRICA_IP, US_IP, Api, Session, copies_held, object_key
from conftest import MakeApi
from s3bed import S3Bed, store_of

from cdnstore import appkeys
from cdnstore.job_queue import Job
from cdnstore.job_worker import JobsFailed

DATA = b"replicate me " * 1000
ALL = ("capetown", "vladivostok", "newyork", "dallas", "detroit")


@pytest.fixture
def api(s3_api: Api) -> Api:
    """The daemon on this test's `s3` servers."""
    return s3_api


async def holders(api: Api, s3: S3Bed, bucket: str, file_id: str) -> set[str]:
    """The servers whose bucket really holds the file's current object (asked of S3, not of cdnstore)."""
    key = await api.app[appkeys.DB].fetchval(
        "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?", (file_id,)
    )
    storage = api.app[appkeys.STORAGE]
    found = await asyncio.gather(*(storage.head(s3.target(s, bucket), key) for s in ALL))
    return {s for s, info in zip(ALL, found, strict=True) if info is not None and info.size == len(DATA)}


async def stored_file(admin: Session, name: str = "r.bin", ip: str = US_IP) -> str:
    file_id = str((await admin.upload(name, DATA, ip=ip))["file"]["id"])
    await admin.wait_stored(file_id)
    return file_id


async def setup(api: Api, s3: S3Bed, bucket: str) -> tuple[Session, dict[str, dict[str, object]]]:
    admin = await api.user("root", admin=True)
    return admin, await admin.add_layout(s3, bucket)


async def test_a_stored_file_is_copied_to_every_active_server_of_its_zone_and_no_other(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin, _ = await setup(api, s3, bucket)
    us = await stored_file(admin, "us.bin", US_IP)
    africa = await stored_file(admin, "za.bin", SOUTH_AFRICA_IP)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders(api, s3, bucket, us) == {"dallas", "newyork"}  # Detroit is inactive
    assert await holders(api, s3, bucket, africa) == {"capetown"}
    servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
    assert (servers["newyork"]["files"], servers["newyork"]["bytes"], servers["newyork"]["pending_jobs"]) == (
        1,
        len(DATA),
        0,
    )
    assert (servers["detroit"]["files"], servers["capetown"]["files"]) == (0, 1)


async def test_a_fill_enqueued_by_another_daemon_copies_although_this_daemons_registry_has_not_heard_yet(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin, _ = await setup(api, s3, bucket)
    file_id = await stored_file(admin, "f.bin")
    await api.app[appkeys.WORKER].run_until_idle()
    db, queue = api.app[appkeys.DB], api.app[appkeys.JOBS]
    detroit = await db.fetchval("SELECT id FROM servers WHERE name = 'detroit'")
    async with db.transaction() as tx:  # as another daemon activates Detroit (this one's memory: inactive)
        await tx.execute("UPDATE servers SET is_active = 1 WHERE id = ?", (detroit,))
        assert await queue.enqueue_fill(tx, detroit, "USA") == 1
    await api.app[appkeys.WORKER].run_until_idle()
    assert "detroit" in await holders(api, s3, bucket, file_id)


async def test_activating_a_server_fills_it_with_its_zones_files(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await setup(api, s3, bucket)
    files = [await stored_file(admin, f"f{i}.bin") for i in range(3)]
    await api.app[appkeys.WORKER].run_until_idle()
    # The fill's copies are enqueued with the change; held, they are all still pending when the answer counts
    # them (else the worker, woken by the commit, may finish some before the count is read).
    async with copies_held(api):
        patched = await admin.patch(f"/api/v1/servers/{servers['detroit']['id']}", json={"is_active": True})
        assert patched.expect(200)["pending_jobs"] == 3
    await api.app[appkeys.WORKER].run_until_idle()
    for file_id in files:
        assert "detroit" in await holders(api, s3, bucket, file_id)
    detroit = (await admin.get(f"/api/v1/servers/{servers['detroit']['id']}")).expect(200)
    assert (detroit["files"], detroit["bytes"], detroit["pending_jobs"]) == (3, 3 * len(DATA), 0)


async def test_moving_a_server_to_another_zone_fills_it_with_that_zones_files(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await setup(api, s3, bucket)
    us = await stored_file(admin, "us.bin", US_IP)
    await api.app[appkeys.WORKER].run_until_idle()
    await admin.patch(f"/api/v1/servers/{servers['capetown']['id']}", json={"zone": "USA"})
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders(api, s3, bucket, us) == {"dallas", "newyork", "capetown"}


async def test_a_deleted_file_is_removed_from_every_server_that_is_on(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await setup(api, s3, bucket)
    file_id = await stored_file(admin)
    await api.app[appkeys.WORKER].run_until_idle()
    await admin.patch(f"/api/v1/servers/{servers['newyork']['id']}", json={"is_active": False})
    (await admin.delete(f"/api/v1/files/{file_id}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    storage = api.app[appkeys.STORAGE]
    for name in ALL:  # inactive New York too
        assert [o async for o in storage.list_objects(s3.target(name, bucket))] == [], name
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")


@dataclass(frozen=True)
class Unrecorded:
    """A stored file whose copy is on New York, but unrecorded: the copy wrote the object and its process
    died before recording it."""

    admin: Session
    servers: dict[str, dict[str, object]]
    file_id: str
    version_id: int
    newyork: int  # the server's internal id


async def unrecorded_copy(api: Api, s3: S3Bed, bucket: str) -> Unrecorded:
    admin, servers = await setup(api, s3, bucket)
    file_id = await stored_file(admin)
    await api.app[appkeys.WORKER].run_until_idle()
    db, registry = api.app[appkeys.DB], api.app[appkeys.SERVERS]
    version_id = await db.fetchval("SELECT current_version_id FROM files WHERE uuid = ?", (file_id,))
    newyork = registry.by_name("newyork").pk
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM replicas WHERE server_id = ? AND version_id = ?", (newyork, version_id))
    return Unrecorded(admin, servers, file_id, version_id, newyork)


async def test_a_copy_run_again_after_a_crash_removes_what_it_wrote_if_the_file_was_deleted_meanwhile(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    made = await unrecorded_copy(api, s3, bucket)
    (await made.admin.delete(f"/api/v1/files/{made.file_id}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    assert "newyork" in await holders_of_key(api, s3, bucket, made.version_id)

    await api.app[appkeys.WORKER].handlers["copy"](Job(0, "copy", made.version_id, made.newyork, 1, ran_before=True))
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders_of_key(api, s3, bucket, made.version_id) == set()


async def holders_of_key(api: Api, s3: S3Bed, bucket: str, version_id: int) -> set[str]:
    key = await api.app[appkeys.DB].fetchval("SELECT object_key FROM versions WHERE id = ?", (version_id,))
    found = await asyncio.gather(*(api.app[appkeys.STORAGE].head(s3.target(s, bucket), key) for s in ALL))
    return {s for s, info in zip(ALL, found, strict=True) if info is not None}


async def test_a_server_that_is_off_keeps_its_removals_until_it_is_on(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await setup(api, s3, bucket)
    file_id = await stored_file(admin)
    await api.app[appkeys.WORKER].run_until_idle()
    await admin.patch(f"/api/v1/servers/{servers['newyork']['id']}", json={"is_on": False})
    await admin.delete(f"/api/v1/files/{file_id}")
    await api.app[appkeys.WORKER].run_until_idle()  # (New York's removal is not due: its server is off)
    storage = api.app[appkeys.STORAGE]
    assert [o async for o in storage.list_objects(s3.target("newyork", bucket))] != []
    newyork = (await admin.get(f"/api/v1/servers/{servers['newyork']['id']}")).expect(200)
    assert newyork["pending_jobs"] == 1
    await admin.patch(f"/api/v1/servers/{servers['newyork']['id']}", json={"is_on": True})
    await api.app[appkeys.WORKER].run_until_idle()
    assert [o async for o in storage.list_objects(s3.target("newyork", bucket))] == []


async def test_a_copy_to_a_server_that_was_down_arrives_after_it_comes_back(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await setup(api, s3, bucket)
    await s3.kill("newyork")
    try:
        assert await api.app[appkeys.HEALTH].check_all()
        servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
        assert servers["newyork"]["health"] == "down"
        file_id = await stored_file(admin)
        await api.app[appkeys.WORKER].run_until_idle()  # (the copy to New York is not due: its server is down)
        jobs = (await admin.get("/api/v1/jobs")).expect(200)["items"]
        assert [(j["kind"], j["status"], j["server"]["name"], j["attempts"]) for j in jobs] == [
            ("copy", "queued", "newyork", 0)
        ]
    finally:
        await s3.restart("newyork")
    await api.app[appkeys.HEALTH].check_all()
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders(api, s3, bucket, file_id) == {"dallas", "newyork"}
    assert (await admin.get("/api/v1/jobs")).expect(200)["items"] == []


async def test_a_job_that_keeps_failing_ends_failed_and_succeeds_on_retry(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), jobs={"max_attempts": 3})
    admin, _ = await setup(api, s3, bucket)
    answer = await admin.upload("flaky.bin", DATA)
    file_id = answer["file"]["id"]
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    # Behind cdnstore's back the source object loses its bytes: every copy attempt fails.
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()
    await storage.delete(s3.target("newyork", bucket), key)
    await storage.delete(s3.target("dallas", bucket), key)
    db = api.app[appkeys.DB]
    version_id = await db.fetchval("SELECT id FROM versions")
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM replicas WHERE server_id = (SELECT id FROM servers WHERE name = 'newyork')")
        await api.app[appkeys.JOBS].enqueue_copies(tx, version_id, "USA")
    with pytest.raises(JobsFailed) as ran:
        await api.app[appkeys.WORKER].run_until_idle()
    assert [kind for _, kind, _ in ran.value.failed] == ["copy"]
    failed = (await admin.get("/api/v1/jobs?status=failed")).expect(200)["items"]
    assert len(failed) == 1 and failed[0]["attempts"] == 3 and failed[0]["kind"] == "copy"
    assert failed[0]["file_id"] == file_id and failed[0]["last_error"]
    # The source is repaired; the admin retries.
    url = storage.presign_put(
        s3.target("dallas", bucket), key, content_type="text/plain", size=len(DATA), expires_in=60
    )
    assert await api.put_bytes({"method": "PUT", "url": url[0], "headers": url[1]}, DATA) == 200
    retried = (await admin.post(f"/api/v1/jobs/{failed[0]['id']}/retry")).expect(200)
    assert retried["status"] == "queued" and retried["attempts"] == 0
    await api.app[appkeys.WORKER].run_until_idle()
    assert (await admin.get("/api/v1/jobs")).expect(200)["items"] == []
    assert await holders(api, s3, bucket, file_id) == {"dallas", "newyork"}
    (await admin.post(f"/api/v1/jobs/{failed[0]['id']}/retry")).problem(404, "job_not_found")


async def test_jobs_are_for_admins_and_bad_ids_are_404(api: Api) -> None:
    alice = await api.user("alice")
    (await alice.get("/api/v1/jobs")).problem(403, "forbidden")
    admin = await api.user("root", admin=True)
    (await admin.post("/api/v1/jobs/not-a-uuid/retry")).problem(404, "job_not_found")
    (await admin.get("/api/v1/jobs?status=lost")).problem(422, "invalid_field")


async def test_a_server_holding_sole_copies_cannot_be_removed(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await setup(api, s3, bucket)
    africa = await stored_file(admin, "za.bin", SOUTH_AFRICA_IP)
    await api.app[appkeys.WORKER].run_until_idle()
    (await admin.delete(f"/api/v1/servers/{servers['capetown']['id']}")).problem(409, "server_holds_sole_copies")
    # Dallas has a twin in New York: it may go.
    (await admin.delete(f"/api/v1/servers/{servers['dallas']['id']}")).expect(204)
    # Once the file is deleted, Cape Town holds nothing anyone wants.
    await admin.delete(f"/api/v1/files/{africa}")
    (await admin.delete(f"/api/v1/servers/{servers['capetown']['id']}")).expect(204)


async def test_deleting_a_file_removes_what_a_copy_cut_short_may_have_written(api: Api, s3: S3Bed, bucket: str) -> None:
    made = await unrecorded_copy(api, s3, bucket)
    db = api.app[appkeys.DB]
    async with db.transaction() as tx:  # left running by a dead process, its lease run out
        await tx.execute(
            "INSERT INTO jobs (kind, version_id, server_id, status, attempts, run_after, lease_until, "
            "created_at, updated_at) VALUES ('copy', ?, ?, 'running', 1, 1e12, 0, 0, 0)",
            (made.version_id, made.newyork),
        )
    if db.one_daemon:  # SQLite: the restart gives its attempt back; else another daemon takes it over
        assert await api.app[appkeys.JOBS].requeue_running() == 1
    (await made.admin.delete(f"/api/v1/files/{made.file_id}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders_of_key(api, s3, bucket, made.version_id) == set()
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_a_copy_no_longer_wanted_records_what_an_earlier_run_wrote_so_removals_find_it(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    made = await unrecorded_copy(api, s3, bucket)
    newyork_id = made.servers["newyork"]["id"]
    (await made.admin.patch(f"/api/v1/servers/{newyork_id}", json={"is_active": False})).expect(200)
    await api.app[appkeys.WORKER].handlers["copy"](Job(0, "copy", made.version_id, made.newyork, 1, ran_before=True))
    assert (
        await api.app[appkeys.DB].fetchval(
            "SELECT count(*) FROM replicas WHERE server_id = ? AND version_id = ?", (made.newyork, made.version_id)
        )
        == 1
    )
    (await made.admin.delete(f"/api/v1/files/{made.file_id}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders_of_key(api, s3, bucket, made.version_id) == set()
