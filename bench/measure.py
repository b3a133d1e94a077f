"""How the scenarios measure: a process's memory and CPU time from /proc, wrk's figures, the machine's load,
and bytes made on the fly (never a whole file in memory)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from testbed.postgres import PgCluster

MIB = 1 << 20


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sample_rss(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib(pid))
        await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, all its threads (/proc/PID/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu(pg: PgCluster) -> float:
    """CPU seconds used so far by this cluster's processes (the postmaster and its children)."""
    main = int((pg.data / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{main}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    # (its own CPU, and that of its children that have exited: each connection's backend process)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == main:
                total += cpu_seconds(int(stat.parent.name))
    return total


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


async def listening(port: int, within: float = 30.0) -> None:
    """Returns once something accepts connections on `port` (a busy machine starts a process slowly)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


async def random_stream(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MIB)
    for i in range(size // MIB):
        yield block[i % 7 :] + block[: i % 7]


# --- wrk ------------------------------------------------------------------------------------------


def wrk(
    url: str, *, lua: str, seconds: int, connections: int = 64, threads: int = 2, pid: int | None = None
) -> dict[str, float]:
    """wrk's figures; with `pid`, also that server's CPU time per request (`cpu_us`), which a busy machine
    changes far less than requests/s: it is what a request costs the server, whoever else wants the cores."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    os.unlink(script.name)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    if pid:
        result["cpu_us"] = cpu / int(re.search(r"(\d+) requests in", out)[1]) * 1e6  # type: ignore[index]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        result[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors[1]) if errors else 0.0
    return result


def lua_get(headers: dict[str, str]) -> str:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    return lines + "\n"


def lua_post_files(headers: dict[str, str]) -> str:
    return (
        lua_get(headers)
        + """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local me = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"name": "bench-' .. me .. '-' .. n .. '.bin", "size": 1048576}')
end
"""
    )
