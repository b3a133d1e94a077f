"""Secrets stay out of places others read: no share-link token in a served daemon's log, and the database,
its WAL and SHM files and its backups are 0600 (their folder 0700) whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from apihelp import US_IP, from_ip
from clihelp import cdnstore
from daemonproc import admin_session, write_config

from cdnstore.db import initialize
from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """The process's umask, inherited by the commands and the daemon started meanwhile."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_served_daemons_log_holds_no_share_token_after_link_downloads(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    write_config(tmp_path, daemon.port)
    await daemon.start()
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        await admin.add_server(weed, "newyork", bucket)
        file_id = (await admin.upload("shared.txt", b"shared with a link"))["file"]["id"]
        await admin.wait_stored(file_id)
        token = (await admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)["token"]
        public = f"/api/v1/public/links/{token}"
        for method, path, status in (
            ("GET", f"/s/{token}", 200),
            ("GET", public, 200),
            ("POST", f"{public}/download", 200),
            ("POST", f"{public}/download?redirect=true", 302),
            ("GET", f"/s/{token}/", 404),
            ("GET", f"{public}/nothing", 404),
        ):
            async with http.request(method, path, json={}, headers=from_ip(US_IP), allow_redirects=False) as resp:
                assert resp.status == status, (path, await resp.text())
        (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
        # An upload request's token, and the upload_token of a file sent through it, are capabilities too.
        asking = (await admin.post("/api/v1/upload-requests", json={})).expect(201)["token"]
        async with http.post(
            f"/api/v1/public/upload-requests/{asking}/files",
            json={"name": "sent.txt", "size": 4},
            headers=from_ip(US_IP),
        ) as resp:
            assert resp.status == 201, await resp.text()
            upload_token = (await resp.json())["upload_token"]
        for path in (
            f"/u/{asking}",
            f"/api/v1/public/upload-requests/{asking}",
            f"/api/v1/public/uploads/{upload_token}/upload",
        ):
            async with http.get(path) as resp:
                assert resp.status == 200, (path, await resp.text())
    code, _ = await daemon.stop(within=30)
    assert code == 0

    log = daemon.log.read_text()
    assert token not in log and asking not in log and upload_token not in log
    for line in (
        "GET /s/{token} 200",
        "GET /api/v1/public/links/{token} 200",
        "POST /api/v1/public/links/{token}/download 200",
        "POST /api/v1/public/links/{token}/download 302",
        "GET /s/{redacted}/ 404",
        "GET /api/v1/public/links/{redacted}/nothing 404",
        f"GET /api/v1/files/{file_id} 200",
        "GET /u/{token} 200",
        "POST /api/v1/public/upload-requests/{token}/files 201",
        "GET /api/v1/public/uploads/{upload_token}/upload 200",
    ):  # ids grant nothing: they stay, to follow a request
        assert line in log, line


async def test_the_database_its_wal_and_shm_and_backups_are_private_whatever_the_umask(
    tmp_path: Path, daemon: Daemon
) -> None:
    config = write_config(tmp_path, daemon.port, database={"path": str(tmp_path / "var" / "cdnstore.sqlite3")})
    env = {"CDNSTORE_CONFIG": str(config)}
    db = tmp_path / "var" / "cdnstore.sqlite3"
    with umask(0):
        made = cdnstore("init", cwd=tmp_path, env=env)
        assert made.returncode == 0, made.stderr
        assert (mode(db.parent), mode(db)) == (0o700, 0o600)
        await daemon.start()
        async with aiohttp.ClientSession(base_url=daemon.url) as http:
            admin = await admin_session(daemon, http)  # writes: the WAL and SHM files exist
            (await admin.get("/api/v1/me")).expect(200)
            backup = tmp_path / "backups" / "copy.sqlite3"
            made = cdnstore("backup", str(backup), cwd=tmp_path, env=env)
            assert made.returncode == 0, made.stderr
        sides = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(side.exists() for side in sides)
        assert {str(p): mode(p) for p in (db, *sides, backup)} == {str(p): 0o600 for p in (db, *sides, backup)}
        code, _ = await daemon.stop(within=30)
        assert code == 0


def test_a_database_left_readable_by_others_is_made_private_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.sqlite3"
    initialize(db)
    db.chmod(0o644)  # as earlier versions left it under the usual umask
    with caplog.at_level(logging.WARNING, logger="cdnstore.db"):
        initialize(db)
    assert mode(db) == 0o600
    assert "was readable by others" in caplog.text
