"""The one writer of `versions`: an upload announced, stored, superseded, deleted, rejected; what the reads of
its bytes learnt (its SHA-256, the verifier's back-off); an import's page adopted."""

from __future__ import annotations

from collections.abc import Sequence

from ..db import Tx, tx_fetchall, tx_fetchone
from ..models import VersionStatus

UPLOADING, STORED = VersionStatus.UPLOADING.value, VersionStatus.STORED.value
SUPERSEDED, DELETED = VersionStatus.SUPERSEDED.value, VersionStatus.DELETED.value
# A version that still is, or may become, its file's content: what a deletion gives up.
LIVE = f"('{UPLOADING}', '{STORED}')"

_ANNOUNCE = (
    "INSERT INTO versions (file_id, object_key, size, content_type, upload_server_id, created_at,"
    " upload_id, part_size, sha256, sha256_declared, link_request)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_STORE = (
    f"UPDATE versions SET status = '{STORED}', stored_at = ?, etag = ?, zone = ?, verify_pending = ? "
    f"WHERE id = ? AND status = '{UPLOADING}'"
)
_GIVE_UP = f"UPDATE versions SET status = '{DELETED}' WHERE id = ? AND status = '{UPLOADING}'"
_REJECT = (
    f"UPDATE versions SET status = '{DELETED}', rejected_at = ?, verify_pending = 0, verify_after = NULL "
    f"WHERE id = ? AND status = '{STORED}'"
)
_SUPERSEDE = f"UPDATE versions SET status = '{SUPERSEDED}' WHERE status = '{STORED}' AND id IN"
_DELETE = f"UPDATE versions SET status = '{DELETED}' WHERE status IN {LIVE} AND id IN"
_CONFIRM = "UPDATE versions SET sha256 = ?, verify_pending = 0, verify_after = NULL WHERE id = ?"
_BACK_OFF = "UPDATE versions SET verify_attempts = ?, verify_after = ? WHERE id = ? AND verify_pending = 1"
_LEARN = "UPDATE versions SET sha256 = ? WHERE id = ? AND sha256 IS NULL"
_LINK_MADE = "UPDATE versions SET link_request = NULL WHERE id = ?"
# An import's page (named placeholders, see imports.py): stored as found; its SHA-256 waits for cdnstore's
# first read (verify_pending); no ETag kept: an object cdnstore did not upload has no upload to compare it
# with (and an encrypted one's ETag is no MD5).
ADOPT_IMPORTED = (
    "INSERT INTO versions (file_id, object_key, size, content_type, upload_server_id, zone, status, created_at, "
    f"stored_at, verify_pending) SELECT f.id, k.key, k.size, k.content_type, :server, :zone, '{STORED}', :now, :now, 1 "
    "FROM import_keys k JOIN files f ON f.uuid = k.file_uuid WHERE k.import_id = :i AND k.reason IS NULL"
)


async def announce(
    tx: Tx,
    file_id: int,
    object_key: str,
    size: int,
    content_type: str,
    server_id: int,
    now: str,
    upload_id: str | None,
    part_size: int | None,
    sha256: str | None,
    link_request: str | None,
) -> int:
    """A new upload of the file (uploading, the default status); its id."""
    params = (file_id, object_key, size, content_type, server_id, now, upload_id, part_size, sha256)
    row = await tx_fetchone(tx, _ANNOUNCE, (*params, int(sha256 is not None), link_request))
    assert row is not None
    return int(row["id"])


async def store(tx: Tx, version_id: int, now: str, etag: str | None, zone: str, verify_pending: bool) -> int:
    """uploading -> stored, on the server of `zone` with this ETag; 1, or 0 when it was no longer uploading."""
    changed = await tx.execute(_STORE, (now, etag, zone, int(verify_pending), version_id))
    return int(changed.rowcount)


async def give_up(tx: Tx, version_id: int) -> int:
    """An upload that never arrived or was cancelled: uploading -> deleted; 1, or 0 when it was no longer
    uploading."""
    changed = await tx.execute(_GIVE_UP, (version_id,))
    return int(changed.rowcount)


async def supersede(tx: Tx, version_ids: Sequence[int]) -> list[int]:
    """Content replaced by a newer version: stored -> superseded; the ids it changed."""
    return await _leave(tx, _SUPERSEDE, version_ids)


async def delete(tx: Tx, version_ids: Sequence[int]) -> list[int]:
    """Versions of deleted files: uploading or stored -> deleted; the ids it changed."""
    return await _leave(tx, _DELETE, version_ids)


async def _leave(tx: Tx, head: str, version_ids: Sequence[int]) -> list[int]:
    if not version_ids:
        return []
    marks = ", ".join("?" * len(version_ids))
    return [r["id"] for r in await tx_fetchall(tx, f"{head} ({marks}) RETURNING id", tuple(version_ids))]


async def reject(tx: Tx, version_id: int, now: str) -> int:
    """A stored version whose bytes are not what its upload declared: stored -> deleted, `rejected_at` now,
    no longer awaiting its read; 1, or 0 when it was no longer stored."""
    changed = await tx.execute(_REJECT, (now, version_id))
    return int(changed.rowcount)


async def confirm_sha256(tx: Tx, version_id: int, sha256: str) -> int:
    """A read of its whole content hashed to `sha256`: known, and no longer awaiting a read."""
    changed = await tx.execute(_CONFIRM, (sha256, version_id))
    return int(changed.rowcount)


async def back_off(tx: Tx, version_id: int, attempts: int, after: str) -> int:
    """A verification read that settled nothing: read again after `after`; 0 when it no longer awaits one."""
    changed = await tx.execute(_BACK_OFF, (attempts, after, version_id))
    return int(changed.rowcount)


async def learn_sha256(tx: Tx, version_id: int, sha256: str) -> int:
    """The SHA-256 the deep scrub decided for a version stored without one; 0 when one was known already."""
    changed = await tx.execute(_LEARN, (sha256, version_id))
    return int(changed.rowcount)


async def link_made(tx: Tx, version_id: int) -> int:
    """The link its upload asked for was made: the request is cleared (made once)."""
    changed = await tx.execute(_LINK_MADE, (version_id,))
    return int(changed.rowcount)


async def adopt_imported(tx: Tx, params: dict[str, object]) -> None:
    """An import's page: a stored version for each of its files (ADOPT_IMPORTED)."""
    await tx.execute(ADOPT_IMPORTED, params)
