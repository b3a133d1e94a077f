"""The SQLite database: one guarded writer connection, one reader, schema creation and migrations.

Writes go through `transaction()`, which holds an asyncio.Lock from BEGIN IMMEDIATE to COMMIT so
coroutines never interleave statements on the shared writer. Reads use their own connection (WAL lets
them run beside a write). Never await S3 or HTTP inside a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

Row = sqlite3.Row
Tx = aiosqlite.Connection

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)


def now_iso() -> str:
    """RFC 3339 UTC with millisecond precision, the format every stored time uses."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schema_sql() -> str:
    return (resources.files("cdnstore") / "schema.sql").read_text(encoding="utf-8")


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every numbered migration, in order."""
    found = []
    for entry in resources.files("cdnstore.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    if [n for n, _, _ in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..N: {[n for n, _, _ in found]}")
    return found


def latest_version() -> int:
    return len(migrations())


def initialize(path: str | Path) -> tuple[int, int]:
    """Create or upgrade the database file (synchronous; used by `cdnstore init` and at start).

    Returns (version before, version after). A new database gets schema.sql in one go; an older one
    gets the migrations it lacks, each in its own transaction.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)
        before = conn.execute("PRAGMA user_version").fetchone()[0]
        target = latest_version()
        if before > target:
            raise RuntimeError(f"{path}: database version {before} is newer than this cdnstore ({target})")
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        if before == 0 and not has_tables:
            _apply(conn, schema_sql(), target)
        else:
            for number, name, sql in migrations()[before:]:
                log.info("applying migration %04d_%s", number, name)
                _apply(conn, sql, number)
        return before, target
    finally:
        conn.close()


def _apply(conn: sqlite3.Connection, sql: str, version: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(sql: str) -> Iterable[str]:
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf
            buf = ""
    if buf.strip() and not all(line.strip().startswith("--") or not line.strip() for line in buf.splitlines()):
        raise ValueError(f"incomplete SQL statement: {buf[:80]!r}")


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._after_commit: list[Callable[[], None]] = []

    async def open(self) -> None:
        await asyncio.to_thread(initialize, self.path)
        self._writer = await self._connect()
        self._reader = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every committed transaction (e.g. to wake the job worker)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        assert self._writer is not None, "database is not open"
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")
        for callback in self._after_commit:
            callback()

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        assert self._reader is not None, "database is not open"
        async with self._reader.execute(sql, params) as cur:
            return await cur.fetchone()  # type: ignore[no-any-return]

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        assert self._reader is not None, "database is not open"
        return list(await self._reader.execute_fetchall(sql, params))  # type: ignore[arg-type]

    async def fetchval(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


async def tx_fetchone(tx: Tx, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
    async with tx.execute(sql, params) as cur:
        return await cur.fetchone()  # type: ignore[no-any-return]


async def tx_fetchall(tx: Tx, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    return list(await tx.execute_fetchall(sql, params))  # type: ignore[arg-type]
