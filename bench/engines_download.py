"""Scenario 9: the download link on one daemon, SQLite against PostgreSQL (and SQLite with request logs off),
each against the bare aiohttp floor, in alternating rounds of the same wrk command; then the statements an
idle daemon sends PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from testbed.ports import unused_port
from testbed.postgres import PgCluster

from .figures import Figure, Results
from .measure import cluster_cpu, cpu_seconds, lua_get, wrk
from .stage import (
    TOKEN,
    US_IP,
    Bench,
    Client,
    Scenario,
    bench_daemon,
    floor_server,
    start_with_servers,
    stop,
    weed_telling,
)


async def run(bench: Bench) -> None:
    print("scenario 9: the download link, SQLite against PostgreSQL", flush=True)
    await engines_download(bench.results, bench.args, bench.work, bench.need_pg())


SCENARIO = Scenario("engines_download", "9", "postgres", run)


async def engines_download(results: Results, args: argparse.Namespace, work: Path, pg: PgCluster) -> None:
    """9. The download link on one daemon, SQLite against PostgreSQL, each against the bare aiohttp floor,
    in alternating rounds of the same wrk command; the daemons run the default config (request logs on)."""
    names = ["dallas", "newyork"]
    ports = {"sqlite": unused_port(), "postgres": unused_port(), "sqlite, request logs off": unused_port()}
    token = TOKEN
    weed = weed_telling(work / "s3-engines", names, ports["sqlite"], token)
    await weed.start()
    daemons = {
        engine: bench_daemon(
            work / f"daemon-{engine.split(',')[0]}-{port}",
            port,
            token,
            request_logs="logs off" not in engine,
            database_url=pg.create_database("download") if engine == "postgres" else "",
        )
        for engine, port in ports.items()
    }
    clients: dict[str, Client] = {}
    hello_port = unused_port()
    hello = floor_server(hello_port)
    try:
        targets = {"floor": (f"http://127.0.0.1:{hello_port}/", "")}
        for engine, daemon in daemons.items():
            client = clients[engine] = Client(daemon.url)
            await start_with_servers(daemon, client, weed, names, f"bench-{ports[engine]}")
            small = await client.call("POST", "/api/v1/files", {"name": "hot.txt", "size": 5})
            await client.put(small["upload"], b"hello")
            await client.call("POST", f"/api/v1/files/{small['file']['id']}/complete")
            targets[engine] = (
                f"{daemon.url}/api/v1/files/{small['file']['id']}/download",
                lua_get({"Authorization": f"Bearer {client.token}", "X-Forwarded-For": US_IP}),
            )
        best: dict[str, dict[str, float]] = {}
        loads = []
        for _ in range(args.rounds):
            for what, (url, lua) in targets.items():
                loads.append(os.getloadavg()[0])
                proc = daemons[what].proc if what in daemons else hello
                assert proc is not None
                cpu, server = cpu_seconds(proc.pid), cluster_cpu(pg)
                got = await asyncio.to_thread(wrk, url, lua=lua, seconds=args.seconds)
                requests = got["rps"] * args.seconds
                # CPU per request: what the daemon (and PostgreSQL) spent, whatever else the machine ran
                got["cpu_us"] = (cpu_seconds(proc.pid) - cpu) / requests * 1e6
                got["pg_us"] = (cluster_cpu(pg) - server) / requests * 1e6
                print(
                    f"    {what}: {got['rps']:,.0f} req/s, p99 {got['p99_ms']:.1f} ms, "
                    f"{got['cpu_us']:.0f} µs CPU/request (PostgreSQL {got['pg_us']:.0f} µs)",
                    flush=True,
                )
                if what not in best or got["rps"] > best[what]["rps"]:
                    best[what] = got
        statements = await idle_statements(pg)
    finally:
        hello.terminate()
        hello.wait()
        for client in clients.values():
            await client.http.close()
        for daemon in daemons.values():
            await stop(daemon)
        await weed.stop()
    floor = best["floor"]["rps"]
    note = f"best of {args.rounds} alternating rounds; load {min(loads):.1f}-{max(loads):.1f} during them"
    results.add(
        Figure(
            "9. download link: bare aiohttp floor",
            floor,
            "req/s",
            None,
            "",
            None,
            f"{best['floor']['cpu_us']:.0f} µs CPU/request",
        )
    )
    for engine in ("sqlite", "postgres", "sqlite, request logs off"):
        got = best[engine]
        results.add(
            Figure(
                f"9. download link on {engine}: requests/s",
                got["rps"],
                "req/s",
                floor,
                "",
                None,
                f"{note}; p99 {got['p99_ms']:.1f} ms; non-2xx {got['non_2xx']:.0f}; daemon "
                f"{got['cpu_us']:.0f} µs CPU/request, PostgreSQL {got['pg_us']:.0f} µs",
            )
        )
    results.add(
        Figure(
            "9. download link: PostgreSQL / SQLite",
            best["postgres"]["rps"],
            "req/s",
            best["sqlite"]["rps"],
            "",
            None,
            note,
        )
    )
    results.add(
        Figure(
            "9. idle daemon on postgres: statements sent to PostgreSQL per second",
            statements,
            "statements/s",
            None,
            "",
            None,
            "PostgreSQL's log (log_statement = all) over 3 s, after "
            "the rounds; the pool's reset on release counts as one",
        )
    )


async def idle_statements(pg: PgCluster, seconds: float = 3) -> float:
    """Statements per second PostgreSQL ran for an idle daemon, counted in its log with log_statement =
    all (PostgreSQL's view of the daemon's background work: job claims, health checks, flushes)."""
    log = pg.log
    for statement in ("ALTER SYSTEM SET log_statement = 'all'", "SELECT pg_reload_conf()"):
        pg.admin(statement)
    await asyncio.sleep(1)  # every backend has reloaded
    start = log.stat().st_size
    await asyncio.sleep(seconds)
    end = log.stat().st_size
    for statement in ("ALTER SYSTEM RESET log_statement", "SELECT pg_reload_conf()"):
        pg.admin(statement)
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read(end - start).decode(errors="replace").splitlines()
    return (
        sum((" statement: " in line or " execute " in line) and "pg_reload_conf" not in line for line in lines)
        / seconds
    )
