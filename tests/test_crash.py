"""A daemon killed with SIGKILL in the middle of replication converges after a restart, losing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from pathlib import Path

import aiohttp
from apihelp import object_key
from daemonproc import Daemon, admin_session, write_config
from weedbed import md5_of_get

from cdnstore.demo import ORIGINAL_LAYOUT
from cdnstore.seaweed import WeedCluster
from cdnstore.storage import Storage

MIB = 1 << 20


async def test_a_daemon_killed_mid_replication_converges_after_restart(tmp_path: Path, daemon: Daemon,
                                                                       weed: WeedCluster, bucket: str) -> None:
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

        async with asyncio.timeout(30):  # kill it while a copy is running
            while not db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0]:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the scenario: the kill lands with the copy some way in, not at its start
        daemon.kill()
        assert daemon.proc is not None
        await daemon.proc.wait()
        assert db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] >= 1

        await daemon.start()
        async with asyncio.timeout(60):
            while db.execute("SELECT count(*) FROM jobs").fetchone()[0] or \
                    db.execute("SELECT count(*) FROM replicas").fetchone()[0] < len(usa):
                await asyncio.sleep(0.1)
        file_id = announced["file"]["id"]
        assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "stored"
    key = object_key(announced["upload"])
    async with Storage() as storage, aiohttp.ClientSession() as plain:
        for name in usa:
            url = storage.presign_get(weed.target(name, bucket), key, filename="big.bin", expires_in=60)
            digest, size, _ = await md5_of_get(plain, url)
            assert (size, digest) == (len(data), hashlib.md5(data).hexdigest()), name
