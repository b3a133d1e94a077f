"""What both engines share: the Database interface that use cases see and the list of numbered
migrations. Engine code lives in sqlite.py and postgres.py; SQL spelling differences in dialect.py; where
throttles count, throttles.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import DatabaseUnavailable
from .throttles import FailureLog, MemoryFailures, TableFailures

if TYPE_CHECKING:
    from . import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


class Row(Protocol):
    """A result row as both engines give it (sqlite3.Row, asyncpg.Record): read by column name (or, where a
    statement selects one value, by position 0), its column names, its values. Typed records are built from
    it at the query boundary (`Record.of(row)`); nothing else may be assumed of it."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Any: ...

    def __len__(self) -> int: ...


Params = Sequence[Any] | dict[str, Any]
# Called with a notification's payload, or with RESYNC (None) when notifications may have been lost (the
# listening connection was cut and is back): the listener then re-reads what it keeps.
Listener = Callable[[str | None], None]
RESYNC = None


class WriteAhead(Protocol):
    """Writes kept in memory (the history's download rows) that must go in before any later transaction's
    work (`Database.write_ahead` says when). The engine calls `write_into(tx)` in the transaction that carries
    them, then `committed()` or `rolled_back()`; `waiting` says whether there is anything to write."""

    @property
    def waiting(self) -> bool: ...

    async def write_into(self, tx: Tx) -> None: ...

    def committed(self) -> None: ...

    def rolled_back(self) -> None: ...


def schema_sql(engine: str = "sqlite") -> str:
    name = "schema.sql" if engine == "sqlite" else "schema_postgres.sql"
    return (resources.files("cdnstore") / name).read_text(encoding="utf-8")


def migrations(engine: str = "sqlite") -> list[tuple[int, str, str]]:
    """(number, name, sql) of every numbered migration of `engine`, in order. SQLite's start at 1;
    PostgreSQL's start at its baseline (the first version cdnstore ran on it) and use the same numbers
    from there, so that one change is one number on both engines. A number may be skipped (work done in
    parallel reserves its numbers ahead, and some are never used): a database at version N gets every
    migration numbered above N, in order; two files of one number are an error."""
    folder = resources.files("cdnstore.migrations")
    if engine == "postgres":
        folder = folder / "postgres"
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers) or (engine == "sqlite" and numbers[:1] != [1]):
        raise RuntimeError(f"{engine} migrations must be numbered once each, SQLite's from 1: {numbers}")
    return found


def latest_version(engine: str = "sqlite") -> int:
    return migrations(engine)[-1][0]


