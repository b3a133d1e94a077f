"""The database: schema.sql for a new one, numbered migrations for old ones, idempotent init."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from cdnstore import db
from cdnstore.config import DatabaseConfig
from cdnstore.models import (
    AddressingStyle,
    DeliveryStatus,
    Health,
    ImportState,
    JobKind,
    JobStatus,
    ReplicaStatus,
    VersionStatus,
)
from testbed.postgres import PgCluster

ROOT = Path(__file__).parent.parent


def schema_of(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return [*rows, ("user_version", str(version), "")]


def test_replaying_the_migrations_gives_exactly_schema_sql(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.sqlite3"
    db.initialize(fresh)
    replayed = tmp_path / "replayed.sqlite3"
    conn = sqlite3.connect(replayed, isolation_level=None)
    for number, _name, sql in db.migrations():
        db.sqlite._apply(conn, sql, number)
    conn.close()
    assert schema_of(fresh) == schema_of(replayed)


def test_an_old_database_is_upgraded_by_the_migrations_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    number, _name, sql = db.migrations()[0]
    db.sqlite._apply(conn, sql, number)
    conn.close()
    assert db.initialize(path) == (1, db.latest_version())
    fresh = tmp_path / "fresh.sqlite3"
    db.initialize(fresh)
    assert schema_of(path) == schema_of(fresh)


def test_init_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "db.sqlite3"
    assert db.initialize(path) == (0, db.latest_version())
    before = schema_of(path)
    assert db.initialize(path) == (db.latest_version(), db.latest_version())
    assert schema_of(path) == before


def test_a_database_from_a_newer_cdnstore_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db.initialize(path)
    sqlite3.connect(path).execute(f"PRAGMA user_version = {db.latest_version() + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        db.initialize(path)


def with_migrations(monkeypatch: pytest.MonkeyPatch, *sqls: str) -> int:
    """The SQLite runner sees the real migrations followed by `sqls`; returns the last one's number."""
    extra = [(db.latest_version() + n, f"extra_{n}", sql) for n, sql in enumerate(sqls, 1)]
    monkeypatch.setattr(db.sqlite, "migrations", lambda: [*db.migrations(), *extra])
    monkeypatch.setattr(db.sqlite, "latest_version", lambda: extra[-1][0])
    return extra[-1][0]


