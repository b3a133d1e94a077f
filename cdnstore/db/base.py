"""What both engines share: the Database interface that use cases see and the list of numbered
migrations. Engine code lives in sqlite.py and postgres.py; SQL spelling differences in dialect.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import DatabaseUnavailable

if TYPE_CHECKING:
    from . import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")

# A result row: sqlite3.Row or asyncpg.Record; both index by position and by column name.
Row = Any
Params = Sequence[Any] | dict[str, Any]
# Called with a notification's payload, or with RESYNC (None) when notifications may have been lost (the
# listening connection was cut and is back): the listener then re-reads what it keeps.
Listener = Callable[[str | None], None]
RESYNC = None


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

    SQL is written once, in SQLite's spelling (`?` or `:name` placeholders); the PostgreSQL engine
    translates it (dialect.py). Integrity errors of both engines become `UniqueViolation`, lost
    connections and refusing disks `DatabaseUnavailable`."""

    engine = "?"
    # True when one writer at a time is guaranteed (SQLite): a hook at the start of every transaction may
    # then carry other work into it (history rows); on PostgreSQL transactions run side by side.
    serial_writes = True
    # True where one daemon at a time uses the database (SQLite): what a daemon finds held at its start
    # (running jobs, leases) was held by a process that is gone.
    one_daemon = True
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
        self._listeners: dict[str, list[Listener]] = {}

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
        row = await self.fetchone(sql, params, offload=offload)
        return None if row is None else row[0]


class UniqueViolation(Exception):
    """A unique constraint refused a write (two writers raced for one name): the use case turns it into
    its Conflict. `constraint` names the index or column when the engine says which."""

    def __init__(self, message: str, constraint: str = "") -> None:
        super().__init__(message)
        self.constraint = constraint
