"""Scenario 11: `cdnstore copy-database` of a SQLite installation of a million files into an empty PostgreSQL
database: wall time, the copying process's peak RSS (bench/timed.py), and where the time goes."""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cdnstore.db import SqliteDatabase
from testbed.ports import unused_port
from testbed.postgres import PgCluster

from .figures import Figure, Results
from .measure import MIB, cluster_cpu, load
from .seed import build_files
from .stage import ROOT, TOKEN, Bench, Scenario, bench_daemon


async def run(bench: Bench) -> None:
    print(f"scenario 11: copy-database of {bench.args.copy_files:,} files", flush=True)
    await copy_million(bench.results, bench.args, bench.work, bench.need_pg())


SCENARIO = Scenario("copy_million", "B", "postgres", run)


def wal_bytes(pg: PgCluster) -> int:
    """WAL bytes the cluster has written since it started (pg_stat_wal)."""
    return int(pg.query("SELECT wal_bytes FROM pg_stat_wal"))


def phases(progress: str, total: float) -> str:
    """Seconds per phase of copy-database, from its time-stamped progress lines: the start (Python, the
    migration), each table (from the end of the one before), the foreign keys' check, sequences and commit."""
    marks = [
        (float(t), rest)
        for t, _, rest in (line.strip().partition(" ") for line in progress.splitlines())
        if t.replace(".", "", 1).isdigit()
    ]
    out, last = [], 0.0
    for when, line in marks:
        if line.startswith("cdnstore: migrating"):
            out.append(f"start {when:.1f} s")
            last = when
        elif " rows copied" in line:
            if when - last >= 1:
                out.append(f"{line.split(':')[1].strip()} {when - last:.1f} s")
            last = when
        elif "foreign keys" in line:
            out.append(f"foreign keys, sequences and commit {total - when:.1f} s")
    return ", ".join(out)


async def copy_million(results: Results, args: argparse.Namespace, work: Path, pg: PgCluster) -> None:
    """11. `cdnstore copy-database` of a SQLite installation of N files (each a version on 3 servers and a
    history row) into an empty PostgreSQL database: wall time, peak RSS of the copying process, and where
    the time goes (its CPU, PostgreSQL's CPU, and a bare read of the same rows from SQLite)."""
    files = args.copy_files
    daemon = bench_daemon(work / "copy", unused_port(), TOKEN)  # its config: the source's path
    path = work / "copy" / "cdnstore.sqlite3"
    db = SqliteDatabase(path)
    await db.open()
    started = time.monotonic()
    await build_files(db, files)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO history (uuid, user_id, event, object_id, data, created_at) "
            "SELECT lower(hex(randomblob(16))), owner_id, 'file.stored', uuid, '{\"server\": \"s1\"}', "
            "created_at FROM files"
        )
    await db.close()
    built = time.monotonic() - started
    conn = sqlite3.connect(path)
    rows = sum(
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("users", "servers", "files", "versions", "replicas", "history")
    )
    started = time.monotonic()
    for table in ("users", "servers", "files", "versions", "replicas", "history"):
        cur = conn.execute(f"SELECT * FROM {table}")
        while cur.fetchmany(5000):
            pass
    read = time.monotonic() - started
    conn.close()
    url = pg.create_database("copied")
    wal = -wal_bytes(pg)
    before, said = cluster_cpu(pg), load()
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.timed",
            sys.executable,
            "-m",
            "cdnstore",
            "--config",
            str(daemon.config),
            "copy-database",
            url,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    server = cluster_cpu(pg) - before
    wal += wal_bytes(pg)
    code, maxrss_kib, cpu = out.stdout.split()
    if code != "0":
        raise RuntimeError(f"copy-database failed: {out.stderr}")
    print(out.stderr, flush=True)
    results.add(
        Figure(
            f"11. copy-database of {files:,} files ({rows:,} rows): seconds",
            elapsed,
            "s",
            None,
            "",
            None,
            f"{rows / elapsed:,.0f} rows/s; source built in {built:.0f} s; {said}",
        )
    )
    results.add(Figure("11. copy-database: peak RSS of the copying process", int(maxrss_kib) / 1024, "MiB"))
    results.add(
        Figure(
            "11. copy-database: its CPU seconds / wall seconds",
            float(cpu),
            "s",
            elapsed,
            "",
            None,
            f"PostgreSQL's CPU {server:.1f} s; a bare fetchmany of the same rows from SQLite {read:.1f} s; "
            f"WAL written {wal / MIB:,.0f} MiB; {phases(out.stderr, elapsed)}",
        )
    )
