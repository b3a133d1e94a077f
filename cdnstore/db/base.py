"""What both engines share: the Database interface that use cases see, stored times, and the list of
numbered migrations. Engine code lives in sqlite.py and postgres.py; SQL spelling differences in dialect.py."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import DatabaseUnavailable

if TYPE_CHECKING:
    from . import Tx

# A result row: sqlite3.Row or asyncpg.Record; both index by position and by column name.
Row = Any
Params = Sequence[Any] | dict[str, Any]


def iso(ts: float | None = None, *, timespec: str = "milliseconds") -> str:
    """Unix time `ts` (now when None) as RFC 3339 UTC; with the default millisecond precision this is
    the format every stored time uses, so stored times compare correctly as text."""
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def now_iso() -> str:
    return iso()


def iso_in(seconds: float, *, timespec: str = "milliseconds") -> str:
    """Now plus `seconds` (negative: ago), as `iso` writes it."""
    return iso(time.time() + seconds, timespec=timespec)


def schema_sql(engine: str = "sqlite") -> str:
    name = "schema.sql" if engine == "sqlite" else "schema_postgres.sql"
    return (resources.files("cdnstore") / name).read_text(encoding="utf-8")


def migrations(engine: str = "sqlite") -> list[tuple[int, str, str]]:
    """(number, name, sql) of every numbered migration of `engine`, in order. SQLite's start at 1;
    PostgreSQL's start at its baseline (the first version cdnstore ran on it) and use the same numbers
    from there, so that one change is one number on both engines."""
    folder = resources.files("cdnstore.migrations")
    if engine == "postgres":
        folder = folder / "postgres"
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    first = found[0][0] if found else 1
    if [n for n, _, _ in found] != list(range(first, first + len(found))) or (engine == "sqlite" and first != 1):
        raise RuntimeError(f"{engine} migrations are not numbered consecutively: {[n for n, _, _ in found]}")
    return found


def latest_version(engine: str = "sqlite") -> int:
    return migrations(engine)[-1][0]


class Database:
    """The interface use cases see, whichever engine is under it:

    - `async with db.transaction() as tx:` one atomic unit of work (`offload=True` for big set-based work);
      `tx.execute(sql, params)` (awaitable, or `async with` for a cursor), `tx.executemany`,
      `tx.execute_fetchall`, and `tx_fetchone`/`tx_fetchall` below;
    - `db.fetchone/fetchall/fetchval(sql, params)` for reads outside a transaction;
    - `db.scratch()`: a connection of its own, outside any transaction, for temporary tables (scrub).

    SQL is written once, in SQLite's spelling (`?` or `:name` placeholders); the PostgreSQL engine
    translates it (dialect.py). Integrity errors of both engines become `UniqueViolation`, lost
    connections and refusing disks `DatabaseUnavailable`."""

    engine = "?"
    # True when one writer at a time is guaranteed (SQLite): a hook at the start of every transaction may
    # then carry other work into it (history rows); on PostgreSQL transactions run side by side.
    serial_writes = True
    # Appended to a SELECT whose rows the transaction will change / to a job claim's subquery: PostgreSQL's
    # row locks; nothing on SQLite, whose one writer already excludes every other.
    for_update = ""
    skip_locked = ""

    def __init__(self) -> None:
        self._after_commit: list[Callable[[], None]] = []
        self._on_begin: list[Callable[[Tx], Awaitable[None]]] = []
        self._after_rollback: list[Callable[[], None]] = []
        self._before_begin: list[Callable[[], Awaitable[None]]] = []
        # Set while the database refuses writes (the last failure, for /readyz); cleared by a write that commits.
        self.unavailable: DatabaseUnavailable | None = None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every committed transaction (e.g. to wake the job worker)."""
        self._after_commit.append(callback)

    def on_begin(self, callback: Callable[[Tx], Awaitable[None]], after_rollback: Callable[[], None]) -> None:
        """Run `callback` first in every transaction (writes that were waiting for one), and
        `after_rollback` when such a transaction is rolled back. Only where `serial_writes`."""
        assert self.serial_writes, "on_begin needs one writer at a time"
        self._on_begin.append(callback)
        self._after_rollback.append(after_rollback)

    def before_begin(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await `callback` before every transaction opens (where transactions run side by side: there,
        writes that were waiting go in first, in a transaction of their own, so they keep their order)."""
        assert not self.serial_writes, "where writes are serial, on_begin carries them into the transaction"
        self._before_begin.append(callback)

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def checkpoint(self) -> None:
        """Periodic maintenance (SQLite: move the WAL into the file); nothing on PostgreSQL."""

    async def check_writable(self, wait: float) -> None:
        raise NotImplementedError

    def transaction(self, *, offload: bool = False) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    def scratch(self) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Periodic work that one process at a time may do (a deep scrub pass): yields True when this
        process may, False when another holds `name`. SQLite: always True (one daemon per database)."""
        yield True

    async def fetchone(self, sql: str, params: Params = (), *, offload: bool = False) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Params = (), *, offload: bool = False) -> list[Row]:
        raise NotImplementedError

    async def fetchval(self, sql: str, params: Params = (), *, offload: bool = False) -> Any:
        row = await self.fetchone(sql, params, offload=offload)
        return None if row is None else row[0]


class UniqueViolation(Exception):
    """A unique constraint refused a write (two writers raced for one name): the use case turns it into
    its Conflict. `constraint` names the index or column when the engine says which."""

    def __init__(self, message: str, constraint: str = "") -> None:
        super().__init__(message)
        self.constraint = constraint


