"""Quotas: a user's stored bytes plus their uploads in progress may not pass their `quota_bytes`.

What counts (all in the transaction that announces the upload, so announcements side by side cannot
overshoot together: on PostgreSQL the user's row is locked first, SQLite has one writer anyway):
- `users.used_bytes`: the user's stored current versions, kept exact by a trigger (schema.sql);
- each upload in progress at its announced size, less the stored size of the file it replaces (once
  stored, a new version replaces the current one, whose objects are then removed); and likewise each
  version stored but not its file's content yet, because a read must confirm its declared SHA-256 first
  (integrity.py): its bytes are on a server, and it becomes the content once confirmed. A version counts
  here until it is its file's content (then in `used_bytes`) or gone (rejected, given up, deleted);
- the new announcement likewise: a new version of a file counts only what it adds to the file's size
  (a smaller new version counts nothing).
Users without a quota pay one primary-key read.

`used_bytes` keeps the contract's meaning, the stored content (current versions): the uploads in progress
and those awaiting verification are reported apart, as `pending_bytes` in the 507 answer.
"""

from __future__ import annotations

from .db import Tx, tx_fetchall, tx_fetchone
from .errors import QuotaExceeded
from .models import VersionStatus

# Versions that hold or may hold bytes without being content: uploads in progress (few: the sweep gives up
# on old ones) and stored versions awaiting the read that confirms their declared SHA-256 (the verifier's
# backlog); found through the partial indexes versions_uploading and versions_verify_pending.
_PENDING = f"""SELECT coalesce(sum(CASE WHEN v.size > coalesce(c.size, 0) THEN v.size - coalesce(c.size, 0)
    ELSE 0 END), 0) AS pending
    FROM (SELECT id, file_id, size FROM versions WHERE status = '{VersionStatus.UPLOADING.value}'
          UNION ALL
          SELECT id, file_id, size FROM versions WHERE verify_pending = 1 AND status = '{VersionStatus.STORED.value}') v
    JOIN files f ON f.id = v.file_id LEFT JOIN versions c ON c.id = f.current_version_id
    WHERE f.owner_id = ? AND f.deleted_at IS NULL AND v.id <> coalesce(f.current_version_id, 0)"""
_REPLACED = """SELECT c.size FROM files f JOIN versions c ON c.id = f.current_version_id
    WHERE f.owner_id = ? AND f.name = ? AND f.deleted_at IS NULL"""


async def reserve(tx: Tx, owner_id: int, name: str, size: int) -> None:
    """507 `quota_exceeded` when announcing `size` bytes as file `name` would pass the owner's quota."""
    user = await tx_fetchone(tx, "SELECT quota_bytes, used_bytes FROM users WHERE id = ? FOR UPDATE", (owner_id,))
    if user is None or user["quota_bytes"] is None:
        return
    pending = int((await tx_fetchall(tx, _PENDING, (owner_id,)))[0]["pending"])
    replaced = await tx_fetchone(tx, _REPLACED, (owner_id, name))
    adds = max(0, size - (replaced["size"] if replaced is not None else 0))
    quota, used = user["quota_bytes"], user["used_bytes"]
    left = max(0, quota - used - pending)
    if adds > left:
        raise QuotaExceeded(
            f"size: this upload adds {adds} bytes and only {left} are left of the quota of {quota} bytes "
            f"({used} stored, {pending} in uploads in progress or awaiting verification)",
            quota_bytes=quota,
            used_bytes=used,
            pending_bytes=pending,
            available_bytes=left,
        )
