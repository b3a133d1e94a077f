"""A known SHA-256 for every stored version, and its bytes watched after they are stored.

A SHA-256 declared at upload binds a single PUT (the storage server refuses other bytes), so it is known
once the version is stored. Any other version waits (`versions.verify_pending`) for cdnstore's first read
of its bytes: the first copy to another server hashes them as they stream (replicator.py), or, when no copy
will (its zone has no other server; its copies failed), the verifier here reads them back once, at most
`integrity.verify_rate` bytes a second. A multipart upload's declared SHA-256 is checked by that read: its
version becomes the file's content only when it matches, and is rejected when two reads of the same bytes
agree on another SHA-256 (the client declared the wrong one, or sent the wrong bytes). That is the entry
point for any version that must be verified before it becomes content: store it with `verify_pending` and
without making it current (files.py), and the verifier does the rest. A read's verdict is content.py's to
carry out, whichever read it was (a copy's or the verifier's): `Content.confirmed`, `Content.reject`.

No version can hold the verifier up for others. Each round takes the versions due, every owner's in turn
(each owner's first, then each owner's second, ...; within an owner, the never-tried and longest-waiting
first), at most ROUND of them. A read that settles nothing (two reads that disagree, a read that fails)
puts the version back `integrity.verify_backoff` seconds, doubled after each such read
(`verify_attempts`, `verify_after`); after `integrity.verify_attempts` of them it gets its final verdict:
a version not yet content is rejected (never served; history `file.corrupt`, reason `unverifiable`), one
already content has the replica read marked corrupt (never served from there, repaired from a good holder
when there is one). A single PUT's bytes whose MD5 is not the upload's ETag while the object's ETag has
changed were rewritten after the upload: that replica is corrupt at once.

After a version is stored, a storage event for its key says its object was written again (a second PUT to
the upload's presigned URL, while it is still valid, is one): `stored_again` queues a re-check of that
replica, which `run_rechecks` makes at once in the background: HEAD, size and ETag against what was
recorded; a read and SHA-256 compare only where the ETags cannot tell; bytes that differ go down the deep
scrub's corrupt-and-repair path (deepscrub.py: marked corrupt, repaired from a good holder, history
`file.corrupt`) and are counted (`cdnstore_replicas_altered_found_total`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .config import IntegrityConfig
from .content import Content
from .db import Database
from .deepscrub import DeepScrubber
from .errors import DatabaseUnavailable, StorageError
from .job_queue import COPY, OPEN
from .metrics import Metrics
from .models import Server
from .records import fast_init
from .servers import ServerRegistry
from .storage_port import StoragePort
from .tables import record, replicas, versions
from .tables.replicas import PRESENT
from .tables.versions import STORED

log = logging.getLogger(__name__)

ROUND = 100  # versions read at most per round
MAX_BACKOFF = 86400.0  # seconds: the longest wait between two reads of one version
MAX_RECHECKS = 10_000  # replicas waiting for their re-check; beyond, events are dropped (the deep scrub remains)
REJECTED_WITHIN = 7 * 86400  # the servers page counts the uploads rejected in this many seconds

_MD5 = re.compile(r"[0-9a-f]{32}")

# Versions awaiting their first read that no open copy will read (the copy does it, no extra read), due by
# the time given, with a present replica to read; every owner's in turn (row_number per owner), the
# never-tried and longest-waiting first within an owner.
AWAITING = f"""SELECT id, object_key AS key, size, etag, sha256, verify_attempts AS attempts FROM (
    SELECT v.id, v.object_key, v.size, v.etag, v.sha256, v.verify_attempts, v.verify_after,
           row_number() OVER (PARTITION BY f.owner_id ORDER BY coalesce(v.verify_after, ''), v.id) AS turn
    FROM versions v JOIN files f ON f.id = v.file_id
    WHERE v.verify_pending = 1 AND v.status = '{STORED}' AND coalesce(v.verify_after, '') <= ?
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.version_id = v.id AND j.kind = '{COPY}'
                      AND j.status IN {OPEN})
      AND EXISTS (SELECT 1 FROM replicas r WHERE r.version_id = v.id AND r.status = '{PRESENT}')
) AS due ORDER BY turn, coalesce(verify_after, ''), id LIMIT {ROUND}"""

# A present replica of a stored version on a server, by object key: what a storage event's re-check needs.
_HELD = f"""SELECT r.version_id, r.etag AS replica_etag, v.size, v.sha256, v.etag, v.upload_server_id,
    v.verify_pending, f.current_version_id
    FROM replicas r JOIN versions v ON v.id = r.version_id JOIN files f ON f.id = v.file_id
    WHERE r.server_id = ? AND v.object_key = ? AND r.status = '{PRESENT}' AND v.status = '{STORED}'"""

# The servers page: per upload server, versions awaiting their verification read, and uploads rejected lately.
_FINDINGS = f"""SELECT upload_server_id AS server_id, 'awaiting' AS what, count(*) AS n FROM versions
    WHERE verify_pending = 1 AND status = '{STORED}' GROUP BY upload_server_id
    UNION ALL
    SELECT upload_server_id, 'rejected', count(*) FROM versions
    WHERE rejected_at IS NOT NULL AND rejected_at >= ? GROUP BY upload_server_id"""


def plain_md5(etag: str | None) -> bool:
    """A single PUT's ETag: the MD5 of its bytes (32 hex digits; a multipart one ends in `-<parts>`)."""
    return etag is not None and _MD5.fullmatch(etag.lower()) is not None