class Database:
    """The interface use cases see, whichever engine is under it:

    - `async with db.transaction() as tx:` one atomic unit of work (`offload=True` for big set-based work);
      `tx.execute(sql, params)` (awaitable, or `async with` for a cursor), `tx.executemany`,
      `tx.execute_fetchall`, and `tx_fetchone`/`tx_fetchall` below;
    - `db.fetchone/fetchall/fetchval(sql, params)` for reads outside a transaction;
    - `db.scratch()`: a connection of its own, outside any transaction, for temporary tables (scrub);
    - `db.notify(channel, payload, tx=tx)` and `db.listen(channel, callback)`: a notification sent in a
      transaction reaches the listeners of every daemon on the database (this one included) once, and only
      if the transaction commits.

    SQL is written once, in SQLite's spelling (`?` or `:name` placeholders) plus the row locks PostgreSQL needs
    (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`), and each engine takes it as its dialect says (dialect.py).
    Integrity errors of both engines become `UniqueViolation`, lost connections and refusing disks
    `DatabaseUnavailable`. Where the engines differ in what they mean, this interface says what (`one_daemon`,
    `write_ahead`, `failures`), never which engine it is: use cases do not ask."""

    engine = "?"  # (db/ only: which migrations and schema file are the engine's)
    # True where one daemon at a time uses the database (SQLite): what a daemon finds held at its start
    # (running jobs, leases) was held by a process that is gone.
    one_daemon = True

    def __init__(self) -> None:
        self._after_commit: list[Callable[[], None]] = []
        self._ahead: list[WriteAhead] = []
        # Set while the database refuses writes (the last failure, for /readyz); cleared by a write that commits.
        self.unavailable: DatabaseUnavailable | None = None
        self._listeners: dict[str, list[Listener]] = {}

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every committed transaction."""
        self._after_commit.append(callback)

    def write_ahead(self, writes: WriteAhead) -> None:
        """Have what `writes` keeps in memory go in before the work of every transaction that opens later (so
        the tables keep the order things happened in), and whenever `write_now` is called. Where writes are
        serial (SQLite) it goes in first inside that transaction, one commit for both; where transactions run
        side by side (PostgreSQL), in a transaction of its own just before that one opens, one such at a time."""
        self._ahead.append(writes)

    async def write_now(self, *, offload: bool = False) -> None:
        """Write what the `write_ahead` writers keep, now (`offload`: a backlog, on a thread where that
        matters). DatabaseUnavailable when the database refuses it: the writers then keep it."""
        raise NotImplementedError

    def failures(self, scope: str, max_failures: int, window: float) -> FailureLog:
        """Where the throttle named `scope` counts its failures: in memory where one daemon uses the database,
        in the database (`throttle_failures`) where daemons share it, so that failures on any daemon add up
        (two stores for a measured reason: docs/performance.md, "Throttles")."""
        if self.one_daemon:
            return MemoryFailures(max_failures, window)
        return TableFailures(self, scope, max_failures, window)

    async def notify(self, channel: str, payload: str = "", *, tx: Tx | None = None) -> None:
        """Tell every daemon's listeners of `channel` (PostgreSQL: at most 8000 bytes of payload). In `tx`:
        sent when it commits, never if it rolls back; without: at once. Identical notifications of one
        transaction may arrive once."""
        raise NotImplementedError

    async def listen(self, channel: str, callback: Listener) -> None:
        """Call `callback(payload)` for every notification on `channel` from now on (on the event loop; keep it
        short: set a flag, wake a task), and `callback(RESYNC)` when some may have been lost."""
        self._listeners.setdefault(channel, []).append(callback)

    def unlisten(self, channel: str, callback: Listener) -> None:
        callbacks = self._listeners.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)

    def _deliver(self, channel: str, payload: str | None) -> None:
        for callback in list(self._listeners.get(channel, ())):
            try:
                callback(payload)
            except Exception:
                log.exception("a listener of %r failed", channel)

    def _resync(self) -> None:
        for channel in list(self._listeners):
            self._deliver(channel, RESYNC)

    # What the database is, for messages ("database var/cdnstore.sqlite3").
    where = "database"

    async def upgrade(self) -> tuple[int, int]:
        """Create the schema, or upgrade it to this cdnstore's (`cdnstore init`; `open` does it too): the
        version before and after."""
        raise NotImplementedError

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

    async def retried(self, work: Callable[[Tx], Awaitable[T]], *, offload: bool = False) -> T:
        """`work(tx)` in one transaction, run again from the start (a few times) where the engine aborted
        it for losing to a transaction beside it (PostgreSQL: a deadlock, a serialization failure). Only
        for work whose whole effect is the transaction's: no S3 or HTTP call, nothing kept in memory
        before the commit. SQLite: one writer, nothing to lose to, run once."""
        async with self.transaction(offload=offload) as tx:
            return await work(tx)

    async def fetchone(self, sql: str, params: Params = (), *, offload: bool = False) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Params = (), *, offload: bool = False) -> list[Row]:
        raise NotImplementedError

    async def fetchval(self, sql: str, params: Params = (), *, offload: bool = False) -> Any:
        """The one value a statement selects (the only read by position: it has one column)."""
        row: Any = await self.fetchone(sql, params, offload=offload)
        return None if row is None else row[0]


class UniqueViolation(Exception):
    """A unique constraint refused a write (two writers raced for one name): the use case turns it into
    its Conflict. `constraint` names the index or column when the engine says which."""

    def __init__(self, message: str, constraint: str = "") -> None:
        super().__init__(message)
        self.constraint = constraint
