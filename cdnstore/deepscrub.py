"""The deep scrub: read every replica back and compare its SHA-256 with the one its version is known by.

Progress is the replicas' own `verified_at`: a pass takes the replicas never verified first, then the
oldest verified, and stamps each one as it matches, so a pass cut short by a restart goes on where it
stopped (the daemon's pass takes only the replicas not verified for `scrub.deep_interval`). A replica that
differs is marked `corrupt` and a copy from a good holder is enqueued to overwrite it (the copy records it
`present` again once its bytes match); every pass reads the corrupt ones again too (after the never-verified
ones), and one whose bytes match again (repaired by hand, say) is `present` again. A version stored
before cdnstore knew SHA-256s gets its hash here: its replicas are read together; when the upload's ETag
is an MD5 (a single PUT), the content with that MD5 is the good one, else the content most of them hold
(see `_winner`); when that cannot be told, nothing is decided (reported). Reads stream (one piece of at
most 1 MiB in memory) and spend a token bucket of `scrub.deep_rate` bytes a second.

One pass at a time over a database, of all the daemons and `cdnstore scrub --deep`: a pass runs under the
named lease LEASE (db/leases.py), renewed while it runs, and stops when it loses it (a row, not a lock
held on a pooled connection for the whole pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import history
from .clock import SYSTEM_CLOCK, Clock
from .config import ScrubConfig
from .db import Database, Tx, tx_fetchone
from .db.leases import Lease, daemon_id
from .errors import DatabaseUnavailable, StorageError
from .job_queue import JobQueue
from .metrics import Metrics
from .records import fast_init
from .servers import ServerRegistry
from .storage_port import StoragePort
from .tables import record, replicas, versions
from .tables.replicas import CORRUPT, PRESENT
from .tables.versions import STORED
from .tasks import running
from .webhook_queue import emit_fleet

log = logging.getLogger(__name__)
PAGE = 200
LEASE = "deep-scrub"
_MD5 = re.compile(r"[0-9a-f]{32}")
_OFFLOAD = 64 << 10  # pieces at least this big are hashed on a thread (hashlib lets go of the GIL)

# A replica as a pass reads it (Replica).
_COLUMNS = """SELECT r.server_id, r.version_id, r.verified_at, v.object_key AS key, v.size, v.sha256, v.etag, v.zone
              FROM replicas r JOIN versions v ON v.id = r.version_id"""
_LIVE = f"r.status = '{PRESENT}' AND v.status = '{STORED}' AND v.verify_pending = 0"
# Never verified, by version (a version's replicas come together: one without a hash is decided at once).
_NEVER = f"""{_COLUMNS} WHERE r.verified_at IS NULL AND {_LIVE} AND (r.version_id, r.server_id) > (?, ?)
             ORDER BY r.version_id, r.server_id LIMIT {PAGE}"""
# Then the replicas marked corrupt, of versions whose SHA-256 is known (one repaired by hand is good again).
_CORRUPT = f"""{_COLUMNS} WHERE r.status = '{CORRUPT}' AND v.status = '{STORED}' AND v.verify_pending = 0
               AND v.sha256 IS NOT NULL AND (r.version_id, r.server_id) > (?, ?)
               ORDER BY r.version_id, r.server_id LIMIT {PAGE}"""
# Then the oldest verified before the cutoff (the index on verified_at gives this order).
_OLDEST = f"""{_COLUMNS} WHERE r.verified_at < ? AND {_LIVE} AND (r.verified_at, r.server_id, r.version_id) > (?, ?, ?)
              ORDER BY r.verified_at, r.server_id, r.version_id LIMIT {PAGE}"""
_OF_VERSION = f"{_COLUMNS} WHERE r.version_id = ? AND {_LIVE} ORDER BY r.server_id"
# One scan of the replicas for the servers page: since when each server's replicas were all verified
# ('' while one never was), and its corrupt ones (with and without a good copy elsewhere).
_FINDINGS = f"""SELECT r.server_id,
    min(CASE WHEN r.status = '{PRESENT}' THEN coalesce(r.verified_at, '') END) AS verified_at,
    sum(CASE WHEN r.status = '{CORRUPT}' THEN 1 ELSE 0 END) AS corrupt,
    sum(CASE WHEN r.status = '{CORRUPT}' AND NOT EXISTS (SELECT 1 FROM replicas o WHERE o.version_id = r.version_id
                                                      AND o.status = '{PRESENT}') THEN 1 ELSE 0 END) AS unrecoverable
    FROM replicas r JOIN versions v ON v.id = r.version_id
    WHERE v.status = '{STORED}' AND v.verify_pending = 0 GROUP BY r.server_id"""
_OLDEST_VERIFIED = f"SELECT min(verified_at) FROM replicas WHERE status = '{PRESENT}'"
_WITHOUT_GOOD = (
    "SELECT count(DISTINCT r.version_id) FROM replicas r JOIN versions v ON v.id = r.version_id "
    f"WHERE r.status = '{CORRUPT}' AND v.status = '{STORED}' AND NOT EXISTS (SELECT 1 FROM replicas o "
    f"WHERE o.version_id = r.version_id AND o.status = '{PRESENT}')"
)
_PRESENT_OF = (
    f"{_COLUMNS} WHERE r.server_id = ? AND r.version_id = ? AND r.status = '{PRESENT}' AND v.status = '{STORED}'"
)
_ANY_GOOD = f"SELECT 1 FROM replicas WHERE version_id = ? AND status = '{PRESENT}'"
_STORED_ZONE = f"SELECT zone FROM versions WHERE id = ? AND status = '{STORED}'"
FINDINGS_TTL = 30.0


@dataclass
class DeepReport:
    verified: int = 0  # replicas read back whose bytes matched
    corrupt: int = 0  # replicas whose bytes differed: marked corrupt, repair enqueued when a good holder is left
    missing: int = 0  # replicas whose object is gone: forgotten, copy enqueued (as the plain scrub does)
    restored: int = 0  # replicas marked corrupt whose bytes match again (repaired by hand): present again
    hashed: int = 0  # versions that got their SHA-256 from this pass
    undecided: int = 0  # versions without a SHA-256 whose replicas disagree with no majority and no MD5 ETag
    skipped: int = 0  # replicas on servers that are off, down or failed to answer: next pass
    bytes_read: int = 0
    without_good_holder: int = 0  # after the pass: stored versions corrupt everywhere they are
    seconds: float = 0.0  # the pass took
    stopped: bool = False  # its lease was lost (not renewed in time, or taken over): the pass stopped early

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """What the pass did, for a person reading the log: only the counts that are not zero."""
        read = self.verified + self.corrupt + self.restored
        found = [
            f"{self.verified} matched",
            *_counted(self.corrupt, "differed (marked corrupt, repairs enqueued)"),
            *_counted(self.restored, "marked corrupt matched again"),
            *_counted(self.missing, "were missing (copied again)"),
            *_counted(self.skipped, "were skipped, their server being off or down (next pass)"),
        ]
        versions = [
            *_counted(self.hashed, "got their SHA-256"),
            *_counted(self.undecided, "stay undecided (their replicas differ, with no majority)"),
        ]
        text = (
            f"deep scrub: read {read} replica(s) back ({self.bytes_read:,} bytes) in {self.seconds:g} s: "
            f"{', '.join(found)}"
        )
        if versions:
            text += f"; of the versions, {', '.join(versions)}"
        if self.without_good_holder:
            text += f"; {self.without_good_holder} stored version(s) have no good copy left on any server"
        if self.stopped:
            text += "; the pass stopped early (its lease was lost)"
        return text + "."


def _counted(n: int, what: str) -> list[str]:
    return [f"{n} {what}"] if n else []


@fast_init
@dataclass(frozen=True, slots=True)
class ServerFindings:
    verified_at: str | None  # every replica there was read back and matched at or after this (None: one never was)
    corrupt: int  # replicas marked corrupt, waiting for their repair
    unrecoverable: int  # ... of which no good copy is left on any server


@fast_init
@dataclass(frozen=True, slots=True)
class Findings:
    servers: dict[int, ServerFindings]  # by the server's internal id; servers holding nothing are absent
    without_good_holder: int  # stored versions with no good copy left

    def of(self, server_id: int) -> ServerFindings:
        return self.servers.get(server_id, ServerFindings(None, 0, 0))


@fast_init
@dataclass(frozen=True, slots=True)
class Replica:
    server_id: int
    version_id: int
    verified_at: str | None
    key: str
    size: int
    sha256: str | None
    etag: str | None
    zone: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class Digest:
    sha256: str
    md5: str
    size: int

    def matches(self, sha256: str | None, size: int) -> bool:
        """The bytes read are the version's: its SHA-256 and its size."""
        return self.sha256 == sha256 and self.size == size


