"""The database's disk fills up: writes answer 503 database_unavailable, reads and background work go
on, and once there is room again everything works and nothing that was acknowledged is lost.

The database lives on a 4 MiB tmpfs of its own; a filler file takes every byte left. Before filling, the
WAL is checkpointed and truncated to 0 bytes, so the next write needs new space (as when a disk fills
while the WAL is small); SQLite then fails the commit with SQLITE_FULL and rolls it back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apihelp import (
    DATA_SMALL,
    EVENTS_TOKEN,
    PASSWORD,
    US_IP,
    Answer,
    Api,
    fetch,
    from_ip,
    object_key,
    put_bytes,
    wait_for,
)
from reliability import LEDGER, server_errors

from cdnstore import appkeys
from cdnstore.errors import DatabaseUnavailable
from cdnstore.job_queue import Job
from cdnstore.models import Health
from testbed.seaweed import WeedCluster

MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs) for the database, unmounted at the end."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        # Lazy: the daemon's database files may still be open; the mount goes when they are closed.
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def empty_wal(database: Path) -> None:
    """Checkpoint the WAL into the database file and truncate it to 0 bytes."""
    conn = sqlite3.connect(database)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    assert busy == 0 and Path(f"{database}-wal").stat().st_size == 0


def fill(disk: Path) -> Path:
    """A file that takes every byte left on the file system."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def fill_the_disk_under(database: Path) -> Path:
    """Both at once, with no await between: no write of the daemon's gets in first."""
    empty_wal(database)
    return fill(database.parent)


def refused(answer: Answer) -> dict[str, Any]:
    """The documented answer to a write while the disk is full."""
    problem = answer.problem(503, "database_unavailable")
    assert answer.headers["Retry-After"] == "30"
    assert problem["reason"] == "disk_full" and "disk is full" in problem["detail"], problem
    return problem


def integrity(database: Path) -> str:
    conn = sqlite3.connect(database)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def gauges(exposition: str) -> dict[str, float]:
    """The database's gauges in a /metrics answer."""
    return {
        m[1]: float(m[2])
        for m in re.finditer(r"^(cdnstore_(?:database_writable|history_pending)) (\S+)$", exposition, re.M)
    }


def seaweed_event(bucket: str, upload: dict[str, Any], size: int) -> dict[str, Any]:
    key = object_key(upload)
    return {
        "event_type": "create",
        "key": f"/buckets/{bucket}/{key}",
        "message": {"new_entry": {"attributes": {"file_size": size}}},
    }


