"""The Ceph RGW test bed (testbed/rgw.py) itself: it binds loopback only, dies with the process that
started it, and a new start stops what a crashed run left on its folder.

Each test runs a bed in a Python process of its own and kills that process, as a crash would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from apihelp import wait_for

from testbed.rgw import RgwBed, RgwError, alive

pytestmark = pytest.mark.timeout(180)

# Starts a bed in argv[1], prints its daemons' pids and its port as one JSON line, then waits for stdin
# to close. With argv[2] == "orphan", its daemons do not die with it (a crash that PDEATHSIG missed).
STARTER = """
import asyncio, json, sys
import testbed.rgw as rgwbed
if sys.argv[2] == "orphan":
    rgwbed._die_with_parent = lambda parent: None
async def main():
    bed = rgwbed.RgwBed(sys.argv[1])
    await bed.start()
    print(json.dumps({"pids": [p.pid for p in bed._processes.values()], "port": bed.port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


class Starter:
    """A process that started a bed, and what it said about it."""

    def __init__(self, proc: asyncio.subprocess.Process, pids: list[int], port: int) -> None:
        self.proc, self.pids, self.port = proc, pids, port

    async def crash(self) -> None:
        self.proc.kill()
        await self.proc.wait()


StartInChild = Callable[..., Awaitable[Starter]]


@pytest.fixture
async def start_in_child() -> AsyncIterator[StartInChild]:
    started: list[Starter] = []

    async def start(folder: Path, mode: str = "normal") -> Starter:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            STARTER,
            str(folder),
            mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line, "the bed did not start in the child process"
        said = json.loads(line)
        starter = Starter(proc, said["pids"], said["port"])
        started.append(starter)
        return starter

    yield start
    for starter in started:  # (a failed test must not leave a bed running)
        if starter.proc.returncode is None:
            await starter.crash()
        for pid in starter.pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on (/proc: their sockets' inodes)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address[:width])
                shown = ".".join(str(b) for b in raw[::-1]) if width == 8 else raw.hex()
                found.add((shown, int(port, 16)))
    return found


async def test_an_rgw_bed_listens_on_loopback_only_and_dies_with_its_starter(
    tmp_path: Path, start_in_child: StartInChild
) -> None:
    starter = await start_in_child(tmp_path / "bed")
    assert len(starter.pids) == 3 and all(alive(p) for p in starter.pids)
    sockets = listening(starter.pids)
    assert ("127.0.0.1", starter.port) in sockets and ("127.0.0.1", starter.port + 1) in sockets
    assert {address for address, _ in sockets} == {"127.0.0.1"}
    assert all(starter.port <= port < starter.port + 12 for _, port in sockets)
    with pytest.raises(RgwError, match="still going"):  # its folder is not taken from a run that goes on
        await RgwBed(tmp_path / "bed").start()
    await starter.crash()
    await wait_for(lambda: not any(alive(p) for p in starter.pids), "the bed's daemons to die with it")
    assert (tmp_path / "bed" / "ceph.conf").exists()  # (its folder stays for the next start to wipe)


async def test_a_new_start_stops_what_a_crashed_run_left_on_its_folder(
    tmp_path: Path, start_in_child: StartInChild
) -> None:
    starter = await start_in_child(tmp_path / "bed", "orphan")
    await starter.crash()
    assert all(alive(p) for p in starter.pids)  # left behind
    (tmp_path / "bed" / "left.txt").write_text("from the crashed run")
    async with RgwBed(tmp_path / "bed") as bed:
        assert not any(alive(p) for p in starter.pids)
        assert not (tmp_path / "bed" / "left.txt").exists()  # the folder was wiped: a fresh cluster
        async with bed.client("s3") as s3:
            assert (await s3.list_buckets())["Buckets"] == []
