"""Quotas: a user's stored bytes plus their uploads in progress may not pass their `quota_bytes`.

What counts (all in the transaction that announces the upload, so announcements side by side cannot
overshoot together: on PostgreSQL the user's row is locked first, SQLite has one writer anyway):
- `users.used_bytes`: the user's stored current versions, kept exact by a trigger (schema.sql);
- each upload in progress at its announced size, less the stored size of the file it replaces (once
  stored, a new version replaces the current one, whose objects are then removed);
- the new announcement likewise: a new version of a file counts only what it adds to the file's size
  (a smaller new version counts nothing).
Users without a quota pay one primary-key read.
"""

from __future__ import annotations

from .db import Tx, tx_fetchall, tx_fetchone
from .errors import QuotaExceeded

# Uploads in progress are few (the sweep gives up on old ones): found through the versions_uploading index.
_PENDING = """SELECT coalesce(sum(CASE WHEN v.size > coalesce(c.size, 0) THEN v.size - coalesce(c.size, 0)
    ELSE 0 END), 0) AS pending
    FROM versions v JOIN files f ON f.id = v.file_id LEFT JOIN versions c ON c.id = f.current_version_id
    WHERE v.status = 'uploading' AND f.owner_id = ? AND f.deleted_at IS NULL"""
_REPLACED = """SELECT c.size FROM files f JOIN versions c ON c.id = f.current_version_id
    WHERE f.owner_id = ? AND f.name = ? AND f.deleted_at IS NULL"""


async def reserve(tx: Tx, for_update: str, owner_id: int, name: str, size: int) -> None:
    """507 `quota_exceeded` when announcing `size` bytes as file `name` would pass the owner's quota."""
    user = await tx_fetchone(tx, f"SELECT quota_bytes, used_bytes FROM users WHERE id = ?{for_update}", (owner_id,))
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
            f"({used} stored, {pending} in uploads in progress)",
            quota_bytes=quota,
            used_bytes=used,
            pending_bytes=pending,
            available_bytes=left,
        )