@fast_init
@dataclass(frozen=True, slots=True)
class Awaiting:
    """A version the verifier is to read."""

    id: int
    key: str
    size: int
    etag: str | None
    sha256: str | None  # declared (to be confirmed), or None
    attempts: int  # reads of it that settled nothing so far


@fast_init
@dataclass(frozen=True, slots=True)
class Held:
    """A present replica of a stored version (_HELD): what a storage event's re-check compares the object with."""

    version_id: int
    replica_etag: str | None  # the ETag its server gave when it was recorded
    size: int
    sha256: str | None
    etag: str | None  # the upload's
    upload_server_id: int | None
    verify_pending: int
    current_version_id: int | None  # its file's


@fast_init
@dataclass(frozen=True, slots=True)
class VerifyFindings:
    awaiting: int  # versions uploaded to the server still waiting for their verification read
    rejected: int  # uploads to it rejected in the last REJECTED_WITHIN seconds (never content)


class Integrity:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        content: Content,
        deep_scrub: DeepScrubber,
        cfg: IntegrityConfig,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.storage = storage
        self.servers = servers
        self.content = content  # (a read's verdict on a version: its SHA-256 confirmed, or it rejected)
        self.deep_scrub = deep_scrub
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self._rechecks: dict[tuple[int, str], None] = {}  # (server id, key) waiting, in order, each once
        self._recheck_wake = asyncio.Event()
        self._rechecks_idle = asyncio.Event()  # set while none is queued or running
        self._rechecks_idle.set()
        self._dropped_logged = False

    # --- the verifier ---------------------------------------------------------------------------

    async def verify(self, now: str | None = None) -> int:
        """One round of verification reads (a periodic task): the versions due by `now` (default: now; a
        test moves it on), every owner's in turn; how many versions it settled."""
        settled = 0
        for row in await self.db.fetchall(AWAITING, (now or self.clock.now_iso(),)):
            settled += await self._verify_one(record(Awaiting, row))
        return settled

    async def _verify_one(self, version: Awaiting) -> bool:
        rows = await self.db.fetchall(replicas.HOLDERS, (version.id,))
        holders = [
            s for s in (self.servers.by_internal_id(r["server_id"]) for r in rows) if s is not None and s.is_available
        ]
        if not holders:  # (its servers are off or down: nothing is counted against it)
            return False
        server = holders[0]
        md5 = version.etag if version.sha256 is None and plain_md5(version.etag) else None
        try:
            sha256, got_md5 = await self._read(server, version, md5=md5 is not None)
            if version.sha256 is not None and sha256 != version.sha256:
                # A second read tells bytes that differ (the same SHA-256 again) from a flaky read.
                again, _ = await self._read(server, version)
                if again != sha256:
                    return await self._unsettled(version, server, f"two reads gave SHA-256 {sha256} and {again}")
                return await self.content.reject(version.id, sha256)
            if md5 is not None and got_md5 != md5.lower():
                return await self._md5_differs(version, server, sha256, got_md5)
        except StorageError as exc:
            return await self._unsettled(version, server, f"the read failed: {exc.detail}")
        async with self.db.transaction() as tx:
            await self.content.confirmed(tx, version.id, sha256, server.pk)
        log.info("verified %s on %s: SHA-256 %s", version.key, server.name, sha256)
        return True

    async def _read(self, server: Server, version: Awaiting, *, md5: bool = False) -> tuple[str, str | None]:
        rate = self.cfg.verify_rate
        found = await self.storage.checksum(server.s3, version.key, size=version.size, rate=rate, md5=md5)
        self.metrics.verified_bytes.labels(server.name).inc(version.size)
        return found

    async def _md5_differs(self, version: Awaiting, server: Server, sha256: str, got_md5: str | None) -> bool:
        """A single PUT's bytes whose MD5 is not its upload's ETag. Its object's ETag changed since: it was
        written again after the upload, and these are not the uploaded bytes (corrupt). Else the server's
        ETags are no MD5s (some encrypt, say): a second read that agrees makes the SHA-256 the version's."""
        found = await self.storage.head(server.s3, version.key)
        if found is None or found.size != version.size or found.etag != version.etag:
            self.metrics.wrong_bytes.labels(server.name).inc()
            what = "nothing" if found is None else f"{found.size} bytes, ETag {found.etag}"
            return await self._corrupt(version, server, f"MD5 {got_md5}; the object is now {what}", "altered")
        again, _ = await self._read(server, version)
        if again != sha256:
            return await self._unsettled(version, server, f"two reads gave SHA-256 {sha256} and {again}")
        log.warning(
            "verification read of %s on %s: its MD5 %s is not its ETag %s, which has not changed since the upload: "
            "taking SHA-256 %s (this server's ETags are no MD5s)",
            version.key,
            server.name,
            got_md5,
            version.etag,
            sha256,
        )
        async with self.db.transaction() as tx:
            await self.content.confirmed(tx, version.id, sha256, server.pk)
        return True

    async def _unsettled(self, version: Awaiting, server: Server, why: str) -> bool:
        """A read that settled nothing: the version waits (back-off), or gets its final verdict after
        integrity.verify_attempts such reads. True when it was settled (the verdict)."""
        self.metrics.verify_retries.labels(server.name).inc()
        attempts = version.attempts + 1
        if attempts >= self.cfg.verify_attempts:
            return await self._final_verdict(version, server, why)
        wait = min(MAX_BACKOFF, self.cfg.verify_backoff * 2 ** (attempts - 1))
        async with self.db.transaction() as tx:
            await versions.back_off(tx, version.id, attempts, self.clock.iso_in(wait))
        log.warning(
            "verification read %d of %s on %s settled nothing (%s); reading it again in %.0f s",
            attempts,
            version.key,
            server.name,
            why,
            wait,
        )
        return False

    async def _final_verdict(self, version: Awaiting, server: Server, why: str) -> bool:
        """Its reads never settled: a version not yet its file's content is rejected (it never becomes
        content); one that is content already has that replica marked corrupt (never served from there)."""
        current = await self.db.fetchval(
            "SELECT 1 FROM versions v JOIN files f ON f.current_version_id = v.id WHERE v.id = ?", (version.id,)
        )
        log.error(
            "verification of %s on %s: %d reads settled nothing (last: %s); final verdict: %s",
            version.key,
            server.name,
            self.cfg.verify_attempts,
            why,
            "that replica is corrupt" if current else "the upload is rejected",
        )
        done = (
            await self._corrupt(version, server, why, "unverifiable")
            if current
            else await self.content.reject(version.id, None, "unverifiable")
        )
        if done:
            self.metrics.verify_given_up.inc()
        return done

    async def _corrupt(self, version: Awaiting, server: Server, found: str, reason: str) -> bool:
        """The replica read is not the version's bytes: the deep scrub's corrupt-and-repair path."""
        replica = await self.deep_scrub.replica(server.pk, version.id)
        if replica is None:
            return False
        return await self.deep_scrub.mark_corrupt(replica, found, "verification read", reason)

    # --- storage events for versions already stored ------------------------------------------------

    def stored_again(self, server: Server, key: str) -> None:
        """A storage event for the key of a version already stored (files.py): its object on `server` may
        have been written again. Its re-check is queued (each replica once) and made at once by
        run_rechecks, not in the webhook's request."""
        if len(self._rechecks) >= MAX_RECHECKS:
            if not self._dropped_logged:
                self._dropped_logged = True
                log.warning("%d replicas wait for their re-check: further events are not re-checked", MAX_RECHECKS)
            return
        self._rechecks[(server.pk, key)] = None
        self._rechecks_idle.clear()
        self._recheck_wake.set()

    async def run_rechecks(self) -> None:
        """The background task making the queued re-checks, one at a time, in order."""
        while True:
            await self._recheck_wake.wait()
            self._recheck_wake.clear()
            while self._rechecks:
                server_id, key = next(iter(self._rechecks))
                del self._rechecks[(server_id, key)]
                try:
                    await self.recheck(server_id, key)
                except (StorageError, DatabaseUnavailable) as exc:
                    log.info("re-check of %s: %s; the deep scrub will read it", key, exc.detail)
                except Exception:
                    log.exception("re-check of %s failed; the deep scrub will read it", key)
            self._dropped_logged = False
            self._rechecks_idle.set()

    async def rechecks_done(self) -> None:
        """Wait until no re-check is queued or running (tests)."""
        await self._rechecks_idle.wait()

    async def recheck(self, server_id: int, key: str) -> str:
        """Re-check the replica of `key` on a server after a storage event said its object was written:
        HEAD first (size, and the ETag recorded with the replica, or the upload's on its upload server),
        a read where the ETags cannot tell. What was found: "unchanged", "altered" (marked corrupt, repair
        enqueued), or "skipped" (not a replica to check, or nothing to compare with)."""
        server = self.servers.by_internal_id(server_id)
        row = await self.db.fetchone(_HELD, (server_id, key))
        held = None if row is None else record(Held, row)
        if server is None or held is None or (held.verify_pending and held.current_version_id != held.version_id):
            return "skipped"  # (one awaiting its first read is verified before it becomes content)
        found = await self.storage.head(server.s3, key)
        if found is None:
            return "skipped"  # (gone: scrub forgets it and copies it again)
        known = held.replica_etag or (held.etag if held.upload_server_id == server_id else None)
        if found.size == held.size and known is not None and found.etag == known:
            return "unchanged"
        if found.size != held.size or (plain_md5(found.etag) and plain_md5(known)):
            differs = f"{found.size} bytes, ETag {found.etag}; recorded {held.size} bytes, ETag {known}"
        else:
            read = await self._read_differs(server, key, held)
            if read is None:
                await self._record_etag(server_id, held.version_id, found.etag)
                return "unchanged"
            if read == "":
                return "skipped"
            differs = read
        replica = await self.deep_scrub.replica(server_id, held.version_id)
        if replica is None or not await self.deep_scrub.mark_corrupt(replica, differs, "storage event re-check"):
            return "skipped"
        self.metrics.replicas_altered.labels(server.name).inc()
        return "altered"

    async def _read_differs(self, server: Server, key: str, held: Held) -> str | None:
        """Read the object: None when its bytes are the version's, what was found when not, "" when
        nothing known tells (no SHA-256 yet, no MD5 ETag)."""
        md5 = held.etag if held.sha256 is None and plain_md5(held.etag) else None
        if held.sha256 is None and md5 is None:
            log.info("re-check of %s on %s: nothing known to compare its bytes with", key, server.name)
            return ""
        sha256, got_md5 = await self.storage.checksum(
            server.s3, key, size=held.size, rate=self.cfg.verify_rate, md5=md5 is not None
        )
        self.metrics.verified_bytes.labels(server.name).inc(held.size)
        if held.sha256 is not None:
            return None if sha256 == held.sha256 else f"sha256 {sha256}; expected {held.sha256}"
        return None if got_md5 == (md5 or "").lower() else f"MD5 {got_md5}; expected the upload's {md5}"

    async def _record_etag(self, server_id: int, version_id: int, etag: str) -> None:
        """The bytes read are the version's: their ETag now tells the next event's HEAD."""
        async with self.db.transaction() as tx:
            await replicas.record_etag(tx, server_id, version_id, etag)

    # --- what the servers page shows ----------------------------------------------------------------

    async def findings(self) -> dict[int, VerifyFindings]:
        """Per upload server (by internal id): versions awaiting their verification read, uploads rejected
        lately. Read on every call: two counts over partial indexes of the few versions concerned."""
        counts: dict[int, dict[str, int]] = {}
        for row in await self.db.fetchall(_FINDINGS, (self.clock.iso_in(-REJECTED_WITHIN),)):
            if row["server_id"] is not None:
                counts.setdefault(row["server_id"], {})[row["what"]] = int(row["n"])
        return {s: VerifyFindings(c.get("awaiting", 0), c.get("rejected", 0)) for s, c in counts.items()}

    def of(self, found: dict[int, VerifyFindings], server_id: int) -> dict[str, Any]:
        """A server's figures as its answer shows them."""
        figures = found.get(server_id, VerifyFindings(0, 0))
        return {"awaiting_verification": figures.awaiting, "rejected_uploads": figures.rejected}
