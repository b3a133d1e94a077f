"""The one writer of `files`: a file made for an upload (or an import), pointed at its latest upload and its
content, renamed, given an expiry, deleted (into the trash or for good), restored, purged, and retired when
it has no content left."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..db import Tx, tx_fetchall, tx_fetchone
from ..records import fast_init
from . import record
from .versions import LIVE


@fast_init
@dataclass(frozen=True, slots=True)
class NewFile:
    """A file just made (no content yet)."""

    id: int
    uuid: str
    name: str
    created_at: str
    expires_at: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class Deleted:
    """A file a deletion, a purge or a retirement changed: whose, which, and until when it stays in the
    trash (None: removed at once, or purged)."""

    id: int
    uuid: str
    owner_id: int
    name: str
    purge_at: str | None


# ON CONFLICT: where transactions run side by side, another may have made a live file of that name meanwhile.
_CREATE = (
    "INSERT INTO files (uuid, owner_id, name, expires_at, received_via, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner_id, name) WHERE deleted_at IS NULL DO NOTHING "
    "RETURNING id, uuid, name, created_at, expires_at"
)
_LATEST = "UPDATE files SET latest_version_id = ?, expires_at = ?, updated_at = ? WHERE id = ?"
_CURRENT = "UPDATE files SET current_version_id = ?, updated_at = ? WHERE id = ?"
_EXPIRY = "UPDATE files SET expires_at = ?, updated_at = ? WHERE id = ?"
_RENAME = "UPDATE files SET name = ?, updated_at = ? WHERE id = ?"
# "A file goes when it has no content left": live, no stored content, and no upload that may still become
# it (a stored version that is not current yet awaits the check of its declared SHA-256).
_RETIRE = (
    "UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL "
    "AND current_version_id IS NULL AND NOT EXISTS "
    f"(SELECT 1 FROM versions v WHERE v.file_id = files.id AND v.status IN {LIVE}) "
    "RETURNING id, uuid, owner_id, name, NULL AS purge_at"
)
_TRASH = (
    "UPDATE files SET deleted_at = ?, purge_at = ?, updated_at = ? WHERE id IN ({}) AND "
    "deleted_at IS NULL AND current_version_id IS NOT NULL RETURNING id, uuid, owner_id, name, purge_at"
)
_DELETE = (
    "UPDATE files SET deleted_at = ?, updated_at = ? WHERE id IN ({}) AND deleted_at IS NULL "
    "RETURNING id, uuid, owner_id, name, NULL AS purge_at"
)
_PURGE = (
    "UPDATE files SET purge_at = NULL, updated_at = ? WHERE id IN ({}) AND purge_at IS NOT NULL "
    "RETURNING id, uuid, owner_id, name, NULL AS purge_at"
)
_RESTORE = (
    "UPDATE files SET deleted_at = NULL, purge_at = NULL, updated_at = ?, "
    "expires_at = CASE WHEN expires_at <= ? THEN ? ELSE expires_at END WHERE id = ? AND purge_at IS NOT NULL"
)
# Their trash too (no trash for a deleted user's files: removed at once, like the others).
_DELETE_OWNERS = (
    "UPDATE files SET deleted_at = coalesce(deleted_at, ?), purge_at = NULL, updated_at = ? "
    "WHERE owner_id = ? AND (deleted_at IS NULL OR purge_at IS NOT NULL)"
)
# An import's page (named placeholders, see imports.py): a file per key adopted, then its one version as
# both its content and its latest upload.
_ADOPTING = "SELECT file_uuid FROM import_keys WHERE import_id = :i AND reason IS NULL"
ADOPT_IMPORTED = (
    "INSERT INTO files (uuid, owner_id, name, created_at, updated_at) SELECT file_uuid, :owner, name, :now, :now "
    "FROM import_keys WHERE import_id = :i AND reason IS NULL"
)
IMPORTED_CONTENT = (
    "UPDATE files SET current_version_id = (SELECT v.id FROM versions v WHERE v.file_id = files.id), "
    "latest_version_id = (SELECT v.id FROM versions v WHERE v.file_id = files.id) "
    f"WHERE uuid IN ({_ADOPTING})"
)


async def create(
    tx: Tx, file_uuid: str, owner_id: int, name: str, expires_at: str | None, now: str, received_via: int | None
) -> NewFile | None:
    """A new live file (through the upload request `received_via`, if any); None when the owner has a live
    file of that name (made meanwhile)."""
    row = await tx_fetchone(tx, _CREATE, (file_uuid, owner_id, name, expires_at, received_via, now, now))
    return None if row is None else record(NewFile, row)


async def announced(tx: Tx, file_id: int, version_id: int, expires_at: str | None, now: str) -> None:
    """Its latest upload is `version_id`, and its expiry `expires_at`."""
    await tx.execute(_LATEST, (version_id, expires_at, now, file_id))


async def make_current(tx: Tx, file_id: int, version_id: int, now: str) -> None:
    """Its content is `version_id` now (the caller saw it is newer than the one it replaces)."""
    await tx.execute(_CURRENT, (version_id, now, file_id))


async def set_expiry(tx: Tx, file_id: int, expires_at: str | None, now: str) -> None:
    await tx.execute(_EXPIRY, (expires_at, now, file_id))


async def rename(tx: Tx, file_id: int, name: str, now: str) -> None:
    await tx.execute(_RENAME, (name, now, file_id))


async def retire_if_empty(tx: Tx, file_id: int, now: str) -> Deleted | None:
    """The one place a file goes because it has no content left (an upload given up or rejected): deleted
    when it is live, has no stored content and no upload that may still become it; else None."""
    row = await tx_fetchone(tx, _RETIRE, (now, now, file_id))
    return None if row is None else record(Deleted, row)


async def trash(tx: Tx, file_ids: Sequence[int], now: str, purge_at: str) -> list[Deleted]:
    """Live files with stored content -> in the trash until `purge_at`; those it moved."""
    return await _many(tx, _TRASH, file_ids, (now, purge_at, now))


async def delete(tx: Tx, file_ids: Sequence[int], now: str) -> list[Deleted]:
    """Live files -> deleted (for good); those it deleted."""
    return await _many(tx, _DELETE, file_ids, (now, now))


async def purge(tx: Tx, file_ids: Sequence[int], now: str) -> list[Deleted]:
    """Files in the trash -> deleted for good; those it purged."""
    return await _many(tx, _PURGE, file_ids, (now,))


async def _many(tx: Tx, sql: str, file_ids: Sequence[int], head: tuple[str, ...]) -> list[Deleted]:
    marks = ", ".join("?" * len(file_ids))
    return [record(Deleted, r) for r in await tx_fetchall(tx, sql.format(marks), (*head, *file_ids))]


async def restore(tx: Tx, file_id: int, now: str, expires_at: str | None) -> int:
    """In the trash -> live again, with `expires_at` if its own expiry has passed; 0 when not in the trash."""
    return int((await tx.execute(_RESTORE, (now, now, expires_at, file_id))).rowcount)


async def delete_all_of(tx: Tx, owner_id: int, now: str) -> int:
    """Every live file of a user and every one in their trash -> deleted for good (the user is deleted)."""
    return int((await tx.execute(_DELETE_OWNERS, (now, now, owner_id))).rowcount)


async def adopt_imported(tx: Tx, params: dict[str, object]) -> None:
    """An import's page: a live file for each key adopted (ADOPT_IMPORTED)."""
    await tx.execute(ADOPT_IMPORTED, params)


async def imported_content(tx: Tx, params: dict[str, object]) -> None:
    """An import's page: each new file's one version is its content and its latest upload."""
    await tx.execute(IMPORTED_CONTENT, params)
