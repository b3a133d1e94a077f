"""Scenarios 1, 2 and 7: the download link and the upload link under wrk, against the floor (a bare aiohttp
handler under the same wrk command), and the daemon's memory idle and under the download link's load."""

from __future__ import annotations

import asyncio

from testbed.daemon import Daemon
from testbed.ports import unused_port

from .figures import Figure, Results
from .measure import listening, lua_get, lua_post_files, rss_mib, sample_rss, wrk
from .stage import US_IP, Bench, Client, Scenario, floor_server


async def run(bench: Bench) -> None:
    print("scenarios 1, 2, 7: hot paths with wrk", flush=True)
    stage = bench.need_servers()
    await hot_paths(bench.results, stage.daemon, stage.client, stage.small_file_id, bench.args.seconds)


SCENARIO = Scenario("hot_paths", "127", "servers", run)


async def hot_paths(results: Results, daemon: Daemon, client: Client, file_id: str, seconds: int) -> None:
    hello_port = unused_port()
    hello = floor_server(hello_port)
    await listening(hello_port)
    try:
        floor = wrk(f"http://127.0.0.1:{hello_port}/", lua="", seconds=seconds, pid=hello.pid)
    finally:
        hello.terminate()
        hello.wait()
    headers = {"Authorization": f"Bearer {client.token}", "X-Forwarded-For": US_IP}
    assert daemon.proc is not None
    idle = rss_mib(daemon.proc.pid)
    peak = [idle]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(daemon.proc.pid, peak, stop))
    down = await asyncio.to_thread(
        wrk, f"{daemon.url}/api/v1/files/{file_id}/download", lua=lua_get(headers), seconds=seconds, pid=daemon.proc.pid
    )
    stop.set()
    await sampler
    up = await asyncio.to_thread(
        wrk, f"{daemon.url}/api/v1/files", lua=lua_post_files(headers), seconds=seconds, pid=daemon.proc.pid
    )
    ratio_down, ratio_up = down["rps"] / floor["rps"], up["rps"] / floor["rps"]
    results.add(
        Figure(
            "1. download link: requests/s",
            down["rps"],
            "req/s",
            floor["rps"],
            ">= 50 % of floor",
            ratio_down >= 0.5,
            f"non-2xx {down['non_2xx']:.0f}",
        )
    )
    results.add(
        Figure(
            "1. download link: daemon CPU per request",
            down["cpu_us"],
            "us",
            floor["cpu_us"],
            "<= 2x floor",
            down["cpu_us"] <= 2 * floor["cpu_us"],
        )
    )
    results.add(Figure("1. download link: p50", down["p50_ms"], "ms", floor["p50_ms"]))
    results.add(Figure("1. download link: p99", down["p99_ms"], "ms", floor["p99_ms"], "< 25 ms", down["p99_ms"] < 25))
    results.add(
        Figure(
            "2. upload link: requests/s",
            up["rps"],
            "req/s",
            floor["rps"],
            ">= 30 % of floor",
            ratio_up >= 0.3,
            f"non-2xx {up['non_2xx']:.0f}",
        )
    )
    results.add(Figure("2. upload link: daemon CPU per request", up["cpu_us"], "us", floor["cpu_us"]))
    results.add(Figure("2. upload link: p99", up["p99_ms"], "ms", floor["p99_ms"]))
    results.add(Figure("7. memory: daemon idle RSS", idle, "MiB"))
    results.add(Figure("7. memory: daemon RSS under scenario 1", peak[0], "MiB", idle))
