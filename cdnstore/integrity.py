"""A known SHA-256 for every stored version.

A SHA-256 declared at upload binds a single PUT (the storage server refuses other bytes), so it is known
once the version is stored. Any other version waits (`versions.verify_pending`) for cdnstore's first read
of its bytes: the first copy to another server hashes them as they stream (replicator.py), or, when no copy
will (its zone has no other server; its copies failed), the verifier here reads them back once, at most
`integrity.verify_rate` bytes a second. A multipart upload's declared SHA-256 is checked by that read: its
version becomes the file's content only when it matches, and is rejected when two reads of the same bytes
agree on another SHA-256 (the client declared the wrong one, or sent the wrong bytes).
"""

from __future__ import annotations

import logging

from . import history
from .config import IntegrityConfig
from .db import Database, Tx, now_iso, tx_fetchall, tx_fetchone
from .errors import StorageError
from .files import Files
from .metrics import Metrics
from .models import VersionStatus
from .servers import ServerRegistry
from .storage import Storage

log = logging.getLogger(__name__)

# Versions awaiting their first read that no open copy will read (the copy does it, no extra read).
AWAITING = """SELECT v.id, v.object_key, v.size, v.etag, v.sha256, v.sha256_declared FROM versions v
    WHERE v.verify_pending = 1 AND v.status = 'stored'
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.version_id = v.id AND j.kind = 'copy'
                      AND j.status IN ('queued', 'running'))
    ORDER BY v.id LIMIT 100"""


class Integrity:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        servers: ServerRegistry,
        files: Files,
        cfg: IntegrityConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.servers = servers
        self.files = files
        self.cfg = cfg
        self.metrics = metrics or Metrics()

    async def confirmed(self, tx: Tx, version_id: int, sha256: str, server_id: int) -> None:
        """cdnstore read the whole content of a version on `server_id` and it hashed to `sha256` (the
        declared one, if any): the SHA-256 is known, that replica verified, and a version that waited for
        this check becomes its file's content."""
        row = await tx_fetchone(
            tx,
            "SELECT v.sha256, v.sha256_declared, v.verify_pending, v.status, "
            "v.upload_server_id, f.current_version_id FROM versions v "
            "JOIN files f ON f.id = v.file_id WHERE v.id = ?",
            (version_id,),
        )
        if row is None:
            return
        if row["sha256"] not in (None, sha256):  # (callers check; a verifier round may race a copy)
            return
        await tx.execute(
            "UPDATE replicas SET status = 'present', verified_at = ? WHERE server_id = ? AND version_id = ?",
            (now_iso(), server_id, version_id),
        )
        if row["sha256"] is None or row["verify_pending"]:  # (one stored before 0006 learns it here too)
            await tx.execute("UPDATE versions SET sha256 = ?, verify_pending = 0 WHERE id = ?", (sha256, version_id))
        if not row["verify_pending"]:
            return
        server = self.servers.by_internal_id(row["upload_server_id"]) or self.servers.by_internal_id(server_id)
        if (
            row["sha256_declared"]
            and row["status"] == VersionStatus.STORED
            and row["current_version_id"] != version_id
            and server is not None
        ):
            await self.files.make_current(tx, version_id, server)

    async def reject(self, version_id: int, found: str) -> None:
        """The bytes of a version with a declared SHA-256 that no read had confirmed hash, read twice, to
        `found`, another SHA-256: the version is bad. It is removed everywhere, is never served nor copied;
        the file keeps its previous content (it never became current), or goes when it has none."""
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx,
                "SELECT v.file_id, v.sha256, v.status, f.uuid, f.owner_id, f.name, "
                "f.current_version_id, f.deleted_at FROM versions v JOIN files f "
                f"ON f.id = v.file_id WHERE v.id = ?{self.db.for_update}",
                (version_id,),
            )
            if row is None or row["status"] != VersionStatus.STORED or row["sha256"] == found:
                return
            now = now_iso()
            await tx.execute(
                "UPDATE versions SET status = 'deleted', rejected_at = ?, verify_pending = 0 WHERE id = ?",
                (now, version_id),
            )
            await self.files.jobs.enqueue_removals(tx, [version_id])
            await history.record(
                tx,
                row["owner_id"],
                "file.corrupt",
                row["uuid"],
                {"name": row["name"], "sha256": row["sha256"], "found": found},
            )
            others = await tx_fetchall(
                tx, "SELECT 1 FROM versions WHERE file_id = ? AND status IN ('uploading', 'stored')", (row["file_id"],)
            )
            if row["deleted_at"] is None and row["current_version_id"] is None and not others:
                await tx.execute(
                    "UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, row["file_id"])
                )
                await history.record(
                    tx, row["owner_id"], "file.deleted", row["uuid"], {"name": row["name"], "reason": "content_corrupt"}
                )
        self.metrics.versions_rejected.inc()
        log.error(
            "upload %s of file %s: its bytes have SHA-256 %s, not the declared %s; rejected (removed, never served)",
            version_id,
            row["uuid"],
            found,
            row["sha256"],
        )

    # --- the verifier ---------------------------------------------------------------------------

    async def verify(self) -> int:
        """One round of verification reads (a periodic task); how many versions it settled."""
        settled = 0
        for version in await self.db.fetchall(AWAITING):
            settled += await self._verify_one(
                version["id"], version["object_key"], version["size"], version["etag"], version["sha256"]
            )
        return settled

    async def _verify_one(self, version_id: int, key: str, size: int, etag: str | None, expected: str | None) -> bool:
        rows = await self.db.fetchall(
            "SELECT server_id FROM replicas WHERE version_id = ? AND status = 'present'", (version_id,)
        )
        holders = [
            s for s in (self.servers.by_internal_id(r["server_id"]) for r in rows) if s is not None and s.is_available
        ]
        if not holders:
            return False
        server = holders[0]
        md5 = etag if expected is None and etag and "-" not in etag else None  # a single PUT's ETag is its MD5
        try:
            sha256, got_md5 = await self.storage.checksum(
                server.s3, key, size=size, rate=self.cfg.verify_rate, md5=md5 is not None
            )
            self.metrics.verified_bytes.labels(server.name).inc(size)
            if (expected is not None and sha256 != expected) or got_md5 != md5:
                # A second read tells bytes that differ (the same SHA-256 again) from a flaky read.
                again, _ = await self.storage.checksum(server.s3, key, size=size, rate=self.cfg.verify_rate)
                self.metrics.verified_bytes.labels(server.name).inc(size)
                if again != sha256 or md5 is not None:
                    self.metrics.wrong_bytes.labels(server.name).inc()
                    log.warning(
                        "verification read of %s on %s: its bytes differ from what was uploaded; trying again later",
                        key,
                        server.name,
                    )
                    return False
                await self.reject(version_id, sha256)
                return True
        except StorageError as exc:
            log.info("verification read of %s on %s failed: %s; trying again later", key, server.name, exc.detail)
            return False
        async with self.db.transaction() as tx:
            await self.confirmed(tx, version_id, sha256, self.servers.internal_id(server))
        log.info("verified %s on %s: SHA-256 %s", key, server.name, sha256)
        return True
