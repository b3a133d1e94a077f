"""The one writer of `replicas`: which server holds a version, present or corrupt. A row appears when an
upload or a copy lands (or scrub or an import finds the object), changes state when a read of its bytes
judges it, and goes when its object was removed or found missing."""

from __future__ import annotations

from collections.abc import Sequence

from ..db import Tx
from ..models import ReplicaStatus, VersionStatus

PRESENT, CORRUPT = ReplicaStatus.PRESENT.value, ReplicaStatus.CORRUPT.value

# A read, beside the writes it depends on: the servers holding a present replica of a version (where a copy
# reads from, where the verifier reads).
HOLDERS = f"SELECT server_id FROM replicas WHERE version_id = ? AND status = '{PRESENT}'"

_UPLOADED = "INSERT INTO replicas (server_id, version_id, etag) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
_COPIED = (
    "INSERT INTO replicas (server_id, version_id, etag) VALUES (?, ?, ?) ON CONFLICT "
    f"(server_id, version_id) DO UPDATE SET status = '{PRESENT}', etag = excluded.etag"
)
_FOUND = "INSERT INTO replicas (server_id, version_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
_VERIFIED = f"UPDATE replicas SET status = '{PRESENT}', verified_at = ? WHERE server_id = ? AND version_id = ?"
_ETAG = f"UPDATE replicas SET etag = ? WHERE server_id = ? AND version_id = ? AND status = '{PRESENT}'"
_STILL_GOOD = f"UPDATE replicas SET verified_at = ? WHERE server_id = ? AND version_id = ? AND status = '{PRESENT}'"
# (its ETag now unknown: a later storage event's re-check reads it)
_GOOD_AGAIN = (
    f"UPDATE replicas SET status = '{PRESENT}', verified_at = ?, etag = NULL "
    f"WHERE server_id = ? AND version_id = ? AND status = '{CORRUPT}'"
)
# Unless it changed while it was read (a repair landed: verified_at; the version was replaced).
_CORRUPT = (
    f"UPDATE replicas SET status = '{CORRUPT}' WHERE server_id = ? AND version_id = ? AND status = '{PRESENT}' "
    "AND coalesce(verified_at, '') = ? AND EXISTS (SELECT 1 FROM versions WHERE id = ? "
    f"AND status = '{VersionStatus.STORED.value}')"
)
_REMOVED = "DELETE FROM replicas WHERE server_id = ? AND version_id = ?"
_MISSING = f"DELETE FROM replicas WHERE server_id = ? AND version_id = ? AND status = '{PRESENT}'"
# An import's page (named placeholders, see imports.py): the server it was found on holds each new version.
ADOPT_IMPORTED = (
    "INSERT INTO replicas (server_id, version_id) SELECT :server, v.id FROM import_keys k "
    "JOIN versions v ON v.object_key = k.key WHERE k.import_id = :i AND k.reason IS NULL"
)


async def uploaded(tx: Tx, server_id: int, version_id: int, etag: str | None) -> int:
    """The upload server holds the version it stored (present, the upload's ETag); 0 when a row was there."""
    return int((await tx.execute(_UPLOADED, (server_id, version_id, etag))).rowcount)


async def copied(tx: Tx, server_id: int, version_id: int, etag: str) -> None:
    """A copy landed whose bytes are the version's: present with the target's ETag, whatever the row said
    before (a repair replaces a corrupt one)."""
    await tx.execute(_COPIED, (server_id, version_id, etag))


async def found(tx: Tx, server_ids_versions: Sequence[tuple[int, int]]) -> None:
    """Objects scrub found in a bucket for versions it did not know were there: present (no ETag known)."""
    await tx.executemany(_FOUND, list(server_ids_versions))


async def verified(tx: Tx, server_id: int, version_id: int, now: str) -> int:
    """A read of its whole content matched the version's SHA-256: present, verified now (from any state: the
    read is the proof)."""
    return int((await tx.execute(_VERIFIED, (now, server_id, version_id))).rowcount)


async def still_good(tx: Tx, server_id: int, version_id: int, now: str) -> int:
    """The deep scrub read a present replica and it matched: verified now; 0 when it is no longer present."""
    return int((await tx.execute(_STILL_GOOD, (now, server_id, version_id))).rowcount)


async def record_etag(tx: Tx, server_id: int, version_id: int, etag: str) -> int:
    """The ETag of a present replica's object, whose bytes were read and are the version's."""
    return int((await tx.execute(_ETAG, (etag, server_id, version_id))).rowcount)


async def good_again(tx: Tx, server_id: int, version_id: int, now: str) -> int:
    """A corrupt replica read again matches: corrupt -> present, its ETag unknown; 0 when it was not corrupt."""
    return int((await tx.execute(_GOOD_AGAIN, (now, server_id, version_id))).rowcount)


async def mark_corrupt(tx: Tx, server_id: int, version_id: int, verified_at: str | None) -> int:
    """present -> corrupt, unless it changed since it was read (`verified_at` as read) or its version is no
    longer stored; 0 then."""
    params = (server_id, version_id, verified_at or "", version_id)
    return int((await tx.execute(_CORRUPT, params)).rowcount)


async def removed(tx: Tx, server_id: int, version_id: int) -> int:
    """Its object was deleted from the server (a removal job): the row goes, whatever its state."""
    return int((await tx.execute(_REMOVED, (server_id, version_id))).rowcount)


async def missing(tx: Tx, server_id: int, version_id: int) -> int:
    """A present replica whose object is gone from its bucket: forgotten; 0 when it was not present."""
    return int((await tx.execute(_MISSING, (server_id, version_id))).rowcount)


async def all_missing(tx: Tx, server_id: int, version_ids: Sequence[int]) -> int:
    """Scrub's finding: the server's bucket holds none of these versions (whatever the rows said)."""
    marks = ",".join(str(int(v)) for v in version_ids)
    return int(
        (
            await tx.execute(f"DELETE FROM replicas WHERE server_id = ? AND version_id IN ({marks})", (server_id,))
        ).rowcount
    )


async def adopt_imported(tx: Tx, params: dict[str, object]) -> None:
    """An import's page: the server it was found on holds each of its new versions (ADOPT_IMPORTED)."""
    await tx.execute(ADOPT_IMPORTED, params)
