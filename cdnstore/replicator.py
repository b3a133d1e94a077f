"""Job handlers: copy a stored version onto a server of its zone, remove a version from a server;
and the reaction to server changes (fill a server that became on and active, or moved zone).

Handlers are idempotent (jobs may run more than once): a copy already recorded is not made again, deleting
what is gone is success, and a copy that finds its version deleted meanwhile queues its own removal. An
object found on the target but not recorded (a copy cut short by a crash) is copied over, not adopted:
only bytes read through cdnstore are verified.

Every copy is hashed as it streams (storage.copy): checked against the version's SHA-256 when known (else
its upload's MD5 ETag, and the SHA-256 found is recorded), so that a replica is recorded present, with
verified_at, only when its bytes are the right ones. A source that gave other bytes wrote nothing; the job
fails and is retried, from another holder when there is one, and the source is reported (log, metric).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from .content import Content
from .db import Database, Tx, tx_fetchone
from .geo import Point, nearest
from .job_queue import Handler, Job, JobQueue, Retry
from .metrics import Metrics
from .models import JobKind, Server, VersionStatus
from .records import fast_init
from .servers import ServerRegistry
from .storage_port import ChecksumMismatch, StoragePort
from .tables import record, replicas

log = logging.getLogger(__name__)

# A copy job's version and whether its target still wants it (on, active, of the version's zone).
_TO_COPY = (
    "SELECT v.object_key, v.size, v.status, v.zone, v.etag, v.sha256, v.sha256_declared, v.verify_pending, "
    "s.is_on, s.is_active, s.zone AS server_zone "
    "FROM versions v JOIN servers s ON s.id = ? WHERE v.id = ?"
)
_TO_REMOVE = "SELECT object_key, upload_id, upload_server_id FROM versions WHERE id = ?"


@fast_init
@dataclass(frozen=True, slots=True)
class ToCopy:
    """A version a copy job is to write (_TO_COPY), and its target's state as the table has it now."""

    object_key: str
    size: int
    status: str
    zone: str | None  # where it is stored (None: not stored yet)
    etag: str | None
    sha256: str | None
    sha256_declared: int
    verify_pending: int
    is_on: int  # the target's
    is_active: int
    server_zone: str

    @property
    def wanted(self) -> bool:
        """Stored, and its target on, active and in its zone."""
        return (
            self.status == VersionStatus.STORED
            and bool(self.is_on and self.is_active)
            and self.server_zone == self.zone
        )


@fast_init
@dataclass(frozen=True, slots=True)
class ToRemove:
    """A version a removal job removes (_TO_REMOVE): its key, and its multipart upload if it had one."""

    object_key: str
    upload_id: str | None
    upload_server_id: int | None


