"""Scenario 3: a big file's replication from the server it was uploaded to onto the zone's other one (job
claimed to replica present), against a plain streaming copy of the same object between the same servers,
and the daemon's memory meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import aioboto3
from botocore.config import Config

from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster

from .figures import Figure, Results
from .measure import MIB, random_stream, rss_mib, sample_rss
from .stage import Bench, Client, Scenario


async def run(bench: Bench) -> None:
    print(f"scenario 3: replication of {bench.args.big_mib} MiB", flush=True)
    stage = bench.need_servers()
    await replication(bench.results, stage.daemon, stage.client, stage.weed, stage.bucket, bench.args.big_mib * MIB)


SCENARIO = Scenario("replication", "3", "servers", run)


async def replication(
    results: Results, daemon: Daemon, client: Client, weed: WeedCluster, bucket: str, size: int
) -> None:
    db = sqlite3.connect(daemon.config.parent / "cdnstore.sqlite3", timeout=10)
    announced = await client.call("POST", "/api/v1/files", {"name": "big.bin", "size": size})
    assert announced["upload"]["server"]["name"] == "dallas"
    assert daemon.proc is not None
    await asyncio.sleep(1)
    idle = rss_mib(daemon.proc.pid)
    peak = [idle]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(daemon.proc.pid, peak, stop))
    await client.put(announced["upload"], random_stream(size))
    # The copy starts when the webhook lands; time it from the job's first claim to the replica row.
    version = db.execute(
        "SELECT id FROM versions WHERE object_key = ?", (announced["upload"]["url"].split("?")[0].rsplit("/", 1)[1],)
    ).fetchone()[0]
    started = None
    async with asyncio.timeout(600):
        while True:
            running = db.execute(
                "SELECT 1 FROM jobs WHERE version_id = ? AND status = 'running'", (version,)
            ).fetchone()
            if started is None and running:
                started = time.monotonic()
            if db.execute("SELECT count(*) FROM replicas WHERE version_id = ?", (version,)).fetchone()[0] >= 2:
                break
            await asyncio.sleep(0.01)
    elapsed = time.monotonic() - (started or time.monotonic())
    stop.set()
    await sampler
    floor = await plain_copy(
        weed.target("dallas", bucket),
        weed.target("newyork", bucket),
        db.execute("SELECT object_key FROM versions WHERE id = ?", (version,)).fetchone()[0],
        size,
    )
    mibs, floor_mibs = size / MIB / elapsed, size / MIB / floor
    results.add(
        Figure(
            f"3. replication of {size // MIB} MiB: MiB/s",
            mibs,
            "MiB/s",
            floor_mibs,
            ">= 85 % of floor",
            mibs / floor_mibs >= 0.85,
        )
    )
    results.add(
        Figure(
            "3. replication: daemon peak RSS above idle", peak[0] - idle, "MiB", None, "<= 64 MiB", peak[0] - idle <= 64
        )
    )


async def plain_copy(src: Any, dst: Any, key: str, size: int) -> float:
    """The floor: get_object streamed into a multipart upload with plain aioboto3, same part size."""
    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=16,
    )

    def kw(t: Any) -> dict[str, Any]:
        return {
            "endpoint_url": t.endpoint_url,
            "aws_access_key_id": t.access_key,
            "aws_secret_access_key": t.secret_key,
            "region_name": t.region,
            "config": cfg,
        }

    part, in_flight = 16 * MIB, 4
    session = aioboto3.Session()
    async with session.client("s3", **kw(src)) as s, session.client("s3", **kw(dst)) as d:
        started = time.monotonic()
        obj = await s.get_object(Bucket=src.bucket, Key=key)
        upload = (await d.create_multipart_upload(Bucket=dst.bucket, Key="floor-" + key))["UploadId"]
        sem, etags, tasks, buf, n = asyncio.Semaphore(in_flight), {}, [], bytearray(), 0

        async def send(number: int, data: bytes) -> None:
            try:
                etags[number] = (
                    await d.upload_part(
                        Bucket=dst.bucket, Key="floor-" + key, UploadId=upload, PartNumber=number, Body=data
                    )
                )["ETag"]
            finally:
                sem.release()

        async for chunk in obj["Body"].iter_chunks(MIB):
            buf += chunk
            if len(buf) >= part:
                await sem.acquire()
                n += 1
                tasks.append(asyncio.create_task(send(n, bytes(buf[:part]))))
                del buf[:part]
        if buf:
            await sem.acquire()
            n += 1
            tasks.append(asyncio.create_task(send(n, bytes(buf))))
        await asyncio.gather(*tasks)
        await d.complete_multipart_upload(
            Bucket=dst.bucket,
            Key="floor-" + key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": i, "ETag": etags[i]} for i in sorted(etags)]},
        )
        elapsed = time.monotonic() - started
        assert (await d.head_object(Bucket=dst.bucket, Key="floor-" + key))["ContentLength"] == size
        return elapsed
