"""The durable job queue in the database, standing in for RabbitMQ: its SQL (enqueue, claim, complete,
fail, retry, list). job_worker.py runs the jobs.

Jobs are rows inserted in the same transaction as the change that needs them (the outbox pattern).
A worker claims one with a lease, runs its handler, and deletes it when done; a failure is retried
with exponential backoff and jitter until `max_attempts`, then the job stays 'failed' for an admin to
see and retry. At most one job per (kind, version, server) is open.

Several daemons may share the queue (PostgreSQL). A claim (`FOR UPDATE SKIP LOCKED` there) gives the job a
lease of `jobs.lease_seconds`, which the worker renews while the job runs, and a claim token (a uuid per
claim): the outcome is written only while the token is still the claim's, so a daemon that lost its lease
changes nothing. A lease that runs out (its daemon was killed) is taken over by the next claim of any
daemon: a job of a dead daemon runs again within lease_seconds + poll_interval. Enqueueing notifies
CHANNEL, so idle workers of every daemon wake at once; polling is the fallback.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .config import JobsConfig
from .db import Database, Tx, tx_fetchone
from .errors import Conflict, NotFound
from .models import JobKind, JobStatus, VersionStatus
from .records import fast_init
from .tables import record
from .times import iso
from .webhook_queue import emit_fleet

# Our own generator: the process's global one stays untouched (tests that draw from it, e.g. hypothesis,
# see no other thread move it).
_random = random.Random()

CHANNEL = "jobs"  # notified when a job becomes due (enqueued, retried): workers wake
KINDS = tuple(JobKind)
STATUSES = tuple(JobStatus)


@fast_init
@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    version_id: int
    server_id: int
    attempts: int
    # It ran before and did not finish (failed, waited, or its process stopped): it may have left work
    # half done. Attempts cannot tell: waiting and restarts give theirs back. (last_error is set then.)
    ran_before: bool = False
    token: str = field(default="", compare=False)  # this claim's: the outcome is written only under it
    claimed_at: float = field(default=0.0, compare=False)  # time.monotonic() as the claim was sent


@fast_init
@dataclass(frozen=True, slots=True)
class JobEntry:
    """A job as the queue lists it to administrators (JOB_SELECT): with its file's uuid and name. Jobs have no
    UUID column: `uuid` is the integer key shown as one (job_uuid)."""

    id: int
    kind: JobKind
    status: JobStatus
    attempts: int
    run_after: float
    last_error: str | None
    created_at: float
    updated_at: float
    server_id: int
    file_uuid: str
    file_name: str

    @property
    def uuid(self) -> str:
        return job_uuid(self.id)

    @classmethod
    def of(cls, row: Any) -> JobEntry:
        """The entry of a JOB_SELECT row (by column name), its kind and status as the enums."""
        return record(cls, row, kind=JobKind(row["kind"]), status=JobStatus(row["status"]))


@fast_init
@dataclass(frozen=True, slots=True)
class JobCount:
    """How many jobs there are of one kind in one status (the metrics)."""

    kind: JobKind
    status: JobStatus
    n: int

    @classmethod
    def of(cls, row: Any) -> JobCount:
        return cls(JobKind(row["kind"]), JobStatus(row["status"]), row["n"])


class Retry(Exception):
    """Raised by a handler: run the job again after `delay` seconds without spending an attempt
    (a server it needs is down: waiting is not failing)."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


Handler = Callable[[Job], Awaitable[None]]


def job_uuid(job_id: int) -> str:
    """Jobs are numbered internally; the API shows each number as a UUID string, reversibly."""
    return str(uuid.UUID(int=job_id))


def job_id(text: str) -> int:
    try:
        number = uuid.UUID(text).int
    except ValueError:
        raise NotFound("no such job", code="job_not_found") from None
    if number >= 2**63:  # no job's (ids are 64-bit signed integers shown as uuids): the database cannot take it
        raise NotFound("no such job", code="job_not_found")
    return number


LEASE_LOST = "interrupted: its daemon stopped renewing the lease (taken over)"

# run_after, created_at, updated_at of a job inserted by INSERT ... SELECT: typed, because PostgreSQL cannot
# infer a parameter's type in a select list (it would take it for text).
TIMES = ", ".join(["CAST(:now AS DOUBLE PRECISION)"] * 3)