async def test_a_full_disk_answers_writes_503_serves_reads_and_loses_nothing(
    make_api: MakeApi, weed: WeedCluster, bucket: str, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = small_disk / "cdnstore.sqlite3"
    # The upload sweep every 0.2 s; health checks only when the test asks (the first one runs at start).
    api = await make_api(
        database={"path": str(database)}, uploads={"sweep_after": 0, "sweep_interval": 0.2}, health={"interval": 300}
    )
    db, registry, history = api.app[appkeys.DB], api.app[appkeys.SERVERS], api.app[appkeys.HISTORY]
    admin = await api.user("root", admin=True)
    servers = await admin.add_layout(weed, bucket)
    alice = await api.user("alice")
    kept = (await alice.upload("kept.txt", DATA_SMALL))["file"]["id"]
    await alice.wait_stored(kept)
    await api.app[appkeys.WORKER].run_until_idle()
    link = (await alice.post(f"/api/v1/files/{kept}/links", json={})).expect(201)
    arriving = await alice.announce("arrives-while-full.txt", DATA_SMALL)  # its bytes come during the outage
    listed = (await alice.get("/api/v1/files")).expect(200)["items"]
    newyork = servers["newyork"]["id"]
    await registry.set_health({newyork: Health.DOWN})  # seen down before; it answers again during the outage
    caplog.set_level(logging.INFO, logger="cdnstore")

    filler = fill_the_disk_under(database)

    # Every kind of write answers 503 database_unavailable, and changes nothing.
    assert await put_bytes(arriving["upload"], DATA_SMALL) == 200  # the storage server is not full
    writes = [
        await alice.post("/api/v1/files", json={"name": "new.txt", "size": 3}, headers=from_ip(US_IP)),
        await alice.patch(f"/api/v1/files/{kept}", json={"name": "renamed.txt"}),
        await alice.delete(f"/api/v1/files/{kept}"),
        await alice.post(f"/api/v1/files/{kept}/links", json={"max_downloads": 3}),
        await alice.delete(f"/api/v1/files/{kept}/links/{link['id']}"),
        await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}),
        await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": alice.refresh}),
        await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={}),
        await api.call(
            "POST",
            "/api/v1/events/s3/dallas",
            token=EVENTS_TOKEN,
            json=seaweed_event(bucket, arriving["upload"], len(DATA_SMALL)),
        ),
        await admin.post("/api/v1/users", json={"username": "bob", "password": "pass-word-1"}),
        await admin.patch(f"/api/v1/servers/{servers['detroit']['id']}", json={"is_active": True}),
    ]
    for answer in writes:
        refused(answer)

    # Reads go on: listings, downloads (their history waits in memory), the public link page.
    reads = [
        await alice.get("/api/v1/files"),
        await alice.get(f"/api/v1/files/{kept}"),
        await alice.get("/api/v1/history"),
        await admin.get("/api/v1/servers"),
        await api.call("GET", f"/api/v1/public/links/{link['token']}"),
        await api.call("GET", "/metrics"),
        await api.call("GET", "/healthz"),
    ]
    for answer in reads:
        answer.expect(200)
    assert reads[0].body["items"] == listed
    for _ in range(3):
        assert (await alice.download(kept))[1] == DATA_SMALL
    assert history.pending == 3
    metrics = await api.call("GET", "/metrics")
    assert gauges(metrics.expect(200)) == {"cdnstore_database_writable": 0, "cdnstore_history_pending": 3}

    # /readyz says why; a server that answers again is used at once, and recorded once there is room.
    ready = await api.call("GET", "/readyz")
    assert ready.expect(503)["checks"]["database"] == {
        "ok": False,
        "detail": "writes are refused: the disk is full",
    }  # fixed words: the probe is public
    with pytest.raises(DatabaseUnavailable):
        await api.app[appkeys.HEALTH].check_all()
    assert registry.get(newyork).health is Health.UP and registry.health_unsaved
    assert await db.fetchval("SELECT health FROM servers WHERE uuid = ?", (newyork,)) == "down"

    filler.unlink()

    (await api.call("GET", "/readyz")).expect(200)
    await alice.wait_stored(arriving["file"]["id"])  # the upload sweep kept looking: it is stored now
    await wait_for(lambda: history.pending == 0, "the history written", within=15)  # the writer kept trying
    await api.app[appkeys.HEALTH].check_all()
    assert await db.fetchval("SELECT health FROM servers WHERE uuid = ?", (newyork,)) == "up"
    assert gauges((await api.call("GET", "/metrics")).expect(200)) == {
        "cdnstore_database_writable": 1,
        "cdnstore_history_pending": 0,
    }

    # Nothing the refused writes asked for happened; the same requests work now.
    assert (await alice.get(f"/api/v1/files/{kept}")).expect(200)["name"] == "kept.txt"
    assert (await admin.get("/api/v1/users")).expect(200)["items"][-1]["username"] == "alice"
    assert not (await admin.get(f"/api/v1/servers/{servers['detroit']['id']}")).expect(200)["is_active"]
    assert (await alice.get(f"/api/v1/files/{kept}/links")).expect(200)["items"][0]["downloads"] == 0
    again = [
        await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": alice.refresh}),  # not spent
        await alice.patch(f"/api/v1/files/{kept}", json={"name": "renamed.txt"}),
        await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={}),
        await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}),
    ]
    for answer in again:
        answer.expect(200)
    downloads = (await alice.get("/api/v1/history?event=file.downloaded")).expect(200)["items"]
    assert len(downloads) == 3 and {d["object_id"] for d in downloads} == {kept}

    # The stored upload was copied within its zone; the database is sound.
    await api.app[appkeys.WORKER].run_until_idle()
    files = {f["id"]: f for f in (await alice.get("/api/v1/files")).expect(200)["items"]}
    holders = {}
    for file_id in (kept, arriving["file"]["id"]):
        rows = await db.fetchall(
            "SELECT s.name, v.object_key FROM files f JOIN versions v ON v.id = "
            "f.current_version_id JOIN replicas r ON r.version_id = v.id JOIN servers s "
            "ON s.id = r.server_id WHERE f.uuid = ?",
            (file_id,),
        )
        holders[file_id] = {row["name"]: row["object_key"] for row in rows}
    drift = sum(set(h) != {"dallas", "newyork"} for h in holders.values())
    for held in holders.values():
        for name, key in held.items():
            drift += await api.app[appkeys.STORAGE].head(weed.target(name, bucket), key) is None
    drift += set(files) != {kept, arriving["file"]["id"]}
    assert drift == 0, holders
    assert integrity(database) == "ok"

    # Said once when writes started failing and once when they worked again: no traceback per request.
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("cdnstore")]
    assert sum("the database refuses writes" in m for m in messages) == 1, messages
    assert sum("the database takes writes again" in m for m in messages) == 1, messages
    assert not [r for r in caplog.records if r.name.startswith("cdnstore") and r.exc_info], messages

    answers = [*writes, *reads, metrics, *again]  # (the 503 of /readyz is its documented answer)
    LEDGER.add(
        "database disk full",
        faults=1,
        rounds=1,
        files_checked=len(holders),
        drift=drift,
        server_errors=server_errors(answers, "database_unavailable"),
    )


