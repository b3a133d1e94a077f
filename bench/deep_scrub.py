"""The deep scrub's throughput against a raw read of the same bytes, in one run.

Two real SeaweedFS servers and `cdnstore serve`; `--scrub-files` files of `--scrub-mib` MiB in all (each
copied to the second server); every replica read once to warm the servers' caches, then `--scrub-rounds`
times, alternating: `cdnstore scrub --deep` (streamed and hashed with SHA-256, its rate limit lifted; each
pass reads every replica, as the CLI's pass takes every replica verified before it started) and plainly
(cdnstore's own `Storage.read`, the pass's reader, in this process, pieces thrown away: the floor, so the
ratio is the cost of hashing and recording). The medians and their ratio.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.ports import unused_port

from .figures import Figure, Results
from .measure import MIB, random_stream
from .stage import TOKEN, Bench, Client, Scenario, bench_daemon, start_with_servers, stop, weed_telling

NAMES = ("dallas", "newyork")


async def run(bench: Bench) -> None:
    args = bench.args
    print(f"deep scrub: {args.scrub_mib} MiB in {args.scrub_files} files, scrubbed and read alternately", flush=True)
    await scrub_against_read(
        bench.results, bench.work / "deep-scrub", args.scrub_mib, args.scrub_files, args.scrub_rounds
    )


SCENARIO = Scenario("deep_scrub", "D", "", run)


async def raw_read(storage: Storage, targets: list[Any], keys: list[str]) -> tuple[int, float]:
    """The floor: every object of every server read through the same client code, pieces thrown away."""
    total, started = 0, time.monotonic()
    for t in targets:
        for key in keys:
            async for piece in storage.read(t, key):
                total += len(piece)
    return total, time.monotonic() - started


def deep_scrub(daemon: Daemon) -> tuple[int, float]:
    done = daemon.cli("scrub", "--deep", env={"CDNSTORE_SCRUB_DEEP_RATE": str(1 << 40)})
    found = re.search(r"verified=(\d+) corrupt=(\d+).* bytes_read=(\d+) .*seconds=([\d.]+)", done.stdout)
    assert found is not None and found[2] == "0", done.stdout
    return int(found[3]), float(found[4])


async def scrub_against_read(results: Results, work: Path, mib: int, files: int, rounds: int) -> None:
    port = unused_port()
    weed = weed_telling(work / "s3", list(NAMES), port, TOKEN)
    await weed.start()
    daemon = bench_daemon(work, port, TOKEN)
    client = Client(daemon.url)
    storage = Storage()
    try:
        await start_with_servers(daemon, client, weed, list(NAMES), "bench")
        size = mib * MIB // files
        keys = []
        for n in range(files):
            announced = await client.call("POST", "/api/v1/files", {"name": f"f{n}.bin", "size": size})
            await client.put(announced["upload"], random_stream(size))
            keys.append(announced["upload"]["url"].split("?")[0].rsplit("/", 1)[1])
        db = sqlite3.connect(work / "cdnstore.sqlite3", timeout=10)
        async with asyncio.timeout(600):
            while db.execute("SELECT count(*) FROM replicas").fetchone()[0] < len(NAMES) * files:
                await asyncio.sleep(0.1)
        targets = [weed.target(n, "bench") for n in NAMES]
        await raw_read(storage, targets, keys)  # warm-up (and the clients made): both read alike after it
        raws, scrubs = [], []
        for _ in range(rounds):  # alternating, medians compared: the machine's noise spreads over both
            scrubbed, scrub_seconds = deep_scrub(daemon)
            read, raw_seconds = await raw_read(storage, targets, keys)
            assert scrubbed == read, (scrubbed, read)
            scrubs.append(scrubbed / MIB / scrub_seconds)
            raws.append(read / MIB / raw_seconds)
        value, floor = statistics.median(scrubs), statistics.median(raws)
        results.add(
            Figure(
                f"deep scrub of {read // MIB} MiB ({len(NAMES)} x {files} replicas): MiB/s",
                value,
                "MiB/s",
                floor,
                ">= 80 % of a raw read",
                value / floor >= 0.8,
            )
        )
    finally:
        await storage.close()
        await client.http.close()
        await stop(daemon)
        await weed.stop()
