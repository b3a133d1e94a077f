"""Importing a bucket (the way off MinIO): the objects already in a storage server's bucket that cdnstore
does not know become files of one user, named by their key, and are copied to the zone like any upload.

An import is a row (`imports`) that says where it is: `after_key`, the last key it handled. It lists the
bucket a page at a time from there (ListObjectsV2 `StartAfter`: a position that is a key, so it outlives a
restart), and adopts each page in one transaction, set-based: the page goes into `import_keys`, statements
join it to drop the keys cdnstore knows (any version's object key: a second import adopts only what is new),
to report the keys it will not adopt (`import_errors`: a key that is not a valid file name is reported, never
renamed; a name the owner already uses), and to make the files, their versions (stored, their SHA-256
computed by cdnstore's first read of the bytes: the first copy, else the verifier), the replicas on this
server, the copy jobs to the zone's other active servers and the owner's history; then it moves `after_key`
on and empties `import_keys`. Nothing of a page is half done: a daemon that dies mid-page lists it again.

Any daemon runs the imports that are running, one lease per import (`import:<uuid>`), so an import goes on
where a daemon died, and `cdnstore import` runs one in its own process beside the daemons. Only the page in
hand is in memory, however big the bucket.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from .clock import SYSTEM_CLOCK, Clock
from .config import ImportsConfig
from .db import Database, Tx, UniqueViolation, tx_fetchone
from .db.leases import Lease, daemon_id
from .errors import Conflict, Invalid, NotFound, StorageError
from .history import new_uuid
from .job_queue import JobQueue
from .models import ImportState, Server
from .names import file_name
from .probe import PREFIX as PROBE_PREFIX
from .records import fast_init
from .servers import ServerRegistry
from .storage_port import ObjectInfo, StoragePort
from .tables import files as files_table
from .tables import record, replicas, versions
from .tasks import running
from .users import Accounts

log = logging.getLogger(__name__)

SHOWN_ERRORS = 100  # the reported keys an import's progress lists (all are counted)
NAME_TAKEN = "the owner already has a file of that name"
COLUMNS = """i.id, i.uuid, i.server_id, i.owner_id, u.username AS owner, i.prefix, i.strip_prefix, i.state,
    i.after_key, i.objects_seen, i.files_adopted, i.bytes, i.errors, i.last_error, i.created_at, i.updated_at,
    i.finished_at, u.deleted_at IS NOT NULL AS owner_deleted"""
FROM = "FROM imports i JOIN users u ON u.id = i.owner_id"
# An import as its runner reads it (with whether its owner still exists).
RUNNING = f"SELECT {COLUMNS} {FROM} WHERE i.uuid = ?"
# The state in the text, not a parameter: the partial index imports_running serves `state = 'running'`.
_RUNNING_ON = f"SELECT 1 FROM imports WHERE server_id = ? AND state = '{ImportState.RUNNING}'"
_TO_RUN = f"SELECT uuid FROM imports WHERE state = '{ImportState.RUNNING}' ORDER BY id"
_FAIL = (
    f"UPDATE imports SET state = '{ImportState.FAILED}', last_error = ?, updated_at = ?, finished_at = ? "
    f"WHERE id = ? AND state = '{ImportState.RUNNING}'"
)
# A page adopted: the import moves on from where this page began (only if no other process moved it).
_MOVE_ON = (
    "UPDATE imports SET after_key = ?, objects_seen = objects_seen + ?, last_error = NULL, "
    "updated_at = ?, state = ?, finished_at = ? "
    f"WHERE id = ? AND state = '{ImportState.RUNNING}' AND coalesce(after_key, '') = ? RETURNING id"
)
# What an import says when it cannot go on now (it tries again): cdnstore's words, not the server's answer.
WAITING = {
    "off": "the server is off or down: the import goes on when it is back",
    "storage_unreachable": "the storage server could not be reached: trying again",
    "storage_auth_failed": "the storage server refused the listing (credentials or permissions): trying again",
    "storage_error": "the storage server answered the listing with an error: trying again",
}


@fast_init
@dataclass(frozen=True, slots=True)
class Import:
    """An import as it stands (COLUMNS): where it is (`after_key`), what it counted, and whose files it makes."""

    id: int
    uuid: str
    server_id: int
    owner_id: int
    owner: str  # the owner's username
    prefix: str
    strip_prefix: bool
    state: ImportState
    after_key: str | None  # the last key it handled (None: none yet)
    objects_seen: int
    files_adopted: int
    bytes: int
    errors: int
    last_error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None
    owner_deleted: bool  # its owner was deleted meanwhile (it stops)

    @classmethod
    def of(cls, row: Any) -> Import:
        """The Import of a row of COLUMNS (by column name), its flags as bools and its state as the enum."""
        return record(
            cls,
            row,
            strip_prefix=bool(row["strip_prefix"]),
            state=ImportState(row["state"]),
            owner_deleted=bool(row["owner_deleted"]),
        )


@fast_init
@dataclass(frozen=True, slots=True)
class ReportedKey:
    """A key an import did not adopt, and why."""

    key: str
    reason: str


class Imports:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        accounts: Accounts,
        jobs: JobQueue,
        cfg: ImportsConfig,
        lease_seconds: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.storage = storage
        self.servers = servers
        self.accounts = accounts
        self.jobs = jobs
        self.cfg = cfg
        self.lease_seconds = lease_seconds
        self.holder = daemon_id()

    # --- starting and reading --------------------------------------------------------------------

    async def start(self, server_uuid: str, owner: str, prefix: str = "", strip_prefix: bool = False) -> Import:
        """A new import of the server's bucket (under `prefix`) for the user named `owner`; it runs in the
        background (a daemon's imports round, or `cdnstore import`). 409 `import_running` while one runs."""
        server = self.servers.get(server_uuid)
        try:
            found = await self.accounts.get(await self.accounts.uuid_of(owner))
        except NotFound:
            found = None
        if found is None:
            raise Invalid("owner", f"no user is named {owner!r}")
        owner_id, user = found.pk, found
        if user.zones is not None and server.zone not in user.zones:
            zones = ", ".join(sorted(user.zones))
            raise Invalid("owner", f"{owner}'s files may only be kept in {zones}; {server.name} is in {server.zone}")
        now = self.clock.now_iso()
        try:
            async with self.db.transaction() as tx:
                if await tx_fetchone(tx, _RUNNING_ON, (self._id(server),)):
                    raise _running(server)
                await tx.execute(
                    "INSERT INTO imports (uuid, server_id, owner_id, prefix, strip_prefix, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(uuid.uuid4()), self._id(server), owner_id, prefix, int(strip_prefix), now, now),
                )
        except UniqueViolation:  # one started meanwhile beside this one (PostgreSQL)
            raise _running(server) from None
        log.info("import of %s (prefix %r) for %s started", server.name, prefix, owner)
        return await self.latest(server_uuid)

    def _id(self, server: Server) -> int:
        return server.pk

    async def latest(self, server_uuid: str) -> Import:
        """The server's latest import (running, or the last one that ran); 404 `no_import` when none."""
        server = self.servers.get(server_uuid)
        row = await self.db.fetchone(
            f"SELECT {COLUMNS} {FROM} WHERE i.server_id = ? ORDER BY i.id DESC LIMIT 1", (self._id(server),)
        )
        if row is None:
            raise NotFound(f"{server.name} was never imported", code="no_import")
        return Import.of(row)

    async def reported(self, import_uuid: str) -> list[ReportedKey]:
        """The first keys an import did not adopt, with why."""
        rows = await self.db.fetchall(
            "SELECT e.key, e.reason FROM import_errors e JOIN imports i ON i.id = e.import_id "
            "WHERE i.uuid = ? ORDER BY e.key LIMIT ?",
            (import_uuid, SHOWN_ERRORS),
        )
        return [record(ReportedKey, r) for r in rows]

    async def latest_of_all(self) -> dict[int, Import]:
        """Each server's latest import, by internal server id (the server list shows it)."""
        rows = await self.db.fetchall(
            f"SELECT {COLUMNS} {FROM} WHERE i.id IN (SELECT max(id) FROM imports GROUP BY server_id)"
        )
        return {found.server_id: found for found in map(Import.of, rows)}

    # --- running ---------------------------------------------------------------------------------

    async def run_pending(self) -> int:
        """Run every import that is running and not run by another process (a periodic task); how many ran."""
        rows = await self.db.fetchall(_TO_RUN)
        ran = 0
        for row in rows:
            ran += await self.run(row["uuid"])
        return ran

    async def run(self, import_uuid: str) -> bool:
        """Run an import to its end (or until its server cannot be listed), under its lease; False when
        another process holds it."""
        lease = Lease(self.db, f"import:{import_uuid}", self.holder, self.lease_seconds)
        if not await lease.acquire():
            return False
        async with running({f"import-lease-{import_uuid}": lease.keep()}):
            await lease.run(functools.partial(self._run, import_uuid))
        return True

    async def _read(self, import_uuid: str) -> Import | None:
        row = await self.db.fetchone(RUNNING, (import_uuid,))
        return None if row is None else Import.of(row)

    async def _run(self, import_uuid: str) -> None:
        found = await self._read(import_uuid)
        while found is not None and found.state is ImportState.RUNNING:
            server = self.servers.by_internal_id(found.server_id)
            if server is None:
                return  # (removed: its imports went with it)
            if found.owner_deleted:
                await self._failed(found.id, "its owner was deleted")
                return
            if not server.is_available:
                await self._waiting(found.id, "off")
                return
            began = time.monotonic()
            try:
                objects, more = await self.storage.list_page(
                    server.s3, found.prefix, found.after_key, self.cfg.page_size
                )
            except StorageError as exc:
                log.info("import of %s: listing failed: %s", server.name, exc.detail)
                await self._waiting(found.id, exc.code)
                return
            if not await self._adopt(found, server, objects, more):
                return  # another process moved it on meanwhile (or it ended)
            found = await self._read(import_uuid)
            if self.cfg.rate and objects:  # paced: this page may not have taken less than its share
                await asyncio.sleep(max(0.0, len(objects) / self.cfg.rate - (time.monotonic() - began)))

    async def _failed(self, import_id: int, why: str) -> None:
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            await tx.execute(
                _FAIL,
                (why, now, now, import_id),
            )
        log.warning("import %s stopped: %s", import_id, why)

    async def _waiting(self, import_id: int, why: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE imports SET last_error = ?, updated_at = ? WHERE id = ?",
                (WAITING.get(why, WAITING["storage_error"]), self.clock.now_iso(), import_id),
            )

    async def _adopt(self, found: Import, server: Server, objects: list[ObjectInfo], more: bool) -> bool:
        """One page in one transaction; False when the import was not where this page began (another
        process handled it) or is no longer running."""
        staged = [self._stage(found, server, obj) for obj in objects if not obj.key.startswith(PROBE_PREFIX)]
        now = self.clock.now_iso()
        last = objects[-1].key if objects else found.after_key
        async with self.db.transaction(offload=True) as tx:
            moved = await tx_fetchone(
                tx,
                _MOVE_ON,
                (
                    last,
                    len(objects),
                    now,
                    ImportState.RUNNING if more else ImportState.DONE,
                    None if more else now,
                    found.id,
                    found.after_key or "",
                ),
            )
            if moved is None:
                return False
            if staged:
                await self._adopt_staged(tx, found, server, staged, now)
        if not more:
            log.info("import %s of %s done", found.uuid, server.name)
        return True

    def _stage(self, found: Import, server: Server, obj: ObjectInfo) -> tuple[Any, ...]:
        """An import_keys row: the key, its name (or why it cannot be one), and the ids its file will take."""
        name = obj.key[len(found.prefix) :] if found.strip_prefix else obj.key
        reason = None
        try:
            name = file_name(name)
        except ValueError as exc:
            reason = f"not a valid file name: {exc}"
        content_type = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
        file_uuid = str(uuid.uuid4())
        data = orjson.dumps(
            {"name": name, "size": obj.size, "server": server.name, "zone": server.zone, "key": obj.key}
        ).decode()
        return (found.id, obj.key, obj.size, name, content_type, file_uuid, new_uuid(), data, reason)

    async def _adopt_staged(
        self, tx: Tx, found: Import, server: Server, staged: list[tuple[Any, ...]], now: str
    ) -> None:
        p = {"i": found.id, "owner": found.owner_id, "server": self._id(server), "zone": server.zone, "now": now}
        await tx.executemany(
            "INSERT INTO import_keys (import_id, key, size, name, content_type, file_uuid, history_uuid, history_data,"
            " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            staged,
        )
        for sql in SORT:
            await tx.execute(sql, p)
        await files_table.adopt_imported(tx, p)
        await versions.adopt_imported(tx, p)
        await files_table.imported_content(tx, p)
        await replicas.adopt_imported(tx, p)
        await tx.execute(RECORD, p)
        await self.jobs.enqueue_zone_copies(tx, ADOPTED_VERSIONS, {"i": found.id})
        counted = await tx_fetchone(tx, COUNT, p)
        assert counted is not None
        await tx.execute(
            "UPDATE imports SET files_adopted = files_adopted + ?, bytes = bytes + ?, errors = errors + ? WHERE id = ?",
            (counted["files"], counted["bytes"], counted["errors"], found.id),
        )
        await tx.execute("DELETE FROM import_keys WHERE import_id = :i", p)


def _running(server: Server) -> Conflict:
    return Conflict(f"an import of {server.name} is running; follow it with GET .../import", code="import_running")


# One page's adoption, in order, each statement for the whole page (named placeholders: i = import id, owner,
# server = the server's internal id, zone, now). `reason IS NULL`: the keys being adopted. The writes of files,
# versions and replicas are their tables' (cdnstore/tables/), run in this order by _adopt_staged.
SORT = (
    # keys cdnstore knows (any version's object: its own uploads and copies, an earlier import's)
    "DELETE FROM import_keys WHERE import_id = :i "
    "AND EXISTS (SELECT 1 FROM versions v WHERE v.object_key = import_keys.key)",
    # names the owner already uses (a live file): reported, never a new version of someone's file
    f"UPDATE import_keys SET reason = '{NAME_TAKEN}' WHERE import_id = :i AND reason IS NULL AND EXISTS "
    "(SELECT 1 FROM files f WHERE f.owner_id = :owner AND f.name = import_keys.name AND f.deleted_at IS NULL)",
    "INSERT INTO import_errors (import_id, key, reason) SELECT import_id, key, reason FROM import_keys "
    "WHERE import_id = :i AND reason IS NOT NULL ON CONFLICT DO NOTHING",
)
RECORD = (
    "INSERT INTO history (uuid, user_id, event, object_id, data, created_at) "
    "SELECT history_uuid, :owner, 'file.imported', file_uuid, history_data, :now "
    "FROM import_keys WHERE import_id = :i AND reason IS NULL"
)
ADOPTED_VERSIONS = (
    "SELECT v.id FROM import_keys k JOIN versions v ON v.object_key = k.key WHERE k.import_id = :i AND k.reason IS NULL"
)
COUNT = (
    "SELECT count(CASE WHEN reason IS NULL THEN 1 END) AS files, "
    "coalesce(sum(CASE WHEN reason IS NULL THEN size ELSE 0 END), 0) AS bytes, "
    "count(CASE WHEN reason IS NOT NULL THEN 1 END) AS errors FROM import_keys WHERE import_id = :i"
)
