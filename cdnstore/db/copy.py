"""`cdnstore copy-database URL`: everything in the configured database (SQLite, or PostgreSQL) copied into
an empty PostgreSQL database, so that an installation grows from one daemon to several without starting over.

- The tables and their columns are read from the schemas, not listed here: the target is migrated to the
  latest schema first, and the source (which must be at the latest migration too) must have the same tables
  and columns, so a table added by a later migration is copied without a change here.
- The source is read in one read transaction (a consistent snapshot: rows written after it began are not
  copied), streamed in batches, so memory stays bounded whatever the size of the database.
- The target is written in one transaction with binary COPY (asyncpg `copy_records_to_table`): it ends
  complete, or (on any error) as empty as it began. Inside it, the foreign keys are dropped and added back
  after the copy (checked once, in bulk, and no table order to get right: files and versions refer to each
  other) and the user triggers are disabled, so the counters they keep (servers.files_present ...) arrive
  as the source had them instead of being counted twice. The identity sequences are set past the highest id
  the source handed out (jobs' ids are never reused, also after their rows are gone), so new rows do not
  collide.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from .base import latest_version

BATCH = 5000  # rows read from the source at a time: the copy's memory is a few batches, whatever the size
VERSION_TABLE = "cdnstore_schema"  # PostgreSQL's schema version row: the target's own, not copied
Progress = Callable[[str], None]


class CopyRefused(Exception):
    """The copy cannot start (the message says why and what to do); nothing was written."""


class CopyFailed(CopyRefused):
    """The copy began, and failed on the way (e.g. a row that breaks a constraint): rolled back, nothing kept."""


@dataclass(frozen=True)
class Copied:
    tables: dict[str, int]  # table -> rows copied
    seconds: float


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSource:
    """A SQLite database read in one read transaction (WAL: the daemon's writes do not disturb it)."""

    engine = "sqlite"

    def __init__(self, path: str | Path) -> None:
        if not Path(path).is_file():
            raise CopyRefused(f"no SQLite database at {path} (database.path)")
        # Read-only; check_same_thread off: batches are fetched on a worker thread, one at a time.
        self.conn = sqlite3.connect(
            f"file:{Path(path).resolve()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here

    async def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    async def tables(self) -> dict[str, list[str]]:
        names = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]
        return {name: [r[1] for r in self.conn.execute(f"PRAGMA table_info({quoted(name)})")] for name in names}

    async def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()[0])

    async def batches(self, table: str, columns: Sequence[str]) -> AsyncIterator[list[tuple[Any, ...]]]:
        cur = self.conn.execute(f"SELECT {', '.join(map(quoted, columns))} FROM {quoted(table)}")
        try:
            # The next batch is read on a thread while the previous one is sent to PostgreSQL.
            pending = asyncio.ensure_future(asyncio.to_thread(cur.fetchmany, BATCH))
            while rows := await pending:
                pending = asyncio.ensure_future(asyncio.to_thread(cur.fetchmany, BATCH))
                yield rows
        finally:
            cur.close()

    async def issued(self, table: str) -> int:
        """The highest id ever handed out in `table` beyond its rows (AUTOINCREMENT's sqlite_sequence)."""
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            return 0
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        self.conn.close()


class PostgresSource:
    """A PostgreSQL database read in one REPEATABLE READ, READ ONLY transaction (a snapshot)."""

    engine = "postgres"

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, url: str) -> PostgresSource:
        conn = await asyncpg.connect(url)
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return cls(conn)

    async def version(self) -> int:
        if not await self.conn.fetchval(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL"):
            return 0
        return int(await self.conn.fetchval(f"SELECT version FROM {VERSION_TABLE}") or 0)

    async def tables(self) -> dict[str, list[str]]:
        return await pg_tables(self.conn)

    async def count(self, table: str) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {quoted(table)}"))

    async def batches(self, table: str, columns: Sequence[str]) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = await self.conn.cursor(f"SELECT {', '.join(map(quoted, columns))} FROM {quoted(table)}")
        while rows := await cursor.fetch(BATCH):
            yield [tuple(r) for r in rows]

    async def issued(self, table: str) -> int:
        found = 0
        for column in await identity_columns(self.conn, table):
            last = await self.conn.fetchval(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, $2))", table, column
            )
            found = max(found, int(last or 0))
        return found

    async def close(self) -> None:
        await self.conn.close()


Source = SqliteSource | PostgresSource


async def pg_tables(conn: asyncpg.Connection[Any]) -> dict[str, list[str]]:
    """Every table of the current schema but the version row -> its columns in order."""
    rows = await conn.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name <> $1 "
        "ORDER BY c.table_name, c.ordinal_position",
        VERSION_TABLE,
    )
    tables: dict[str, list[str]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], []).append(row["column_name"])
    return tables


async def identity_columns(conn: asyncpg.Connection[Any], table: str) -> list[str]:
    return [
        r[0]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
            table,
        )
    ]


async def open_source(path: str | Path, url: str) -> Source:
    """The configured database: PostgreSQL at `url` when set, else SQLite at `path`."""
    return await PostgresSource.open(url) if url else SqliteSource(path)


