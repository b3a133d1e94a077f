"""A file's content: what happens when a version's bytes are known, when a version becomes its file's content
or is superseded, and when a file has no content left.

Three use cases reach these steps: an upload landing (files.py), a copy's first read of the bytes
(replicator.py) and a verification read (integrity.py). Each calls down into `Content`, inside its own
transaction, and the steps call only what lies below (the table gateways, the job queue, the history): the
replication path reads top to bottom, and no use case climbs back into another for it.

- `confirmed`: cdnstore read a version's whole bytes and they hashed to its SHA-256: that replica verified,
  the SHA-256 known, and a version whose declared SHA-256 waited for this read becomes its file's content.
- `reject`: a declared SHA-256 the bytes do not have (or reads that never settled it): the version is removed
  everywhere, never served, and its file goes when it has no content left.
- `make_current`: a stored version becomes its file's content (the stored listeners told first: links.py
  makes the link its upload asked for), the previous content superseded and removed (jobs).
- `retire_if_empty`: the one place a file goes because it has no content left.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import history
from .clock import SYSTEM_CLOCK, Clock
from .db import Database, Tx, tx_fetchone
from .job_queue import JobQueue
from .metrics import Metrics
from .models import Server, VersionStatus
from .records import fast_init
from .tables import files as files_table
from .tables import record, replicas, versions

log = logging.getLogger(__name__)

# A version a read hashed and its file's content (Confirming), by version id.
_CONFIRMING = (
    "SELECT v.sha256, v.sha256_declared, v.verify_pending, v.status, v.upload_server_id, f.current_version_id "
    "FROM versions v JOIN files f ON f.id = v.file_id WHERE v.id = ?"
)
# A version whose declared SHA-256 its bytes do not have, and its file (Rejecting), locked for the rejection.
_REJECTING = (
    "SELECT v.file_id, f.uuid AS file_uuid, f.owner_id, f.name, f.current_version_id, v.sha256, v.status "
    "FROM versions v JOIN files f ON f.id = v.file_id WHERE v.id = ? FOR UPDATE"
)
# A stored version about to become its file's content, and its file (Becoming); request_uuid: the upload
# request a sender's file came through.
_BECOMING = (
    "SELECT f.id AS file_id, f.uuid AS file_uuid, f.owner_id, f.name, f.current_version_id, v.size, "
    "v.link_request, (SELECT uuid FROM upload_requests WHERE id = f.received_via) AS request_uuid "
    "FROM versions v JOIN files f ON f.id = v.file_id WHERE v.id = ?"
)


@fast_init
@dataclass(frozen=True, slots=True)
class Confirming:
    """A version whose whole bytes a read just hashed (_CONFIRMING): what `Content.confirmed` decides on."""

    sha256: str | None  # known or declared (None: neither yet)
    sha256_declared: int
    verify_pending: int  # its SHA-256 still waits for this first read
    status: str
    upload_server_id: int | None
    current_version_id: int | None  # its file's


@fast_init
@dataclass(frozen=True, slots=True)
class Rejecting:
    """A version `Content.reject` may reject (_REJECTING), and the file it belongs to."""

    file_id: int
    file_uuid: str
    owner_id: int
    name: str
    current_version_id: int | None
    sha256: str | None  # the declared one
    status: str


@fast_init
@dataclass(frozen=True, slots=True)
class Becoming:
    """A stored version `Content.make_current` makes its file's content (_BECOMING), and that file."""

    file_id: int
    file_uuid: str
    owner_id: int
    name: str
    current_version_id: int | None  # the file's content until now
    size: int
    link_request: str | None
    request_uuid: str | None  # the upload request a sender's file came through


@fast_init
@dataclass(frozen=True, slots=True)
class Stored:
    """A version that became its file's content (or was stored after a newer one), told to the stored listeners
    in that transaction: links.py makes the link its upload asked for."""

    version_id: int
    file_id: int
    file_uuid: str
    owner_id: int
    name: str
    link_request: str | None  # versions.link_request (JSON), None when none was asked


StoredListener = Callable[[Tx, Stored], Awaitable[None]]


