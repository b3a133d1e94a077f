"""Scenario 10: no-op jobs claimed and completed per second (the queue's own cost): SQLite with one daemon,
PostgreSQL with one and with two (and two with synchronous_commit off), each on a fresh queue of the same
jobs; each daemon a process of its own (bench/queue_worker.py), all let go at once."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from cdnstore.config import DatabaseConfig, JobsConfig
from cdnstore.db import connect, initialize
from cdnstore.job_queue import JobQueue
from testbed.postgres import PgCluster

from .figures import Figure, Results
from .measure import cluster_cpu, load
from .seed import seed_versions
from .stage import ROOT, Bench, Scenario


async def run(bench: Bench) -> None:
    print("scenario 10: the job queue, SQLite with 1 daemon against PostgreSQL with 2", flush=True)
    await engines_queue(bench.results, bench.args, bench.work, bench.need_pg())


SCENARIO = Scenario("engines_queue", "A", "postgres", run)


async def queue_jobs(path: Path, url: str, files: int) -> None:
    """`files` stored versions and 4 servers, then a fill of each server: 4 x `files` queued copy jobs."""
    db = connect(DatabaseConfig(path=str(path), url=url))
    await db.open()
    async with db.transaction() as tx:
        await seed_versions(tx, files)
        queue = JobQueue(db, JobsConfig())
        for sid in range(1, 5):
            await queue.enqueue_fill(tx, sid, "z")
    await db.close()


async def drain_with(daemons: int, path: Path, url: str) -> tuple[float, float]:
    """Start `daemons` worker processes on the database, let them go at once, wait for the queue to be
    empty: (seconds from go to empty, their CPU seconds in all)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.queue_worker",
            str(path),
            url,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(daemons)
    ]
    for proc in procs:
        assert proc.stdout is not None and (await proc.stdout.readline()).strip() == b"ready"
    started = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outs = [json.loads((await proc.communicate())[0]) for proc in procs]
    elapsed = time.monotonic() - started
    return elapsed, sum(o["cpu"] for o in outs)


async def engines_queue(results: Results, args: argparse.Namespace, work: Path, pg: PgCluster) -> None:
    """10. Jobs claimed and completed per second (no-op handlers: the queue's own cost): SQLite with one
    daemon, PostgreSQL with one and with two, each on a fresh queue of the same 4 x N jobs."""
    files = args.queue_jobs
    rates: dict[str, float] = {}
    for n, (name, daemons, engine) in enumerate(
        (
            ("sqlite, 1 daemon", 1, "sqlite"),
            ("postgres, 1 daemon", 1, "postgres"),
            ("postgres, 2 daemons", 2, "postgres"),
            ("postgres, 2 daemons, synchronous_commit off", 2, "postgres"),
        )
    ):
        path, url = work / f"queue-{n}.sqlite3", ""
        if engine == "postgres":
            url = pg.create_database(f"queue{n}")
            if "synchronous_commit off" in name:  # commits no longer wait for their WAL flush: is that the bound?
                url += "?options=-c%20synchronous_commit%3Doff"
        else:
            initialize(path)
        await queue_jobs(path, url, files)
        before, said = cluster_cpu(pg), load()
        elapsed, cpu = await drain_with(daemons, path, url)
        rates[name] = 4 * files / elapsed
        server = f"; PostgreSQL CPU {cluster_cpu(pg) - before:.1f} s" if engine == "postgres" else ""
        results.add(
            Figure(
                f"10. queue on {name}: no-op jobs claimed and completed per second",
                rates[name],
                "jobs/s",
                None,
                "",
                None,
                f"{4 * files} jobs in {elapsed:.1f} s; daemons' CPU {cpu:.1f} s{server}; {said}",
            )
        )
    results.add(
        Figure(
            "10. queue: PostgreSQL with 2 daemons / SQLite with 1",
            rates["postgres, 2 daemons"],
            "jobs/s",
            rates["sqlite, 1 daemon"],
        )
    )
