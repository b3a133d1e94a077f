"""PostgreSQL through asyncpg: a pool of connections, transactions side by side (READ COMMITTED).

SQL arrives in SQLite's spelling and is translated by dialect.py. What SQLite's single writer gave for
free is made explicit where it matters: unique constraints (raised as `UniqueViolation`, which use cases
turn into their 409), `FOR UPDATE` on a row read before it is changed and `FOR UPDATE SKIP LOCKED` for job
claims (both written in the statements, which SQLite's side drops), the history's waiting rows written in a
transaction of their own before the next one opens (`write_ahead`), and throttles counted in the database.

A lost connection, PostgreSQL restarting or unreachable, or a full disk under it raise
`DatabaseUnavailable` (503 with Retry-After), never a driver error; the pool replaces dead connections by
itself on the next acquire, and a read outside a transaction is tried once more on a fresh connection.

Notifications (`notify`, `listen`) are PostgreSQL's NOTIFY (sent in the transaction, delivered at its
commit) and LISTEN on one connection of its own, outside the pool (a pooled connection forgets its LISTENs
when it goes back: docs/performance.md). That connection is watched and made again when it is lost, and
the listeners are then told to re-read (RESYNC): what was sent while it was away is lost."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import asyncpg.pool

from ..errors import DatabaseUnavailable
from .base import Database, Listener, Params, Row, T, UniqueViolation, latest_version, migrations, schema_sql
from .dialect import translate, translate_text

# Our own generator: the process's global one stays untouched (tests that draw from it, e.g. hypothesis,
# see no other thread move it).
_random = random.Random()

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from . import Tx

    Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

RETRY_AFTER = 5  # seconds a client is told to wait while PostgreSQL is unreachable (it restarts in seconds)
ACQUIRE_TIMEOUT = 10.0  # seconds to wait for a pooled connection before answering 503
LOCK_INIT = 0x63646E73  # advisory lock id ("cdns"): daemons starting at once migrate one after the other
LISTEN_CHECK = 2.0  # seconds between checks that the listening connection still works (a silent network
# loses it unnoticed otherwise)
LISTEN_WAIT = 5.0  # seconds listen() waits for the listening connection before it returns anyway
RECONNECT_MAX = 2.0  # seconds, the longest wait between attempts to make the listening connection again
# deadlock_detected, serialization_failure: the transaction lost to one beside it; the database is fine.
CONFLICTS = ("40P01", "40001")
RETRIES = 3  # runs of a `retried` transaction that keeps losing, before it answers 503 like the others


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The domain error for a driver error that says PostgreSQL cannot be reached or cannot take the
    work now (connection lost, shutting down, starting up, disk full, too many connections); None else."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        if state == "53100":
            return DatabaseUnavailable(f"the database's disk is full ({state})", reason="disk_full")
        if state.startswith(("08", "57P", "53", "40")):  # connection, shutdown, resources, serialization
            return _unreachable(f"PostgreSQL: {exc.__class__.__name__} ({state})")
        return None
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return _unreachable("PostgreSQL: the connection was closed")
    if isinstance(exc, (OSError, TimeoutError)):
        return _unreachable(f"PostgreSQL unreachable ({exc.__class__.__name__})")
    return None


def _conflict(exc: BaseException | None) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", "") in CONFLICTS


def _unreachable(cause: str) -> DatabaseUnavailable:
    error = DatabaseUnavailable(cause, reason="unreachable")
    error.headers["Retry-After"] = str(RETRY_AFTER)
    return error


class PgCursor:
    """A finished statement: its rows (when it returns any) and how many rows it touched."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid: int | None = None  # PostgreSQL has none: write RETURNING id

    async def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Row]:
        return self._rows

    async def close(self) -> None:
        pass


# RETURNING after any white space: a statement built over several lines may start one with it.
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)


def _returns_rows(text: str) -> bool:
    """Whether asyncpg must fetch the statement's rows (else it executes it, for its status)."""
    head = text.lstrip().split(None, 1)[0].upper() if text.strip() else ""
    return head in ("SELECT", "WITH", "VALUES") or _RETURNING.search(f" {text} ") is not None


async def _run(conn: Conn, sql: str, params: Params) -> PgCursor:
    text, args = translate(sql, params)
    if _returns_rows(text):
        rows = list(await conn.fetch(text, *args))
        return PgCursor(rows, len(rows))
    status = await conn.execute(text, *args)
    tail = status.rsplit(" ", 1)[-1]
    return PgCursor([], int(tail) if tail.isdigit() else -1)


