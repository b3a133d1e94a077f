"""Scenario 8: a big file uploaded through the API in parallel parts (announce to /complete), against the same
bytes as one presigned PUT to the same server; and the daemon's CPU meanwhile (none of the bytes pass
through it)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster

from .figures import Figure, Results
from .measure import MIB, cpu_seconds
from .stage import Bench, Client, Scenario


async def run(bench: Bench) -> None:
    print(f"scenario 8: an upload of {bench.args.upload_mib} MiB in parallel parts", flush=True)
    stage = bench.need_servers()
    await parts_upload(bench.results, stage.daemon, stage.client, stage.weed, stage.bucket, bench.args.upload_mib * MIB)


SCENARIO = Scenario("parts_upload", "8", "servers", run)


def part_data(number: int, size: int, block: bytes) -> bytes:
    """Part `number`'s bytes, made on the fly from one random MiB (never the whole file in memory)."""
    shift = number % 251
    rolled = block[shift:] + block[:shift]
    return (rolled * (size // len(rolled) + 1))[:size]


async def parts_upload(
    results: Results, daemon: Daemon, client: Client, weed: WeedCluster, bucket: str, size: int, parallel: int = 4
) -> None:
    """A big file through the API in parallel parts, against the same bytes as one presigned PUT."""
    block = os.urandom(MIB)
    assert daemon.proc is not None
    # The floor: one presigned PUT of the same bytes to the same server (straight, cdnstore not involved).
    async with Storage() as storage:
        url, headers = storage.presign_put(
            weed.target("dallas", bucket),
            "floor-upload",
            size=size,
            content_type="application/octet-stream",
            expires_in=3600,
        )

    async def whole() -> AsyncIterator[bytes]:
        for number in range(1, -(-size // (5 * MIB)) + 1):
            yield part_data(number, min(5 * MIB, size - (number - 1) * 5 * MIB), block)

    started = time.monotonic()
    await client.put({"url": url, "headers": headers}, whole())
    floor = time.monotonic() - started

    cpu = cpu_seconds(daemon.proc.pid)
    started = time.monotonic()
    announced = await client.call("POST", "/api/v1/files", {"name": "parts.bin", "size": size})
    file_id, plan = announced["file"]["id"], announced["upload"]
    assert plan["method"] == "multipart", plan
    numbers = list(range(1, plan["parts"] + 1))
    gate = asyncio.Semaphore(parallel)

    async def send(item: dict[str, Any]) -> None:
        async with gate:
            n = item["number"]
            data = part_data(n, min(plan["part_size"], size - (n - 1) * plan["part_size"]), block)
            await client.put(item, data)

    for first in range(0, len(numbers), 100):  # part URLs in batches of 100, the most one call gives
        signed = await client.call(
            "POST", f"/api/v1/files/{file_id}/upload/parts", {"numbers": numbers[first : first + 100]}
        )
        await asyncio.gather(*(send(item) for item in signed["items"]))
    stored = await client.call("POST", f"/api/v1/files/{file_id}/complete")
    elapsed = time.monotonic() - started
    used = cpu_seconds(daemon.proc.pid) - cpu
    assert stored["status"] == "stored"
    mibs, floor_mibs = size / MIB / elapsed, size / MIB / floor
    results.add(
        Figure(
            f"8. upload of {size // MIB} MiB in {parallel} parallel parts: MiB/s",
            mibs,
            "MiB/s",
            floor_mibs,
            ">= floor (one PUT)",
            mibs >= floor_mibs,
            f"{plan['parts']} parts of {plan['part_size'] // MIB} MiB, announce to /complete",
        )
    )
    results.add(
        Figure(
            "8. upload in parts: daemon CPU seconds per GiB",
            used / (size / (1 << 30)),
            "s/GiB",
            None,
            "<= 0.5 s/GiB (the bytes never pass through it)",
            used / (size / (1 << 30)) <= 0.5,
        )
    )
