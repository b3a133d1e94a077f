"""Job handlers: copy a stored version onto a server of its zone, remove a version from a server;
and the reaction to server changes (fill a server that became on and active, or moved zone).

Handlers are idempotent (jobs may run more than once): they look before they copy, deleting what is
gone is success, and a copy that finds its version deleted meanwhile queues its own removal.
"""

from __future__ import annotations

import logging

from .db import Database, Tx, tx_fetchone
from .geo import Point, nearest
from .job_queue import Handler, Job, JobQueue, Retry
from .metrics import Metrics
from .models import Server
from .servers import ServerRegistry
from .storage import Storage

log = logging.getLogger(__name__)


class Replicator:
    def __init__(self, db: Database, storage: Storage, servers: ServerRegistry, jobs: JobQueue,
                 retry_delay: float, metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.storage = storage
        self.servers = servers
        self.jobs = jobs
        self.retry_delay = retry_delay

    @property
    def handlers(self) -> dict[str, Handler]:
        return {"copy": self.copy, "remove": self.remove}

    async def copy(self, job: Job) -> None:
        version = await self.db.fetchone("SELECT object_key, size, status, zone, etag FROM versions WHERE id = ?",
                                         (job.version_id,))
        target = self.servers.by_internal_id(job.server_id)
        if version is None or target is None:
            return
        if version["status"] != "stored" or not (
                target.is_on and target.is_active and target.zone == version["zone"]):
            # No longer wanted there. An earlier run of this job may have written the object and died
            # before recording it: record what is there, so that removals know of it (_present queues
            # its removal at once if the version was deleted or replaced meanwhile).
            if job.ran_before:
                found = await self.storage.head(target.s3, version["object_key"])
                if found is not None and found.size == version["size"]:
                    await self._present(job, target)
            return
        holders = await self._holders(job.version_id)
        if job.server_id in holders:
            return
        if not holders:
            raise LookupError(f"no server holds {version['object_key']} any more: nothing to copy from")
        sources = [s for s in (self.servers.by_internal_id(i) for i in holders)
                   if s is not None and s.is_available]
        source = nearest(sources, Point(target.latitude, target.longitude))
        if source is None:
            raise Retry(f"no server holding {version['object_key']} is on and up", self.retry_delay)
        key, size = version["object_key"], version["size"]
        found = await self.storage.head(target.s3, key)
        if found is None or found.size != size:
            found = await self.storage.copy(source.s3, target.s3, key, size=size)
            self.metrics.replicated(target.name, size)
            log.info("copied %s (%d bytes) %s -> %s", key, size, source.name, target.name,
                     extra={"job_id": job.id})
        if version["etag"] and "-" not in version["etag"] and "-" not in found.etag and found.etag != version["etag"]:
            await self.storage.delete(target.s3, key)
            raise RuntimeError(f"checksum mismatch on {target.name}: {found.etag} != {version['etag']}")
        await self._present(job, target)

    async def _present(self, job: Job, target: Server) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO replicas (server_id, version_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             (job.server_id, job.version_id))
            status = await tx_fetchone(tx, "SELECT status FROM versions WHERE id = ?", (job.version_id,))
            if status is not None and status["status"] != "stored":
                # Deleted or replaced while we copied: the removal may have run already.
                await self.jobs.enqueue_removals(tx, [job.version_id])

    async def remove(self, job: Job) -> None:
        version = await self.db.fetchone("SELECT object_key, upload_id, upload_server_id FROM versions WHERE id = ?",
                                         (job.version_id,))
        server = self.servers.by_internal_id(job.server_id)
        if version is None or server is None:
            return
        key = version["object_key"]
        if version["upload_id"] is not None and version["upload_server_id"] == job.server_id:
            # Deleted while it was uploading in parts: the parts go too (gone already is fine).
            await self.storage.abort_upload(server.s3, key, version["upload_id"])
        await self.storage.delete(server.s3, key)
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM replicas WHERE server_id = ? AND version_id = ?",
                             (job.server_id, job.version_id))
        log.info("removed %s from %s", key, server.name, extra={"job_id": job.id})

    async def _holders(self, version_id: int) -> list[int]:
        rows = await self.db.fetchall("SELECT server_id FROM replicas WHERE version_id = ?", (version_id,))
        return [r["server_id"] for r in rows]

    async def server_changed(self, tx: Tx, server_id: int, before: Server | None, after: Server | None) -> None:
        """A server that ends up on and active, and was not before or changed zone, gets its zone's files."""
        if after is None or not (after.is_on and after.is_active):
            return
        if before is not None and before.is_on and before.is_active and before.zone == after.zone:
            return
        count = await self.jobs.enqueue_fill(tx, server_id, after.zone)
        log.info("server %s (zone %s) is to receive %d files", after.name, after.zone, count)

