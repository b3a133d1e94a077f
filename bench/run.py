"""cdnstore's benchmarks: each figure beside a floor measured in the same run, on the same machine.

    python3 dev.py bench                          (or: make bench) every scenario
    python3 dev.py bench replication scale        those scenarios (by name), or: --only 36

Starts real SeaweedFS servers and `cdnstore serve` (a separate process, as in production), and for
scenarios 9-11 a throwaway PostgreSQL cluster (Debian's postgresql-15), drives them with wrk (Debian's
package) and a few clients (scenario E runs the daemon under valgrind's callgrind), prints a table (figure, cdnstore, floor, ratio, goal)
and writes bench/results/latest.json. Absolute numbers depend on the machine; the ratios are the point.
Each scenario is a module of this package (bench/<name>.py); they run in the order below, those that share
a stage (the servers', PostgreSQL) one after the other on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

from testbed.postgres import PgCluster

from . import (
    copy_million,
    deep_scrub,
    engines_download,
    engines_queue,
    every_replica,
    hashing_cost,
    hot_paths,
    instructions,
    parts_upload,
    queue_throughput,
    replication,
    scale,
)
from .figures import Results
from .machine import cpu_model
from .stage import ROOT, Bench, Scenario, servers_stage

# In the order they run. The letters of --only: 1-8 as numbered; A is 10, B is 11, C is 12, D the deep scrub,
# E instructions per request under callgrind.
SCENARIOS: tuple[Scenario, ...] = tuple(
    module.SCENARIO
    for module in (
        hot_paths,
        replication,
        every_replica,
        parts_upload,
        queue_throughput,
        scale,
        engines_download,
        engines_queue,
        copy_million,
        hashing_cost,
        deep_scrub,
        instructions,
    )
)
ALL = "".join(sorted("".join(s.codes for s in SCENARIOS)))


def chosen(args: argparse.Namespace) -> list[Scenario]:
    if args.names:
        return [s for s in SCENARIOS if s.name in args.names]
    return [s for s in SCENARIOS if set(s.codes) & set(args.only)]


@contextlib.asynccontextmanager
async def staged(bench: Bench, needs: str) -> AsyncIterator[None]:
    """The stage a run of scenarios shares, up for them alone (an idle daemon or database would weigh on the
    figures of the scenarios after them)."""
    if needs == "servers":
        async with servers_stage(bench.work) as servers:
            bench.servers = servers
            try:
                yield
            finally:
                bench.servers = None
    elif needs == "postgres":
        # The server's default settings (fsync and synchronous_commit on), as an installation runs it.
        bench.pg = PgCluster(bench.work / "pg", durable=True, max_connections=200)
        bench.pg.start()
        try:
            yield
        finally:
            bench.pg.stop()
            bench.pg = None
    else:
        yield


async def main(args: argparse.Namespace) -> Results:
    results = Results()
    with tempfile.TemporaryDirectory(prefix="cdnbench-", dir=args.workdir) as tmp:
        bench = Bench(args, Path(tmp), results)
        for needs, group in itertools.groupby(chosen(args), key=lambda s: s.needs):
            async with staged(bench, needs):
                for scenario in group:
                    await scenario.run(bench)
    return results


def report(results: Results, args: argparse.Namespace, started: float) -> None:
    rows = [("figure", "cdnstore", "floor", "ratio", "goal", "met")]
    for f in results.figures:
        rows.append(
            (
                f.name,
                f"{f.value:,.2f} {f.unit}",
                "" if f.floor is None else f"{f.floor:,.2f}",
                "" if f.ratio is None else f"{f.ratio:.2f}",
                f.goal,
                "" if f.met is None else ("yes" if f.met else "NO"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
    }
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "seconds": round(time.monotonic() - started),
        "args": vars(args),
        "figures": [asdict(f) | {"ratio": f.ratio} for f in results.figures],
    }
    path = ROOT / "bench" / "results" / "latest.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)} in {out['seconds']} s")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 dev.py bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="SCENARIO",
        help=f"scenarios to run (default: all): {', '.join(s.name for s in SCENARIOS)}",
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per hot-path scenario")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the replicated file (scenario 3)")
    parser.add_argument("--replica-files", type=int, default=50, help="files for scenario 4")
    parser.add_argument("--queue-jobs", type=int, default=5000, help="no-op jobs per server for scenario 5 (x4)")
    parser.add_argument("--scale-files", type=int, default=1_000_000, help="files for scenario 6")
    parser.add_argument("--workdir", default=None, help="where the temporary data goes (default: the system's)")
    parser.add_argument("--upload-mib", type=int, default=1024, help="size of the file uploaded in parts (scenario 8)")
    parser.add_argument("--copy-files", type=int, default=1_000_000, help="files for scenario 11 (copy-database)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating wrk rounds of scenario 9")
    parser.add_argument("--hash-mib", type=int, default=256, help="size of the file copied in scenario 12")
    parser.add_argument(
        "--scrub-mib", type=int, default=512, help="MiB uploaded for the deep scrub (each stored twice)"
    )
    parser.add_argument("--scrub-files", type=int, default=8, help="files the deep scrub's MiB are cut into")
    parser.add_argument("--scrub-rounds", type=int, default=3, help="deep scrubs and raw reads, alternating")
    parser.add_argument(
        "--only",
        default=ALL,
        help="the scenarios to run by letter, e.g. --only 56 (1, 2 and 7 run together; A is 10, B is 11, C is 12, "
        "D the deep scrub, E instructions per request)",
    )
    return parser


def cli(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    unknown = sorted(set(args.names) - {s.name for s in SCENARIOS})
    if unknown:
        p.error(f"no scenario {', '.join(unknown)} (there are: {', '.join(s.name for s in SCENARIOS)})")
    if shutil.which("wrk") is None and any(s.name in ("hot_paths", "engines_download") for s in chosen(args)):
        print("bench: wrk is missing (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    results = asyncio.run(main(args))
    report(results, args, started)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
