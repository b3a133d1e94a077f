"""The trash and files that expire: deleted files kept restorable for `files.trash_days`, restored or purged
by their owner, purged when their time is up; files whose `expires_at` passed deleted as their owner would.

A file in the trash is a deleted file (`deleted_at` set: nothing lists or serves it, its links answer 410,
its name is free) with a `purge_at`: its stored version and replicas stay, and it still counts in its
owner's quota (the used_bytes trigger counts it). Restoring clears both; purging removes it everywhere
through the one removal path of deleted files (`Files.purge`). Both the expiry and the purge of due files
are one periodic sweep (`sweep`, under the `file-expiry` lease: one daemon at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import history
from .clock import SYSTEM_CLOCK, Clock
from .db import Database, Tx, UniqueViolation, tx_fetchall, tx_fetchone
from .errors import Conflict, NotFound
from .files import FILE_COLUMNS, FILE_FROM, IN_TRASH, FileRow, Files, Lifetime
from .records import fast_init
from .tables import files as files_table
from .tables import record

TRASH_COLUMNS = f"{FILE_COLUMNS}, f.deleted_at, f.purge_at"
SWEEP_BATCH = 500  # files deleted or purged per transaction by the sweep


@dataclass(frozen=True, slots=True)
class TrashedFile(FileRow):
    """A file in the trash (TRASH_COLUMNS): deleted at `deleted_at`, removed for good at `purge_at`."""

    deleted_at: str
    purge_at: str


class Trash:
    def __init__(self, db: Database, files: Files, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.files = files

    async def page(self, owner_id: int, limit: int, before: int | None) -> list[TrashedFile]:
        """The caller's files in the trash, the most recently created first."""
        rows = await self.db.fetchall(
            f"SELECT {TRASH_COLUMNS} {FILE_FROM} WHERE f.owner_id = ? AND {IN_TRASH} AND f.id < ? "
            "ORDER BY f.id DESC LIMIT ?",
            (owner_id, before or 2**62, limit + 1),
        )
        return [record(TrashedFile, r) for r in rows]

    async def restore(self, owner_id: int, file_uuid: str, lifetime: Lifetime) -> FileRow:
        """The file is live again, as it was (its links work again, unless they expired meanwhile). One whose
        expiry passed while it was in the trash gets the owner's default life (`lifetime`: none, or the
        default cut to the longest), not its old expiry, which would delete it again at once. 409
        `name_taken` when a live file has its name now."""
        try:
            await self._restore(owner_id, file_uuid, lifetime)
        except UniqueViolation:  # a file of that name created meanwhile (PostgreSQL)
            raise Conflict("a file of that name was created meanwhile; rename it first", code="name_taken") from None
        return await self.files.get(owner_id, file_uuid)

    async def _restore(self, owner_id: int, file_uuid: str, lifetime: Lifetime) -> None:
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            held = await self._in_trash(tx, owner_id, file_uuid)
            if await tx_fetchone(
                tx,
                "SELECT 1 FROM files WHERE owner_id = ? AND name = ? AND deleted_at IS NULL",
                (owner_id, held.name),
            ):
                raise Conflict(
                    f"you have another file named {held.name!r} now: rename or delete it first", code="name_taken"
                )
            await files_table.restore(tx, held.id, now, lifetime.expiry(None, False).at)
            await history.record(tx, owner_id, "file.restored", file_uuid, {"name": held.name}, at=now)

    async def purge(self, owner_id: int, file_uuid: str) -> None:
        """The owner empties this file from the trash: removed everywhere now."""
        async with self.db.transaction() as tx:
            held = await self._in_trash(tx, owner_id, file_uuid)
            await self.files.purge(tx, [held.id], reason="purged_by_owner")

    async def _in_trash(self, tx: Tx, owner_id: int, file_uuid: str) -> InTrash:
        row = await tx_fetchone(
            tx,
            f"SELECT f.id, f.name FROM files f WHERE f.uuid = ? AND f.owner_id = ? AND {IN_TRASH} FOR UPDATE",
            (file_uuid, owner_id),
        )
        if row is None:
            raise NotFound("no such file in your trash", code="file_not_found")
        return record(InTrash, row)

    async def sweep(self, now: str | None = None) -> int:
        """The periodic work: files whose expires_at passed (by `now`, default the present) are deleted as
        their owner would delete them (into the trash, with `files.trash_days`), and files whose time in the
        trash is up are purged; in batches, each in one transaction. How many files it deleted or purged."""
        now = now or self.clock.now_iso()
        done = 0
        for due, act in (
            ("expires_at <= ? AND deleted_at IS NULL ORDER BY expires_at", self._expire),
            ("purge_at <= ? ORDER BY purge_at", self._purge_due),
        ):
            while True:
                # FOR UPDATE (PostgreSQL): an owner's change beside the sweep (a new expiry, a restore) is
                # either seen here or waits for it, never lost under it.
                sql = f"SELECT id FROM files WHERE {due} LIMIT ? FOR UPDATE"
                async with self.db.transaction() as tx:
                    ids = [r["id"] for r in await tx_fetchall(tx, sql, (now, SWEEP_BATCH))]
                    if ids:
                        done += len(await act(tx, ids))
                if len(ids) < SWEEP_BATCH:
                    break
        return done

    async def _expire(self, tx: Tx, ids: list[int]) -> list[int]:
        return await self.files.discard(tx, ids, reason="expired")

    async def _purge_due(self, tx: Tx, ids: list[int]) -> list[int]:
        return await self.files.purge(tx, ids, reason="trash_period_over")


@fast_init
@dataclass(frozen=True, slots=True)
class InTrash:
    """One of the owner's files in the trash, locked (PostgreSQL) to be restored or purged."""

    id: int
    name: str
