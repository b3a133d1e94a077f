"""The job worker: claims due jobs from the queue (job_queue.py) and runs their handlers, `workers` at
once and at most `per_server` against one server; records each outcome (done, retried with backoff,
postponed, failed) through the queue."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from .config import JobsConfig
from .errors import DatabaseUnavailable, StorageError
from .job_queue import Handler, Job, JobQueue, Retry

log = logging.getLogger(__name__)


class JobWorker:
    """Runs due jobs: `workers` at once, at most `per_server` against one server, servers in turn so
    that a big fill of one server does not starve the others. Jobs for a server that is off or down
    wait in the queue."""

    def __init__(self, queue: JobQueue, reachable: Callable[[], list[int]], handlers: dict[str, Handler],
                 cfg: JobsConfig, *, health_interval: float) -> None:
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
        ids = self.reachable()
        if not ids:
            return False
        marks = ",".join("?" * len(ids))
        return bool(await self.queue.db.fetchval(
            f"SELECT 1 FROM jobs WHERE status IN ('queued', 'running') AND run_after <= ? "
            f"AND server_id IN ({marks}) LIMIT 1", (self.queue.clock() + horizon, *ids)))