class TokenBucket:
    """At most `rate` bytes a second on average, bursts of up to one second's worth. Bytes are spent after
    they were read (debt), so a piece bigger than the bucket still goes through, followed by the wait."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.tokens = rate
        self.stamp = clock()

    async def spend(self, count: int) -> None:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate) - count
        self.stamp = now
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


@dataclass
class _Pass:
    bucket: TokenBucket
    report: DeepReport = field(default_factory=DeepReport)
    decided: int = 0  # the version decided last (the first pass's rows come by version)
    undecided: set[int] = field(default_factory=set)  # replicas disagree: read once a pass, not once a replica
    unavailable: set[int] = field(default_factory=set)  # servers found off or down (logged once a pass)
    marked: set[tuple[int, int]] = field(default_factory=set)  # (server, version) marked corrupt by this pass
    finished: bool = False


class DeepScrubber:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        jobs: JobQueue,
        cfg: ScrubConfig,
        metrics: Metrics | None = None,
        lease_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.storage = storage
        self.servers = servers
        self.jobs = jobs
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.lease_seconds = lease_seconds  # periodic.lease_seconds: a pass renews its lease every third of it
        self._findings: tuple[float, Findings] | None = None  # (valid until, what)

    # --- passes ---------------------------------------------------------------------------------

    async def scrub(self, cutoff: str | None = None) -> DeepReport | None:
        """One pass over every replica last verified before `cutoff` (default: now), never verified first;
        None when another process holds the pass's lease (a daemon's pass, or `scrub --deep`'s)."""
        # A holder per pass: two passes of one process exclude each other too.
        lease = Lease(self.db, LEASE, daemon_id(), self.lease_seconds)
        if not await lease.acquire():
            log.info("deep scrub: another daemon is running a pass; skipped")
            return None
        started, state = time.monotonic(), _Pass(TokenBucket(self.cfg.deep_rate))
        async with running({"deep-scrub-lease": lease.keep()}):  # (given up when the block ends)
            await lease.run(functools.partial(self._pass, cutoff or self.clock.now_iso(), state))
        report = state.report
        report.seconds = round(time.monotonic() - started, 3)
        report.stopped = not state.finished
        self._findings = None
        report.without_good_holder = await self.without_good_holder()
        level = (
            logging.ERROR
            if report.without_good_holder
            else (
                logging.WARNING
                if report.corrupt or report.missing or report.undecided or report.stopped
                else logging.INFO
            )
        )
        log.log(level, "%s", report.sentence())
        return report

    async def run(self) -> None:
        """The daemon's deep scrub: a pass over the replicas due (not verified for deep_interval seconds),
        then sleep until the oldest is due again (between one minute and one hour)."""
        interval = self.cfg.deep_interval
        while True:
            try:
                await self.scrub(self.clock.iso_in(-interval))
            except DatabaseUnavailable as exc:
                log.debug("deep scrub: %s; trying again later", exc.detail)
            except Exception:
                log.exception("deep scrub pass failed; trying again later")
            await asyncio.sleep(await self._until_due(interval))

    async def _until_due(self, interval: float) -> float:
        floor = min(interval, 60.0)
        try:
            oldest = await self.db.fetchval(_OLDEST_VERIFIED)
        except DatabaseUnavailable:
            return floor
        if oldest is None:
            return 3600.0
        due = _unix(oldest) + interval - self.clock.time()
        return max(floor, min(3600.0, due))

    async def _pass(self, cutoff: str, state: _Pass) -> None:
        after: tuple[Any, ...] = (0, 0)
        while found := await self._replicas(_NEVER, after):
            after = (found[-1].version_id, found[-1].server_id)
            for replica in found:
                await self._check(replica, state)
        after = (0, 0)
        while found := await self._replicas(_CORRUPT, after):
            after = (found[-1].version_id, found[-1].server_id)
            for replica in found:
                if (replica.server_id, replica.version_id) not in state.marked:  # (just read)
                    await self._recheck(replica, state)
        after = ("", 0, 0)
        while found := await self._replicas(_OLDEST, (cutoff, *after)):
            after = (found[-1].verified_at, found[-1].server_id, found[-1].version_id)
            for replica in found:
                await self._check(replica, state)
        state.finished = True

    async def _replicas(self, sql: str, params: tuple[Any, ...]) -> list[Replica]:
        return [record(Replica, r) for r in await self.db.fetchall(sql, params)]

    async def _check(self, replica: Replica, state: _Pass) -> None:
        if replica.sha256 is None:
            # A version's replicas are decided together: the ones after the first are done with it.
            if replica.version_id != state.decided and replica.version_id not in state.undecided:
                state.decided = replica.version_id
                await self._decide(replica.version_id, state)
            return
        digest = await self._read(replica, state, md5=False)
        if digest is not None:
            await self._judge(replica, replica.sha256, digest, state)

    async def _recheck(self, replica: Replica, state: _Pass) -> None:
        """A replica marked corrupt, read again: `present` once more when its bytes match (its repair
        copy, if still queued, then finds it held and does nothing); else it stays corrupt."""
        digest = await self._read(replica, state, md5=False)
        if digest is None or not digest.matches(replica.sha256, replica.size):
            return
        async with self.db.transaction() as tx:
            back = await replicas.good_again(tx, replica.server_id, replica.version_id, self.clock.now_iso())
        if back:
            state.report.restored += 1
            self._findings = None
            self.metrics.scrub_verified.inc()
            server = self.servers.by_internal_id(replica.server_id)
            log.warning(
                "deep scrub: %s on %s, marked corrupt, matches its SHA-256 again: present again",
                replica.key,
                server.name if server else replica.server_id,
            )

    # --- what it found (the servers page, /metrics) --------------------------------------------------

    async def findings(self) -> Findings:
        """Per server (by internal id) and in all; read at most every FINDINGS_TTL seconds (each read scans
        the replica table) and again after this process's passes and findings."""
        cached = self._findings
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        rows = await self.db.fetchall(_FINDINGS, offload=True)
        found = Findings(
            {
                r["server_id"]: ServerFindings(
                    r["verified_at"] or None, int(r["corrupt"] or 0), int(r["unrecoverable"] or 0)
                )
                for r in rows
            },
            await self.without_good_holder(),
        )
        self._findings = (time.monotonic() + FINDINGS_TTL, found)
        return found

    async def without_good_holder(self) -> int:
        """Stored versions with a corrupt replica and no present one: nothing good to serve or copy."""
        return int(
            await self.db.fetchval(
                _WITHOUT_GOOD,
                offload=True,
            )
            or 0
        )

    # --- reading ----------------------------------------------------------------------------------

    async def _read(self, replica: Replica, state: _Pass, *, md5: bool) -> Digest | None:
        """The replica's digests; None when it could not be read now (skipped) or its object is gone."""
        report = state.report
        server = self.servers.by_internal_id(replica.server_id)
        if server is None or not server.is_available:
            report.skipped += 1
            if replica.server_id not in state.unavailable:
                state.unavailable.add(replica.server_id)
                log.info(
                    "deep scrub: server %s is off or down: its replicas wait for a later pass",
                    server.name if server else replica.server_id,
                )
            return None
        sha, mdf = hashlib.sha256(), hashlib.md5(usedforsecurity=False) if md5 else None
        size = 0
        try:
            # (aclosing: a pass cancelled mid-read closes the object's body at once, not when collected)
            async with contextlib.aclosing(self.storage.read(server.s3, replica.key)) as pieces:
                async for piece in pieces:
                    size += len(piece)
                    if len(piece) >= _OFFLOAD:
                        await asyncio.to_thread(_update, sha, mdf, piece)
                    else:
                        _update(sha, mdf, piece)
                    report.bytes_read += len(piece)
                    self.metrics.scrub_read(len(piece))
                    await state.bucket.spend(len(piece))
        except StorageError as exc:
            if exc.code == "object_missing":
                report.missing += await self._forget(replica)
                return None
            log.warning("deep scrub: could not read %s on %s: %s", replica.key, server.name, exc.detail)
            report.skipped += 1
            return None
        return Digest(sha.hexdigest(), mdf.hexdigest() if mdf else "", size)

    # --- verdicts ---------------------------------------------------------------------------------

    async def _judge(self, replica: Replica, sha256: str, digest: Digest, state: _Pass) -> None:
        report = state.report
        if digest.matches(sha256, replica.size):
            async with self.db.transaction() as tx:
                await replicas.still_good(tx, replica.server_id, replica.version_id, self.clock.now_iso())
            report.verified += 1
            self.metrics.scrub_verified.inc()
        elif await self.mark_corrupt(
            replica,
            f"{digest.size} bytes, sha256 {digest.sha256}; expected {replica.size} bytes, {sha256}",
            "deep scrub",
        ):
            report.corrupt += 1
            state.marked.add((replica.server_id, replica.version_id))
            self.metrics.scrub_corrupt.labels(self._name(replica.server_id)).inc()

    async def replica(self, server_id: int, version_id: int) -> Replica | None:
        """The replica as a pass would read it (present, of a stored version), or None."""
        row = await self.db.fetchone(
            _PRESENT_OF,
            (server_id, version_id),
        )
        return None if row is None else record(Replica, row)

    async def mark_corrupt(self, replica: Replica, found: str, by: str, reason: str = "altered") -> bool:
        """The one path for a replica whose bytes are not its version's, whoever found it (the deep scrub,
        the verifier, a storage event's re-check: `by`, for the log): mark it corrupt (never served) and
        enqueue its repair from a good holder, an ERROR when none is left; the owner's history gets
        `file.corrupt` (`reason`). False when the replica changed meanwhile (a repair landed, the version
        was replaced): then it is not ours to mark. `found` says what was found, for the log."""
        name = self._name(replica.server_id)
        async with self.db.transaction() as tx:
            await self.servers.lock_row(tx, replica.server_id)  # (first: the order of DELETE /servers)
            # Unless it changed while we read (a repair landed, the version was replaced): then it is not ours.
            if not await replicas.mark_corrupt(tx, replica.server_id, replica.version_id, replica.verified_at):
                return False
            good = await tx_fetchone(tx, _ANY_GOOD, (replica.version_id,))
            if good is not None:
                await self.jobs.enqueue_repair(tx, replica.version_id, replica.server_id)
            file = await tx_fetchone(
                tx,
                "SELECT f.uuid, f.owner_id, f.name FROM versions v JOIN files f ON f.id = v.file_id WHERE v.id = ?",
                (replica.version_id,),
            )
            if file is not None:
                repair = "enqueued" if good is not None else "no good copy left"
                data = {"name": file["name"], "server": name, "reason": reason, "repair": repair}
                now = self.clock.now_iso()
                await history.record(tx, file["owner_id"], "file.corrupt", file["uuid"], data, at=now)
                held = self.servers.by_internal_id(replica.server_id)
                fleet = {**data, "file_id": file["uuid"], "server_id": held.id if held else None}
                await emit_fleet(self.db, tx, "replica.corrupt", fleet, at=now)
        self._findings = None
        log.warning(
            "%s: %s on %s differs from what was stored (%s): marked corrupt%s",
            by,
            replica.key,
            name,
            found,
            ", repair enqueued" if good is not None else "",
        )
        if good is None:
            log.error(
                "%s: %s has no good copy left on any server (the last one, on %s, is corrupt): "
                "it is not served; restore it from a backup or upload it again",
                by,
                replica.key,
                name,
            )
        return True

    def _name(self, server_id: int) -> str:
        server = self.servers.by_internal_id(server_id)
        return server.name if server else str(server_id)

    async def _forget(self, replica: Replica) -> int:
        """An object gone from its bucket: the replica is forgotten and a copy enqueued (as scrub does)."""
        async with self.db.transaction() as tx:
            await self.servers.lock_row(tx, replica.server_id)  # (first: the order of DELETE /servers)
            gone = await replicas.missing(tx, replica.server_id, replica.version_id)
            stored = await tx_fetchone(tx, _STORED_ZONE, (replica.version_id,))
            if gone and stored is not None and stored["zone"] is not None:
                await self.jobs.enqueue_copies(tx, replica.version_id, stored["zone"])
        if gone:
            server = self.servers.by_internal_id(replica.server_id)
            log.warning(
                "deep scrub: %s is missing on %s: copy enqueued",
                replica.key,
                server.name if server else replica.server_id,
            )
        return int(gone > 0)

    async def _decide(self, version_id: int, state: _Pass) -> None:
        """A version without a SHA-256: read every replica, take the content whose MD5 is the upload's ETag,
        else the one most replicas hold; record it as the version's SHA-256 and judge every replica by it."""
        replicas = await self._replicas(_OF_VERSION, (version_id,))
        read = {}
        for replica in replicas:
            digest = await self._read(replica, state, md5=True)
            if digest is not None:
                read[replica] = digest
        if not read:
            return
        report = state.report
        good = _winner(replicas[0].etag, replicas[0].size, list(read.values()))
        if good is None:
            state.undecided.add(version_id)
            report.undecided += 1
            log.warning(
                "deep scrub: the SHA-256 of %s stays unknown: its %d replicas read hold %d contents, and "
                "none has the upload's MD5 ETag %s or none holds a majority",
                replicas[0].key,
                len(read),
                len({d.sha256 for d in read.values()}),
                replicas[0].etag,
            )
            return
        async with self.db.transaction() as tx:
            await versions.learn_sha256(tx, version_id, good)
            known = await _sha256(tx, version_id)  # someone else's, if it came first
        if known == good:
            report.hashed += 1
        for replica, digest in read.items():
            await self._judge(replica, known or good, digest, state)


def _winner(etag: str | None, size: int, digests: list[Digest]) -> str | None:
    """The SHA-256 of the good content among a version's replicas, or None when it cannot be told.

    A single PUT's ETag (32 hex digits, no `-<parts>`) is the MD5 of what the client uploaded, on servers
    that make it so: the replica with that MD5 wins over any majority, and when none has it nothing is
    decided (every replica was altered, or the server's ETags are no MD5s: an operator must tell). Else the
    content most replicas hold wins; a tie is undecided."""
    whole = [d for d in digests if d.size == size]
    if etag and _MD5.fullmatch(etag.lower()):
        return next((d.sha256 for d in whole if d.md5 == etag.lower()), None)
    ranked = Counter(d.sha256 for d in whole).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


async def _sha256(tx: Tx, version_id: int) -> str | None:
    row = await tx_fetchone(tx, "SELECT sha256 FROM versions WHERE id = ?", (version_id,))
    return None if row is None else row["sha256"]


def _update(sha: Any, mdf: Any, piece: bytes) -> None:
    sha.update(piece)
    if mdf is not None:
        mdf.update(piece)


def _unix(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
