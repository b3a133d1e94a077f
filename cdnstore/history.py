"""The history of what users did: one row per action, written in the transaction of the action, or,
for downloads (the hot path, which changes nothing else), batched by a HistoryWriter. A recorded action
that a user's webhook takes (webhook_queue.USER_EVENTS) is emitted with its row.

A row's time (`at`, its `created_at`, and its webhook event's `occurred_at`) is the caller's: its use case's
clock (clock.py), read once per transaction where the use case already has its `now`, so that under a test's
clock the history tells the same time as the rows the action changed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import orjson

from . import tables, webhook_queue
from .db import Database, Tx
from .errors import DatabaseUnavailable
from .records import fast_init

log = logging.getLogger(__name__)
INSERT = "INSERT INTO history (uuid, user_id, event, object_id, data, created_at) VALUES (?, ?, ?, ?, ?, ?)"

EVENTS = (
    "file.uploaded",
    "file.stored",
    "file.downloaded",
    "file.renamed",
    "file.deleted",
    "file.restored",
    "file.purged",
    "file.corrupt",
    "file.imported",
    "link.created",
    "link.updated",
    "link.deleted",
    "link.downloaded",
    "server.created",
    "server.updated",
    "server.deleted",
    "upload_request.created",
    "upload_request.received",
    "upload_request.closed",
)


async def record(tx: Tx, user_id: int, event: str, object_id: str | None, data: dict[str, Any], *, at: str) -> None:
    """One history row at `at` (a stored time: the caller's clock), in the transaction of the action; and, if
    some webhook of the user takes the event (webhook_queue.py: this daemon's copy, a set lookup), its
    deliveries in the same transaction."""
    assert event in EVENTS, event
    row = _row(user_id, event, object_id, data, at)
    await tx.execute(INSERT, row)
    await emitted(tx, row)


async def emitted(tx: Tx, row: tuple[Any, ...]) -> None:
    """A history row's webhook deliveries, if some webhook of its user takes its event, in the row's
    transaction. Whatever writes such rows calls it (`record`; the batched downloads are no webhook event)."""
    _, user_id, event, object_id, data, created_at = row
    if copies := webhook_queue.wanted(user_id, event):
        await webhook_queue.emit_user(tx, copies, user_id, event, object_id, data, created_at)


async def record_many(tx: Tx, rows: list[tuple[int, str, str | None, dict[str, Any]]], *, at: str) -> None:
    """`record` for many rows (user id, event, object id, data), all at `at`, in one statement."""
    assert all(event in EVENTS for _, event, _, _ in rows), rows
    if rows:
        made = [_row(*row, at) for row in rows]
        await tx.executemany(INSERT, made)
        for row in made:  # (a set lookup each: only rows some webhook takes cost more)
            await emitted(tx, row)


def _row(user_id: int, event: str, object_id: str | None, data: dict[str, Any], at: str) -> tuple[Any, ...]:
    # orjson: the same JSON text as json.dumps (compact aside), in a fraction of the time (downloads add a row each)
    return new_uuid(), user_id, event, object_id, orjson.dumps(data).decode(), at


_RANDOM_BATCH = 256  # uuids' worth of os.urandom read at once
_spare: list[str] = []  # 32 random hex digits each (list.pop and extend are atomic: threads may share it)


def new_uuid() -> str:
    """str(uuid.uuid4()), the same 122 random bits from os.urandom, without a syscall and two objects per row
    (every download writes a history row): the bytes are read 256 uuids at a time."""
    while True:
        try:
            h = _spare.pop()
            break
        except IndexError:
            digits = os.urandom(16 * _RANDOM_BATCH).hex()
            _spare.extend(digits[i : i + 32] for i in range(0, len(digits), 32))
    # version 4 in the 13th digit, the RFC 4122 variant (10xx) in the 17th
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


class HistoryWriter:
    """Collects rows (downloads: the hot path, which changes nothing else) and writes them before the next
    transaction, whoever opens it, or in one of its own every `interval` seconds: one transaction for many
    downloads instead of one each, and rows still land in the order things happened. `run()` flushes what is
    left when it is cancelled, so a clean shutdown loses nothing.

    While the database refuses writes (a full disk) the rows wait in memory: other transactions leave them
    out (each would fail carrying them all), and `run()` tries them alone every `retry` seconds.

    The database calls it (app.py hands it over with `Database.write_ahead`, which says when): `write_into`
    in the transaction that carries the rows, then `committed` or `rolled_back`."""

    def __init__(self, db: Database, *, interval: float = 0.2, batch: int = 2000, retry: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self.batch = batch
        self.retry = retry
        self._rows: list[tuple[Any, ...]] = []
        self._writing: list[tuple[Any, ...]] = []
        self._flushing = False
        self._full = asyncio.Event()

    @property
    def pending(self) -> int:
        """Rows not written yet."""
        return len(self._rows) + len(self._writing)

    @property
    def waiting(self) -> bool:
        """Rows to write (not those being written)."""
        return bool(self._rows)

    def add(self, user_id: int, event: str, object_id: str | None, data: dict[str, Any], *, at: str) -> None:
        """A row at `at` (the caller's clock, read as the download was granted), written with the next batch."""
        assert event in EVENTS, event
        self._rows.append(_row(user_id, event, object_id, data, at))
        if len(self._rows) >= self.batch:
            self._full.set()

    async def write_into(self, tx: Tx) -> None:
        if self.db.unavailable is not None and not self._flushing:
            return  # the disk refuses writes: only our own flush carries them (see run)
        self._writing, self._rows = self._rows, []
        if self._writing:
            await tx.executemany(INSERT, self._writing)

    def committed(self) -> None:
        self._writing = []

    def rolled_back(self) -> None:
        self._rows, self._writing = self._writing + self._rows, []

    async def flush(self) -> None:
        """Write the rows now (DatabaseUnavailable when the disk refuses; they stay for the next try). Rows
        another transaction is writing count too: the engine's write_now waits for that transaction (the one
        writer's lock, or the write-ahead lock), so a read after a flush sees every row added before it."""
        if self.pending:
            self._flushing = True
            try:
                # A backlog left by a database that refused writes goes in on a thread.
                await self.db.write_now(offload=len(self._rows) > self.batch)
            finally:
                self._flushing = False

    async def run(self) -> None:
        try:
            while True:
                if self.db.unavailable is None:
                    with contextlib.suppress(TimeoutError):  # (not wait_for: see JobWorker._loop)
                        async with asyncio.timeout(self.interval):
                            await self._full.wait()
                else:
                    await asyncio.sleep(self.retry)
                self._full.clear()
                try:
                    await self.flush()
                except DatabaseUnavailable:
                    pass  # the database logged it; the rows wait for the next try
                except Exception:
                    log.exception("writing %d history rows failed; will try again", len(self._rows))
        finally:
            try:
                await asyncio.shield(self.flush())
            except DatabaseUnavailable as exc:
                log.error(
                    "%d history rows (downloads) are lost: the database refused them at shutdown: %s",
                    len(self._rows),
                    exc.detail,
                )


@fast_init
@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of a user's history: `data` is its JSON text, as stored."""

    id: int
    uuid: str
    event: str
    object_id: str | None
    data: str
    created_at: str


async def page(db: Database, user_id: int, event: str | None, limit: int, before: int | None) -> list[HistoryEntry]:
    """A page of `user_id`'s history, newest first, older than the row id `before`; one row more than
    `limit` tells that there is a next page."""
    sql = "SELECT id, uuid, event, object_id, data, created_at FROM history WHERE user_id = ? AND id < ?"
    params: list[Any] = [user_id, before or 2**62]
    if event:
        sql += " AND event = ?"
        params.append(event)
    rows = await db.fetchall(sql + " ORDER BY id DESC LIMIT ?", (*params, limit + 1))
    return [tables.record(HistoryEntry, r) for r in rows]
