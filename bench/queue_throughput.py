"""Scenario 5: the job queue's own cost on SQLite: no-op jobs claimed and completed per second by one
worker (in this process), from fills of four servers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cdnstore.config import JobsConfig
from cdnstore.db import SqliteDatabase as Database
from cdnstore.job_queue import Job, JobQueue
from cdnstore.job_worker import JobWorker
from cdnstore.sealing import Sealer
from cdnstore.servers import ServerRegistry
from cdnstore.storage import Storage

from .figures import Figure, Results
from .seed import seed_versions
from .stage import Bench, Scenario


async def run(bench: Bench) -> None:
    print("scenario 5: the job queue", flush=True)
    await queue_throughput(bench.results, bench.work, bench.args.queue_jobs)


SCENARIO = Scenario("queue_throughput", "5", "", run)


async def queue_throughput(results: Results, work: Path, jobs: int) -> None:
    db = Database(work / "queue.sqlite3")
    await db.open()
    async with db.transaction() as tx:
        await seed_versions(tx, jobs)
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    queue = JobQueue(db, JobsConfig())
    await db.listen("jobs", queue.wake)
    started = time.monotonic()
    async with db.transaction() as tx:
        for sid in range(1, 5):
            await queue.enqueue_fill(tx, sid, "z")
    enqueued = time.monotonic() - started

    async def noop(job: Job) -> None:
        return None

    worker = JobWorker(
        queue,
        registry.available_ids,
        {"copy": noop, "remove": noop},
        JobsConfig(workers=8, per_server=2),
        health_interval=1,
    )
    started = time.monotonic()
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(600):
        while await db.fetchval("SELECT count(*) FROM jobs"):
            await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await db.close()
    total = 4 * jobs
    results.add(
        Figure(
            "5. queue: no-op jobs claimed and completed per second",
            total / elapsed,
            "jobs/s",
            None,
            ">= 2000 jobs/s",
            total / elapsed >= 2000,
            f"{total} jobs; enqueued at {total / enqueued:,.0f}/s",
        )
    )