async def test_jobs_running_or_queued_when_the_disk_fills_finish_once_there_is_room(
    make_api: MakeApi, weed: WeedCluster, bucket: str, small_disk: Path
) -> None:
    database = small_disk / "cdnstore.sqlite3"
    api = await make_api(database={"path": str(database)}, jobs={"workers": 4, "per_server": 2})
    db, worker, storage = api.app[appkeys.DB], api.app[appkeys.WORKER], api.app[appkeys.STORAGE]
    admin = await api.user("root", admin=True)
    for name in ("dallas", "newyork"):  # one zone: every stored file is copied to the other server
        await admin.add_server(weed, name, bucket)
    doomed = (await admin.upload("doomed.txt", DATA_SMALL))["file"]["id"]
    await admin.wait_stored(doomed)
    await worker.run_until_idle()
    doomed_key = await db.fetchval(
        "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?", (doomed,)
    )

    # Copies wait in their handler until the disk is full; then they go on and try to record themselves.
    full, copying = asyncio.Event(), set[int]()
    copy = worker.handlers["copy"]

    async def copy_when_the_disk_is_full(job: Job) -> None:
        copying.add(job.id)
        await full.wait()
        await copy(job)

    worker.handlers["copy"] = copy_when_the_disk_is_full
    files = []
    for n in range(3):
        data = f"file {n}\n".encode() * 100
        files.append(((await admin.upload(f"f{n}.txt", data))["file"]["id"], data))
        await admin.wait_stored(files[-1][0])
    await wait_for(lambda: len(copying) == 2, "two copies running", within=15)  # (per_server): the third waits
    (await admin.delete(f"/api/v1/files/{doomed}")).expect(204)  # its removals queue up
    jobs_before = await db.fetchall("SELECT kind, status FROM jobs ORDER BY id")

    filler = fill_the_disk_under(database)
    full.set()

    async def copied_but_not_recorded() -> bool:
        keys = await db.fetchall(
            "SELECT v.object_key FROM jobs j JOIN versions v ON v.id = j.version_id "
            "WHERE j.kind = 'copy' AND j.status = 'running'"
        )
        found = [await storage.head(weed.target("newyork", bucket), row["object_key"]) for row in keys]
        return len(found) == 2 and all(found)

    await wait_for(copied_but_not_recorded, "the copies made", within=15)  # the database refused to say so
    assert await db.fetchval("SELECT count(*) FROM jobs") == len(jobs_before)
    assert worker.handlers["copy"] is copy_when_the_disk_is_full and len(copying) == 2

    filler.unlink()
    await worker.run_until_idle()

    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    drift = 0
    for file_id, data in files:
        key = await db.fetchval(
            "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?",
            (file_id,),
        )
        held = {
            row["name"]
            for row in await db.fetchall(
                "SELECT s.name FROM replicas r JOIN servers s ON s.id = r.server_id JOIN versions v ON "
                "v.id = r.version_id WHERE v.object_key = ?",
                (key,),
            )
        }
        drift += held != {"dallas", "newyork"}
        for name in ("dallas", "newyork"):
            target = weed.target(name, bucket)
            url = storage.presign_get(target, key, filename="x", expires_in=60)
            status, body, _ = await fetch(url)
            drift += status != 200 or body != data
    for name in ("dallas", "newyork"):  # the deleted file's objects were removed everywhere
        drift += await storage.head(weed.target(name, bucket), doomed_key) is not None
    assert drift == 0
    assert integrity(database) == "ok"
    kinds = [r["kind"] for r in jobs_before]
    assert kinds.count("copy") == 3 and "remove" in kinds
    LEDGER.add("database disk full", faults=1, rounds=1, files_checked=len(files) + 1, drift=drift)