class PgResult:
    """What `PgTx.execute` returns: awaitable, and an async context manager, like aiosqlite's."""

    def __init__(self, conn: Conn, sql: str, params: Params) -> None:
        self._conn, self._sql, self._params = conn, sql, params

    def __await__(self) -> Generator[Any, None, PgCursor]:
        return _run(self._conn, self._sql, self._params).__await__()

    async def __aenter__(self) -> PgCursor:
        return await _run(self._conn, self._sql, self._params)

    async def __aexit__(self, *exc: object) -> None:
        pass


class PgTx:
    """One pooled connection, in a transaction (`Database.transaction`) or not (`Database.scratch`)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> PgResult:
        return PgResult(self.conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        text = translate_text(sql)
        batch = [tuple(row) for row in rows]
        if batch:
            await self.conn.executemany(text, batch)
        return PgCursor([], len(batch))

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await (await self.execute(sql, params)).fetchall()


async def initialize(url: str) -> tuple[int, int]:
    """Create or upgrade the schema (`cdnstore init`, and at start). Returns (version before, after)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"SELECT pg_advisory_lock({LOCK_INIT})")
        try:
            return await _initialize(conn)
        finally:
            await conn.execute(f"SELECT pg_advisory_unlock({LOCK_INIT})")
    finally:
        await conn.close()


async def _initialize(conn: Conn) -> tuple[int, int]:
    target = latest_version("postgres")
    has_version = await conn.fetchval("SELECT to_regclass('cdnstore_schema') IS NOT NULL")
    before = int(await conn.fetchval("SELECT version FROM cdnstore_schema") or 0) if has_version else 0
    if before > target:
        raise RuntimeError(f"database version {before} is newer than this cdnstore ({target})")
    if before == 0:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        if tables:
            raise RuntimeError(
                "the PostgreSQL database holds tables but no cdnstore schema version: "
                "give cdnstore a database of its own"
            )
        await apply(conn, schema_sql("postgres"), target)
    else:
        for number, name, sql in migrations("postgres"):
            if number > before:
                log.info("applying PostgreSQL migration %04d_%s", number, name)
                await apply(conn, sql, number)
    return before, target


async def apply(conn: Conn, sql: str, version: int) -> None:
    """One migration (or the whole schema) and the version it reaches, in one transaction."""
    async with conn.transaction():
        await conn.execute(sql)  # no arguments: the simple protocol runs every statement of the file
        await conn.execute("DELETE FROM cdnstore_schema")
        await conn.execute("INSERT INTO cdnstore_schema (version) VALUES ($1)", version)