def test_a_skipped_migration_number_is_fine_but_a_number_used_twice_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work done in parallel reserves migration numbers ahead; one that is never used leaves a gap."""
    path = tmp_path / "db.sqlite3"
    db.initialize(path)
    later = db.latest_version() + 3  # (two numbers reserved and never used before it)
    monkeypatch.setattr(db.sqlite, "migrations", lambda: [*db.migrations(), (later, "later", "CREATE TABLE t (x);")])
    monkeypatch.setattr(db.sqlite, "latest_version", lambda: later)
    assert db.initialize(path) == (later - 3, later)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() == ("t",)
    conn.close()
    twice = tmp_path / "twice"
    (twice / "postgres").mkdir(parents=True)
    for name in ("0001_a.sql", "0002_b.sql", "0002_c.sql"):
        (twice / name).write_text("SELECT 1;")
    monkeypatch.setattr("cdnstore.db.base.resources.files", lambda package: twice)
    with pytest.raises(RuntimeError, match="numbered once each"):
        db.migrations()


def database_with_a_referenced_user(path: Path) -> str:
    """A database at the latest version with user alice and a refresh token of hers; returns the CREATE
    TABLE text of users."""
    db.initialize(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
            "VALUES (1, 'u1', 'alice', 'h', 't', 't')"
        )
        conn.execute(
            "INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, created_at) "
            "VALUES ('t1', 'f', 1, 't', 't')"
        )
    create: str = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'users'").fetchone()[0]
    conn.close()
    return create


def test_a_migration_marked_foreign_keys_off_rebuilds_a_referenced_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite3"
    create = database_with_a_referenced_user(path)
    rebuilt = create.replace("CREATE TABLE users (", "CREATE TABLE users_new (", 1)
    rebuilt = rebuilt[: rebuilt.rindex(")")] + ", CHECK (length(username) > 0))"  # the change ALTER cannot make
    rebuild = (
        f"{db.sqlite.FOREIGN_KEYS_OFF}\n{rebuilt};\nINSERT INTO users_new SELECT * FROM users;\n"
        "DROP TABLE users;\nALTER TABLE users_new RENAME TO users;\n"
    )
    dangling = (
        "INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, created_at) "
        "VALUES ('t2', 'f', 99, 't', 't');"
    )
    last = with_migrations(monkeypatch, rebuild, dangling)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # foreign keys are on again after it
        db.initialize(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == last - 1  # the rebuild committed
    assert conn.execute(
        "SELECT t.user_id, u.username FROM refresh_tokens t JOIN users u ON u.id = t.user_id"
    ).fetchall() == [(1, "alice")]
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) VALUES ('u2', '', 'h', 't', 't')"
        )
    conn.close()


def test_a_foreign_keys_off_migration_that_leaves_a_dangling_reference_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite3"
    database_with_a_referenced_user(path)
    before = schema_of(path)
    with_migrations(
        monkeypatch,
        f"{db.sqlite.FOREIGN_KEYS_OFF}\nCREATE TABLE scratch (x INTEGER);\n"
        "DELETE FROM users WHERE username = 'alice';\n",
    )
    with pytest.raises(db.sqlite.ForeignKeyViolation, match=r"1 row\(s\) referencing .*\(refresh_tokens -> users\)"):
        db.initialize(path)
    assert schema_of(path) == before  # no scratch table, the version unchanged
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT username FROM users").fetchall() == [("alice",)]
    conn.close()


def check_lists(schema: str) -> dict[tuple[str, str], list[str]]:
    """(table, column) -> the values its `CHECK (column IN (...))` allows, from a schema file's text."""
    found = {}
    for statement in schema.split("CREATE ")[1:]:
        if table := re.match(r"TABLE (\w+)", statement):
            for column, values in re.findall(r"CHECK \((\w+) IN \(([^)]*)\)\)", statement):
                found[table[1], column] = re.findall(r"'([^']*)'", values)
    return found


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_each_status_enum_has_exactly_the_values_its_check_constraint_allows(engine: str) -> None:
    checks = check_lists(db.schema_sql(engine))
    enums = {
        ("servers", "health"): Health,
        ("versions", "status"): VersionStatus,
        ("jobs", "status"): JobStatus,
        ("jobs", "kind"): JobKind,
        ("replicas", "status"): ReplicaStatus,
        ("servers", "addressing_style"): AddressingStyle,
        ("imports", "state"): ImportState,
        ("webhook_deliveries", "status"): DeliveryStatus,
    }
    for column, enum in enums.items():
        assert checks[column] == [member.value for member in enum], column


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_each_schema_file_is_what_its_engines_migrations_make(engine: str) -> None:
    from cdnstore.db import schema

    assert db.schema_sql(engine) == schema.generated(engine), f"stale: run `{schema.COMMAND}`"


