"""A daemon killed with SIGKILL in the middle of replication converges after a restart, losing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
from pathlib import Path

import aiohttp
from apihelp import object_key, wait_for
from daemonproc import admin_session, write_config
from reliability import LEDGER
from weedbed import md5_of_get

from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.demo import ORIGINAL_LAYOUT
from testbed.seaweed import WeedCluster

MIB = 1 << 20


def all_copied(db: sqlite3.Connection, replicas: int) -> bool:
    """No job left, and the replica table holds `replicas` rows (or more)."""
    jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    return not jobs and db.execute("SELECT count(*) FROM replicas").fetchone()[0] >= replicas


async def test_a_daemon_killed_mid_replication_converges_after_restart(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    write_config(tmp_path, daemon.port, jobs={"part_size": 5 * MIB, "parts_in_flight": 1}, health={"interval": 1.0})
    await daemon.start()
    db = sqlite3.connect(tmp_path / "cdnstore.sqlite3", timeout=5)
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        usa = [site.name for site in ORIGINAL_LAYOUT if site.zone == "USA"]
        for name in usa:
            await admin.add_server(weed, name, bucket, is_active=True)
        data = os.urandom(MIB) * 40
        announced = await admin.upload("big.bin", data, content_type="application/zip")

        await wait_for(  # kill it while a copy is running
            lambda: db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0],
            "a copy running",
            30,
            every=0.01,
        )
        await asyncio.sleep(0.1)  # the scenario: the kill lands with the copy some way in, not at its start
        daemon.kill()
        assert daemon.proc is not None
        await daemon.proc.wait()
        assert db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] >= 1

        await daemon.start()
        await wait_for(lambda: all_copied(db, len(usa)), "every copy made, no job left", 60, every=0.1)
        file_id = announced["file"]["id"]
        assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "stored"
    key = object_key(announced["upload"])
    async with Storage() as storage, aiohttp.ClientSession() as plain:
        for name in usa:
            url = storage.presign_get(weed.target(name, bucket), key, filename="big.bin", expires_in=60)
            digest, size, _ = await md5_of_get(plain, url)
            assert (size, digest) == (len(data), hashlib.md5(data).hexdigest()), name


async def test_a_deep_scrub_pass_cut_short_by_a_kill_goes_on_where_it_stopped(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    size, files = 20_000, 4
    write_config(tmp_path, daemon.port, scrub={"deep_interval": 3600, "deep_rate": size}, health={"interval": 1.0})
    await daemon.start()
    db = sqlite3.connect(tmp_path / "cdnstore.sqlite3", timeout=5, isolation_level=None)
    usa = [site.name for site in ORIGINAL_LAYOUT if site.zone == "USA"]
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        for name in usa:
            await admin.add_server(weed, name, bucket, is_active=True)
        contents = {}
        for n in range(files):
            data = os.urandom(size)
            contents[(await admin.upload(f"f{n}.bin", data))["file"]["id"]] = data
        await wait_for(lambda: all_copied(db, files * len(usa)), "every copy made, no job left", 30, every=0.1)
    assert (await daemon.stop(within=30))[0] == 0
    # A database from before SHA-256s: the first pass reads every replica, at `size` bytes a second.
    db.execute("UPDATE versions SET sha256 = NULL")
    db.execute("UPDATE replicas SET verified_at = NULL")

    await daemon.start()
    await wait_for(
        lambda: db.execute("SELECT count(verified_at) FROM replicas").fetchone()[0] >= len(usa),
        "the first replicas verified",
        30,
        every=0.05,
    )
    daemon.kill()
    assert daemon.proc is not None
    await daemon.proc.wait()
    before = {
        (s, v): at
        for s, v, at in db.execute(
            "SELECT server_id, version_id, verified_at FROM replicas WHERE verified_at IS NOT NULL"
        )
    }
    assert len(usa) <= len(before) < files * len(usa)

    await daemon.start()
    await wait_for(
        lambda: not db.execute("SELECT count(*) FROM replicas WHERE verified_at IS NULL").fetchone()[0],
        "every replica verified",
        60,
        every=0.1,
    )
    after = {(s, v): at for s, v, at in db.execute("SELECT server_id, version_id, verified_at FROM replicas")}
    again = sum(after[k] != at for k, at in before.items())
    LEDGER.add("daemon killed (SIGKILL) during a deep scrub pass", faults=1, rounds=1, files_checked=files, drift=again)
    assert not again  # what the killed pass verified was not read again
    async with aiohttp.ClientSession(base_url=daemon.url) as http, http.get("/metrics") as resp:
        metrics = await resp.text()
    read = re.search(r"^cdnstore_scrub_read_bytes_total (\S+)$", metrics, re.MULTILINE)
    assert read is not None and float(read[1]) == (files * len(usa) - len(before)) * size
    hashes = dict(db.execute("SELECT f.uuid, v.sha256 FROM files f JOIN versions v ON v.id = f.current_version_id"))
    assert hashes == {file_id: hashlib.sha256(data).hexdigest() for file_id, data in contents.items()}
