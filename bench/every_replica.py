"""Scenario 4: small uploads, each timed from its PUT to its third replica (detroit made active first, so
that the zone has three servers)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import time

from testbed.daemon import Daemon

from .figures import Figure, Results
from .measure import MIB
from .stage import Bench, Client, Scenario, server_id


async def run(bench: Bench) -> None:
    print("scenario 4: upload to every replica", flush=True)
    stage = bench.need_servers()
    client = stage.client
    await client.call("PATCH", f"/api/v1/servers/{(await server_id(client, 'detroit'))}", {"is_active": True})
    await every_replica(bench.results, stage.daemon, client, bench.args.replica_files)


SCENARIO = Scenario("every_replica", "4", "servers", run)


async def every_replica(results: Results, daemon: Daemon, client: Client, count: int) -> None:
    db = sqlite3.connect(daemon.config.parent / "cdnstore.sqlite3", timeout=10)
    data = os.urandom(MIB)
    latencies = []
    for i in range(count):
        announced = await client.call("POST", "/api/v1/files", {"name": f"small-{i}.bin", "size": len(data)})
        key = announced["upload"]["url"].split("?")[0].rsplit("/", 1)[1]
        await client.put(announced["upload"], data)
        put_done = time.monotonic()
        async with asyncio.timeout(60):
            while (
                db.execute(
                    "SELECT count(*) FROM replicas r JOIN versions v ON v.id = r.version_id WHERE v.object_key = ?",
                    (key,),
                ).fetchone()[0]
                < 3
            ):
                await asyncio.sleep(0.005)
        latencies.append(time.monotonic() - put_done)
    p50 = statistics.median(latencies)
    results.add(
        Figure(
            f"4. 1 MiB upload to its 3rd replica: p50 over {count}",
            p50 * 1000,
            "ms",
            None,
            "< 1000 ms",
            p50 < 1.0,
            f"p90 {statistics.quantiles(latencies, n=10)[-1] * 1000:.0f} ms",
        )
    )