async def copy_database(path: str | Path, source_url: str, target_url: str, progress: Progress) -> Copied:
    """Copy the configured database (SQLite at `path`, or PostgreSQL at `source_url`) into the empty
    PostgreSQL database at `target_url`. Raises CopyRefused, having written nothing, when it cannot."""
    from .postgres import initialize

    if source_url and source_url == target_url:
        raise CopyRefused("the target is the configured database itself")
    started = time.monotonic()
    source = await open_source(path, source_url)
    try:
        found, latest = await source.version(), latest_version(source.engine)
        if found > latest:
            raise CopyRefused(
                f"the configured database is at schema version {found}, newer than this cdnstore's "
                f"({latest}): copy it with the cdnstore that made it"
            )
        if found != latest:
            raise CopyRefused(
                f"the configured database is at schema version {found}, this cdnstore's is {latest}: "
                "run `cdnstore init` (with the daemon stopped) first, then copy"
            )
        progress("migrating the target to the latest schema")
        try:
            await initialize(target_url)
            target = await asyncpg.connect(target_url)
        except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
            raise CopyRefused(f"cannot use the target database: {exc.__class__.__name__}: {exc}") from exc
        try:
            tables = await _matching_tables(source, target)
            try:
                async with target.transaction():
                    await _refuse_data(target, tables)
                    copied = await _copy(source, target, tables, progress)
            except (asyncpg.PostgresError, ValueError, TypeError) as exc:  # a row PostgreSQL (or its codecs) refused
                raise CopyFailed(
                    f"the copy failed and was rolled back, the target is as empty as before: "
                    f"{exc.__class__.__name__}: {exc}"
                ) from exc
        finally:
            await target.close()
    finally:
        await source.close()
    return Copied(copied, time.monotonic() - started)


async def _matching_tables(source: Source, target: asyncpg.Connection[Any]) -> dict[str, list[str]]:
    """The target's tables and columns, checked to be the source's (in any column order)."""
    theirs, ours = await source.tables(), await pg_tables(target)
    differ = sorted(
        name for name in theirs.keys() | ours.keys() if set(theirs.get(name, ())) != set(ours.get(name, ()))
    )
    if differ:
        raise CopyRefused(
            f"the two databases' schemas differ in table(s) {', '.join(differ)}: run `cdnstore init` "
            "on the configured database with this cdnstore, and give the copy a database of its own"
        )
    return ours


async def _refuse_data(target: asyncpg.Connection[Any], tables: dict[str, list[str]]) -> None:
    full = [name for name in sorted(tables) if await target.fetchval(f"SELECT EXISTS (SELECT FROM {quoted(name)})")]
    if full:
        raise CopyRefused(
            f"the target database is not empty (rows in {', '.join(full)}): "
            "copy-database only fills an empty database; give it a new one (createdb)"
        )


async def _copy(
    source: Source, target: asyncpg.Connection[Any], tables: dict[str, list[str]], progress: Progress
) -> dict[str, int]:
    foreign_keys = await target.fetch(
        "SELECT conrelid::regclass::text AS tab, confrelid::regclass::text AS ref, conname, "
        "pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace ORDER BY conrelid, conname"
    )
    for fk in foreign_keys:
        await target.execute(f"ALTER TABLE {fk['tab']} DROP CONSTRAINT {quoted(fk['conname'])}")
    for name in tables:
        await target.execute(f"ALTER TABLE {quoted(name)} DISABLE TRIGGER USER")
    copied = {}
    for name in parents_first(tables, [(fk["tab"].strip('"'), fk["ref"].strip('"')) for fk in foreign_keys]):
        copied[name] = await _copy_table(source, target, name, tables[name], progress)
    progress(f"checking {len(foreign_keys)} foreign keys")
    for fk in foreign_keys:
        await target.execute(f"ALTER TABLE {fk['tab']} ADD CONSTRAINT {quoted(fk['conname'])} {fk['def']}")
    for name in tables:
        await target.execute(f"ALTER TABLE {quoted(name)} ENABLE TRIGGER USER")
        await _set_sequences(source, target, name)
    return copied


def parents_first(tables: Iterable[str], references: Iterable[tuple[str, str]]) -> list[str]:
    """The tables in an order where a table comes after those it refers to (where a cycle allows: files and
    versions refer to each other), as an application would have written them. The copy does not need it
    (the foreign keys are off), but the triggers' work on other tables is then there to be seen if they were on."""
    waiting: dict[str, set[str]] = {name: set() for name in tables}
    for child, parent in references:
        if child in waiting and parent in waiting and parent != child:
            waiting[child].add(parent)
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, parents in waiting.items() if not parents - set(order))
        name = ready[0] if ready else min(waiting, key=lambda n: (len(waiting[n] - set(order)), n))
        order.append(name)
        del waiting[name]
    return order


async def _copy_table(
    source: Source, target: asyncpg.Connection[Any], name: str, columns: list[str], progress: Progress
) -> int:
    total = await source.count(name)
    done = 0
    said = time.monotonic()

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        nonlocal done, said
        async for batch in source.batches(name, columns):
            for row in batch:
                yield row
            done += len(batch)
            if time.monotonic() - said >= 2:
                said = time.monotonic()
                progress(f"{name}: {done}/{total} rows ({100 * done // max(total, 1)}%)")

    if total:
        await target.copy_records_to_table(name, records=rows(), columns=columns)
    progress(f"{name}: {done} rows copied")
    return done


async def _set_sequences(source: Source, target: asyncpg.Connection[Any], name: str) -> None:
    """Each identity column's sequence continues after the highest id used, so that new rows do not collide."""
    for column in await identity_columns(target, name):
        highest = await target.fetchval(f"SELECT max({quoted(column)}) FROM {quoted(name)}")
        highest = max(int(highest or 0), await source.issued(name))
        if highest:
            await target.execute("SELECT setval(pg_get_serial_sequence($1, $2), $3)", name, column, highest)
