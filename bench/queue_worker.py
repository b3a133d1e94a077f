"""A daemon's job worker alone, as a process of its own (scenario 10: several of them on one database).

    python -m bench.queue_worker DATABASE_PATH DATABASE_URL

Prints `ready`, waits for a line on stdin (so that all of them start together), runs the worker's loops with
no-op handlers until the queue is empty, then prints {"done": jobs it ran, "cpu": its CPU seconds meanwhile}.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from cdnstore.config import DatabaseConfig, JobsConfig
from cdnstore.db import connect
from cdnstore.job_queue import CHANNEL, Job, JobQueue
from cdnstore.job_worker import JobWorker
from cdnstore.sealing import Sealer
from cdnstore.servers import ServerRegistry
from cdnstore.storage import Storage


async def main(path: str, url: str) -> None:
    db = connect(DatabaseConfig(path=path, url=url))
    await db.open()
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    cfg = JobsConfig(workers=8, per_server=2)
    done = 0

    async def noop(job: Job) -> None:
        nonlocal done
        done += 1

    queue = JobQueue(db, cfg)
    await db.listen(CHANNEL, queue.wake)  # wake-ups from the other daemon's enqueues, as app.py wires them
    worker = JobWorker(queue, registry.available_ids, {"copy": noop, "remove": noop}, cfg, health_interval=1)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    before = resource.getrusage(resource.RUSAGE_SELF)
    # The worker's loops alone: no start-up work of run() is measured
    loops = [asyncio.create_task(worker._loop()) for _ in range(cfg.workers)]
    while await db.fetchval("SELECT count(*) FROM jobs"):
        await asyncio.sleep(0.05)
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    await db.close()
    use = resource.getrusage(resource.RUSAGE_SELF)
    cpu = use.ru_utime + use.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"done": done, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