GADGETS = {  # a migration a test adds, in each engine's spelling
    "sqlite": """-- gadgets: what a test adds.
CREATE TABLE gadgets (id INTEGER PRIMARY KEY);

-- gadgets.owner_id: who made it.
ALTER TABLE gadgets ADD COLUMN owner_id INTEGER REFERENCES users (id);
UPDATE gadgets SET owner_id = 1;
""",
    "postgres": """-- gadgets: what a test adds.
CREATE TABLE gadgets (id BIGINT PRIMARY KEY);

-- gadgets.owner_id: who made it.
ALTER TABLE gadgets ADD COLUMN owner_id BIGINT NOT NULL REFERENCES users (id);
UPDATE gadgets SET owner_id = 1;
ALTER TABLE gadgets ALTER COLUMN owner_id DROP NOT NULL;
ALTER TABLE users ADD COLUMN gadget_id BIGINT REFERENCES gadgets (id);
""",
}
GADGETS_MADE = {
    "sqlite": """
-- gadgets: what a test adds.
CREATE TABLE gadgets (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES users (id));
-- gadgets.owner_id: who made it.
""",
    "postgres": """
-- gadgets: what a test adds.
CREATE TABLE gadgets (id BIGINT PRIMARY KEY,
    -- gadgets.owner_id: who made it.
    owner_id BIGINT REFERENCES users (id)
);
ALTER TABLE users ADD FOREIGN KEY (gadget_id) REFERENCES gadgets (id);
""",
}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_new_migration_makes_the_schema_file_stale_until_it_is_generated_with_its_comments(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdnstore.db import schema

    real = db.migrations(engine)
    monkeypatch.setattr(schema, "migrations", lambda engine_: [*real, (real[-1][0] + 1, "gadgets", GADGETS[engine])])
    made = schema.generated(engine)
    assert made != db.schema_sql(engine)
    assert made.endswith(GADGETS_MADE[engine])  # the comments above what they describe; no data statement
    if engine == "postgres":  # (a column added to an older table refers to a newer one: its key comes below)
        assert "    gadget_id BIGINT\n);" in made


def test_a_postgresql_migration_the_generator_cannot_fold_stops_it_naming_the_migration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cdnstore.db import schema

    real = db.migrations("postgres")
    later = real[-1][0] + 1
    renamed = "ALTER TABLE users RENAME COLUMN zones TO regions;"
    monkeypatch.setattr(schema, "migrations", lambda engine: [*real, (later, "renamed", renamed)])
    with pytest.raises(ValueError, match=f"migration {later:04d}: cannot fold"):
        schema.generated("postgres")


def test_the_installed_package_carries_the_schema() -> None:
    shipped = (resources.files("cdnstore") / "schema.sql").read_text()
    assert shipped == (ROOT / "schema.sql").read_text()


async def test_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    database = db.SqliteDatabase(tmp_path / "db.sqlite3")
    await database.open()
    try:
        assert await database.fetchval("PRAGMA journal_mode") == "wal"
        assert await database.fetchval("PRAGMA foreign_keys") == 1
        with pytest.raises(sqlite3.IntegrityError):
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO refresh_tokens VALUES ('h', 'f', 999, 'x', NULL, NULL, 'x')")
    finally:
        await database.close()


async def opened(tmp_path: Path, database_url: str) -> db.Database:
    """The test's database on its engine (SQLite in tmp_path, or a fresh PostgreSQL database), open."""
    database = db.connect(DatabaseConfig(path=str(tmp_path / "db.sqlite3"), url=database_url))
    await database.open()
    return database


async def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path, database_url: str) -> None:
    database = await opened(tmp_path, database_url)
    try:
        with pytest.raises(ZeroDivisionError):
            async with database.transaction() as tx:
                await tx.execute(
                    "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
                    "VALUES ('u', 'n', 'h', 't', 't')"
                )
                1 / 0  # noqa: B018
        assert await database.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await database.close()


async def test_concurrent_transactions_never_interleave(tmp_path: Path, database_url: str) -> None:
    import asyncio

    database = await opened(tmp_path, database_url)

    async def add(i: int) -> None:
        async with database.transaction() as tx:
            await tx.execute(
                "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
                "VALUES (?, ?, 'h', 't', 't')",
                (f"u{i}", f"n{i}"),
            )
            await asyncio.sleep(0)  # let the other transactions interleave with this one
            if i % 2:
                raise ValueError(i)

    try:
        results = await asyncio.gather(*(add(i) for i in range(20)), return_exceptions=True)
        assert sum(isinstance(r, ValueError) for r in results) == 10
        names = {r["username"] for r in await database.fetchall("SELECT username FROM users")}
        assert names == {f"n{i}" for i in range(0, 20, 2)}
    finally:
        await database.close()