STORED = VersionStatus.STORED.value
COPY, REMOVE = JobKind.COPY.value, JobKind.REMOVE.value
QUEUED, RUNNING, FAILED = JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.FAILED.value
# An open job's statuses, as the partial index jobs_dedupe names them (a literal list: it serves the reads).
OPEN = f"('{QUEUED}', '{RUNNING}')"
# Server s wants a copy of version v: on and active in its zone, and holding no replica of it.
WANTS_COPY = (
    "s.zone = v.zone AND s.is_on = 1 AND s.is_active = 1"
    " AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.server_id = s.id AND r.version_id = v.id)"
)
# A copy of version :v to server :s, when the version is stored and the server wants it (one pair).
STILL_WANTED = f"""
    SELECT '{COPY}', v.id, s.id, {TIMES} FROM versions v JOIN servers s ON s.id = CAST(:s AS BIGINT)
    WHERE v.id = CAST(:v AS BIGINT) AND v.status = '{STORED}' AND {WANTS_COPY}"""

# The oldest due job of server :s: queued and due, or running with its lease run out (its daemon died).
_CLAIM = f"""
    UPDATE jobs SET attempts = CASE WHEN status = '{RUNNING}' THEN attempts ELSE attempts + 1 END,
                    last_error = CASE WHEN status = '{RUNNING}' THEN :lost ELSE last_error END,
                    status = '{RUNNING}', lease_until = :lease, claim_token = :token, updated_at = :now
    WHERE id = (SELECT id FROM jobs WHERE server_id = :s
                  AND (status = '{QUEUED}' AND run_after <= :now
                       OR status = '{RUNNING}' AND COALESCE(lease_until, 0) < :now)
                ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, kind, version_id, server_id, attempts, last_error IS NOT NULL AS ran_before"""
_POSTPONE = (
    f"UPDATE jobs SET status = '{QUEUED}', attempts = attempts - 1, run_after = ?, lease_until = NULL, "
    "claim_token = NULL, last_error = ?, updated_at = ? WHERE id = ? AND claim_token = ?"
)
_REQUEUE_RUNNING = (
    f"UPDATE jobs SET status = '{QUEUED}', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
    "lease_until = NULL, claim_token = NULL, last_error = 'interrupted: the process stopped', "
    f"updated_at = ? WHERE status = '{RUNNING}'"
)
_RETRY = (
    f"UPDATE jobs SET status = '{QUEUED}', attempts = 0, run_after = ?, updated_at = ? "
    f"WHERE id = ? AND status = '{FAILED}'"
)


