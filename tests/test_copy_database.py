"""`cdnstore copy-database URL`: a SQLite installation (users, files on real SeaweedFS, links, history, its job
queue) copied into an empty PostgreSQL database, then served from there; targets with data and sources on an
older schema refused."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from apihelp import US_IP, Api, Session, fetch, from_ip, put_bytes, s3_storage, wait_for
from clihelp import cdnstore
from conftest import MakeApi
from daemonproc import write_config

from cdnstore import appkeys
from cdnstore.db import initialize, latest_version, migrations
from testbed.seaweed import WeedCluster

DATA = b"moving up " * 500


def copy_database(tmp_path: Path, url: str) -> Any:
    """`cdnstore copy-database URL` with the tests' configuration (the SQLite file in tmp_path)."""
    config = tmp_path / "config.toml"
    if not config.exists():
        write_config(tmp_path, 8080)
    return cdnstore("copy-database", url, cwd=tmp_path, env={"CDNSTORE_CONFIG": str(config)})


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the SQLite database, its rows sorted, columns in PRAGMA table_info order."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
        ]
        return {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in names}
    finally:
        conn.close()


async def pg_rows(url: str, columns_of: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The same tables read from PostgreSQL, columns in the SQLite order (for comparison)."""
    sqlite = sqlite3.connect(columns_of)
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'cdnstore_schema'"
            )
        ]
        out = {}
        for name in tables:
            columns = ", ".join(r[1] for r in sqlite.execute(f"PRAGMA table_info({name})")) or "*"
            out[name] = sorted((tuple(r) for r in await conn.fetch(f"SELECT {columns} FROM {name}")), key=repr)
        return out
    finally:
        await conn.close()
        sqlite.close()


async def an_installation(api: Api, weed: WeedCluster, bucket: str) -> tuple[Session, Session, dict[str, Any]]:
    """Users, files stored and replicated, a link with a password, history, and in the queue one queued and
    one failed job (removals from New York while it is off)."""
    admin = await api.user("root", admin=True)
    servers = await admin.add_layout(weed, bucket)
    alice = await api.user("alice")
    ids = {}
    for name in ("kept.txt", "waiting.txt", "failing.txt"):
        ids[name] = (await alice.upload(name, DATA))["file"]["id"]
        await alice.wait_stored(ids[name])
    # An upload request, and a file a sender sent through it (files refer to upload_requests).
    asking = (await alice.post("/api/v1/upload-requests", json={"message": "send it", "max_files": 5})).expect(201)
    sent = (
        await api.call(
            "POST",
            f"/api/v1/public/upload-requests/{asking['token']}/files",
            json={"name": "sent.txt", "size": 4},
            headers=from_ip(US_IP),
        )
    ).expect(201)
    assert await put_bytes(sent["upload"], b"sent") == 200
    (await api.call("POST", f"/api/v1/public/uploads/{sent['upload_token']}/complete")).expect(200)
    await api.app[appkeys.WORKER].run_until_idle()
    kept = ids["kept.txt"]
    link = dict((await alice.post(f"/api/v1/files/{kept}/links", json={"password": "open sesame"})).expect(201))
    (await alice.get(f"/api/v1/files/{kept}/download")).expect(200)
    await api.app[appkeys.STATS].flush()  # the download statistics' row
    (await (await alice.key("read", name="backup")).get("/api/v1/files")).expect(200)  # a key, used
    await api.app[appkeys.KEYS].flush()  # (its last use)
    async with api.app[appkeys.DB].transaction() as tx:  # what only several daemons (PostgreSQL) write
        await tx.execute(
            "INSERT INTO leases (name, holder, until) VALUES ('a-task-of-a-daemon-long-gone', 'a-daemon-long-gone', 0)"
        )
        await tx.execute("INSERT INTO throttle_failures (scope, key, at) VALUES ('logins', 'alice|127.0.0.1', 0)")
        # A webhook with one delivered event (written directly: a receiver's address must be public).
        await tx.execute(
            "INSERT INTO webhooks (uuid, owner_id, url, secret, created_at)"
            " SELECT 'w', id, 'https://hooks.example/in', 'whsec_x', 'now' FROM users WHERE username = 'alice'"
        )
        await tx.execute(
            "INSERT INTO webhook_events (event, owner_id, webhook_id) SELECT 'file.stored', owner_id, id FROM webhooks"
        )
        await tx.execute(
            "INSERT INTO webhook_deliveries (uuid, webhook_id, event, occurred_at, status, delivered_at)"
            " SELECT 'msg_1', id, 'file.stored', 'now', 'delivered', 'now' FROM webhooks"
        )
    await an_import(api, weed, bucket, servers["dallas"]["id"])
    await admin.patch(f"/api/v1/servers/{servers['newyork']['id']}", json={"is_on": False})
    for name in ("waiting.txt", "failing.txt"):
        (await alice.delete(f"/api/v1/files/{ids[name]}")).expect(204)
    await api.app[appkeys.WORKER].run_until_idle()
    async with api.app[appkeys.DB].transaction() as tx:  # the state a job reaches out of attempts
        await tx.execute(
            "UPDATE jobs SET status = 'failed', attempts = 5, last_error = 'boom' WHERE id = (SELECT max(id) FROM jobs)"
        )
    return admin, alice, {"kept": kept, "link": link, "newyork": servers["newyork"]["id"]}


async def an_import(api: Api, weed: WeedCluster, bucket: str, server_id: str) -> None:
    """An import of Dallas's bucket that found one key that is no file name (imports, import_errors)."""
    client = await s3_storage(api)._client(weed.target("dallas", bucket))
    await client.put_object(Bucket=bucket, Key="from before/odd.txt", Body=b"no name\n")
    imports = api.app[appkeys.IMPORTS]
    started = await imports.start(server_id, "alice")
    await imports.run(started.uuid)  # (or the daemon's imports round does: either way it ends)
    await wait_for(lambda: _done(imports, server_id), "the import to end")
    async with api.app[appkeys.DB].transaction() as tx:
        # A page's rows live inside the transaction that adopts it; one here shows the copy carries the table.
        await tx.execute(
            "INSERT INTO import_keys (import_id, key, size, name, content_type, file_uuid, history_uuid, history_data)"
            " SELECT id, 'a-page', 1, 'a-page', 'text/plain', 'f', 'h', '{}' FROM imports"
        )


async def _done(imports: Any, server_id: str) -> bool:
    return bool((await imports.latest(server_id)).state == "done")


async def what_users_see(admin: Session, alice: Session) -> dict[str, Any]:
    servers = (await admin.get("/api/v1/servers")).expect(200)["items"]
    return {
        "files": (await alice.get("/api/v1/files")).expect(200)["items"],
        "history": (await alice.get("/api/v1/history")).expect(200)["items"],
        "jobs": (await admin.get("/api/v1/jobs")).expect(200)["items"],
        "servers": [(s["name"], s["files"], s["bytes"], s["pending_jobs"], s["is_on"]) for s in servers],
    }


async def test_a_sqlite_installation_copied_to_postgresql_is_served_the_same(
    make_api: MakeApi, weed: WeedCluster, bucket: str, pg_cluster: Any, tmp_path: Path
) -> None:
    api = await make_api()
    admin, alice, made = await an_installation(api, weed, bucket)
    before = await what_users_see(admin, alice)
    assert [j["status"] for j in before["jobs"]] == ["queued", "failed"]
    await api.client.close()  # the daemon stops before the copy, as docs/operations.md says

    url = pg_cluster.fresh("template1")  # an empty database: the copy creates the schema
    done = copy_database(tmp_path, url)
    assert done.returncode == 0, done.stderr
    assert "files: 4 rows copied" in done.stderr and "copied" in done.stdout
    source = sqlite_rows(tmp_path / "cdnstore.sqlite3")
    assert [name for name, rows in source.items() if not rows] == [], "populate every table in this test"
    assert await pg_rows(url, tmp_path / "cdnstore.sqlite3") == source  # every table, row for row

    api = await make_api(database={"url": url})
    admin, alice = await api.login("root"), await api.login("alice")  # the same passwords
    after = await what_users_see(admin, alice)
    assert after["history"][len(after["history"]) - len(before["history"]) :] == before["history"]
    assert {**after, "history": None} == {**before, "history": None}
    _, body = await alice.download(made["kept"])
    assert body == DATA
    token = made["link"]["token"]
    got = (
        await api.call(
            "POST", f"/api/v1/public/links/{token}/download", json={"password": "open sesame"}, headers=from_ip(US_IP)
        )
    ).expect(200)
    assert (await fetch(got["url"]))[1] == DATA

    # New rows take ids past the copied ones (sequences set), and the copied queue runs on PostgreSQL.
    await api.user("bob")
    await admin.patch(f"/api/v1/servers/{made['newyork']}", json={"is_on": True})
    fresh = (await alice.upload("after.txt", DATA))["file"]["id"]
    await alice.wait_stored(fresh)
    await api.app[appkeys.WORKER].run_until_idle()
    jobs = (await admin.get("/api/v1/jobs")).expect(200)["items"]
    assert [(j["id"], j["status"]) for j in jobs] == [(before["jobs"][1]["id"], "failed")]
    servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
    # kept.txt, after.txt, failing.txt whose removal failed, and sent.txt (4 bytes) from the upload request
    assert (servers["newyork"]["files"], servers["newyork"]["bytes"]) == (4, 3 * len(DATA) + 4)
    conn = await asyncpg.connect(url)
    try:
        issued = await conn.fetchval("SELECT last_value FROM pg_sequences WHERE sequencename LIKE 'jobs_%'")
    finally:
        await conn.close()
    sqlite = sqlite3.connect(tmp_path / "cdnstore.sqlite3")
    assert issued > sqlite.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()[0]
    sqlite.close()


async def test_a_target_that_holds_data_is_refused_and_left_as_it_was(pg_cluster: Any, tmp_path: Path) -> None:
    initialize(tmp_path / "cdnstore.sqlite3")
    url = pg_cluster.fresh()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
            "VALUES ('u', 'someone', 'x', 'now', 'now')"
        )
        refused = copy_database(tmp_path, url)
        assert refused.returncode == 1
        assert "the target database is not empty (rows in users)" in refused.stderr, refused.stderr
        assert [tuple(row) for row in await conn.fetch("SELECT username FROM users")] == [("someone",)]
    finally:
        await conn.close()


