"""The deep scrub's throughput against a raw read of the same bytes, in one run.

    .venv/bin/python bench/deep_scrub.py [--mib 512] [--files 8]

Starts two real SeaweedFS servers and `cdnstore serve`, uploads `--files` files of `--mib` MiB in all
(each copied to the second server), reads every replica once to warm the servers' caches, then `--rounds`
times, alternating: with `cdnstore scrub --deep` (streamed and hashed with SHA-256, its rate limit lifted;
each pass reads every replica, as the CLI's pass takes every replica verified before it started) and
plainly (cdnstore's own `Storage.read`, the pass's reader, in this process, pieces thrown away: the floor,
so the ratio is the cost of hashing and recording). Prints the
medians and their ratio and writes bench/results/deep_scrub.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import cpu_model  # bench/ is the script's folder: on sys.path
from run import MIB, ROOT, Client, Daemon, Figure, Results, free_port, random_stream, start_with_servers, weed_telling

from cdnstore.storage import Storage

NAMES = ("dallas", "newyork")


async def raw_read(storage: Storage, targets: list[Any], keys: list[str]) -> tuple[int, float]:
    """The floor: every object of every server read through the same client code, pieces thrown away."""
    total, started = 0, time.monotonic()
    for t in targets:
        for key in keys:
            async for piece in storage.read(t, key):
                total += len(piece)
    return total, time.monotonic() - started


def deep_scrub(daemon: Daemon) -> tuple[int, float]:
    done = subprocess.run(
        [sys.executable, "-m", "cdnstore", "--config", str(daemon.config), "scrub", "--deep"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "CDNSTORE_SCRUB_DEEP_RATE": str(1 << 40)},
    )
    found = re.search(r"verified=(\d+) corrupt=(\d+).* bytes_read=(\d+) .*seconds=([\d.]+)", done.stdout)
    assert found is not None and found[2] == "0", done.stdout
    return int(found[3]), float(found[4])


async def main(args: argparse.Namespace) -> Results:
    results = Results()
    with tempfile.TemporaryDirectory(prefix="cdnbench-deep-") as tmp:
        work, port, token = Path(tmp), free_port(), "bench-events-token"
        weed = weed_telling(work / "s3", list(NAMES), port, token)
        await weed.start()
        daemon = Daemon(work, port, token)
        client = Client(daemon.url)
        storage = Storage()
        try:
            await start_with_servers(daemon, client, weed, list(NAMES), "bench")
            size = args.mib * MIB // args.files
            keys = []
            for n in range(args.files):
                announced = await client.call("POST", "/api/v1/files", {"name": f"f{n}.bin", "size": size})
                await client.put(announced["upload"], random_stream(size))
                keys.append(announced["upload"]["url"].split("?")[0].rsplit("/", 1)[1])
            db = sqlite3.connect(work / "cdnstore.sqlite3", timeout=10)
            async with asyncio.timeout(600):
                while db.execute("SELECT count(*) FROM replicas").fetchone()[0] < len(NAMES) * args.files:
                    await asyncio.sleep(0.1)
            targets = [weed.target(n, "bench") for n in NAMES]
            await raw_read(storage, targets, keys)  # warm-up (and the clients made): both read alike after it
            raws, scrubs = [], []
            for _ in range(args.rounds):  # alternating, medians compared: the machine's noise spreads over both
                scrubbed, scrub_seconds = deep_scrub(daemon)
                read, raw_seconds = await raw_read(storage, targets, keys)
                assert scrubbed == read, (scrubbed, read)
                scrubs.append(scrubbed / MIB / scrub_seconds)
                raws.append(read / MIB / raw_seconds)
            value, floor = statistics.median(scrubs), statistics.median(raws)
            results.add(
                Figure(
                    f"deep scrub of {read // MIB} MiB ({len(NAMES)} x {args.files} replicas): MiB/s",
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
            daemon.stop()
            await weed.stop()
    return results


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512, help="MiB uploaded in all (each stored twice)")
    parser.add_argument("--files", type=int, default=8, help="files they are cut into")
    parser.add_argument("--rounds", type=int, default=3, help="deep scrubs and raw reads, alternating")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "cpu": cpu_model()},
        "figures": [f.__dict__ | {"ratio": f.ratio} for f in results.figures],
    }
    path = ROOT / "bench" / "results" / "deep_scrub.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
