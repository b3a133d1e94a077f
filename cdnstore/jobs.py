"""The durable job queue in SQLite, standing in for RabbitMQ, and the worker that runs it.

Jobs are rows inserted in the same transaction as the change that needs them (the outbox pattern).
A worker claims one with a lease, runs its handler, and deletes it when done; a failure is retried
with exponential backoff and jitter until `max_attempts`, then the job stays 'failed' for an admin to
see and retry. At most one job per (kind, version, server) is open. One daemon runs per database, so at
start every job left 'running' by a killed process goes back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from .config import JobsConfig
from .db import Database, Row, Tx, tx_fetchone
from .errors import Conflict, DatabaseUnavailable, NotFound, StorageError
from .servers import ServerRegistry

log = logging.getLogger(__name__)

KINDS = ("copy", "remove")
STATUSES = ("queued", "running", "failed")


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
        return uuid.UUID(text).int
    except ValueError:
        raise NotFound("no such job", code="job_not_found") from None


# run_after, created_at, updated_at of a job inserted by INSERT ... SELECT: typed, because PostgreSQL cannot
# infer a parameter's type in a select list (it would take it for text).
TIMES = ", ".join(["CAST(:now AS DOUBLE PRECISION)"] * 3)


class JobQueue:
    def __init__(self, db: Database, cfg: JobsConfig, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.cfg = cfg
        self.clock = clock
        self.wakeup = asyncio.Event()
        self._enqueued = False
        db.on_commit(self._after_commit)

    def _after_commit(self) -> None:
        # Where transactions run side by side, the commit that ends this one may come after another's: wake
        # on every commit there (a claim finds nothing at worst) rather than lose the wake-up.
        if self._enqueued or not self.db.serial_writes:
            self._enqueued = False
            self.wakeup.set()

    def wake(self) -> None:
        self.wakeup.set()

    # --- enqueueing (inside the caller's transaction; set-based) ------------------------------

    async def _insert(self, tx: Tx, select_sql: str, params: dict[str, Any]) -> int:
        now = self.clock()
        cursor = await tx.execute(
            "INSERT INTO jobs (kind, version_id, server_id, run_after, created_at, updated_at) "
            f"SELECT * FROM ({select_sql}) AS candidates WHERE true ON CONFLICT DO NOTHING", {**params, "now": now})
        if cursor.rowcount:
            self._enqueued = True
        return cursor.rowcount

    async def enqueue_copies(self, tx: Tx, version_id: int, zone: str) -> int:
        """Copy a stored version to every server that is on and active in its zone and lacks it."""
        return await self._insert(tx, f"""
            SELECT 'copy', CAST(:v AS BIGINT), s.id, {TIMES} FROM servers s
            WHERE s.is_on = 1 AND s.is_active = 1 AND s.zone = :zone
              AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.server_id = s.id AND r.version_id = :v)""",
                                  {"v": version_id, "zone": zone})

    async def enqueue_repair(self, tx: Tx, version_id: int, server_id: int) -> int:
        """Copy a version onto one server that has a replica of it already (found corrupt: to overwrite)."""
        return await self._insert(tx, f"SELECT 'copy', CAST(:v AS BIGINT), CAST(:s AS BIGINT), {TIMES}",
                                  {"v": version_id, "s": server_id})

    async def enqueue_fill(self, tx: Tx, server_id: int, zone: str) -> int:
        """Copy every stored version of `zone` that the server lacks onto it (one statement)."""
        return await self._insert(tx, f"""
            SELECT 'copy', v.id, CAST(:s AS BIGINT), {TIMES} FROM versions v
            WHERE v.status = 'stored' AND v.zone = :zone
              AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.server_id = :s AND r.version_id = v.id)""",
                                  {"s": server_id, "zone": zone})

    async def enqueue_removals(self, tx: Tx, version_ids: Collection[int], server_id: int | None = None) -> int:
        """Remove versions from every server holding them and from their upload server (the object may be
        there or still arrive), or only from `server_id`; copies not yet started are cancelled."""
        ids = ",".join(str(int(v)) for v in version_ids)
        if server_id is not None:
            return await self._insert(tx, f"SELECT 'remove', id, {int(server_id)}, {TIMES} FROM versions "
                                          f"WHERE id IN ({ids})", {})
        # A copy cancelled here that ran before (see Job.ran_before) may have written its object before it
        # failed or its process died: remove it there too. (A running copy is not cancelled: it checks the
        # version's status itself once it is done.)
        added = await self._insert(tx, f"""
            SELECT 'remove', version_id, server_id, {TIMES} FROM replicas WHERE version_id IN ({ids})
            UNION
            SELECT 'remove', id, upload_server_id, {TIMES} FROM versions
            WHERE id IN ({ids}) AND upload_server_id IS NOT NULL
            UNION
            SELECT 'remove', version_id, server_id, {TIMES} FROM jobs
            WHERE kind = 'copy' AND status != 'running' AND last_error IS NOT NULL AND version_id IN ({ids})""",
            {})
        await tx.execute(f"DELETE FROM jobs WHERE kind = 'copy' AND status != 'running' AND version_id IN ({ids})")
        return added

    # --- running --------------------------------------------------------------------------------

    async def claim(self, server_id: int) -> Job | None:
        """The oldest due job of one server, now running under a lease."""
        now = self.clock()
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, f"""
                UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = :lease,
                                updated_at = :now
                WHERE id = (SELECT id FROM jobs WHERE server_id = :s AND status = 'queued' AND run_after <= :now
                            ORDER BY run_after LIMIT 1{self.db.skip_locked})
                RETURNING id, kind, version_id, server_id, attempts, last_error IS NOT NULL""",
                                    {"s": server_id, "now": now, "lease": now + self.cfg.timeout})
        if row is None:
            return None
        return Job(row[0], row[1], row[2], row[3], row[4], ran_before=bool(row[5]))

    async def done(self, job: Job) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM jobs WHERE id = ?", (job.id,))

    async def postpone(self, job: Job, delay: float, reason: str) -> None:
        """Back to the queue without spending the attempt."""
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_after = ?, "
                             "lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
                             (self.clock() + delay, reason, self.clock(), job.id))

    async def fail(self, job: Job, error: str) -> None:
        """Retry later with exponential backoff and jitter, or leave it 'failed' when out of attempts."""
        if job.attempts >= self.cfg.max_attempts:
            status, run_after = "failed", self.clock()
        else:
            delay = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (job.attempts - 1))
            status, run_after = "queued", self.clock() + delay * random.uniform(0.5, 1.5)
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE jobs SET status = ?, run_after = ?, lease_until = NULL, last_error = ?, "
                             "updated_at = ? WHERE id = ?", (status, run_after, error[:2000], self.clock(), job.id))

    async def requeue_running(self) -> int:
        """At start: jobs a killed process left running run again (their leases died with it)."""
        async with self.db.transaction(offload=True) as tx:
            cursor = await tx.execute("UPDATE jobs SET status = 'queued', "
                                      "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
                                      "lease_until = NULL, last_error = 'interrupted: the process stopped', "
                                      "updated_at = ? WHERE status = 'running'", (self.clock(),))
        return cursor.rowcount

    # --- admin ----------------------------------------------------------------------------------

    async def page(self, status: str | None, limit: int, after: int | None) -> list[Row]:
        sql = f"{JOB_SELECT} WHERE j.id > ?"
        params: list[Any] = [after or 0]
        if status:
            sql += " AND j.status = ?"
            params.append(status)
        return await self.db.fetchall(sql + " ORDER BY j.id LIMIT ?", (*params, limit + 1))

    async def counts(self) -> list[Row]:
        """(kind, status, count) of every kind and status that has jobs."""
        return await self.db.fetchall("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status")

    async def get(self, job_uuid_text: str) -> Row:
        row = await self.db.fetchone(f"{JOB_SELECT} WHERE j.id = ?", (job_id(job_uuid_text),))
        if row is None:
            raise NotFound("no such job", code="job_not_found")
        return row

    async def retry(self, job_uuid_text: str) -> Row:
        async with self.db.transaction() as tx:
            cursor = await tx.execute("UPDATE jobs SET status = 'queued', attempts = 0, run_after = ?, "
                                      "updated_at = ? WHERE id = ? AND status = 'failed'",
                                      (self.clock(), self.clock(), job_id(job_uuid_text)))
            if cursor.rowcount:
                self._enqueued = True
            # Read in the transaction: once it commits, a worker may claim the job at once.
            row = await tx_fetchone(tx, f"{JOB_SELECT} WHERE j.id = ?", (job_id(job_uuid_text),))
        if row is None:
            raise NotFound("no such job", code="job_not_found")
        if not cursor.rowcount:
            raise Conflict(f"the job is {row['status']}, not failed", code="job_not_failed")
        return row


JOB_SELECT = """SELECT j.id, j.kind, j.status, j.attempts, j.run_after, j.last_error, j.created_at, j.updated_at,
    j.server_id, f.uuid AS file_uuid, f.name AS file_name
    FROM jobs j JOIN versions v ON v.id = j.version_id JOIN files f ON f.id = v.file_id"""


class JobWorker:
    """Runs due jobs: `workers` at once, at most `per_server` against one server, servers in turn so
    that a big fill of one server does not starve the others. Jobs for a server that is off or down
    wait in the queue."""

    def __init__(self, queue: JobQueue, servers: ServerRegistry, handlers: dict[str, Handler],
                 cfg: JobsConfig, *, health_interval: float) -> None:
        self.queue = queue
        self.servers = servers
        self.handlers = handlers
        self.cfg = cfg
        self.health_interval = health_interval
        self._busy: Counter[int] = Counter()
        self._rotation = itertools.count()
        self._running = 0
        self._idle = asyncio.Event()  # set while no job runs
        self._idle.set()
        self._deadline: float | None = None  # set at shutdown: running jobs may go on until then

    async def run(self) -> None:
        while True:
            try:
                await self.queue.requeue_running()
                break
            except DatabaseUnavailable:  # the disk refuses writes: no job could be recorded anyway
                await asyncio.sleep(self.cfg.poll_interval)
        async with asyncio.TaskGroup() as group:
            for n in range(self.cfg.workers):
                group.create_task(self._loop(), name=f"job-worker-{n}")

    async def _loop(self) -> None:
        while self._deadline is None:
            try:
                job = await self._claim_next()
            except DatabaseUnavailable:
                job = None  # the disk refuses writes (the database logged it): look again after a while
            except Exception:
                log.exception("claiming a job failed; trying again")
                job = None
            if job is None:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that comes as
                # its time runs out, and this loop then never ends (a shutdown hung).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.poll_interval):
                        await self.queue.wakeup.wait()
                self.queue.wakeup.clear()
                continue
            try:
                await self._run(job)
            finally:
                self._busy[job.server_id] -= 1
                self._running -= 1
                if not self._running:
                    self._idle.set()

    def _reachable(self) -> list[int]:
        """Servers whose jobs may run: on and not known to be down."""
        return [self.servers.internal_id(s) for s in self.servers.all() if s.is_available]

    def _eligible(self) -> list[int]:
        return [i for i in self._reachable() if self._busy[i] < self.cfg.per_server]

    async def _claim_next(self) -> Job | None:
        eligible = self._eligible()
        if not eligible:
            return None
        start = next(self._rotation) % len(eligible)
        for server_id in eligible[start:] + eligible[:start]:
            if self._busy[server_id] >= self.cfg.per_server:  # taken by another worker meanwhile
                continue
            self._busy[server_id] += 1  # reserved before the await, so no other worker overshoots
            try:
                job = await self.queue.claim(server_id)
            except BaseException:
                self._busy[server_id] -= 1
                raise
            if job is not None:
                self._running += 1
                self._idle.clear()
                return job
            self._busy[server_id] -= 1
        return None

    def stop_claiming(self, grace: float) -> None:
        """Shutdown begins: start no new job; the ones running may go on for `grace` seconds."""
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + grace
            self.queue.wake()

    async def stop(self, grace: float) -> None:
        """Wait for the running jobs to end, at most until the grace period (counted from the first
        stop_claiming) is over. The caller then cancels run(): a job still running is interrupted and
        goes back to the queue without spending an attempt."""
        self.stop_claiming(grace)
        assert self._deadline is not None
        remaining = self._deadline - asyncio.get_running_loop().time()
        if not self._running or remaining <= 0:
            return
        log.info("shutdown: waiting up to %.1f s for %d running job(s)", remaining, self._running)
        try:
            async with asyncio.timeout(remaining):
                await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown: %d job(s) still running after the grace period; stopping them, they go back "
                        "to the queue", self._running)

    async def _run(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        outcome: Callable[[], Awaitable[None]]
        try:
            async with asyncio.timeout(self.cfg.timeout):
                await handler(job)
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self.queue.postpone(job, 0, "interrupted by shutdown"))
            except DatabaseUnavailable:
                log.warning("job %s (%s) interrupted by shutdown; the database refuses writes, so it goes back "
                            "to the queue at the next start", job.id, job.kind, extra={"job_id": job.id})
            else:
                log.info("job %s (%s) interrupted by shutdown; back in the queue", job.id, job.kind,
                         extra={"job_id": job.id})
            raise
        except Retry as wait:
            log.info("job %s (%s) waits %.0f s: %s", job.id, job.kind, wait.delay, wait,
                     extra={"job_id": job.id})
            outcome = functools.partial(self.queue.postpone, job, wait.delay, str(wait))
        except DatabaseUnavailable as exc:
            # The handler's own write was refused: run it again later (handlers are idempotent).
            outcome = functools.partial(self.queue.postpone, job, 0, exc.detail)
        except StorageError as exc:
            if exc.code == "storage_unreachable":
                log.info("job %s (%s): a server is unreachable; waiting: %s", job.id, job.kind, exc.detail,
                         extra={"job_id": job.id})
                outcome = functools.partial(self.queue.postpone, job, self.health_interval, exc.detail)
            else:
                outcome = self._failed(job, f"{exc.code}: {exc.detail}")
        except Exception as exc:
            outcome = self._failed(job, f"{type(exc).__name__}: {exc}")
        else:
            log.debug("job %s (%s) done", job.id, job.kind, extra={"job_id": job.id})
            outcome = functools.partial(self.queue.done, job)
        await self._record(outcome)

    def _failed(self, job: Job, error: str) -> Callable[[], Awaitable[None]]:
        log.warning("job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, error,
                    extra={"job_id": job.id})
        return functools.partial(self.queue.fail, job, error)

    async def _record(self, outcome: Callable[[], Awaitable[None]]) -> None:
        """Write a job's outcome. While the disk refuses writes, try again every poll interval: the job
        stays 'running' in the table meanwhile (a shutdown leaves it there, and the next start requeues it)."""
        while True:
            try:
                await outcome()
                return
            except DatabaseUnavailable:
                await asyncio.sleep(self.cfg.poll_interval)

    async def drain(self, within: float = 30.0, horizon: float = 5.0) -> None:
        """Wait until no job is running and none is due within `horizon` seconds on a reachable server
        (retries included): for tests and tools."""
        async with asyncio.timeout(within):
            while True:
                self.queue.wake()
                await asyncio.sleep(0.02)
                if self._running == 0 and not await self._due(horizon):
                    return

    async def _due(self, horizon: float) -> bool:
        ids = self._reachable()
        if not ids:
            return False
        marks = ",".join("?" * len(ids))
        return bool(await self.queue.db.fetchval(
            f"SELECT 1 FROM jobs WHERE status IN ('queued', 'running') AND run_after <= ? "
            f"AND server_id IN ({marks}) LIMIT 1", (self.queue.clock() + horizon, *ids)))
