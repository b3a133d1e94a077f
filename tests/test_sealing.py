"""S3 secret keys are sealed in the database with a key derived from auth.secret_key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from apihelp import SECRET, Api
from conftest import make_config
from weedbed import SECRET_KEY

from cdnstore import appkeys
from cdnstore.__main__ import offline
from cdnstore.models import Health
from cdnstore.sealing import PREFIX, Sealer, UnsealError
from cdnstore.servers import ServerChanges
from testbed.seaweed import WeedCluster


def test_a_sealed_secret_opens_with_its_key_only() -> None:
    sealer = Sealer("the-first-key-of-sixteen")
    stored = sealer.seal(SECRET_KEY)
    assert stored.startswith(PREFIX) and SECRET_KEY not in stored
    assert sealer.seal(SECRET_KEY) != stored  # a fresh IV each time: equal secrets do not show
    assert sealer.unseal(stored) == SECRET_KEY
    with pytest.raises(UnsealError, match=r"auth\.secret_key"):
        Sealer("another-key-of-sixteen!").unseal(stored)
    assert sealer.unseal("stored-in-clear-before") == "stored-in-clear-before"


def stored_secret(db: Path, name: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT secret_key FROM servers WHERE name = ?", (name,)).fetchone()[0])
    finally:
        conn.close()


async def test_the_database_holds_s3_secret_keys_sealed_and_they_still_sign(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "dallas", bucket)
    db = Path(api.app[appkeys.CONFIG].database.path)
    assert stored_secret(db, "dallas").startswith(PREFIX)
    for path in (db, Path(f"{db}-wal")):  # nowhere in the files, not even in a page of the log
        assert SECRET_KEY.encode() not in path.read_bytes(), path
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"secret_key": SECRET_KEY})).expect(200)
    assert stored_secret(db, "dallas").startswith(PREFIX)
    file_id = (await admin.upload("sealed.txt", b"signed with the unsealed secret"))["file"]["id"]
    await admin.wait_stored(file_id)
    assert (await admin.download(file_id))[1] == b"signed with the unsealed secret"


async def test_a_secret_stored_in_clear_by_an_older_version_is_sealed_at_start(
    api: Api, weed: WeedCluster, bucket: str, tmp_path: Path
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket)
    db = Path(api.app[appkeys.CONFIG].database.path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE servers SET secret_key = ?", (SECRET_KEY,))
    async with offline(make_config(tmp_path, 0)) as app:  # the next start, on the same database
        assert stored_secret(db, "dallas").startswith(PREFIX)
        assert app[appkeys.SERVERS].by_name("dallas").secret_key == SECRET_KEY
        assert await app[appkeys.HEALTH].check_all() == {}  # still up: it signs


async def test_under_another_auth_secret_key_a_server_is_down_until_it_gets_its_secret_again(
    api: Api, weed: WeedCluster, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await api.user("root", admin=True)
    created = await admin.add_server(weed, "dallas", bucket)
    root = await api.app[appkeys.DB].fetchone("SELECT id FROM users WHERE username = 'root'")
    assert root is not None
    actor = root["id"]
    config = make_config(tmp_path, 0, auth={"secret_key": SECRET + "-rotated"})
    async with offline(config) as app:
        registry = app[appkeys.SERVERS]
        assert "cannot unseal its S3 secret key" in caplog.text
        assert await app[appkeys.HEALTH].check_all() == {created["id"]: Health.DOWN}
        await registry.update(actor, created["id"], ServerChanges(secret_key=SECRET_KEY))
        assert await app[appkeys.HEALTH].check_all() == {created["id"]: Health.UP}
    assert Sealer(SECRET + "-rotated").unseal(stored_secret(Path(config.database.path), "dallas")) == SECRET_KEY
