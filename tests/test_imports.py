"""Importing a bucket (the way off MinIO): the objects already in a server's bucket that cdnstore does not
know become files of a user, named by their key, copied to the zone; resumable and idempotent."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
from apihelp import US_IP, Api, Session, wait_for
from clihelp import cdnstore
from conftest import MakeApi
from daemonproc import RemoteApi, admin_session, write_config

from cdnstore import appkeys
from cdnstore.imports import NAME_TAKEN
from cdnstore.models import S3Target
from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster

FAST = {"imports": {"poll_interval": 0.1}}


async def fill(target: S3Target, objects: dict[str, bytes], at_once: int = 32) -> None:
    """Put `objects` straight into the bucket, behind cdnstore's back (as MinIO's users did), `at_once` at a time."""
    slots = asyncio.Semaphore(at_once)
    async with Storage() as storage:
        client = await storage._client(target)

        async def put(key: str, data: bytes) -> None:
            async with slots:
                await client.put_object(Bucket=target.bucket, Key=key, Body=data)

        async with asyncio.TaskGroup() as tasks:
            for key, data in objects.items():
                tasks.create_task(put(key, data))


async def imported(admin: Session, server_id: str, within: float = 30.0, **body: Any) -> dict[str, Any]:
    """POST an import and wait for its end; its progress."""
    (await admin.post(f"/api/v1/servers/{server_id}/import", json=body)).expect(202)

    async def done() -> dict[str, Any] | None:
        found = dict((await admin.get(f"/api/v1/servers/{server_id}/import")).expect(200))
        return found if found["state"] == "done" else None

    return dict(await wait_for(done, "the import to end", within))


async def files_of(user: Session) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in (await user.get("/api/v1/files?limit=1000")).expect(200)["items"]}


async def importing(
    make_api: MakeApi, weed: WeedCluster, bucket: str, owner: str, **server: Any
) -> tuple[Api, Session, Session, dict[str, Any]]:
    """A daemon that looks for imports often, its administrator, the user `owner` and Dallas registered with
    `bucket` (with `server`'s fields)."""
    api = await make_api(**FAST)
    admin = await api.user("root", admin=True)
    user = await api.user(owner)
    return api, admin, user, await admin.add_server(weed, "dallas", bucket, **server)


async def test_an_import_adopts_the_objects_cdnstore_does_not_know_as_files_of_the_owner_named_by_their_key(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    api, admin, alice, dallas = await importing(make_api, weed, bucket, "alice")
    await admin.add_server(weed, "newyork", bucket)  # (same zone: adopted files are copied there)
    ours = await alice.upload_and_confirm("taken.txt", b"alice's own file\n")  # cdnstore's own object: known
    await api.app[appkeys.WORKER].run_until_idle()
    objects = {
        "report.pdf": b"%PDF- a report\n" * 50,
        "notes \u00fc.txt": b"notes\n",
        "photos/a.jpg": b"a photo in a folder\n",  # not a valid file name: reported, not renamed
        "taken.txt": b"a name alice already uses\n",  # reported: never a new version of her file
    }
    await fill(weed.target("dallas", bucket), objects)

    progress = await imported(admin, dallas["id"], owner="alice")
    assert {k: progress[k] for k in ("state", "owner", "objects_seen", "files_adopted", "bytes", "errors")} == {
        "state": "done",
        "owner": "alice",
        "objects_seen": 5,
        "files_adopted": 2,
        "bytes": len(objects["report.pdf"]) + len(objects["notes \u00fc.txt"]),
        "errors": 2,
    }
    reasons = {e["key"]: e["reason"] for e in progress["error_keys"]}
    assert reasons["taken.txt"] == NAME_TAKEN and reasons["photos/a.jpg"].startswith("not a valid file name: ")
    files = await files_of(alice)
    assert set(files) == {"report.pdf", "notes \u00fc.txt", "taken.txt"}
    assert files["report.pdf"]["status"] == "stored" and files["report.pdf"]["content_type"] == "application/pdf"
    assert files["taken.txt"]["id"] == ours["file"]["id"]

    await api.app[appkeys.WORKER].run_until_idle()  # copied to the zone, hashed as they stream: the SHA-256 is known
    for name in ("report.pdf", "notes \u00fc.txt"):
        file = (await alice.get(f"/api/v1/files/{files[name]['id']}")).expect(200)
        assert file["sha256"] == hashlib.sha256(objects[name]).hexdigest()
        where = (await admin.get(f"/api/v1/files/{file['id']}/servers")).expect(200)["items"]
        assert sorted((w["server"]["name"], w["status"]) for w in where) == [
            ("dallas", "present"),
            ("newyork", "present"),
        ]
        assert (await alice.download(file["id"], ip=US_IP))[1] == objects[name]
    history = (await alice.get("/api/v1/history?event=file.imported")).expect(200)["items"]
    assert sorted(h["data"]["name"] for h in history) == ["notes \u00fc.txt", "report.pdf"]

    again = await imported(admin, dallas["id"], owner="alice")  # idempotent: nothing is new
    assert (again["objects_seen"], again["files_adopted"], again["errors"]) == (5, 0, 2)
    await fill(weed.target("dallas", bucket), {"later.txt": b"added after\n"})
    third = await imported(admin, dallas["id"], owner="alice")
    assert third["files_adopted"] == 1 and set(await files_of(alice)) == {*files, "later.txt"}


async def test_an_import_with_strip_prefix_takes_only_that_folder_named_by_the_rest_of_each_key(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    _, admin, bob, server = await importing(make_api, weed, bucket, "bob")
    await fill(
        weed.target("dallas", bucket),
        {"bob/cv.txt": b"cv\n", "bob/old/x.txt": b"x\n", "carol/secret.txt": b"not bob's\n", "bob.txt": b"b\n"},
    )
    progress = await imported(admin, server["id"], owner="bob", prefix="bob/", strip_prefix=True)
    assert (progress["objects_seen"], progress["files_adopted"], progress["errors"]) == (2, 1, 1)
    assert [e["key"] for e in progress["error_keys"]] == ["bob/old/x.txt"]  # "old/x.txt" is no name
    assert set(await files_of(bob)) == {"cv.txt"}


async def test_an_import_names_its_owner_and_runs_once_at_a_time_per_server(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    api, admin, alice, server = await importing(make_api, weed, bucket, "alice", is_on=False)  # (off: it waits)
    await api.user("ivan")
    await admin.add_server(weed, "vladivostok", bucket, is_on=False)
    (await admin.patch(f"/api/v1/users/{(await _user(admin, 'ivan'))['id']}", json={"zones": ["Russia"]})).expect(200)
    path = f"/api/v1/servers/{server['id']}/import"
    (await admin.get(path)).problem(404, "no_import")
    assert "owner" in (await admin.post(path, json={"owner": "nobody"})).problem(422, "invalid_field")["detail"]
    assert "Russia" in (await admin.post(path, json={"owner": "ivan"})).problem(422, "invalid_field")["detail"]
    (await admin.post(path, json={"owner": "alice", "colour": "red"})).problem(422, "unknown_field")
    (await admin.post(path, json={"owner": "alice"})).expect(202)
    (await admin.post(path, json={"owner": "alice"})).problem(409, "import_running")

    async def waiting() -> bool:
        return bool((await admin.get(path)).expect(200)["last_error"])

    await wait_for(waiting, "the import to say why it waits")
    listed = (await admin.get(f"/api/v1/servers/{server['id']}")).expect(200)["import_progress"]
    assert listed["state"] == "running" and "off" in listed["last_error"]
    (await alice.post(path, json={"owner": "alice"})).problem(403, "forbidden")
    (await alice.get(path)).problem(403, "forbidden")


async def test_an_import_whose_owner_was_deleted_stops_and_says_so(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    _, admin, _, server = await importing(make_api, weed, bucket, "carol", is_on=False)
    await fill(weed.target("dallas", bucket), {"left.txt": b"left behind\n"})
    path = f"/api/v1/servers/{server['id']}/import"
    (await admin.post(path, json={"owner": "carol"})).expect(202)
    (await admin.delete(f"/api/v1/users/{(await _user(admin, 'carol'))['id']}")).expect(204)
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"is_on": True})).expect(200)

    async def stopped() -> dict[str, Any] | None:
        found = dict((await admin.get(path)).expect(200))
        return found if found["state"] != "running" else None

    found = await wait_for(stopped, "the import to stop")
    assert (found["state"], found["last_error"], found["files_adopted"]) == ("failed", "its owner was deleted", 0)


async def _user(admin: Session, name: str) -> dict[str, Any]:
    users = (await admin.get("/api/v1/users")).expect(200)["items"]
    return dict(next(u for u in users if u["username"] == name))


async def test_importing_thousands_of_objects_resumes_after_a_daemon_restart_and_adopts_nothing_twice(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    # Pages of 100 at 600 objects a second at most: the import of 3000 takes five seconds or more, so the kill
    # lands mid-run (it is waited for below, not timed).
    write_config(tmp_path, daemon.port, imports={"page_size": 100, "rate": 600, "poll_interval": 0.2})
    await daemon.start()
    db = sqlite3.connect(tmp_path / "cdnstore.sqlite3", timeout=5)
    count = 3000
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        body = {"username": "alice", "password": "correct horse battery", "is_admin": False}
        (await admin.post("/api/v1/users", json=body)).expect(201)
        server = await admin.add_server(weed, "dallas", bucket)
        await fill(weed.target("dallas", bucket), {f"obj-{i:05d}.txt": f"object {i}\n".encode() for i in range(count)})
        (await admin.post(f"/api/v1/servers/{server['id']}/import", json={"owner": "alice"})).expect(202)

        def progress() -> tuple[str, int]:
            row = db.execute("SELECT state, objects_seen FROM imports").fetchone()
            return (row[0], row[1]) if row else ("", 0)

        await wait_for(lambda: progress()[1] >= 300, "the import to be some pages in", within=60)
        daemon.kill()
        assert daemon.proc is not None
        await daemon.proc.wait()
        state, seen = progress()
        assert state == "running" and 300 <= seen < count, (state, seen)

        await daemon.start()
        admin = await RemoteApi(http).login("root")
        await wait_for(lambda: progress()[0] == "done", "the import to go on and end", within=120)
        found = (await admin.get(f"/api/v1/servers/{server['id']}/import")).expect(200)
        assert (found["objects_seen"], found["files_adopted"], found["errors"]) == (count, count, 0)
        owned = db.execute(
            "SELECT count(*), count(DISTINCT v.object_key) FROM files f JOIN users u ON u.id = f.owner_id "
            "JOIN versions v ON v.file_id = f.id WHERE u.username = 'alice'"
        ).fetchone()
        assert owned == (count, count)
        assert db.execute("SELECT count(*) FROM import_keys").fetchone()[0] == 0
        again = (await admin.post(f"/api/v1/servers/{server['id']}/import", json={"owner": "alice"})).expect(202)
        await wait_for(lambda: progress()[0] == "done", "the second import to end", within=60)
        assert db.execute("SELECT files_adopted FROM imports WHERE uuid = ?", (again["import_id"],)).fetchone() == (0,)
    db.close()


async def test_cdnstore_import_runs_an_import_to_its_end_on_the_command_line(
    make_api: MakeApi, weed: WeedCluster, bucket: str, tmp_path: Path, daemon_port: int, database_url: str
) -> None:
    api: Api = await make_api(imports={"poll_interval": 3600})  # (the daemon's round leaves it to the command)
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    await admin.add_server(weed, "dallas", bucket)
    await fill(weed.target("dallas", bucket), {"one.txt": b"1\n", "two.txt": b"2\n", "a/b.txt": b"3\n"})
    config = write_config(tmp_path, daemon_port, database={"url": database_url})  # (the daemon's database)
    env = {"CDNSTORE_CONFIG": str(config)}
    # (in a thread: the daemon in this process goes on answering while the command runs)
    done = await asyncio.to_thread(cdnstore, "import", "dallas", "--owner", "alice", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "import done: objects_seen=3 files_adopted=2 " in done.stdout
    assert "not adopted: 'a/b.txt': not a valid file name" in done.stdout
    assert set(await files_of(alice)) == {"one.txt", "two.txt"}
    unknown = await asyncio.to_thread(cdnstore, "import", "nowhere", "--owner", "alice", cwd=tmp_path, env=env)
    assert unknown.returncode == 1 and "server_not_found" in unknown.stderr