async def test_like_ignores_the_case_of_ascii_letters_only_on_both_engines(tmp_path: Path, database_url: str) -> None:
    database = await opened(tmp_path, database_url)
    try:
        async with database.transaction() as tx:
            for name in ("Alpha", "alpha", "ALPHABET", "Éclair", "éclair", "beta"):
                await tx.execute(
                    "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
                    "VALUES (?, ?, 'h', 't', 't')",
                    (f"u-{name}", name),
                )

        async def like(pattern: str, negated: str = "") -> set[str]:
            rows = await database.fetchall(f"SELECT username FROM users WHERE username {negated}LIKE ?", (pattern,))
            return {row["username"] for row in rows}

        assert await like("%alpha%") == {"Alpha", "alpha", "ALPHABET"}
        assert await like("éclair") == {"éclair"}  # SQLite folds ASCII only: PostgreSQL does the same
        assert await like("%ALPHA%", "NOT ") == {"Éclair", "éclair", "beta"}
    finally:
        await database.close()


def test_row_locks_are_dropped_from_sqlites_text_only_and_only_outside_strings_and_comments() -> None:
    from cdnstore.db.dialect import for_sqlite, translate

    claim = (
        "UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE server_id = ? "
        "ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
    )
    assert for_sqlite(claim) == claim.replace(" FOR UPDATE SKIP LOCKED", "")
    assert for_sqlite("SELECT id FROM servers WHERE id = ?\n    FOR UPDATE") == "SELECT id FROM servers WHERE id = ?"
    quoted = "SELECT 'wait for update' AS note -- then FOR UPDATE\nFROM users"
    assert for_sqlite(quoted) == quoted
    assert translate(claim, (1,))[0].endswith("LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id")  # PostgreSQL's as written


LOCKED = "SELECT uuid FROM users WHERE username = ? FOR UPDATE"
ALICE = "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) VALUES ('u', 'n', 'h', 't', 't')"


async def test_a_statement_with_a_row_lock_runs_on_both_engines_whatever_runs_it(
    tmp_path: Path, database_url: str
) -> None:
    database = await opened(tmp_path, database_url)
    try:
        async with database.transaction() as tx:
            await tx.execute(ALICE)
            assert [r["uuid"] for r in await tx.execute_fetchall(LOCKED, ("n",))] == ["u"]
        async with database.transaction(offload=True) as tx:  # (SQLite: on aiosqlite's thread)
            assert await db.tx_fetchone(tx, LOCKED, ("n",)) is not None
        async with database.scratch() as conn:
            assert [r["uuid"] for r in await conn.execute_fetchall(LOCKED, ("n",))] == ["u"]
        assert await database.fetchval(LOCKED, ("n",)) == "u"
        assert await database.fetchval(LOCKED, ("n",), offload=True) == "u"
    finally:
        await database.close()


async def test_a_statement_whose_returning_starts_a_line_gives_its_rows_on_both_engines(
    tmp_path: Path, database_url: str
) -> None:
    """SQL built over several lines may put RETURNING first on one: PostgreSQL's side once took such a
    statement for one without rows (it looked for the word after a space) and answered None."""
    database = await opened(tmp_path, database_url)
    try:
        async with database.transaction() as tx:
            await tx.execute(ALICE)
            renamed = await db.tx_fetchone(tx, "UPDATE users SET username = 'm' WHERE username = 'n'\nRETURNING uuid")
        assert renamed is not None and renamed["uuid"] == "u"
    finally:
        await database.close()


@pytest.mark.parametrize("engine", ["postgres"])
async def test_postgresql_takes_the_row_locks_as_written(tmp_path: Path, database_url: str) -> None:
    database = await opened(tmp_path, database_url)
    try:
        async with database.transaction() as tx:
            await tx.execute(ALICE)
        async with database.transaction() as holding:
            await holding.execute(LOCKED, ("n",))
            async with database.transaction() as other:  # a claim beside it skips the locked row
                skipped = await other.execute_fetchall("SELECT uuid FROM users FOR UPDATE SKIP LOCKED")
            assert list(skipped) == []
    finally:
        await database.close()


