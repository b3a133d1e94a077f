"""Scrub: compare what the replica table says each server holds with what its bucket really holds
(ListObjects), report the drift, and enqueue the repairs.

The listing goes into a TEMP table of a connection of its own, so the comparison is set-based SQL and
memory stays flat however many objects a bucket has; the main database is written only for repairs.

Scrub also recounts the per-server counters (servers.files_present, bytes_present) that triggers on
`replicas` keep: one set-based statement finds the servers whose counters differ from the replica table,
and each such server is recounted under its row lock (a replica written meanwhile is then either counted
or waits to add itself after), reported, and fixed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .db import Database, Tx, tx_fetchall, tx_fetchone
from .job_queue import JobQueue
from .models import Server
from .servers import ServerRegistry
from .storage_port import StoragePort
from .tables import replicas
from .tables.versions import DELETED, STORED, SUPERSEDED, UPLOADING

log = logging.getLogger(__name__)
PAGE = 1000


@dataclass(frozen=True)
class Recount:
    """A server's counters as they were and as the replica table says they are."""

    files_was: int
    files: int
    bytes_was: int
    bytes: int


@dataclass(frozen=True)
class Drift:
    server: str
    objects: int  # in the bucket
    missing: int  # the table says present; the bucket lacks it (or has the wrong size): copies enqueued
    lost: int  # ... of which no other server holds a copy
    orphans: int  # objects of deleted or replaced versions: removals enqueued
    adopted: int  # objects of stored versions the table did not know of: now counted present
    unknown: int  # objects cdnstore never made: reported, left alone
    aborted: int = 0  # multipart uploads left by interrupted copies, older than stale_upload_after
    recount: Recount | None = None  # its counters had drifted from the replica table: now fixed
    # Stored versions of its zone it should hold (it is on and active) with neither a replica nor an open
    # copy job: copies enqueued (the net under any path that forgot to enqueue one; none should)
    unfilled: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.orphans or self.adopted or self.aborted or self.recount or self.unfilled)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scrubber:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        jobs: JobQueue,
        stale_upload_after: float = 86400,
    ) -> None:
        self.stale_upload_after = stale_upload_after
        self.db = db
        self.storage = storage
        self.servers = servers
        self.jobs = jobs

    async def scrub(self) -> list[Drift]:
        """Every server that is on and not down, one after the other (the counters of every server)."""
        recounts = await self.recount()
        drifts = []
        for server in self.servers.all():
            if server.is_available:
                drift = replace(await self.scrub_server(server), recount=recounts.get(server.name))
                log.log(logging.INFO if drift.clean else logging.WARNING, "scrub %s: %s", server.name, drift.as_dict())
                drifts.append(drift)
        return drifts

    async def recount(self) -> dict[str, Recount]:
        """Fix the counters of every server that differ from the replica table, by server name."""
        fixed = {}
        for row in await self.db.fetchall(DRIFTED_COUNTERS, offload=True):
            recount = await self._recount_server(row["id"])
            if recount is not None:
                log.warning(
                    "scrub %s: counters drifted from the replica table, fixed: %s", row["name"], asdict(recount)
                )
                fixed[row["name"]] = recount
        return fixed

    async def _recount_server(self, server_id: int) -> Recount | None:
        async with self.db.transaction(offload=True) as tx:
            was = await tx_fetchone(
                tx, "SELECT files_present, bytes_present FROM servers WHERE id = ? FOR UPDATE", (server_id,)
            )
            now = await tx_fetchone(
                tx,
                f"SELECT {COUNT_FILES} AS files_present, {COUNT_BYTES} AS bytes_present FROM servers s WHERE s.id = ?",
                (server_id,),
            )
            if was is None or now is None or all(was[c] == now[c] for c in ("files_present", "bytes_present")):
                return None  # gone, or a write that was under way when the drift was seen
            await tx.execute(
                f"UPDATE servers AS s SET files_present = {COUNT_FILES}, bytes_present = {COUNT_BYTES} WHERE s.id = ?",
                (server_id,),
            )
        return Recount(was["files_present"], now["files_present"], was["bytes_present"], now["bytes_present"])

    async def scrub_server(self, server: Server) -> Drift:
        server_id = server.pk
        async with self.db.scratch() as conn:
            await conn.execute("CREATE TEMP TABLE listed (key TEXT PRIMARY KEY, size INTEGER NOT NULL)")
            objects = await self._list_into(conn, server)
            found = {
                name: [row["found"] for row in await conn.execute_fetchall(sql, (server_id,) if "?" in sql else ())]
                for name, sql in FINDINGS.items()
            }
        missing, orphans, adopted = found["missing"], found["orphans"], found["adopted"]
        lost = await self._repair(server_id, missing, orphans, adopted)
        unfilled = await self._fill(server_id, server) if server.is_active else 0
        aborted = await self._abort_stale_uploads(server)
        drift = Drift(
            server.name, objects, len(missing), lost, len(orphans), len(adopted), found["unknown"][0], aborted
        )
        return replace(drift, unfilled=unfilled)

    async def _fill(self, server_id: int, server: Server) -> int:
        """Enqueue a copy of every stored version of the server's zone that it neither holds nor has a copy job
        for (after `_repair`, which enqueued those it lost): how many. The job table's one open job per pair
        leaves those already coming alone."""
        async with self.db.transaction(offload=True) as tx:
            await self.servers.lock_row(tx, server_id)  # (first: the order of DELETE /servers)
            return await self.jobs.enqueue_fill(tx, server_id, server.zone)

    async def _abort_stale_uploads(self, server: Server) -> int:
        # Only keys cdnstore made: another user of the bucket may have a slow upload of its own running.
        before = datetime.now(UTC) - timedelta(seconds=self.stale_upload_after)
        stale = await self.storage.stale_uploads(server.s3, before)
        ours = set()
        if stale:
            marks = ",".join("?" * len(stale))
            # ... and not a client's multipart upload still running: the upload sweep judges those.
            rows = await self.db.fetchall(
                f"SELECT object_key FROM versions WHERE object_key IN ({marks}) "
                f"AND NOT (status = '{UPLOADING}' AND upload_id IS NOT NULL)",
                [key for key, _ in stale],
            )
            ours = {r["object_key"] for r in rows}
        for key, upload_id in stale:
            if key in ours:
                await self.storage.abort_upload(server.s3, key, upload_id)
        return sum(key in ours for key, _ in stale)

    async def _repair(self, server_id: int, missing: list[int], orphans: list[int], adopted: list[int]) -> int:
        """Apply the findings in one transaction; returns how many missing versions no server holds."""
        lost = 0
        async with self.db.transaction(offload=True) as tx:
            await self.servers.lock_row(tx, server_id)  # (first: the order of DELETE /servers)
            if missing:
                marks = ",".join(str(v) for v in missing)
                await replicas.all_missing(tx, server_id, missing)
                for version in await tx_fetchall(
                    tx, f"SELECT id, zone FROM versions WHERE id IN ({marks}) AND status = '{STORED}'"
                ):
                    await self.jobs.enqueue_copies(tx, version["id"], version["zone"])
                count = await tx_fetchone(
                    tx,
                    f"SELECT count(*) AS n FROM versions v WHERE v.id IN ({marks}) AND NOT "
                    "EXISTS (SELECT 1 FROM replicas r WHERE r.version_id = v.id)",
                )
                lost = count["n"] if count is not None else 0
            if adopted:
                await replicas.found(tx, [(server_id, v) for v in adopted])
            if orphans:
                await self.jobs.enqueue_removals(tx, orphans, server_id)
        return lost

    async def _list_into(self, conn: Tx, server: Server) -> int:
        count, batch = 0, []
        async for obj in self.storage.list_objects(server.s3):
            batch.append((obj.key, obj.size))
            if len(batch) >= PAGE:
                count += await _insert(conn, batch)
                batch = []
        return count + await _insert(conn, batch)


