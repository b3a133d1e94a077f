"""The job worker: claims due jobs from the queue (job_queue.py) and runs their handlers, `workers` at
once and at most `per_server` against one server; records each outcome (done, retried with backoff,
postponed, failed) through the queue.

While a job runs its lease is renewed every third of `jobs.lease_seconds`. When it cannot be renewed
(another daemon took the job over, or the database stayed unreachable until a third of the lease was
left) the handler is stopped: by the time the lease runs out and another daemon may take the job, this one
no longer runs it. Each run is logged when it starts and when it ends, with its claim."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from .config import JobsConfig
from .errors import DatabaseUnavailable, StorageError
from .job_queue import QUEUED, RUNNING, Handler, Job, JobQueue, Retry

log = logging.getLogger(__name__)


class JobsFailed(Exception):
    """Jobs ran out of attempts during a `run_until_idle`: (id, kind, last error) of each."""

    def __init__(self, failed: list[tuple[int, str, str]]) -> None:
        self.failed = failed
        super().__init__("; ".join(f"job {id_} ({kind}) failed: {error}" for id_, kind, error in failed))


@dataclass(slots=True)
class _Lease:
    lost: bool = False  # set (before the job's task is cancelled) when the lease could not be kept


class JobWorker:
    """Runs due jobs: `workers` at once, at most `per_server` against one server, servers in turn so
    that a big fill of one server does not starve the others. Jobs for a server that is off or down
    wait in the queue."""

    def __init__(
        self,
        queue: JobQueue,
        reachable: Callable[[], list[int]],
        handlers: dict[str, Handler],
        cfg: JobsConfig,
        *,
        health_interval: float,
    ) -> None:
        self.queue = queue
        self.reachable = reachable  # the internal ids of the servers that are on and not known to be down
        self.handlers = handlers
        self.cfg = cfg
        self.health_interval = health_interval
        self._busy: Counter[int] = Counter()
        self._rotation = itertools.count()
        self._running = 0
        self._idle = asyncio.Event()  # set while no job runs
        self._idle.set()
        self._deadline: float | None = None  # set at shutdown: running jobs may go on until then
        self._out_of_attempts: list[tuple[int, str, str]] = []  # (id, kind, error): for run_until_idle

    async def run(self) -> None:
        while self.queue.db.one_daemon:  # several daemons: their leases run out instead (claim takes them over)
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
            await self._run_claimed(job)

    async def _run_claimed(self, job: Job) -> None:
        try:
            await self._run(job)
        finally:
            self._busy[job.server_id] -= 1
            self._running -= 1
            if not self._running:
                self._idle.set()

    def _eligible(self) -> list[int]:
        return [i for i in self.reachable() if self._busy[i] < self.cfg.per_server]

    async def _claim_next(self) -> Job | None:
        eligible = self._eligible()
        if not eligible:
            return None
        start = next(self._rotation) % len(eligible)
        for server_id in eligible[start:] + eligible[:start]:
            if self._busy[server_id] >= self.cfg.per_server:  # taken by another worker meanwhile
                continue
            if server_id not in self.reachable():  # switched off (or found down) during an earlier claim here
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
            log.warning(
                "shutdown: %d job(s) still running after the grace period; stopping them, they go back to the queue",
                self._running,
            )

    async def _handle(self, job: Job) -> None:
        """The job's handler, its start and end logged with the claim (tests/test_cluster_faults.py reads
        these lines to check that no job runs on two daemons at once)."""
        log.info("job %s (%s) starts, claim %s", job.id, job.kind, job.token, extra={"job_id": job.id})
        try:
            await self.handlers[job.kind](job)
        finally:
            log.info("job %s (%s) ends, claim %s", job.id, job.kind, job.token, extra={"job_id": job.id})

    async def _run(self, job: Job) -> None:
        """Run the job's handler under its lease and record the outcome."""
        outcome: Callable[[], Awaitable[bool]]
        lease = _Lease()
        try:
            async with asyncio.timeout(self.cfg.timeout), self._leased(job, lease):
                await self._handle(job)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if lease.lost and current is not None and current.uncancel() == 0:
                await self._lost(job)
                return
            try:
                await asyncio.shield(self.queue.postpone(job, 0, "interrupted by shutdown"))
            except DatabaseUnavailable:
                log.warning(
                    "job %s (%s) interrupted by shutdown; the database refuses writes, so it goes back "
                    "to the queue when its lease runs out",
                    job.id,
                    job.kind,
                    extra={"job_id": job.id},
                )
            else:
                log.info(
                    "job %s (%s) interrupted by shutdown; back in the queue", job.id, job.kind, extra={"job_id": job.id}
                )
            raise
        except Retry as wait:
            log.info("job %s (%s) waits %.0f s: %s", job.id, job.kind, wait.delay, wait, extra={"job_id": job.id})
            outcome = functools.partial(self.queue.postpone, job, wait.delay, str(wait))
        except DatabaseUnavailable as exc:
            # The handler's own write was refused: run it again later (handlers are idempotent).
            outcome = functools.partial(self.queue.postpone, job, 0, exc.detail)
        except StorageError as exc:
            if exc.code == "storage_unreachable":
                log.info(
                    "job %s (%s): a server is unreachable; waiting: %s",
                    job.id,
                    job.kind,
                    exc.detail,
                    extra={"job_id": job.id},
                )
                outcome = functools.partial(self.queue.postpone, job, self.health_interval, exc.detail)
            else:
                outcome = self._failed(job, f"{exc.code}: {exc.detail}")
        except Exception as exc:
            outcome = self._failed(job, f"{type(exc).__name__}: {exc}")
        else:
            log.debug("job %s (%s) done", job.id, job.kind, extra={"job_id": job.id})
            outcome = functools.partial(self.queue.done, job)
        if lease.lost:  # the handler turned its cancellation into something else: what it did is not an outcome
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                current.uncancel()
            await self._lost(job)
            return
        if not await self._record(outcome):
            log.warning(
                "job %s (%s): its claim was taken over; its outcome is not recorded",
                job.id,
                job.kind,
                extra={"job_id": job.id},
            )

    @contextlib.asynccontextmanager
    async def _leased(self, job: Job, lease: _Lease) -> AsyncIterator[None]:
        """Renew the job's lease while the block runs; cancel the block when it cannot be kept."""
        running = asyncio.current_task()
        assert running is not None
        keeper = asyncio.create_task(self._keep_lease(job, running, lease), name=f"lease-of-job-{job.id}")
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, job: Job, running: asyncio.Task[None], lease: _Lease) -> None:
        seconds = self.cfg.lease_seconds
        expires = job.claimed_at + seconds  # as far as this daemon can tell (its clock, from the claim's sending)
        while True:
            await asyncio.sleep(seconds / 3)
            sent = time.monotonic()
            kept: bool | None = None  # None: unknown (the database did not answer in time)
            with contextlib.suppress(DatabaseUnavailable, TimeoutError):
                async with asyncio.timeout(max(0.0, expires - seconds / 3 - sent)):
                    kept = await self.queue.renew(job)
            if kept:
                expires = sent + seconds
            elif kept is False or time.monotonic() >= expires - seconds / 3:
                log.warning(
                    "job %s (%s): its lease %s; stopping it (another daemon may take it over)",
                    job.id,
                    job.kind,
                    "was taken over" if kept is False else "could not be renewed",
                    extra={"job_id": job.id},
                )
                lease.lost = True
                running.cancel()
                return

    async def _lost(self, job: Job) -> None:
        """After the lease was lost: back to the queue if the claim is still this one's (nobody took it
        over); else, or when the database does not answer, nothing: its lease runs out for any daemon."""
        with contextlib.suppress(DatabaseUnavailable):
            await self.queue.postpone(job, 0, "its lease could not be renewed")

    def _failed(self, job: Job, error: str) -> Callable[[], Awaitable[bool]]:
        log.warning(
            "job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, error, extra={"job_id": job.id}
        )
        if job.attempts >= self.queue.cfg.max_attempts:  # the queue leaves it failed (JobQueue.fail)
            self._out_of_attempts.append((job.id, job.kind, error))
        return functools.partial(self.queue.fail, job, error)

    async def _record(self, outcome: Callable[[], Awaitable[bool]]) -> bool:
        """Write a job's outcome; False when its claim was taken over meanwhile. While the database refuses
        writes, try again every poll interval: the job stays 'running' in the table meanwhile (its lease runs
        out, and any daemon takes it over; on SQLite the next start requeues it)."""
        while True:
            try:
                return await outcome()
            except DatabaseUnavailable:
                await asyncio.sleep(self.cfg.poll_interval)

    async def run_until_idle(self, within: float = 30.0, horizon: float = 5.0) -> None:
        """Run due jobs here (beside the worker's own loops, when they run) until none runs and none is due
        within `horizon` seconds on a reachable server (a retry's backoff included); then JobsFailed naming
        the jobs that ran out of attempts meanwhile, whichever loop ran them. For tests and tools: TimeoutError
        when that takes more than `within` seconds."""
        seen = len(self._out_of_attempts)
        async with asyncio.timeout(within):
            while True:
                job = await self._claim_next()
                if job is not None:
                    await self._run_claimed(job)
                    continue
                if self._running == 0 and not await self._due(horizon):
                    break
                # Something runs elsewhere or is due soon: look again when a job is queued or ends.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.poll_interval):
                        await self.queue.wakeup.wait()
                self.queue.wakeup.clear()
        failed = self._out_of_attempts[seen:]
        if failed:
            raise JobsFailed(failed)

    async def _due(self, horizon: float) -> bool:
        ids = self.reachable()
        if not ids:
            return False
        marks = ",".join("?" * len(ids))
        return bool(
            await self.queue.db.fetchval(
                f"SELECT 1 FROM jobs WHERE (status = '{QUEUED}' AND run_after <= ? OR status = '{RUNNING}') "
                f"AND server_id IN ({marks}) LIMIT 1",
                (self.queue.clock() + horizon, *ids),
            )
        )