async def add_user_1(database: db.Database) -> None:
    """User 1, whom the history rows below belong to."""
    async with database.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
            "VALUES (1, 'u', 'n', 'h', 't', 't')"
        )


async def test_rows_kept_in_memory_go_in_before_any_later_transactions_work_on_both_engines(
    tmp_path: Path, database_url: str
) -> None:
    """The history's download rows (HistoryWriter): SQLite writes them first in the next transaction, PostgreSQL
    in one of their own just before it opens; either way the history keeps the order things happened in,
    and a transaction that rolls back loses none of them."""
    from cdnstore.history import HistoryWriter, record

    database = await opened(tmp_path, database_url)
    writer = HistoryWriter(database)
    database.write_ahead(writer)
    try:
        await add_user_1(database)
        writer.add(1, "file.downloaded", "f1", {}, at="t")
        with pytest.raises(ValueError):
            async with database.transaction() as tx:
                await record(tx, 1, "file.renamed", "f1", {}, at="t")
                raise ValueError
        writer.add(1, "file.downloaded", "f2", {}, at="t")
        async with database.transaction() as tx:
            await record(tx, 1, "file.renamed", "f2", {}, at="t")
        assert writer.pending == 0
        writer.add(1, "file.downloaded", "f3", {}, at="t")
        await writer.flush()
        rows = await database.fetchall("SELECT event, object_id FROM history ORDER BY id")
        assert [(r["event"], r["object_id"]) for r in rows] == [
            ("file.downloaded", "f1"),
            ("file.downloaded", "f2"),
            ("file.renamed", "f2"),
            ("file.downloaded", "f3"),
        ]
    finally:
        await database.close()


async def test_a_flush_returns_only_once_the_rows_another_transaction_is_writing_are_committed(
    tmp_path: Path, database_url: str
) -> None:
    """GET /history flushes the download rows to read its own downloads: rows that another flush (or, on
    SQLite, another transaction) took into its transaction are not written until it commits, so the flush
    waits for it rather than finding nothing left to write (CI saw the history miss a download)."""
    from cdnstore.history import HistoryWriter

    database = await opened(tmp_path, database_url)
    writer = HistoryWriter(database)
    database.write_ahead(writer)
    gate = asyncio.Event()
    write_into = writer.write_into

    async def held(tx: db.Tx) -> None:  # rows taken into a transaction wait there before it commits
        await write_into(tx)
        if writer.pending:
            await gate.wait()

    writer.write_into = held  # type: ignore[method-assign]
    try:
        await add_user_1(database)
        writer.add(1, "file.downloaded", "f1", {}, at="t")
        first = asyncio.create_task(writer.flush())
        while writer.waiting:  # until the first flush has taken the row into its transaction
            await asyncio.sleep(0)
        second = asyncio.create_task(writer.flush())
        for _ in range(50):  # as far as it goes without the first committing
            await asyncio.sleep(0)
        assert not second.done()
        gate.set()
        await second
        assert [r["object_id"] for r in await database.fetchall("SELECT object_id FROM history")] == ["f1"]
        await first
    finally:
        gate.set()
        await database.close()


@pytest.mark.parametrize("engine", ["postgres"])
async def test_database_pool_size_bounds_the_connections_a_daemon_holds(tmp_path: Path, database_url: str) -> None:
    import asyncio

    database = db.connect(DatabaseConfig(url=database_url, pool_size=2))
    await database.open()

    async def backend() -> int:
        async with database.transaction() as tx:
            row = await (await tx.execute("SELECT pg_backend_pid() AS pid")).fetchone()
            assert row is not None
            await tx.execute("SELECT pg_sleep(0.05)")  # held a while, so the burst overlaps
            return int(row["pid"])

    try:
        assert len(set(await asyncio.gather(*(backend() for _ in range(12))))) == 2
    finally:
        await database.close()


