"""The server-to-server copy streams: memory stays bounded by a few parts, whatever the file size."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from weedbed import md5_of_get

from cdnstore import parts
from cdnstore.storage import Storage
from testbed.seaweed import WeedCluster

MIB = 1 << 20
SIZE = 96 * MIB
PART = 5 * MIB
IN_FLIGHT = 2
BOUND = 48 * MIB  # parts in flight (10 MiB) + HTTP buffers; a whole-file copy would need 96 MiB

CHILD = r"""
import asyncio, json, sys
from cdnstore.models import S3Target
from cdnstore.storage import Storage

def rss_peak() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

async def main() -> None:
    args = json.loads(sys.argv[1])
    src, dst = S3Target(*args["src"]), S3Target(*args["dst"])
    async with Storage(part_size=args["part"], parts_in_flight=args["in_flight"]) as storage:
        await storage.copy(src, dst, "warm-up", size=args["small"])  # clients and pools exist before measuring
        before = rss_peak()
        info = await storage.copy(src, dst, "big", size=args["size"])
        print(json.dumps({"before": before, "after": rss_peak(), "size": info.size}))

asyncio.run(main())
"""


async def _chunks(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MIB)
    for i in range(size // MIB):
        yield hashlib.sha256(block + i.to_bytes(4, "big")).digest() * (MIB // 32)


async def test_copying_a_large_file_keeps_memory_within_a_few_parts(weed: WeedCluster, bucket: str) -> None:
    src, dst = weed.target("dallas", bucket), weed.target("newyork", bucket)
    async with Storage() as storage:
        for target in (src, dst):
            await storage.check_bucket(target)
        for key, size in (("big", SIZE), ("warm-up", MIB)):
            url, headers = storage.presign_put(
                src, key, content_type="application/octet-stream", size=size, expires_in=600
            )
            async with aiohttp.ClientSession() as http, http.put(url, data=_chunks(size), headers=headers) as resp:
                assert resp.status == 200, await resp.text()
        args = {
            "src": [src.endpoint_url, src.bucket, src.region, src.access_key, src.secret_key],
            "dst": [dst.endpoint_url, dst.bucket, dst.region, dst.access_key, dst.secret_key],
            "part": PART,
            "in_flight": IN_FLIGHT,
            "size": SIZE,
            "small": MIB,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            json.dumps(args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["size"] == SIZE
        growth = result["after"] - result["before"]
        print(f"peak RSS growth during the copy: {growth / MIB:.1f} MiB")
        assert growth < BOUND, f"the copy grew the process by {growth / MIB:.0f} MiB (bound {BOUND / MIB:.0f})"
        async with aiohttp.ClientSession() as http:
            get = storage.presign_get
            copied = await md5_of_get(http, get(dst, "big", filename="big", expires_in=600))
            original = await md5_of_get(http, get(src, "big", filename="big", expires_in=600))
        assert copied[:2] == original[:2]


async def test_a_file_too_big_for_10000_parts_of_part_size_is_copied_in_larger_parts(
    weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if S3 allowed 2 parts: a 16 MiB file then needs parts of 8 MiB, not the configured 5 MiB (a 5 TiB
    # file needs 525 MiB parts for S3's 10,000).
    monkeypatch.setattr(parts, "MAX_PARTS", 2)
    src, dst = weed.target("dallas", bucket), weed.target("newyork", bucket)
    size = 16 * MIB
    async with Storage(part_size=5 * MIB) as storage:
        for target in (src, dst):
            await storage.check_bucket(target)
        url, headers = storage.presign_put(
            src, "big", content_type="application/octet-stream", size=size, expires_in=600
        )
        async with aiohttp.ClientSession() as http, http.put(url, data=_chunks(size), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        copied = await storage.copy(src, dst, "big", size=size)
    assert copied.size == size and copied.etag.endswith("-2"), copied
