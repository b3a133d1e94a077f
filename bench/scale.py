"""Scenario 6: a million files (set-based SQL, no API): the first page of the biggest owner's files, the fill
of a new server, the database's bytes per file."""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path

from cdnstore.config import Config
from cdnstore.content import Content
from cdnstore.db import SqliteDatabase as Database
from cdnstore.files import Files
from cdnstore.job_queue import JobQueue
from cdnstore.sealing import Sealer
from cdnstore.servers import ServerRegistry
from cdnstore.storage import Storage

from .figures import Figure, Results
from .measure import MIB
from .seed import build_files
from .stage import Bench, Scenario


async def run(bench: Bench) -> None:
    print(f"scenario 6: scale, {bench.args.scale_files:,} files", flush=True)
    await scale(bench.results, bench.work, bench.args.scale_files)


SCENARIO = Scenario("scale", "6", "", run)


async def scale(results: Results, work: Path, files: int) -> None:
    path = work / "scale.sqlite3"
    db = Database(path)
    await db.open()
    started = time.monotonic()
    await build_files(db, files)
    built = time.monotonic() - started
    await db.close()
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.close()
    db = Database(path)
    await db.open()
    config = Config()
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    queue = JobQueue(db, config.jobs)
    service = Files(db, Storage(), registry, queue, Content(db, queue, registry.by_internal_id), config)
    timings = []
    for _ in range(200):
        t = time.perf_counter()
        rows = await service.page(1, 50, None, None)
        timings.append((time.perf_counter() - t) * 1000)
        assert len(rows) == 51
    p99 = statistics.quantiles(timings, n=100)[98]
    results.add(
        Figure(
            f"6. scale: first page of files of a user with {files // 10:,} files, p99",
            p99,
            "ms",
            None,
            "< 20 ms",
            p99 < 20,
            f"p50 {statistics.median(timings):.2f} ms",
        )
    )
    started = time.monotonic()
    async with db.transaction() as tx:
        await tx.execute("UPDATE servers SET is_active = 1 WHERE id = 4")
        count = await queue.enqueue_fill(tx, 4, "USA")
    fill = time.monotonic() - started
    assert count == files
    results.add(
        Figure(
            f"6. scale: enqueue the fill of a new server in a zone of {files:,} files",
            fill,
            "s",
            None,
            "< 30 s",
            fill < 30,
        )
    )
    await db.close()
    size = path.stat().st_size
    results.add(
        Figure(
            "6. scale: database bytes per file (3 replicas each)",
            size / files,
            "bytes",
            None,
            "",
            None,
            f"{size / MIB:,.0f} MiB for {files:,} files, built in {built:.0f} s",
        )
    )