async def _insert(conn: Tx, batch: list[tuple[str, int]]) -> int:
    # A listing never repeats a key; be safe anyway.
    await conn.executemany("INSERT INTO listed (key, size) VALUES (?, ?) ON CONFLICT DO NOTHING", batch)
    return len(batch)


# The queries with a placeholder take the server's internal id.
FINDINGS = {
    "missing": """SELECT r.version_id AS found FROM replicas r JOIN versions v ON v.id = r.version_id
                  LEFT JOIN listed l ON l.key = v.object_key
                  WHERE r.server_id = ? AND (l.key IS NULL OR l.size != v.size)""",
    "orphans": f"""SELECT v.id AS found FROM listed l JOIN versions v ON v.object_key = l.key
                  WHERE v.status IN ('{DELETED}', '{SUPERSEDED}')""",
    "adopted": f"""SELECT v.id AS found FROM listed l JOIN versions v ON v.object_key = l.key AND v.size = l.size
                  WHERE v.status = '{STORED}'
                    AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.version_id = v.id AND r.server_id = ?)""",
    "unknown": """SELECT count(*) AS found FROM listed l LEFT JOIN versions v ON v.object_key = l.key
                  WHERE v.id IS NULL""",
}

# What the triggers on `replicas` keep in servers.files_present and bytes_present, counted afresh (`s`: servers).
COUNT_FILES = "(SELECT count(*) FROM replicas r WHERE r.server_id = s.id)"
COUNT_BYTES = (
    "(SELECT coalesce(sum(v.size), 0) FROM replicas r JOIN versions v ON v.id = r.version_id WHERE r.server_id = s.id)"
)
DRIFTED_COUNTERS = (
    f"SELECT s.id, s.name FROM servers s WHERE s.files_present != {COUNT_FILES} "
    f"OR s.bytes_present != {COUNT_BYTES} ORDER BY s.id"
)
