"""The SQLite database: one guarded writer connection, one reader, schema creation and migrations.

Writes go through `transaction()`, which holds an asyncio.Lock from BEGIN IMMEDIATE to COMMIT so
coroutines never interleave statements on the shared writer. Reads use their own connection (WAL lets
them run beside a write). Never await S3 or HTTP inside a transaction.

When the disk under the database fails a statement (full, I/O error, read-only), SQLite rolls the
transaction back and this module raises `DatabaseUnavailable` (503, Retry-After) instead of the sqlite3
error: logged once when writes start failing and once when they work again, not per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import aiosqlite
from aiosqlite.context import Result

from ..errors import DatabaseUnavailable
from .base import Database, Params, Row, UniqueViolation, latest_version, migrations, schema_sql
from .dialect import for_sqlite

if TYPE_CHECKING:
    from . import Tx

log = logging.getLogger(__name__)

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    # A page cache of 64 MiB per connection (the default is 2 MiB): set-based statements over a million
    # rows (a server fill) otherwise spill to the WAL page by page and crawl.
    "PRAGMA cache_size = -65536",
)


# SQLite's primary result codes that say the disk under the database failed, not the SQL; extended codes
# (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED ...) carry the primary one in their low byte.
DISK_ERRORS = {
    13: ("disk_full", "the database's disk is full"),  # SQLITE_FULL
    10: ("disk_error", "the database's disk failed"),  # SQLITE_IOERR
    14: ("disk_error", "the database's files cannot be opened"),  # SQLITE_CANTOPEN
    8: ("read_only", "the database's file system is read-only"),  # SQLITE_READONLY
}


def disk_error(exc: BaseException) -> DatabaseUnavailable | None:
    """The domain error for a sqlite3 error that is the disk's fault; None for any other exception."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    if code is None or code & 0xFF not in DISK_ERRORS:
        return None
    reason, what = DISK_ERRORS[code & 0xFF]
    return DatabaseUnavailable(f"{what} ({getattr(exc, 'sqlite_errorname', code)})", reason=reason)


PRIVATE = 0o600  # the database holds share tokens, password hashes and sealed S3 keys: its owner's only
SIDE_FILES = ("-wal", "-shm", "-journal")


def private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600 whatever the umask, before SQLite opens it: SQLite gives
    the -wal, -shm and -journal files it creates the mode of the database file. A folder made for it is
    0700. An existing file (or side file) readable by others, as earlier versions made them, is tightened."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # mkdir's mode is masked by the umask
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, PRIVATE)  # os.open's mode is masked by the umask too
        finally:
            os.close(fd)
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)):
        _tighten(file)


