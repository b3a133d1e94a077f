"""Scenario E: instructions per request on the download and upload links, counted under valgrind's callgrind,
against the floor's bare aiohttp handler counted the same way.

A count of instructions does not move with the machine's load, where scenario 1's CPU time per request moves
by several per cent between two runs of one code: this is the figure to compare two trees by (run each tree's
bench; docs/performance.md, "Issue 25's fourth session"). The daemon runs under `valgrind --tool=callgrind`
with its instrumentation off until a window starts (`callgrind_control -i on`, `-z`) and a dump at its end
(`-d`); its background work is made quiet (bench.stage.QUIET). What is left of it, the loop's timers and the
history and statistics flushers, runs by wall time, and a request takes some 50 times longer under valgrind:
an idle window before the requests gives its rate, and each window's count is net of it for its length (an
idle window after them is shown beside the figures, to tell whether that rate held). Only the main thread is
counted (`--separate-threads`): the links run there.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from itertools import count
from pathlib import Path

import aiohttp

from testbed.ports import unused_port

from .figures import Figure, Results
from .measure import listening
from .stage import US_IP, Bench, Scenario, floor_server, servers_stage

REQUESTS = 300  # per window
IN_FLIGHT = 8
WARM_UP = 200
IDLE_SECONDS = 10.0


async def run(bench: Bench) -> None:
    print("scenario E: instructions per request under callgrind", flush=True)
    if shutil.which("valgrind") is None:
        raise RuntimeError("scenario E needs valgrind (python3 dev.py bench installs it)")
    await instructions(bench.results, bench.work / "instructions")


SCENARIO = Scenario("instructions", "E", "", run)


class Callgrind:
    """A process run under callgrind, its main thread's instructions counted in windows."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.out = folder / "callgrind"
        self.command = (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={self.out}.%p",
            f"--log-file={self.out}.%p.log",
        )
        self._dumps = count(1)

    async def window(self, pid: int, work: Callable[[], Awaitable[None]]) -> tuple[int, float]:
        """(main thread's instructions, seconds) while `work` runs."""
        await self._control(pid, "-i", "on")
        await self._control(pid, "-z")
        started = time.monotonic()
        await work()
        elapsed = time.monotonic() - started
        await self._control(pid, "-d")
        await self._control(pid, "-i", "off")
        dump = self.out.parent / f"{self.out.name}.{pid}.{next(self._dumps)}-01"
        totals = re.search(r"^(?:totals|summary): (\d+)", dump.read_text(), re.MULTILINE)
        assert totals is not None, dump
        return int(totals[1]), elapsed

    async def idle_rate(self, pid: int) -> float:
        """Instructions a second the main thread spends with no request."""
        spent, seconds = await self.window(pid, lambda: asyncio.sleep(IDLE_SECONDS))
        return spent / seconds

    @staticmethod
    async def _control(pid: int, *args: str) -> None:
        await asyncio.to_thread(subprocess.run, ["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def requests(send: Callable[[int], Awaitable[None]], n: int) -> None:
    """`send(i)` for i < n, IN_FLIGHT at a time."""
    numbers = iter(range(n))

    async def sender() -> None:
        for i in numbers:
            await send(i)

    await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))


async def per_request(grind: Callgrind, pid: int, send: Callable[[int], Awaitable[None]], idle: float) -> float:
    spent, seconds = await grind.window(pid, lambda: requests(send, REQUESTS))
    return (spent - idle * seconds) / REQUESTS


async def instructions(results: Results, work: Path) -> None:
    floor = await floor_instructions(work / "floor")
    grind = Callgrind(work / "daemon")
    async with servers_stage(work / "stage", under=grind.command, quiet=True) as stage:
        assert stage.daemon.proc is not None
        pid, url, http = stage.daemon.proc.pid, stage.daemon.url, stage.client.http
        headers = {"Authorization": f"Bearer {stage.client.token}", "X-Forwarded-For": US_IP}
        tag = f"{time.time_ns()}"

        async def download(i: int) -> None:
            link = f"{url}/api/v1/files/{stage.small_file_id}/download"
            async with http.get(link, headers=headers, allow_redirects=False) as resp:
                assert resp.status < 400, resp.status
                await resp.read()

        async def upload(i: int) -> None:
            body = {"name": f"bench-{tag}-{i}.bin", "size": 1048576}
            async with http.post(f"{url}/api/v1/files", headers=headers, json=body) as resp:
                assert resp.status < 400, resp.status
                await resp.read()

        await requests(download, WARM_UP)
        await requests(lambda i: upload(REQUESTS + i), WARM_UP)
        before = await grind.idle_rate(pid)
        down = await per_request(grind, pid, download, before)
        up = await per_request(grind, pid, upload, before)
        after = await grind.idle_rate(pid)
    drift = f"idle {before / 1e6:.2f} M/s before, {after / 1e6:.2f} M/s after"
    results.add(Figure("E. download link: instructions per request", down / 1e3, "k", floor / 1e3, "", None, drift))
    results.add(Figure("E. upload link: instructions per request", up / 1e3, "k", floor / 1e3, "", None, drift))


async def floor_instructions(folder: Path) -> float:
    """The floor's bare handler, per request, counted the same way (it has no background work)."""
    grind, port = Callgrind(folder), unused_port()
    hello = floor_server(port, under=grind.command)
    try:
        await listening(port, within=300)
        async with aiohttp.ClientSession() as http:

            async def get(i: int) -> None:
                async with http.get(f"http://127.0.0.1:{port}/") as resp:
                    await resp.read()

            await requests(get, WARM_UP)
            spent, _ = await grind.window(hello.pid, lambda: requests(get, REQUESTS))
    finally:
        hello.terminate()
        hello.wait()
    return spent / REQUESTS