class Replicator:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        jobs: JobQueue,
        content: Content,
        retry_delay: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.content = content  # (what a copy's read of the bytes tells of the version: confirmed, or rejected)
        # (version id, source server id) -> how many times that source gave bytes that differ from the
        # version's: those sources are avoided while another holder is available (in memory: a restart forgets).
        self.wrong_bytes: Counter[tuple[int, int]] = Counter()
        self.metrics = metrics or Metrics()
        self.storage = storage
        self.servers = servers
        self.jobs = jobs
        self.retry_delay = retry_delay

    @property
    def handlers(self) -> dict[str, Handler]:
        return {JobKind.COPY: self.copy, JobKind.REMOVE: self.remove}

    async def copy(self, job: Job) -> None:
        # Whether the target still wants it, from the table, not the registry's copy in memory: the change
        # that enqueued the job (a server activated) may be another daemon's, or this one's, whose memory
        # is updated only after the commit that woke this worker.
        row = await self.db.fetchone(_TO_COPY, (job.server_id, job.version_id))
        version = None if row is None else record(ToCopy, row)
        target = self.servers.by_internal_id(job.server_id)
        if version is None or target is None:
            return
        if not version.wanted:
            # No longer wanted there. An earlier run of this job may have written the object and died
            # before recording it: record what is there, so that removals know of it (_present queues
            # its removal at once if the version was deleted or replaced meanwhile).
            if job.ran_before:
                found = await self.storage.head(target.s3, version.object_key)
                if found is not None and found.size == version.size:
                    await self._present(job, target, None, found.etag)
            return
        holders = await self._holders(job.version_id)
        if job.server_id in holders:
            return
        if not holders:
            raise LookupError(f"no server holds {version.object_key} any more: nothing to copy from")
        sources = [s for s in (self.servers.by_internal_id(i) for i in holders) if s is not None and s.is_available]
        trusted = [s for s in sources if not self.wrong_bytes[(job.version_id, s.pk)]]
        source = nearest(trusted or sources, Point(target.latitude, target.longitude))
        if source is None:
            raise Retry(f"no server holding {version.object_key} is on and up", self.retry_delay)
        key, size, known, etag = version.object_key, version.size, version.sha256, version.etag
        # With no SHA-256 known yet, a single PUT's ETag (its MD5) tells the uploaded bytes from others.
        md5 = etag if known is None and etag and "-" not in etag else None
        try:
            found = await self.storage.copy(source.s3, target.s3, key, size=size, sha256=known, md5=md5)
        except ChecksumMismatch as exc:
            await self._wrong_bytes(job, version, source, exc)
            return
        self.metrics.replicated(target.name, size)
        log.info("copied %s (%d bytes) %s -> %s", key, size, source.name, target.name, extra={"job_id": job.id})
        if etag and "-" not in etag and "-" not in found.etag and found.etag != etag:
            await self.storage.delete(target.s3, key)
            raise RuntimeError(f"checksum mismatch on {target.name}: {found.etag} != {etag}")
        if not await self._present(job, target, found.sha256, found.etag):
            # Another copy made meanwhile established a different SHA-256: these bytes are not the version's.
            await self.storage.delete(target.s3, key)
            raise ChecksumMismatch(
                f"{source.name} gave bytes of {key!r} with SHA-256 {found.sha256}, not the version's",
                found.sha256 or "",
            )

    async def _wrong_bytes(self, job: Job, version: ToCopy, source: Server, exc: ChecksumMismatch) -> None:
        """The copy's source gave bytes other than the version's (nothing was written). A declared SHA-256
        that no read has confirmed yet may be the wrong one: a second read of the source that agrees with
        the first rejects the version. Otherwise the source is reported and the job fails (and is retried,
        from another holder when there is one)."""
        if version.sha256_declared and version.verify_pending:
            again, _ = await self.storage.checksum(source.s3, version.object_key, size=version.size)
            if again == exc.sha256:
                await self.content.reject(job.version_id, again)
                return
        source_id = source.pk
        self.wrong_bytes[(job.version_id, source_id)] += 1
        self.metrics.wrong_bytes.labels(source.name).inc()
        log.warning(
            "%s gave bytes of %s that are not the version's (%d times now); not recorded: %s",
            source.name,
            version.object_key,
            self.wrong_bytes[(job.version_id, source_id)],
            exc.detail,
            extra={"job_id": job.id},
        )
        raise exc

    async def _present(self, job: Job, target: Server, sha256: str | None, etag: str) -> bool:
        """Record the replica, with the ETag the target gave its object (a storage event for the key whose
        object has another ETag later was a rewrite: integrity.py); `sha256`: its bytes were read through
        cdnstore as they were written and hashed to it (verified: the version's SHA-256, or the first one
        known). False, and nothing recorded, when the version's SHA-256 became known meanwhile and is
        another."""
        async with self.db.transaction() as tx:
            await self.servers.lock_row(tx, job.server_id)  # (first: the order of DELETE /servers)
            if sha256 is not None:
                known = await tx_fetchone(tx, "SELECT sha256 FROM versions WHERE id = ?", (job.version_id,))
                if known is not None and known["sha256"] not in (None, sha256):
                    return False
            await replicas.copied(tx, job.server_id, job.version_id, etag)
            if sha256 is not None:
                await self.content.confirmed(tx, job.version_id, sha256, job.server_id)
            status = await tx_fetchone(tx, "SELECT status FROM versions WHERE id = ?", (job.version_id,))
            if status is not None and status["status"] != VersionStatus.STORED:
                # Deleted or replaced while we copied: the removal may have run already.
                await self.jobs.enqueue_removals(tx, [job.version_id])
        return True

    async def remove(self, job: Job) -> None:
        row = await self.db.fetchone(_TO_REMOVE, (job.version_id,))
        server = self.servers.by_internal_id(job.server_id)
        if row is None or server is None:
            return
        version = record(ToRemove, row)
        key = version.object_key
        if version.upload_id is not None and version.upload_server_id == job.server_id:
            # Deleted while it was uploading in parts: the parts go too (gone already is fine).
            await self.storage.abort_upload(server.s3, key, version.upload_id)
        await self.storage.delete(server.s3, key)
        async with self.db.transaction() as tx:
            await self.servers.lock_row(tx, job.server_id)  # (first: the order of DELETE /servers)
            await replicas.removed(tx, job.server_id, job.version_id)
        log.info("removed %s from %s", key, server.name, extra={"job_id": job.id})

    async def _holders(self, version_id: int) -> list[int]:
        rows = await self.db.fetchall(replicas.HOLDERS, (version_id,))
        return [r["server_id"] for r in rows]

    async def server_changed(self, tx: Tx, server_id: int, before: Server | None, after: Server | None) -> None:
        """A server that ends up on and active, and was not before or changed zone, gets its zone's files."""
        if after is None or not (after.is_on and after.is_active):
            return
        if before is not None and before.is_on and before.is_active and before.zone == after.zone:
            return
        count = await self.jobs.enqueue_fill(tx, server_id, after.zone)
        log.info("server %s (zone %s) is to receive %d files", after.name, after.zone, count)
