"""Scrub: the replica table against what the buckets really hold, on the `s3` servers (tests/s3bed.py: in
memory, the fast tier, and real SeaweedFS, but for the tests marked REAL_ONLY)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apihelp import (
    US_IP,
    Api,
    Session,
    copies_held,
    events_unheard,
    from_ip,
    object_key,
    overwrite,
    samples,
    stored_and_copied,
    value,
    wait_for,
)
from clihelp import cdnstore
from conftest import MakeApi
from daemonproc import write_config
from reliability import LEDGER
from s3bed import REAL_ONLY, S3Bed, store_of

from cdnstore import appkeys
from cdnstore.db import connect
from cdnstore.db.leases import Lease
from cdnstore.deepscrub import DeepReport
from cdnstore.scrub import Recount

DATA = b"scrub me " * 500


@pytest.fixture
def api(s3_api: Api) -> Api:
    """The daemon on this test's `s3` servers."""
    return s3_api


async def test_scrub_finds_and_repairs_an_object_deleted_behind_cdnstores_back(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(s3, bucket)
    answer = await stored_and_copied(api, admin, "precious.bin", DATA)
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    await storage.delete(s3.target("newyork", bucket), key)  # an operator's slip

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert (drifts["newyork"].missing, drifts["newyork"].lost) == (1, 0)
    assert drifts["dallas"].clean and drifts["dallas"].objects == 1
    await api.app[appkeys.WORKER].run_until_idle()
    assert (await storage.head(s3.target("newyork", bucket), key)) is not None
    assert all(d.clean for d in await api.app[appkeys.SCRUB].scrub())


async def test_scrub_enqueues_the_copy_a_zone_server_lacks_with_neither_replica_nor_job(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    """The state a lost copy leaves (no replica, no open job, nothing in the bucket) is found and filled."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(s3, bucket)
    answer = await stored_and_copied(api, admin, "forgotten.bin", DATA)
    key = object_key(answer["upload"])
    storage, db = api.app[appkeys.STORAGE], api.app[appkeys.DB]
    await storage.delete(s3.target("dallas", bucket), key)
    async with db.transaction() as tx:
        await tx.execute(
            "DELETE FROM replicas WHERE server_id = (SELECT id FROM servers WHERE name = 'dallas')"
            " AND version_id = (SELECT id FROM versions WHERE object_key = ?)",
            (key,),
        )

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert (drifts["dallas"].unfilled, drifts["dallas"].missing) == (1, 0) and not drifts["dallas"].clean
    assert drifts["newyork"].clean
    await api.app[appkeys.WORKER].run_until_idle()
    assert (await storage.head(s3.target("dallas", bucket), key)) is not None
    held = await db.fetchval(
        "SELECT count(*) FROM replicas r JOIN servers s ON s.id = r.server_id JOIN versions v ON v.id = r.version_id"
        " WHERE s.name = 'dallas' AND v.object_key = ?",
        (key,),
    )
    assert held == 1
    assert all(d.clean for d in await api.app[appkeys.SCRUB].scrub())


async def test_scrub_removes_orphans_adopts_strays_and_leaves_unknown_objects(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    # Registered under other names, the servers' own webhooks reach no known server: what happens
    # behind cdnstore's back stays hidden from it, as it would with a lost event.
    await admin.add_server(s3, "dallas", bucket, name="dallas-quiet")
    newyork = await admin.add_server(s3, "newyork", bucket, name="newyork-quiet", is_active=False)
    answer = await admin.upload("a.bin", DATA, ip=US_IP)
    file_id = answer["file"]["id"]
    (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    put = storage.presign_put(
        s3.target("newyork", bucket), key, content_type="text/plain", size=len(DATA), expires_in=60
    )
    assert await api.put_bytes({"method": "PUT", "url": put[0], "headers": put[1]}, DATA) == 200  # a stray copy
    stray = storage.presign_put(
        s3.target("dallas", bucket), "not-ours.txt", content_type="text/plain", size=3, expires_in=60
    )
    assert await api.put_bytes({"method": "PUT", "url": stray[0], "headers": stray[1]}, b"abc") == 200

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert (drifts["newyork-quiet"].adopted, drifts["dallas-quiet"].unknown) == (1, 1)
    servers = (await admin.get(f"/api/v1/servers/{newyork['id']}")).expect(200)
    assert servers["files"] == 1

    await admin.delete(f"/api/v1/files/{file_id}")
    await api.app[appkeys.WORKER].run_until_idle()
    # Put the deleted object back behind cdnstore's back: an orphan.
    again = storage.presign_put(
        s3.target("dallas", bucket), key, content_type="text/plain", size=len(DATA), expires_in=60
    )
    assert await api.put_bytes({"method": "PUT", "url": again[0], "headers": again[1]}, DATA) == 200
    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert drifts["dallas-quiet"].orphans == 1
    await api.app[appkeys.WORKER].run_until_idle()
    assert await storage.head(s3.target("dallas", bucket), key) is None
    assert await storage.head(s3.target("dallas", bucket), "not-ours.txt") is not None


async def test_scrub_aborts_multipart_uploads_that_a_crash_left_behind(
    make_api: object, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), scrub={"stale_upload_after": 0})  # type: ignore[operator]
    admin = await api.user("root", admin=True)
    await admin.add_layout(s3, bucket)
    answer = await admin.upload("big.bin", DATA, ip=US_IP)
    await admin.wait_stored(answer["file"]["id"])
    key = object_key(answer["upload"])
    storage = api.app[appkeys.STORAGE]
    target = s3.target("newyork", bucket)
    upload_id = await storage.create_upload(target, key, content_type="text/plain")  # a copy that died early
    await storage.create_upload(target, "someone-elses.bin", content_type="text/plain")
    assert len(await storage.stale_uploads(target, datetime.now(UTC))) == 2

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert drifts["newyork"].aborted == 1
    left = await storage.stale_uploads(target, datetime.now(UTC))
    assert [k for k, _ in left] == ["someone-elses.bin"]  # not ours: left alone
    assert upload_id not in {u for _, u in left}


async def test_scrub_recounts_server_counters_that_drifted_from_the_replica_table(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(s3, bucket)
    await stored_and_copied(api, admin, "counted.bin", DATA)
    async with api.app[appkeys.DB].transaction() as tx:  # a counter off by hand, as a trigger bug would leave it
        await tx.execute("UPDATE servers SET files_present = 7, bytes_present = 1 WHERE name = 'newyork'")

    drifts = {d.server: d for d in await api.app[appkeys.SCRUB].scrub()}
    assert drifts["newyork"].recount == Recount(files_was=7, files=1, bytes_was=1, bytes=len(DATA))
    assert not drifts["newyork"].clean
    assert drifts["dallas"].recount is None and drifts["dallas"].clean
    newyork = next(s for s in (await admin.get("/api/v1/servers")).expect(200)["items"] if s["name"] == "newyork")
    assert (newyork["files"], newyork["bytes"]) == (1, len(DATA))
    assert all(d.clean for d in await api.app[appkeys.SCRUB].scrub())


# --- the deep scrub: every replica's bytes against its version's SHA-256 ---------------------------------

USA = ("newyork", "dallas", "detroit")
BAD = DATA.replace(b"scrub", b"SCRUB", 1)  # same size: only reading the bytes tells


async def deep_setup(
    make_api: MakeApi, s3: S3Bed, bucket: str, **sections: dict[str, Any]
) -> tuple[Api, Session, str, str]:
    """Three servers in one zone holding one stored file; no deep scrub of the daemon's own. Their events no
    longer reach cdnstore: a tampered object is for the deep scrub to find (a storage event's re-check would
    find it first: test_integrity.py)."""
    api = await make_api(store=store_of(s3), **{**sections, "scrub": {"deep_interval": 0, **sections.get("scrub", {})}})
    admin = await api.user("root", admin=True)
    for name in USA:
        await admin.add_server(s3, name, bucket, is_active=True)
    answer = await stored_and_copied(api, admin, "precious.bin", DATA)
    await events_unheard(api, admin, *USA)
    return api, admin, answer["file"]["id"], object_key(answer["upload"])


async def tamper(api: Api, s3: S3Bed, bucket: str, server: str, key: str, data: bytes) -> None:
    """Someone overwrites the object in the server's bucket, behind cdnstore's back (S3 put_object)."""
    await overwrite(api, s3.target(server, bucket), key, data)


async def held(api: Api, s3: S3Bed, bucket: str, server: str, key: str) -> bytes:
    return b"".join([piece async for piece in api.app[appkeys.STORAGE].read(s3.target(server, bucket), key)])


async def statuses(admin: Session, file_id: str) -> dict[str, str]:
    found = (await admin.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
    return {item["server"]["name"]: item["status"] for item in found}


async def deep_scrub(api: Api) -> DeepReport:
    report = await api.app[appkeys.DEEP_SCRUB].scrub()
    assert report is not None
    return report


async def test_deep_scrub_finds_an_object_overwritten_in_one_bucket_and_puts_the_right_bytes_back(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    await tamper(api, s3, bucket, "dallas", key, BAD)
    assert all(d.clean for d in await api.app[appkeys.SCRUB].scrub())  # the plain scrub cannot tell

    async with copies_held(api):  # (the daemon's worker repairs at once otherwise)
        report = await deep_scrub(api)
        assert (report.corrupt, report.verified, report.without_good_holder) == (1, 2, 0)
        assert report.bytes_read == 3 * len(DATA)
        assert await statuses(admin, file_id) == {"dallas": "corrupt", "detroit": "present", "newyork": "present"}
        servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
        assert (servers["dallas"]["corrupt"], servers["newyork"]["corrupt"]) == (1, 0)

    await api.app[appkeys.WORKER].run_until_idle()  # the repair: a good holder's bytes over the corrupt ones
    assert await held(api, s3, bucket, "dallas", key) == DATA
    assert await statuses(admin, file_id) == {name: "present" for name in USA}
    again = await deep_scrub(api)
    differ = sum([await held(api, s3, bucket, name, key) != DATA for name in USA])
    LEDGER.add(
        "replicas altered in their buckets, found by the deep scrub",
        faults=1,
        rounds=1,
        files_checked=1,
        drift=differ + again.corrupt,
    )
    assert (again.corrupt, again.verified, differ) == (0, 3, 0)
    servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
    assert servers["dallas"]["corrupt"] == 0 and servers["dallas"]["verified_at"] is not None


async def test_a_file_tampered_on_every_server_is_reported_counted_and_never_served(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    for name in USA:
        await tamper(api, s3, bucket, name, key, BAD)

    report = await deep_scrub(api)
    assert (report.corrupt, report.verified, report.without_good_holder) == (3, 0, 1)
    assert await statuses(admin, file_id) == {name: "corrupt" for name in USA}
    found = samples((await api.call("GET", "/metrics")).expect(200))
    assert value(found, "cdnstore_versions_without_good_holder") == 1
    assert all(value(found, "cdnstore_replicas_corrupt", server=name) == 1 for name in USA)
    assert value(found, "cdnstore_scrub_corrupt_replicas_found_total", server="dallas") == 1
    assert value(found, "cdnstore_scrub_read_bytes_total") == 3 * len(DATA)
    served = await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))
    LEDGER.add(
        "replicas altered in their buckets, found by the deep scrub",
        faults=len(USA),
        rounds=1,
        files_checked=1,
        drift=int(served.status == 200),
    )
    served.problem(503, "no_replica_available")  # no link to wrong bytes


async def test_a_version_stored_before_hashes_gets_its_sha256_from_the_majority_of_its_replicas(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    await forget_hashes(api)
    await tamper(api, s3, bucket, "detroit", key, BAD)  # a multipart-like ETag: only the majority can tell
    async with api.app[appkeys.DB].transaction() as tx:
        await tx.execute("UPDATE versions SET etag = 'abc-2'")

    async with copies_held(api):
        report = await deep_scrub(api)
        assert (report.hashed, report.corrupt, report.verified) == (1, 1, 2)
        file = (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
        assert file["sha256"] == hashlib.sha256(DATA).hexdigest()
        assert (await statuses(admin, file_id))["detroit"] == "corrupt"


async def test_the_upload_etag_outvotes_a_majority_of_tampered_replicas(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    await forget_hashes(api)
    for name in ("newyork", "dallas"):
        await tamper(api, s3, bucket, name, key, BAD)

    report = await deep_scrub(api)
    assert (report.hashed, report.corrupt, report.verified) == (1, 2, 1)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] == hashlib.sha256(DATA).hexdigest()
    await api.app[appkeys.WORKER].run_until_idle()
    assert [await held(api, s3, bucket, name, key) for name in USA] == [DATA] * 3


async def test_a_version_without_sha256_altered_alike_everywhere_is_left_undecided_not_trusted(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    await forget_hashes(api)
    for name in USA:  # all three agree, but none has the upload's MD5
        await tamper(api, s3, bucket, name, key, BAD)

    report = await deep_scrub(api)
    assert (report.undecided, report.hashed, report.verified, report.corrupt) == (1, 0, 0, 0)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] is None


async def test_a_corrupt_replica_repaired_by_hand_is_present_again_after_the_next_pass(
    make_api: MakeApi, s3: S3Bed, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    await tamper(api, s3, bucket, "dallas", key, BAD)
    async with copies_held(api):
        assert (await deep_scrub(api)).corrupt == 1
        assert (await statuses(admin, file_id))["dallas"] == "corrupt"
        await tamper(api, s3, bucket, "dallas", key, DATA)  # an operator puts the right bytes back by hand
        report = await deep_scrub(api)
        assert (report.restored, report.corrupt) == (1, 0)
        assert (await statuses(admin, file_id))["dallas"] == "present"
        servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
        assert (servers["dallas"]["files"], servers["dallas"]["corrupt"]) == (1, 0)
    await api.app[appkeys.WORKER].run_until_idle()  # the repair copy finds it held: nothing to do
    assert await held(api, s3, bucket, "dallas", key) == DATA
    assert all(d.clean for d in await api.app[appkeys.SCRUB].scrub())  # counters and replica table agree
    assert (await deep_scrub(api)).restored == 0


@REAL_ONLY  # process (the CLI reaches the servers itself)
async def test_scrub_deep_on_the_command_line_works_while_the_daemon_serves(
    make_api: MakeApi, s3: S3Bed, bucket: str, tmp_path: Path, daemon_port: int, database_url: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, s3, bucket)
    await tamper(api, s3, bucket, "newyork", key, BAD)
    # (the in-process daemon's own configuration: same database)
    # (its health check as patient as the daemon's registration: a server it finds slow is skipped, not read)
    config = write_config(
        tmp_path, daemon_port, health={"timeout": 15}, **({"database": {"url": database_url}} if database_url else {})
    )
    async with copies_held(api):
        done = await asyncio.to_thread(cdnstore, "scrub", "--deep", cwd=tmp_path, env={"CDNSTORE_CONFIG": str(config)})
        assert done.returncode == 0, done.stderr
        assert "corrupt=1" in done.stdout and "verified=2" in done.stdout, done.stderr
        assert (await statuses(admin, file_id))["newyork"] == "corrupt"
    await api.app[appkeys.WORKER].run_until_idle()  # the serving daemon's worker repairs it
    assert await held(api, s3, bucket, "newyork", key) == DATA


async def forget_hashes(api: Api) -> None:
    """The database of a cdnstore from before SHA-256s: no hash known, no replica ever verified."""
    async with api.app[appkeys.DB].transaction() as tx:
        await tx.execute("UPDATE versions SET sha256 = NULL")
        await tx.execute("UPDATE replicas SET verified_at = NULL")


@pytest.mark.parametrize("engine", ["postgres"])
async def test_daemons_sharing_a_postgresql_database_run_one_deep_pass_at_a_time(
    make_api: MakeApi, s3: S3Bed, bucket: str, engine: str
) -> None:
    api, _, _, _ = await deep_setup(make_api, s3, bucket)
    other = connect(api.app[appkeys.CONFIG].database)  # another daemon's connection to the same database
    await other.open()
    try:
        lease = Lease(other, "deep-scrub", "the-other-daemon", 30)
        assert await lease.acquire()  # the other daemon is in a pass
        assert await api.app[appkeys.DEEP_SCRUB].scrub() is None
        await lease.release()
        report = await deep_scrub(api)  # its pass over, the next one may run
        assert report.verified == 3
    finally:
        await other.close()


async def test_two_deep_passes_started_at_once_run_one_at_a_time(make_api: MakeApi, s3: S3Bed, bucket: str) -> None:
    api, _, _, _ = await deep_setup(make_api, s3, bucket, scrub={"deep_rate": len(DATA)})  # a second a replica
    first, second = await asyncio.gather(api.app[appkeys.DEEP_SCRUB].scrub(), api.app[appkeys.DEEP_SCRUB].scrub())
    ran = [report for report in (first, second) if report is not None]
    assert len(ran) == 1 and ran[0].verified == 3 and not ran[0].stopped
    assert await api.app[appkeys.DB].fetchval("SELECT count(*) FROM leases WHERE name = 'deep-scrub'") == 0


async def test_a_deep_pass_whose_lease_is_taken_over_stops(make_api: MakeApi, s3: S3Bed, bucket: str) -> None:
    # Held to a replica a second, renewing its lease every half second.
    api, _, _, _ = await deep_setup(
        make_api, s3, bucket, scrub={"deep_rate": len(DATA)}, periodic={"lease_seconds": 1.5}
    )
    db = api.app[appkeys.DB]
    scrub = asyncio.create_task(api.app[appkeys.DEEP_SCRUB].scrub())
    await wait_for(lambda: db.fetchval("SELECT count(*) FROM leases WHERE name = 'deep-scrub'"), "the pass's lease")
    async with db.transaction() as tx:  # another daemon took it over (its holder let it run out, say)
        await tx.execute("UPDATE leases SET holder = 'the-other-daemon', until = until + 60 WHERE name = 'deep-scrub'")
    report = await scrub
    assert report is not None and report.stopped and report.verified < 3
    assert await db.fetchval("SELECT holder FROM leases WHERE name = 'deep-scrub'") == "the-other-daemon"