async def test_a_source_on_an_older_schema_is_refused_until_init(pg_cluster: Any, tmp_path: Path) -> None:
    path = tmp_path / "cdnstore.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, _, sql in migrations()[:-1]:  # a database the previous cdnstore made
        conn.executescript(sql)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.close()
    url = pg_cluster.fresh("template1")
    refused = copy_database(tmp_path, url)
    assert refused.returncode == 1
    previous = migrations()[-2][0]  # (numbers may skip: not latest_version() - 1)
    assert f"schema version {previous}" in refused.stderr and "run `cdnstore init`" in refused.stderr
    assert initialize(path)[1] == latest_version()
    assert copy_database(tmp_path, url).returncode == 0


async def test_a_source_whose_tables_differ_from_the_schema_is_refused(pg_cluster: Any, tmp_path: Path) -> None:
    path = tmp_path / "cdnstore.sqlite3"
    initialize(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")  # a table of someone else's, that the copy would lose
    conn.close()
    url = pg_cluster.fresh()
    refused = copy_database(tmp_path, url)
    assert refused.returncode == 1 and "schemas differ in table(s) notes" in refused.stderr, refused.stderr
    target = await asyncpg.connect(url)
    try:
        assert await target.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await target.close()


async def test_a_postgresql_database_copies_to_another_with_its_sequences(pg_cluster: Any, tmp_path: Path) -> None:
    source, target = pg_cluster.fresh(), pg_cluster.fresh("template1")
    write_config(tmp_path, 8080, database={"url": source})
    conn = await asyncpg.connect(source)
    try:
        for name in ("ann", "ben", "cy"):
            await conn.execute(
                "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
                "VALUES ($1, $1, 'x', 'now', 'now')",
                name,
            )
        await conn.execute("DELETE FROM users WHERE username = 'cy'")  # its id (3) must not come back
    finally:
        await conn.close()
    done = copy_database(tmp_path, target)
    assert done.returncode == 0, done.stderr
    conn = await asyncpg.connect(target)
    try:
        assert [tuple(r) for r in await conn.fetch("SELECT id, username FROM users ORDER BY id")] == [
            (1, "ann"),
            (2, "ben"),
        ]
        made = await conn.fetchval(
            "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
            "VALUES ('dee', 'dee', 'x', 'now', 'now') RETURNING id"
        )
        assert made == 4
    finally:
        await conn.close()


async def test_a_copy_that_fails_on_the_way_leaves_the_target_empty(pg_cluster: Any, tmp_path: Path) -> None:
    path = tmp_path / "cdnstore.sqlite3"
    initialize(path)
    conn = sqlite3.connect(path)  # foreign keys off (sqlite3's default): a link to a file that is not there
    conn.execute(
        "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
        "VALUES (1, 'u', 'ann', 'x', 'now', 'now')"
    )
    conn.execute("INSERT INTO links (uuid, owner_id, file_id, token, created_at) VALUES ('l', 1, 42, 't', 'now')")
    conn.commit()
    conn.close()
    url = pg_cluster.fresh()
    target = await asyncpg.connect(url)
    constraints = await target.fetchval("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
    await target.close()
    failed = copy_database(tmp_path, url)
    assert failed.returncode == 1, failed.stderr
    assert "rolled back" in failed.stderr and "ForeignKeyViolation" in failed.stderr, failed.stderr
    target = await asyncpg.connect(url)
    try:
        assert [await target.fetchval(f"SELECT count(*) FROM {t}") for t in ("users", "links")] == [0, 0]
        # the foreign keys dropped for the copy are back, the triggers on again
        assert await target.fetchval("SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == constraints
        assert await target.fetchval("SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D'") == 0
    finally:
        await target.close()


async def test_a_source_made_by_a_newer_cdnstore_or_a_target_out_of_reach_is_refused(
    pg_cluster: Any, tmp_path: Path
) -> None:
    path = tmp_path / "cdnstore.sqlite3"
    initialize(path)
    refused = copy_database(tmp_path, "postgresql://cdnstore@127.0.0.1:1/nowhere")
    assert refused.returncode == 1 and "cannot use the target database" in refused.stderr, refused.stderr
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    refused = copy_database(tmp_path, pg_cluster.fresh())
    assert refused.returncode == 1 and "newer than this cdnstore" in refused.stderr, refused.stderr


async def test_the_targets_password_comes_from_a_file_or_pgpassword_and_one_on_the_command_line_is_warned_of(
    pg_cluster: Any, tmp_path: Path
) -> None:
    # (Checked on main: --password-file was an unknown option, exit 2; a password in the URL passed unremarked.)
    role, password = f"mover_{uuid.uuid4().hex[:8]}", "p@ss w:rd/1"
    hba = pg_cluster.root / "data" / "pg_hba.conf"  # this role, and only it, must give its password
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg_cluster.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    pg_cluster.admin("SELECT pg_reload_conf()")

    def target() -> str:
        name = f"moved_{uuid.uuid4().hex[:8]}"
        pg_cluster.admin(f"CREATE DATABASE {name} OWNER {role}")
        return f"postgresql://{role}@127.0.0.1:{pg_cluster.port}/{name}"

    initialize(tmp_path / "cdnstore.sqlite3")
    write_config(tmp_path, 8080)
    # (none of this machine's own: no PGPASSWORD, no password file)
    env = {"CDNSTORE_CONFIG": str(tmp_path / "config.toml"), "PGPASSWORD": "", "PGPASSFILE": str(tmp_path / "none")}
    secret = tmp_path / "pgpassword"
    secret.write_text(password + "\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")

    refused = cdnstore("copy-database", target(), "--password-file", str(wrong), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "password authentication failed" in refused.stderr, refused.stderr
    assert password not in refused.stderr + refused.stdout
    without = cdnstore("copy-database", target(), cwd=tmp_path, env=env)
    assert without.returncode == 1, without.stderr  # the server asks for one: none was given
    from_file = cdnstore("copy-database", target(), "--password-file", str(secret), cwd=tmp_path, env=env)
    assert from_file.returncode == 0, from_file.stderr
    assert "warning" not in from_file.stderr
    from_env = cdnstore("copy-database", target(), cwd=tmp_path, env={**env, "PGPASSWORD": password})
    assert from_env.returncode == 0, from_env.stderr
    assert "warning" not in from_env.stderr
    in_url = target().replace(f"{role}@", f"{role}:{quote(password, safe='')}@")
    shown = cdnstore("copy-database", in_url, cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "warning: the password in URL is visible to every user of this machine" in shown.stderr
    both = cdnstore("copy-database", in_url, "--password-file", str(secret), cwd=tmp_path, env=env)
    assert both.returncode == 2 and "give one of them" in both.stderr
