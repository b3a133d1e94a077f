"""`cdnstore serve` as a process: SIGTERM during a copy, backups while serving, check-config."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apihelp import PASSWORD, US_IP, put_bytes, wait_for
from clihelp import cdnstore
from daemonproc import RemoteApi, admin_session, write_config

from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster

BIG = 64 << 20


def db_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("grace", [30.0, 0.0], ids=["copy-finishes-within-grace", "copy-requeued"])
async def test_sigterm_during_a_copy_exits_0_and_the_copy_completes(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str, grace: float
) -> None:
    write_config(tmp_path, daemon.port, jobs={"shutdown_grace": grace, "part_size": 5 << 20, "parts_in_flight": 1})
    db = tmp_path / "cdnstore.sqlite3"
    await daemon.start()
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        for name in ("newyork", "dallas"):  # one zone (USA), both on and active
            await admin.add_server(weed, name, bucket)
        data = os.urandom(BIG)
        announced = await admin.announce("big.bin", data, ip=US_IP)
        first = announced["upload"]["server"]["name"]
        second = ({"newyork", "dallas"} - {first}).pop()
        file_id = announced["file"]["id"]
        assert await put_bytes(announced["upload"], data) == 200
        (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    await wait_for(  # the copy to the zone's other server starts
        lambda: db_rows(db, "SELECT 1 FROM jobs WHERE kind = 'copy' AND status = 'running'"),
        "the copy running",
        30,
        every=0.01,
    )

    code, took = await daemon.stop(within=grace + 15)
    log = daemon.log.read_text()
    assert code == 0, log
    assert took < grace + 5, log
    left = db_rows(db, "SELECT status, attempts, last_error FROM jobs WHERE kind = 'copy'")
    if grace:
        assert left == [], log  # it finished within the grace period
    else:
        assert left == [("queued", 0, "interrupted by shutdown")], log  # back in the queue, no attempt spent
        assert "interrupted by shutdown" in log

    key = db_rows(db, "SELECT object_key FROM versions")[0][0]
    await daemon.start()  # again: the copy completes (or was complete)
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await RemoteApi(http).login("root")

        async def both_hold() -> bool:
            found = (await admin.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
            return {s["server"]["name"]: s["status"] for s in found} == {first: "present", second: "present"}

        await wait_for(both_hold, "both servers holding it", 60, every=0.1)
    async with Storage() as storage:
        held = await storage.head(weed.target(second, bucket), key)
    assert held is not None and held.size == BIG
    code, _ = await daemon.stop(within=grace + 15)
    assert code == 0


def table(path: Path, name: str) -> list[tuple[Any, ...]]:
    return db_rows(path, f"SELECT * FROM {name} ORDER BY id")


async def test_a_backup_taken_while_serving_restores_to_the_same_data(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    config = write_config(tmp_path, daemon.port)
    env = {"CDNSTORE_CONFIG": str(config)}
    await daemon.start()
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        await admin.add_server(weed, "newyork", bucket)
        for i in range(3):
            file_id = (await admin.upload(f"f{i}.txt", b"backed up %d" % i))["file"]["id"]
            (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
        (await admin.post("/api/v1/users", json={"username": "bob", "password": PASSWORD, "is_admin": False})).expect(
            201
        )
        backup_path = tmp_path / "backups" / "cdnstore.sqlite3"
        # Writes go on while the backup runs: they may or may not be in it, nothing breaks.
        writing = asyncio.create_task(admin.upload("during.txt", b"meanwhile"))
        made = await asyncio.to_thread(cdnstore, "backup", str(backup_path), cwd=tmp_path, env=env)
        await writing
        assert made.returncode == 0, made.stderr
        assert "backed up" in made.stdout and backup_path.exists()
        assert not backup_path.with_name(backup_path.name + ".partial").exists()
        assert db_rows(backup_path, "PRAGMA journal_mode") == [("delete",)]  # one self-contained file

    code, _ = await daemon.stop(within=30)
    assert code == 0
    # Restore, as docs/operations.md says: the daemon stopped, the backup in place of the database.
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "cdnstore.sqlite3").write_bytes(backup_path.read_bytes())
    restored_env = {"CDNSTORE_CONFIG": str(config), "CDNSTORE_DATABASE_PATH": str(restored / "cdnstore.sqlite3")}
    assert cdnstore("init", cwd=tmp_path, env=restored_env).returncode == 0
    live = tmp_path / "cdnstore.sqlite3"
    for name in ("users", "servers"):
        assert table(restored / "cdnstore.sqlite3", name) == table(live, name), name
    live_files = [r for r in table(live, "files") if r[2] != "during.txt"]
    restored_files = [r for r in table(restored / "cdnstore.sqlite3", "files") if r[2] != "during.txt"]
    names = {r[0] for r in db_rows(live, "SELECT name FROM files")}
    assert {f"f{i}.txt" for i in range(3)} <= names
    assert restored_files == live_files


def test_backup_refuses_without_a_database_and_onto_itself(tmp_path: Path) -> None:
    missing = cdnstore("backup", str(tmp_path / "b.sqlite3"), cwd=tmp_path)
    assert missing.returncode == 1 and "no database" in missing.stderr
    assert cdnstore("init", cwd=tmp_path).returncode == 0
    itself = cdnstore("backup", "var/cdnstore.sqlite3", cwd=tmp_path)
    assert itself.returncode == 1 and "the database itself" in itself.stderr
    fine = cdnstore("backup", str(tmp_path / "b.sqlite3"), cwd=tmp_path)
    assert fine.returncode == 0, fine.stderr
    assert db_rows(tmp_path / "b.sqlite3", "PRAGMA quick_check") == [("ok",)]


def test_check_config_prints_the_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[auth]\nsecret_key = "a-very-secret-key-123"\n[http]\nport = 9000\n')
    sso = {"CDNSTORE_OIDC_ISSUER": "https://auth.example.com", "CDNSTORE_OIDC_CLIENT_ID": "cdnstore"}
    env = {"CDNSTORE_EVENTS_TOKEN": "hook-token-xyz-123", "CDNSTORE_LOG_FORMAT": "json", **sso}
    ok = cdnstore("check-config", cwd=tmp_path, env={**env, "CDNSTORE_OIDC_CLIENT_SECRET": "the-idp-client-secret"})
    assert ok.returncode == 0, ok.stderr
    assert "a-very-secret-key-123" not in ok.stdout and "hook-token-xyz-123" not in ok.stdout
    assert "the-idp-client-secret" not in ok.stdout
    import tomllib

    shown = tomllib.loads(ok.stdout)
    assert shown["http"]["port"] == 9000 and shown["log"]["format"] == "json"
    assert shown["auth"]["secret_key"] == "********" and shown["events"]["token"] == "********"
    assert shown["oidc"]["client_secret"] == "********" and shown["oidc"]["client_id"] == "cdnstore"
    assert shown["auth"]["access_token_ttl"] == 900  # not a secret, though its name has "token" in it
    assert shown["jobs"]["shutdown_grace"] == 30.0

    no_secret = cdnstore("check-config", cwd=tmp_path, env={"CDNSTORE_AUTH_SECRET_KEY": ""})
    assert no_secret.returncode == 2 and "auth.secret_key" in no_secret.stderr
    bad = cdnstore("check-config", cwd=tmp_path, env={"CDNSTORE_JOBS_SHUTDOWN_GRACE": "-1"})
    assert bad.returncode == 2 and "jobs.shutdown_grace" in bad.stderr


async def test_a_user_disabled_with_the_cli_beside_a_serving_daemon_is_refused_there_within_2_seconds(
    tmp_path: Path, daemon: Daemon
) -> None:
    # (What docs/security.md said was "at the daemon's next restart"; the counters of changes.py tell it.)
    config = write_config(tmp_path, daemon.port)
    await daemon.start()
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        (await admin.post("/api/v1/users", json={"username": "alice", "password": PASSWORD})).expect(201)
        alice = await RemoteApi(http).login("alice")
        (await alice.get("/api/v1/me")).expect(200)
        disabled = await asyncio.to_thread(
            cdnstore, "user", "disable", "alice", cwd=tmp_path, env={"CDNSTORE_CONFIG": str(config)}
        )
        assert disabled.returncode == 0, disabled.stderr

        async def refused() -> bool:
            answer = await alice.get("/api/v1/me")
            return answer.status == 401

        await wait_for(refused, "the daemon to refuse alice's token", within=2.0)
        (
            await RemoteApi(http).call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        ).problem(401, "invalid_credentials")