def pg_schema_of(cluster: PgCluster, url: str) -> str:
    """The schema of a PostgreSQL database as pg_dump writes it (owner and comments aside)."""
    import subprocess

    out = subprocess.run(
        [
            str(cluster.bin / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-comments",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    skip = ("--", "\\restrict", "\\unrestrict")  # pg_dump's random per-run key lines
    return "\n".join(line for line in out.splitlines() if not line.startswith(skip))


async def test_replaying_the_postgresql_migrations_gives_exactly_its_schema(pg_cluster: PgCluster) -> None:
    import asyncpg

    from cdnstore.db import postgres

    fresh, replayed = pg_cluster.fresh(), pg_cluster.fresh("template1")
    conn = await asyncpg.connect(replayed)
    try:
        for number, _name, sql in db.migrations("postgres"):
            await postgres.apply(conn, sql, number)
    finally:
        await conn.close()
    assert pg_schema_of(pg_cluster, fresh) == pg_schema_of(pg_cluster, replayed)
    assert await postgres.initialize(replayed) == (db.latest_version("postgres"),) * 2


async def test_a_notification_reaches_every_listener_once_and_only_if_its_transaction_commits(
    tmp_path: Path, database_url: str
) -> None:
    import asyncio

    from apihelp import wait_for

    database = await opened(tmp_path, database_url)
    # Another daemon on the same database (PostgreSQL); SQLite has one daemon, in this process.
    other = await opened(tmp_path, database_url) if database_url else database
    heard: list[str | None] = []
    heard_there: list[str | None] = []
    try:
        await database.listen("servers", heard.append)
        await other.listen("servers", heard_there.append)
        with pytest.raises(ValueError):
            async with database.transaction() as tx:
                await database.notify("servers", "rolled back", tx=tx)
                raise ValueError
        async with database.transaction() as tx:
            await database.notify("servers", "s1", tx=tx)
            await asyncio.sleep(0.05)  # not before the commit
            assert heard == []
        await database.notify("servers", "s2")
        await wait_for(lambda: len(heard) == 2 and len(heard_there) == len(heard), "both notifications")
        assert heard == heard_there == ["s1", "s2"]
    finally:
        await database.close()
        if other is not database:
            await other.close()


async def test_a_lease_is_held_by_one_daemon_at_a_time_and_taken_over_once_it_runs_out(
    tmp_path: Path, database_url: str
) -> None:
    from cdnstore.db.leases import Lease

    now = [1_000_000.0]
    database = await opened(tmp_path, database_url)
    first, second = (Lease(database, "health", holder, 30, clock=lambda: now[0]) for holder in ("a", "b"))
    try:
        assert await first.acquire() and first.held
        assert not await second.acquire() and not second.held
        now[0] += 29
        assert await first.acquire()  # renewed: 30 s from now
        now[0] += 29
        assert not await second.acquire()
        now[0] += 2  # the first holder died: its lease ran out
        assert await second.acquire() and not await first.acquire()
        await second.release()  # a clean stop gives it up at once
        assert await first.acquire()
    finally:
        await database.close()


async def test_a_task_cancelled_while_its_helpers_stop_ends_cancelled_not_carrying_on() -> None:
    """`running` cancels and awaits its helper tasks when its block ends. A caller cancelled meanwhile (a
    shutdown while the deep scrub's lease keeper gives its lease up) must end cancelled: were its
    cancellation swallowed, it would carry on into its next round and the shutdown would wait forever."""
    import asyncio

    from cdnstore.tasks import running

    keeping, giving_up, stopped = asyncio.Event(), asyncio.Event(), asyncio.Event()
    carried_on = False

    async def keeper() -> None:
        try:
            keeping.set()
            await asyncio.sleep(3600)
        finally:
            giving_up.set()
            await asyncio.shield(asyncio.sleep(0.2))  # giving the lease up: a short write
            stopped.set()

    async def caller() -> None:
        nonlocal carried_on
        async with running({"keeper": keeper()}):
            await keeping.wait()
        carried_on = True

    task = asyncio.create_task(caller())
    await giving_up.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not carried_on
    await asyncio.wait_for(stopped.wait(), 5)  # the keeper itself still finishes giving up


async def test_periodic_work_runs_on_one_daemon_at_a_time_and_goes_on_when_its_holder_dies(
    tmp_path: Path, database_url: str
) -> None:
    import asyncio
    import itertools
    import time

    from apihelp import wait_for

    from cdnstore.db.leases import Lease
    from cdnstore.tasks import every_exclusively

    database = await opened(tmp_path, database_url)
    runs: list[tuple[str, float, float]] = []
    # Each daemon's tries to take or renew the lease: (its clock, taken; None while unknown: running, or cut
    # short by keep()'s timeout or the daemon's death, after which it may have been written or not).
    tries: dict[str, list[tuple[float, bool | None]]] = {"a": [], "b": []}

    def daemon(name: str) -> tuple[Lease, asyncio.Task[None]]:
        async def work() -> None:
            started = time.monotonic()
            await asyncio.sleep(0.02)
            runs.append((name, started, time.monotonic()))

        lease = Lease(database, "upload-sweep", name, 1.5)
        clock, acquire = lease.clock, lease.acquire

        def noted_clock() -> float:  # acquire() reads its clock once, for the `until` it writes
            tries[name].append((clock(), None))
            return tries[name][-1][0]

        async def noted_acquire() -> bool:
            taken = await acquire()
            tries[name][-1] = (tries[name][-1][0], taken)
            return taken

        lease.clock, lease.acquire = noted_clock, noted_acquire  # type: ignore[method-assign]
        return lease, asyncio.create_task(every_exclusively(lease, 0.05, work, "upload-sweep"))

    # The second daemon starts once the first holds the lease (started together, either may take it first).
    first_lease, first = daemon("a")
    await wait_for(lambda: first_lease.held, "the first daemon to take the lease")
    _, second = daemon("b")
    try:
        await wait_for(lambda: len(runs) >= 10 and tries["b"], "ten rounds, and the other daemon trying meanwhile")
        assert {name for name, _, _ in runs} == {"a"}  # the first to take the lease does it all
        first_lease.release = lambda: asyncio.sleep(0)  # type: ignore[method-assign]  # killed: no clean stop
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        ran_out_at = max(at for at, taken in tries["a"] if taken is not False) + 1.5  # its last `until`
        await wait_for(lambda: runs[-1][0] == "b", "the other daemon to take the work over")
        # Taken over at the first try after the dead holder's lease ran out, and at no try before.
        before, after = ([t for at, t in tries["b"] if (at > ran_out_at) == late] for late in (False, True))
        assert not any(before) and next(t for t in after if t is not None)
        spans = sorted((start, end) for _, start, end in runs)
        assert all(end <= later for (_, end), (later, _) in itertools.pairwise(spans))  # never at once
    finally:
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        await database.close()


# A user, a file and a link as version 12 (before 0013) held them.
_OLD_LINK = [
    "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
    "VALUES (1, 'u1', 'alice', 'h', 't', 't')",
    "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) VALUES (5, 'f5', 1, 'a.txt', 't', 't')",
    "INSERT INTO links (id, uuid, file_id, token, max_downloads, downloads, created_at) "
    "VALUES (7, 'l7', 5, 'tok', 3, 2, 't')",
]
_NEW_LINK = (
    "SELECT l.owner_id, l.file_id, l.downloads, x.file_id, x.position "
    "FROM links l JOIN link_files x ON x.link_id = l.id"
)


def test_migration_13_gives_every_link_its_owner_and_its_file_as_link_files(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, _name, sql in db.migrations():
        if number < 13:
            db.sqlite._apply(conn, sql, number)
    for statement in _OLD_LINK:
        conn.execute(statement)
    conn.close()
    db.initialize(path)
    conn = sqlite3.connect(path)
    assert conn.execute(_NEW_LINK).fetchall() == [(1, 5, 2, 5, 0)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


async def test_migration_13_on_postgresql_gives_every_link_its_owner_and_its_file(pg_cluster: PgCluster) -> None:
    import asyncpg

    from cdnstore.db import postgres

    url = pg_cluster.fresh("template1")
    conn = await asyncpg.connect(url)
    try:
        for number, _name, sql in db.migrations("postgres"):
            if number < 13:
                await postgres.apply(conn, sql, number)
        for statement in _OLD_LINK:
            await conn.execute(statement)
    finally:
        await conn.close()
    await postgres.initialize(url)
    conn = await asyncpg.connect(url)
    try:
        assert [tuple(r) for r in await conn.fetch(_NEW_LINK)] == [(1, 5, 2, 5, 0)]
    finally:
        await conn.close()
    pg_cluster.drop(url)


CLASHING = [  # (username, deleted): accounts made before usernames ignored case (migration 0010)
    ("Bob", False),
    ("bob", False),
    ("BOB", False),
    ("carol", False),
    ("deleted:u-gone", True),
]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_accounts_that_clash_in_case_survive_migration_0010_and_each_still_logs_in_as_spelled(
    tmp_path: Path, engine: str, pg_cluster: PgCluster
) -> None:
    from cdnstore.auth import Passwords, Tokens
    from cdnstore.config import AuthConfig
    from cdnstore.errors import Conflict
    from cdnstore.users import Accounts

    rows = [(f"u-{name}", name, "h", "t", "t", "t" if deleted else None) for name, deleted in CLASHING]
    insert = "INSERT INTO users (uuid, username, password_hash, created_at, updated_at, deleted_at) VALUES "
    if engine == "sqlite":
        url, path = "", tmp_path / "db.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None)
        for number, _name, sql in db.migrations():
            if number < 10:
                db.sqlite._apply(conn, sql, number)
        conn.executemany(insert + "(?, ?, ?, ?, ?, ?)", rows)
        conn.close()
        assert await asyncio.to_thread(db.initialize, path) == (9, db.latest_version())  # the clashes do not stop it
    else:
        import asyncpg

        from cdnstore.db import postgres

        url, path = pg_cluster.fresh("template1"), tmp_path / "unused"
        pg = await asyncpg.connect(url)
        try:
            for number, _name, sql in db.migrations("postgres"):
                if number < 10:
                    await postgres.apply(pg, sql, number)
            await pg.executemany(insert + "($1, $2, $3, $4, $5, $6)", rows)
        finally:
            await pg.close()
        assert await postgres.initialize(url) == (9, db.latest_version("postgres"))
    database = db.connect(DatabaseConfig(path=str(path), url=url))
    await database.open()
    try:
        keys = {r["username"]: r["username_key"] for r in await database.fetchall("SELECT * FROM users")}
        # The oldest of a clash holds the name; the others keep theirs, without a key; the deleted none.
        assert keys == {"Bob": "bob", "bob": None, "BOB": None, "carol": "carol", "deleted:u-gone": None}
        cfg = AuthConfig(secret_key="s" * 16, argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
        accounts = Accounts(database, cfg, Passwords(cfg), Tokens(cfg))
        for spelled in ("Bob", "bob", "BOB"):  # each logs in (and is found) by its exact spelling
            assert await accounts.uuid_of(spelled) == f"u-{spelled}"
        assert await accounts.uuid_of("bOb") == "u-Bob"  # another spelling: the name's holder
        assert await accounts.uuid_of("CAROL") == "u-carol"
        for taken in ("bob", "bOB", "Carol"):
            with pytest.raises(Conflict):
                await accounts.create(taken, "a-password")
        await accounts.create("dave", "a-password")
        assert await accounts.uuid_of("DAVE") != ""
    finally:
        await database.close()