class PostgresDatabase(Database):
    engine = "postgres"
    one_daemon = False

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._unavailable_since = 0.0
        self._listening: asyncpg.Connection[Any] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._listen_lock = asyncio.Lock()  # the channels' LISTENs and a new connection's, one at a time
        self._connected = asyncio.Event()
        self._resync_next = False  # a connection made from now on follows a gap: listeners re-read
        # The write_ahead writers' own transactions, one at a time; marked so that they do not wait for themselves.
        self._ahead_lock = asyncio.Lock()
        self._writing_ahead: contextvars.ContextVar[bool] = contextvars.ContextVar("writing_ahead", default=False)

    where = "PostgreSQL database (database.url)"

    async def upgrade(self) -> tuple[int, int]:
        return await initialize(self.url)

    async def open(self) -> None:
        await self.upgrade()
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
            self._listen_task = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def notify(self, channel: str, payload: str = "", *, tx: PgTx | None = None) -> None:  # type: ignore[override]
        if tx is not None:
            await tx.execute("SELECT pg_notify(?, ?)", (channel, payload))
            return
        async with self.transaction() as own:
            await own.execute("SELECT pg_notify(?, ?)", (channel, payload))

    async def listen(self, channel: str, callback: Listener) -> None:
        new = channel not in self._listeners
        await super().listen(channel, callback)
        if self._listen_task is None:
            self._listen_task = asyncio.create_task(self._keep_listening(), name="database-listener")
        elif new:
            async with self._listen_lock:
                if self._listening is not None:
                    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                        await self._listening.add_listener(channel, self._heard)  # else: made again, re-read
        try:  # a change committed after listen() returns must be heard: wait (a while) for the connection
            async with asyncio.timeout(LISTEN_WAIT):
                await self._connected.wait()
        except TimeoutError:
            self._resync_next = True
            log.warning("cannot listen for other daemons' changes yet; trying on")

    def _heard(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._deliver(channel, str(payload))

    async def _keep_listening(self) -> None:
        """Hold the listening connection; make it again when it is lost, then tell the listeners to re-read."""
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=ACQUIRE_TIMEOUT)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.debug("the listening connection cannot be made: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            try:
                await self._listen_on(conn)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("the listening connection was lost (%s); making it again", exc.__class__.__name__)
            finally:
                self._listening = None
                self._connected.clear()
                conn.terminate()
            self._resync_next = True
            delay = 0.1
            await asyncio.sleep(delay)

    async def _listen_on(self, conn: asyncpg.Connection[Any]) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        async with self._listen_lock:
            for channel in list(self._listeners):
                await conn.add_listener(channel, self._heard)
            self._listening = conn
        self._connected.set()
        if self._resync_next:
            self._resync_next = False
            log.info("listening to other daemons' changes again; re-reading")
            self._resync()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTEN_CHECK):
                    await lost.wait()
            if not lost.is_set():
                async with asyncio.timeout(LISTEN_CHECK):
                    await conn.execute("SELECT 1")
        raise OSError("the connection was closed")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc), exc.constraint_name or "") from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            error = unavailable(exc)
            if error is None:
                raise
            if _conflict(exc):  # (503 with Retry-After, but not an outage: nothing to log or report)
                raise error from exc
            if self.unavailable is None:
                self._unavailable_since = time.monotonic()
                log.error("the database is unavailable: %s; calls answer 503 until it is back", exc)
            self.unavailable = error
            raise error from exc

    def _available(self) -> None:
        if self.unavailable is not None:
            log.warning("the database is back, after %.0f s", time.monotonic() - self._unavailable_since)
            self.unavailable = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "database is not open"
        return self._pool

    @asynccontextmanager
    async def transaction(self, *, offload: bool = False) -> AsyncIterator[PgTx]:
        """One transaction on a pooled connection (`offload` means nothing here: nothing blocks the loop)."""
        await self._write_ahead()
        with self._errors():
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, conn.transaction():
                yield PgTx(conn)
        self._available()
        for callback in self._after_commit:
            callback()

    async def _write_ahead(self) -> None:
        """Before a transaction opens: what the write_ahead writers keep (or are writing now) goes in first, in
        a transaction of its own, so that it keeps its order (a download is in the history before a rename
        that followed it: ids are taken in insert order)."""
        if self._writing_ahead.get() or not (self._ahead_lock.locked() or any(a.waiting for a in self._ahead)):
            return
        if self.unavailable is None:
            with contextlib.suppress(DatabaseUnavailable):  # the transaction will say so itself
                await self.write_now()

    async def write_now(self, *, offload: bool = False) -> None:
        async with self._ahead_lock:
            if not any(a.waiting for a in self._ahead):
                return
            marked = self._writing_ahead.set(True)
            try:
                async with self.transaction() as tx:
                    for ahead in self._ahead:
                        await ahead.write_into(tx)
            except BaseException:
                for ahead in self._ahead:
                    ahead.rolled_back()
                raise
            finally:
                self._writing_ahead.reset(marked)
            for ahead in self._ahead:
                ahead.committed()

    async def retried(self, work: Callable[[Tx], Awaitable[T]], *, offload: bool = False) -> T:
        # Safe to run again: PostgreSQL rolled the whole transaction back, and `work` (see Database.retried)
        # did nothing outside it; a short random pause lets the winner commit first.
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.transaction(offload=offload) as tx:
                    return await work(tx)
            except DatabaseUnavailable as exc:
                if attempt == RETRIES or not _conflict(exc.__cause__):
                    raise
                log.info("transaction lost to another (%s); running it again", exc.detail)
                await asyncio.sleep(_random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def scratch(self) -> AsyncIterator[PgTx]:
        with self._errors():
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                try:
                    yield PgTx(conn)
                finally:
                    if not conn.is_closed():
                        await conn.execute("DISCARD TEMP")

    async def check_writable(self, wait: float) -> None:
        with self._errors():
            async with self.pool.acquire(timeout=wait) as conn, conn.transaction():
                await conn.execute("UPDATE cdnstore_schema SET version = version")
        self._available()

    async def _read(self, sql: str, params: Params) -> list[Row]:
        text, args = translate(sql, params)
        for attempt in (1, 2):
            try:
                with self._errors():
                    async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                        rows: list[Row] = list(await conn.fetch(text, *args))
                self._available()
                return rows
            except DatabaseUnavailable:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def fetchone(self, sql: str, params: Params = (), *, offload: bool = False) -> Row | None:
        rows = await self._read(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = (), *, offload: bool = False) -> list[Row]:
        return await self._read(sql, params)