class Content:
    def __init__(
        self,
        db: Database,
        jobs: JobQueue,
        server_of: Callable[[int], Server | None],
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores: clock.py)
        self.jobs = jobs
        # The registry's lookup by internal id (servers.py's, passed in: the registry is a use case above):
        # the upload server a `file.stored` history row names.
        self.server_of = server_of
        self.metrics = metrics or Metrics()
        self.stored_listeners: list[StoredListener] = []  # (wired in app.py)

    async def confirmed(self, tx: Tx, version_id: int, sha256: str, server_id: int) -> None:
        """cdnstore read the whole content of a version on `server_id` and it hashed to `sha256` (the
        declared one, if any): the SHA-256 is known, that replica verified, and a version that waited for
        this check becomes its file's content."""
        row = await tx_fetchone(tx, _CONFIRMING, (version_id,))
        if row is None:
            return
        version = record(Confirming, row)
        if version.sha256 not in (None, sha256):  # (callers check; a verifier round may race a copy)
            return
        await replicas.verified(tx, server_id, version_id, self.clock.now_iso())
        if version.sha256 is None or version.verify_pending:  # (one stored before 0006 learns it here too)
            await versions.confirm_sha256(tx, version_id, sha256)
        if not version.verify_pending:
            return
        uploaded_to = None if version.upload_server_id is None else self.server_of(version.upload_server_id)
        server = uploaded_to or self.server_of(server_id)
        if (
            version.sha256_declared
            and version.status == VersionStatus.STORED
            and version.current_version_id != version_id
            and server is not None
        ):
            await self.make_current(tx, version_id, server)

    async def reject(self, version_id: int, found: str | None, reason: str = "sha256_mismatch") -> bool:
        """A version with a declared SHA-256 that no read had confirmed is bad: its bytes hash, read twice, to
        `found`, another SHA-256 (`reason` sha256_mismatch), or its reads never settled (`unverifiable`,
        `found` None). It is removed everywhere, is never served nor copied; the file keeps its previous
        content (it never became current), or goes when it has none. False when it was no longer one to
        reject (confirmed, replaced or deleted meanwhile)."""
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, _REJECTING, (version_id,))
            bad = None if row is None else record(Rejecting, row)
            if (
                bad is None
                or bad.status != VersionStatus.STORED
                or bad.current_version_id == version_id
                or bad.sha256 == found
            ):
                return False
            now = self.clock.now_iso()
            await versions.reject(tx, version_id, now)
            await self.jobs.enqueue_removals(tx, [version_id])
            data = {"name": bad.name, "sha256": bad.sha256, "found": found, "reason": reason}
            await history.record(tx, bad.owner_id, "file.corrupt", bad.file_uuid, data, at=now)
            await retire_if_empty(tx, bad.file_id, "content_corrupt", now)
        self.metrics.versions_rejected.inc()
        log.error(
            "upload %s of file %s: %s; rejected (removed, never served)",
            version_id,
            bad.file_uuid,
            f"its bytes have SHA-256 {found}, not the declared {bad.sha256}"
            if found is not None
            else "its bytes could not be verified (its verification reads never settled)",
        )
        return True

    async def make_current(self, tx: Tx, version_id: int, server: Server) -> None:
        """A stored version becomes its file's content (unless a newer one already is: then it is out of
        date); the previous content is superseded. The stored listeners are told (the file is stored, with
        this content or a newer one)."""
        row = await tx_fetchone(tx, _BECOMING, (version_id,))
        assert row is not None
        new = record(Becoming, row)
        told = Stored(version_id, new.file_id, new.file_uuid, new.owner_id, new.name, new.link_request)
        for listener in self.stored_listeners:
            await listener(tx, told)
        current = new.current_version_id
        if current is not None and current >= version_id:
            if current > version_id:  # a newer upload of this file landed first: this one is out of date
                await self.supersede(tx, [version_id])
            return
        now = self.clock.now_iso()
        await files_table.make_current(tx, new.file_id, version_id, now)
        if current is not None:
            await self.supersede(tx, [current])
        stored = {"name": new.name, "size": new.size, "server": server.name, "zone": server.zone}
        await history.record(tx, new.owner_id, "file.stored", new.file_uuid, stored, at=now)
        if new.request_uuid is not None and current is None:  # a sender's file arrived (its only version)
            received = {**stored, "request_id": new.request_uuid}
            await history.record(tx, new.owner_id, "upload_request.received", new.file_uuid, received, at=now)

    async def supersede(self, tx: Tx, version_ids: list[int]) -> None:
        """Stored content replaced: superseded, and removed from every server holding it (jobs)."""
        superseded = await versions.supersede(tx, version_ids)
        if superseded:
            await self.jobs.enqueue_removals(tx, superseded)


async def retire_if_empty(tx: Tx, file_id: int, reason: str, now: str) -> None:
    """A file whose upload was given up or rejected goes when it has no content left (files_table), at `now`,
    and its owner's history says why."""
    retired = await files_table.retire_if_empty(tx, file_id, now)
    if retired is not None:
        data = {"name": retired.name, "reason": reason}
        await history.record(tx, retired.owner_id, "file.deleted", retired.uuid, data, at=now)