def _tighten(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
            log.warning("%s was readable by others (mode %04o); it is now %04o", path, mode, mode & 0o700)
    except FileNotFoundError:
        pass
    except OSError as exc:  # not ours to change (another owner, a read-only file system): say so, go on
        log.warning("%s: cannot make it private: %s", path, exc)


def initialize(path: str | Path) -> tuple[int, int]:
    """Create or upgrade the database file (synchronous; used by `cdnstore init` and at start).

    Returns (version before, version after). A new database gets schema.sql in one go; an older one
    gets the migrations it lacks, each in its own transaction.
    """
    path = Path(path)
    private_file(path)
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
            for number, name, sql in migrations():
                if number > before:
                    log.info("applying migration %04d_%s", number, name)
                    _apply(conn, sql, number)
        return before, target
    finally:
        conn.close()


# A migration whose SQL starts with this line rebuilds a table (SQLite's 12-step procedure: create the
# new table, copy the rows, drop the old one, rename): it runs with foreign keys off, which SQLite only
# allows outside a transaction, and commits only if `PRAGMA foreign_key_check` then finds no dangling
# reference. legacy_alter_table is on meanwhile so that the rename does not trip over the triggers of
# other tables that name the dropped one (they name the rebuilt one after it). See
# cdnstore/migrations/__init__.py.
FOREIGN_KEYS_OFF = "-- cdnstore: foreign_keys=off"


class ForeignKeyViolation(RuntimeError):
    """A migration run with foreign keys off left rows that reference missing rows: it was rolled back."""


def _apply(conn: sqlite3.Connection, sql: str, version: int) -> None:
    rebuild = sql.lstrip().startswith(FOREIGN_KEYS_OFF)
    if rebuild:
        conn.execute("PRAGMA foreign_keys = OFF")  # (a no-op inside a transaction: before BEGIN)
        conn.execute("PRAGMA legacy_alter_table = ON")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            if rebuild:
                _check_foreign_keys(conn, version)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if rebuild:
            conn.execute("PRAGMA legacy_alter_table = OFF")
            conn.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(conn: sqlite3.Connection, version: int) -> None:
    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        found = ", ".join(sorted({f"{table} -> {parent}" for table, _, parent, _ in dangling}))
        raise ForeignKeyViolation(
            f"migration {version:04d} leaves {len(dangling)} row(s) referencing rows that "
            f"do not exist ({found}); nothing of it was applied"
        )


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


class InlineCursor:
    """A finished statement on the inline connection; async methods so that code does not care which
    kind of transaction it is in."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def fetchone(self) -> Row | None:
        return self._cursor.fetchone()  # type: ignore[no-any-return]

    async def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineResult:
    """What `InlineTx.execute` returns: awaitable, and an async context manager, like aiosqlite's."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = InlineCursor(cursor)

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        return self._get().__await__()

    async def _get(self) -> InlineCursor:
        return self._cursor

    async def __aenter__(self) -> InlineCursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


class _Transactional(Protocol):
    """What `_Connection` reads of the connection it wraps (sqlite3's and aiosqlite's both have it)."""

    @property
    def in_transaction(self) -> bool: ...

    @property
    def total_changes(self) -> int: ...


C = TypeVar("C", bound=_Transactional)


class _Connection(Generic[C]):
    """A writer connection as `transaction()` uses it (whether a transaction is open, changes made so far);
    its statements' text is SQLite's (`for_sqlite`: row locks dropped)."""

    def __init__(self, conn: C) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    @property
    def total_changes(self) -> int:
        return self.conn.total_changes


class InlineTx(_Connection[sqlite3.Connection]):
    """The writer connection used on the event loop's own thread. A statement of a short transaction
    takes microseconds, much less than a hop to a worker thread and back (and the GIL convoy that comes
    with it under load); commits do not fsync (WAL, synchronous=NORMAL), and checkpoints, which do, run
    in a thread (`Database.checkpoint`)."""

    def execute(self, sql: str, params: Params = ()) -> InlineResult:
        return InlineResult(self.conn.execute(for_sqlite(sql), params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> InlineCursor:
        return InlineCursor(self.conn.executemany(for_sqlite(sql), rows))

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self.conn.execute(for_sqlite(sql), params).fetchall()


class ThreadTx(_Connection[aiosqlite.Connection]):
    """A connection on aiosqlite's thread (offloaded work, `scratch()`), taking statements as InlineTx does."""

    def execute(self, sql: str, params: Params = ()) -> Result[aiosqlite.Cursor]:
        return self.conn.execute(for_sqlite(sql), params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> aiosqlite.Cursor:
        return await self.conn.executemany(for_sqlite(sql), rows)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self.conn.execute_fetchall(for_sqlite(sql), params))


SqliteTx = InlineTx | ThreadTx


class SqliteDatabase(Database):
    """Short transactions and point reads run inline on the event loop (microseconds each); big
    set-based work (`transaction(offload=True)`, `fetch*(offload=True)`) runs on aiosqlite's threads so
    the loop keeps serving. One asyncio.Lock orders all writers, whichever connection they use."""

    engine = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.where = f"database {path}"
        self._inline: sqlite3.Connection | None = None  # writes, on the loop thread
        self._peek: sqlite3.Connection | None = None  # reads, on the loop thread
        self._writer: aiosqlite.Connection | None = None  # offloaded writes and checkpoints
        self._reader: aiosqlite.Connection | None = None  # offloaded reads
        self._lock = asyncio.Lock()
        self._commits_since_checkpoint = 0
        self._unavailable_since = 0.0
        self._checkpoint_failing = False
        self._notices: dict[tuple[str, str], None] = {}  # of the open transaction, in order, once each

    async def notify(self, channel: str, payload: str = "", *, tx: Tx | None = None) -> None:
        """One daemon per SQLite database: delivered in this process, after the commit of `tx`."""
        if tx is None:
            self._deliver(channel, payload)
        else:
            self._notices[(channel, payload)] = None

    async def upgrade(self) -> tuple[int, int]:
        return await asyncio.to_thread(initialize, self.path)

    async def open(self) -> None:
        await self.upgrade()
        self._inline = self._connect_inline()
        self._inline.execute("PRAGMA wal_autocheckpoint = 0")  # never fsync on the loop: see checkpoint()
        self._peek = self._connect_inline()
        self._peek.execute("PRAGMA query_only = ON")
        self._writer = await self._connect()
        self._reader = await self._connect()

    def _connect_inline(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            conn.execute(pragma)
        return conn

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        if self._writer is not None:
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:  # the WAL keeps the commits; the next open checkpoints them
                log.warning("the last checkpoint failed: %s", exc)
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        for inline in (self._peek, self._inline):
            if inline is not None:
                inline.close()
        self._reader = self._writer = self._peek = self._inline = None

    async def checkpoint(self) -> None:
        """Move committed pages from the WAL into the database file, in a thread (this is where fsync
        happens). PASSIVE: never waits for readers or writers."""
        # Not while a transaction holds the lock: it may be on the same connection (check_writable, offloaded
        # work), where SQLite refuses a checkpoint ("database table is locked"). The next second will do.
        if self._commits_since_checkpoint and self._writer is not None and not self._lock.locked():
            commits, self._commits_since_checkpoint = self._commits_since_checkpoint, 0
            try:
                await self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                self._commits_since_checkpoint += commits  # they stay in the WAL: try again next time
                if disk_error(exc) is None:
                    raise
                if not self._checkpoint_failing:
                    self._checkpoint_failing = True
                    log.error(
                        "checkpoints fail (%s): committed writes stay in %s-wal, which grows until space returns",
                        exc,
                        self.path,
                    )
                return
            if self._checkpoint_failing:
                self._checkpoint_failing = False
                log.warning("checkpoints work again")

    def _refused(self, exc: BaseException) -> DatabaseUnavailable | None:
        """The domain error for a disk failure (logged when writes start failing), else None."""
        error = disk_error(exc)
        if error is not None:
            if self.unavailable is None:
                self._unavailable_since = time.monotonic()
                log.error(
                    "the database refuses writes: %s; they answer 503 %s until it takes them again", exc, error.code
                )
            self.unavailable = error
        return error

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """A disk failure in the block becomes DatabaseUnavailable; any other error passes unchanged."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):  # "UNIQUE constraint failed: users.username"
                raise UniqueViolation(str(exc), str(exc).rpartition(": ")[2]) from exc
            raise
        except sqlite3.Error as exc:
            refused = self._refused(exc)
            if refused is not None:
                raise refused from exc
            raise

    def _took_writes(self) -> None:
        if self.unavailable is not None:
            log.warning("the database takes writes again, after %.0f s", time.monotonic() - self._unavailable_since)
            self.unavailable = None

    async def check_writable(self, wait: float) -> None:
        """Raise unless the database takes a write now (for /readyz): one page really written and
        committed (the schema version, set to what it is), so a full disk shows. Waits at most `wait`
        seconds for a transaction of this process to end (SQLite's busy_timeout bounds the rest).
        DatabaseUnavailable when the disk refuses."""
        assert self._writer is not None, "database is not open"
        writer = self._writer
        async with asyncio.timeout(wait):
            await self._lock.acquire()
        try:
            with self._disk_errors():
                await writer.execute("BEGIN IMMEDIATE")
                try:
                    async with writer.execute("PRAGMA user_version") as cursor:
                        row = await cursor.fetchone()
                    await writer.execute(f"PRAGMA user_version = {int(row[0]) if row else 0}")
                    await writer.execute("COMMIT")
                except BaseException:
                    await self._rollback(ThreadTx(writer))
                    raise
        finally:
            self._lock.release()
        self._commits_since_checkpoint += 1
        self._took_writes()

    @asynccontextmanager
    async def transaction(self, *, offload: bool = False) -> AsyncIterator[SqliteTx]:
        """`async with db.transaction() as tx:` one atomic unit of work. `offload=True` for work that may
        take long (millions of rows): it runs on a thread, and the loop keeps serving meanwhile."""
        assert self._inline is not None and self._writer is not None, "database is not open"
        tx: SqliteTx = ThreadTx(self._writer) if offload else InlineTx(self._inline)
        async with self._lock:
            self._notices = {}
            with self._disk_errors():
                await tx.execute("BEGIN IMMEDIATE")
                changes = tx.total_changes
                try:
                    for ahead in self._ahead:  # one writer: what waits in memory goes in first, in this one
                        await ahead.write_into(tx)
                    yield tx
                    await tx.execute("COMMIT")  # where a full disk usually shows: the WAL cannot grow
                except BaseException:
                    self._notices = {}
                    await self._rollback(tx)
                    for ahead in self._ahead:
                        ahead.rolled_back()
                    raise
            for ahead in self._ahead:
                ahead.committed()
            self._commits_since_checkpoint += 1
            if tx.total_changes != changes:  # something was written: the disk takes writes
                self._took_writes()
            notices, self._notices = self._notices, {}
        for callback in self._after_commit:
            callback()
        for channel, payload in notices:
            self._deliver(channel, payload)

    async def write_now(self, *, offload: bool = False) -> None:
        async with self.transaction(offload=offload):
            pass  # the write_ahead writers wrote at its start

    async def _rollback(self, tx: SqliteTx) -> None:
        if not tx.in_transaction:
            return  # SQLite rolled it back itself (it does after SQLITE_FULL or an I/O error)
        try:
            await tx.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("ROLLBACK failed: %s", exc)

    async def fetchone(self, sql: str, params: Params = (), *, offload: bool = False) -> Row | None:
        """One row; inline (for indexed lookups), or on a thread with `offload=True` (for scans)."""
        with self._disk_errors():
            if offload:
                assert self._reader is not None, "database is not open"
                async with self._reader.execute(for_sqlite(sql), params) as cur:
                    return await cur.fetchone()
            assert self._peek is not None, "database is not open"
            cursor = self._peek.execute(for_sqlite(sql), params)
            try:
                return cursor.fetchone()  # type: ignore[no-any-return]
            finally:
                cursor.close()  # a statement left open keeps its read snapshot: later reads would be stale

    async def fetchall(self, sql: str, params: Params = (), *, offload: bool = False) -> list[Row]:
        with self._disk_errors():
            if offload:
                assert self._reader is not None, "database is not open"
                return list(await self._reader.execute_fetchall(for_sqlite(sql), params))
            assert self._peek is not None, "database is not open"
            return self._peek.execute(for_sqlite(sql), params).fetchall()

    @asynccontextmanager
    async def scratch(self) -> AsyncIterator[SqliteTx]:
        """A connection of its own in autocommit (temporary tables live there), on aiosqlite's thread."""
        async with aiosqlite.connect(self.path, isolation_level=None) as conn:
            conn.row_factory = sqlite3.Row
            for pragma in PRAGMAS:
                await conn.execute(pragma)
            with self._disk_errors():
                yield ThreadTx(conn)