class JobQueue:
    def __init__(self, db: Database, cfg: JobsConfig, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.cfg = cfg
        self.clock = clock
        self.wakeup = asyncio.Event()

    def wake(self, payload: str | None = None) -> None:
        """Wake the worker (app.py hands this to `db.listen(CHANNEL)`: a job became due on some daemon)."""
        self.wakeup.set()

    # --- enqueueing (inside the caller's transaction; set-based) ------------------------------

    async def _insert(self, tx: Tx, select_sql: str, params: dict[str, Any]) -> int:
        now = self.clock()
        cursor = await tx.execute(
            "INSERT INTO jobs (kind, version_id, server_id, run_after, created_at, updated_at) "
            f"SELECT * FROM ({select_sql}) AS candidates WHERE true ON CONFLICT DO NOTHING",
            {**params, "now": now},
        )
        if cursor.rowcount:
            await self.db.notify(CHANNEL, tx=tx)
        return cursor.rowcount

    async def enqueue_copies(self, tx: Tx, version_id: int, zone: str) -> int:
        """Copy a stored version to every server that is on and active in its zone and lacks it."""
        return await self._insert(
            tx,
            f"""
            SELECT '{COPY}', CAST(:v AS BIGINT), s.id, {TIMES} FROM servers s
            WHERE s.is_on = 1 AND s.is_active = 1 AND s.zone = :zone
              AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.server_id = s.id AND r.version_id = :v)""",
            {"v": version_id, "zone": zone},
        )

    async def enqueue_zone_copies(self, tx: Tx, versions_sql: str, params: dict[str, Any]) -> int:
        """`enqueue_copies` of many versions in one statement: each version `versions_sql` selects (its ids,
        with named placeholders from `params`) to every server that is on and active in its zone and lacks it."""
        return await self._insert(
            tx,
            f"""
            SELECT '{COPY}', v.id, s.id, {TIMES} FROM versions v JOIN servers s ON {WANTS_COPY}
            WHERE v.id IN ({versions_sql})""",
            params,
        )

    async def enqueue_repair(self, tx: Tx, version_id: int, server_id: int) -> int:
        """Copy a version onto one server that has a replica of it already (found corrupt: to overwrite)."""
        return await self._insert(
            tx, f"SELECT '{COPY}', CAST(:v AS BIGINT), CAST(:s AS BIGINT), {TIMES}", {"v": version_id, "s": server_id}
        )

    async def enqueue_fill(self, tx: Tx, server_id: int, zone: str) -> int:
        """Copy every stored version of `zone` that the server lacks onto it (one statement)."""
        return await self._insert(
            tx,
            f"""
            SELECT '{COPY}', v.id, CAST(:s AS BIGINT), {TIMES} FROM versions v
            WHERE v.status = '{STORED}' AND v.zone = :zone
              AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.server_id = :s AND r.version_id = v.id)""",
            {"s": server_id, "zone": zone},
        )

    async def enqueue_removals(self, tx: Tx, version_ids: Collection[int], server_id: int | None = None) -> int:
        """Remove versions from every server holding them and from their upload server (the object may be
        there or still arrive), or only from `server_id`; copies not yet started are cancelled."""
        ids = ",".join(str(int(v)) for v in version_ids)
        if server_id is not None:
            return await self._insert(
                tx, f"SELECT '{REMOVE}', id, {int(server_id)}, {TIMES} FROM versions WHERE id IN ({ids})", {}
            )
        # A copy cancelled here that ran before (see Job.ran_before) may have written its object before it
        # failed or its process died: remove it there too. (A running copy is not cancelled: it checks the
        # version's status itself once it is done.)
        added = await self._insert(
            tx,
            f"""
            SELECT '{REMOVE}', version_id, server_id, {TIMES} FROM replicas WHERE version_id IN ({ids})
            UNION
            SELECT '{REMOVE}', id, upload_server_id, {TIMES} FROM versions
            WHERE id IN ({ids}) AND upload_server_id IS NOT NULL
            UNION
            SELECT '{REMOVE}', version_id, server_id, {TIMES} FROM jobs
            WHERE kind = '{COPY}' AND status != '{RUNNING}' AND last_error IS NOT NULL AND version_id IN ({ids})""",
            {},
        )
        await tx.execute(f"DELETE FROM jobs WHERE kind = '{COPY}' AND status != '{RUNNING}' AND version_id IN ({ids})")
        return added

    # --- running --------------------------------------------------------------------------------

    async def claim(self, server_id: int) -> Job | None:
        """The oldest due job of one server, now running under a lease and a new claim token: a queued job
        whose time has come, or a running one whose lease ran out (its daemon died: taken over, the attempt
        not spent again, and marked as having run before)."""
        now, sent, token = self.clock(), time.monotonic(), str(uuid.uuid4())
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx,
                _CLAIM,
                {"s": server_id, "now": now, "lease": now + self.cfg.lease_seconds, "token": token, "lost": LEASE_LOST},
            )
        if row is None:
            return None
        return record(Job, row, ran_before=bool(row["ran_before"]), token=token, claimed_at=sent)

    async def renew(self, job: Job) -> bool:
        """Extend the job's lease by lease_seconds from now; False when the claim is no longer this one's."""
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND claim_token = ?",
                (self.clock() + self.cfg.lease_seconds, job.id, job.token),
            )
        return bool(cursor.rowcount)

    async def done(self, job: Job) -> bool:
        """Delete the finished job (False, and nothing done, when its claim was taken over). A copy that ends
        without a replica where one is wanted is enqueued again: it found its target unwanted (inactive,
        another zone) and, while it ran, a change wanted it again (the server activated), whose fill met this
        job still open and added none (the jobs_dedupe index)."""
        async with self.db.transaction() as tx:
            cursor = await tx.execute("DELETE FROM jobs WHERE id = ? AND claim_token = ?", (job.id, job.token))
            if cursor.rowcount and job.kind == JobKind.COPY:
                await self._insert(tx, STILL_WANTED, {"v": job.version_id, "s": job.server_id})
        return bool(cursor.rowcount)

    async def postpone(self, job: Job, delay: float, reason: str) -> bool:
        """Back to the queue without spending the attempt (only under the job's claim)."""
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                _POSTPONE,
                (self.clock() + delay, reason, self.clock(), job.id, job.token),
            )
            if cursor.rowcount and delay <= 0:  # due at once: another daemon's idle worker may take it now
                await self.db.notify(CHANNEL, tx=tx)
        return bool(cursor.rowcount)

    async def fail(self, job: Job, error: str) -> bool:
        """Retry later with exponential backoff and jitter, or leave it 'failed' when out of attempts (only
        under the job's claim)."""
        if job.attempts >= self.cfg.max_attempts:
            status, run_after = JobStatus.FAILED, self.clock()
        else:
            delay = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (job.attempts - 1))
            status, run_after = JobStatus.QUEUED, self.clock() + delay * _random.uniform(0.5, 1.5)
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                "UPDATE jobs SET status = ?, run_after = ?, lease_until = NULL, claim_token = NULL, last_error = ?, "
                "updated_at = ? WHERE id = ? AND claim_token = ?",
                (status, run_after, error[:2000], self.clock(), job.id, job.token),
            )
            if cursor.rowcount and status is JobStatus.FAILED:
                event = await self._failed_event(tx, job, error)
                await emit_fleet(self.db, tx, "job.failed", event, at=iso(self.clock()))
        return bool(cursor.rowcount)

    async def _failed_event(self, tx: Tx, job: Job, error: str) -> dict[str, Any]:
        """What the `job.failed` webhook event says of a job out of attempts."""
        row = await tx_fetchone(
            tx,
            "SELECT f.uuid, f.name, s.uuid AS server_uuid, s.name AS server_name FROM versions v "
            "JOIN files f ON f.id = v.file_id JOIN servers s ON s.id = ? WHERE v.id = ?",
            (job.server_id, job.version_id),
        )
        return {
            "job_id": job_uuid(job.id),
            "kind": job.kind,
            "attempts": job.attempts,
            "error": error[:2000],
            "file_id": None if row is None else row["uuid"],
            "file_name": None if row is None else row["name"],
            "server_id": None if row is None else row["server_uuid"],
            "server": None if row is None else row["server_name"],
        }

    async def requeue_running(self) -> int:
        """At the start of the one daemon of a database (SQLite): the jobs a killed process left running run
        again at once, without waiting for their leases to run out. Never where daemons share the database:
        there the others' jobs are running."""
        assert self.db.one_daemon, "several daemons share this database: their leases run out instead"
        async with self.db.transaction(offload=True) as tx:
            cursor = await tx.execute(
                _REQUEUE_RUNNING,
                (self.clock(),),
            )
        return cursor.rowcount

    # --- admin ----------------------------------------------------------------------------------

    async def page(self, status: str | None, limit: int, after: int | None) -> list[JobEntry]:
        sql = f"{JOB_SELECT} WHERE j.id > ?"
        params: list[Any] = [after or 0]
        if status:
            sql += " AND j.status = ?"
            params.append(status)
        return [JobEntry.of(r) for r in await self.db.fetchall(sql + " ORDER BY j.id LIMIT ?", (*params, limit + 1))]

    async def counts(self) -> list[JobCount]:
        """How many jobs of every kind and status that has jobs."""
        rows = await self.db.fetchall("SELECT kind, status, count(*) AS n FROM jobs GROUP BY kind, status")
        return [JobCount.of(r) for r in rows]

    async def get(self, job_uuid_text: str) -> JobEntry:
        row = await self.db.fetchone(f"{JOB_SELECT} WHERE j.id = ?", (job_id(job_uuid_text),))
        if row is None:
            raise NotFound("no such job", code="job_not_found")
        return JobEntry.of(row)

    async def retry(self, job_uuid_text: str) -> JobEntry:
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                _RETRY,
                (self.clock(), self.clock(), job_id(job_uuid_text)),
            )
            if cursor.rowcount:
                await self.db.notify(CHANNEL, tx=tx)
            # Read in the transaction: once it commits, a worker may claim the job at once.
            row = await tx_fetchone(tx, f"{JOB_SELECT} WHERE j.id = ?", (job_id(job_uuid_text),))
        if row is None:
            raise NotFound("no such job", code="job_not_found")
        entry = JobEntry.of(row)
        if not cursor.rowcount:
            raise Conflict(f"the job is {entry.status}, not failed", code="job_not_failed")
        return entry


JOB_SELECT = """SELECT j.id, j.kind, j.status, j.attempts, j.run_after, j.last_error, j.created_at, j.updated_at,
    j.server_id, f.uuid AS file_uuid, f.name AS file_name
    FROM jobs j JOIN versions v ON v.id = j.version_id JOIN files f ON f.id = v.file_id"""
