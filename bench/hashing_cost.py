"""Scenario 12: what checking every copy costs: cdnstore's own server-to-server copy hashing the bytes as they
stream, against the same copy with the hasher swapped for one that does nothing."""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path

from cdnstore import storage as storage_module
from testbed.seaweed import WeedCluster

from .figures import Figure, Results
from .measure import MIB, random_stream
from .stage import ACCESS, SECRET, Bench, Scenario


async def run(bench: Bench) -> None:
    print(f"scenario 12: copies of {bench.args.hash_mib} MiB with and without hashing", flush=True)
    await hashing_cost(bench.results, bench.work, bench.args.hash_mib * MIB)


SCENARIO = Scenario("hashing_cost", "C", "", run)


async def hashing_cost(results: Results, work: Path, size: int, rounds: int = 3) -> None:
    """9: a server-to-server copy (cdnstore's Storage.copy, the daemon's defaults) hashing the bytes as they
    stream and checking them against the known SHA-256, against the same copy with the hasher swapped for
    one that does nothing; alternating, the medians compared."""

    class NoHash(storage_module.StreamHash):
        async def update(self, chunk: bytes) -> None:
            pass

        async def digests(self) -> tuple[str, str | None]:
            return "", None

    weed = WeedCluster(work / "s3-hashing", ["dallas", "newyork"], access_key=ACCESS, secret_key=SECRET)
    await weed.start()
    hashing = storage_module.StreamHash
    try:
        src, dst = weed.target("dallas", "hashing"), weed.target("newyork", "hashing")
        async with storage_module.Storage() as storage:
            for target in (src, dst):
                await storage.check_bucket(target)
            data = b"".join([chunk async for chunk in random_stream(size)])
            digest = hashlib.sha256(data).hexdigest()
            await (await storage._client(src)).put_object(Bucket=src.bucket, Key="big.bin", Body=data)
            del data
            times: dict[bool, list[float]] = {True: [], False: []}
            for hashed in [False, True] * rounds:
                storage_module.StreamHash = hashing if hashed else NoHash  # type: ignore[misc]
                started = time.monotonic()
                await storage.copy(src, dst, "big.bin", size=size, sha256=digest if hashed else None)
                times[hashed].append(time.monotonic() - started)
    finally:
        storage_module.StreamHash = hashing  # type: ignore[misc]
        await weed.stop()
    with_hash, without = (size / MIB / statistics.median(times[h]) for h in (True, False))
    results.add(
        Figure(
            f"12. copy of {size // MIB} MiB hashed (SHA-256, checked) vs not: MiB/s",
            with_hash,
            "MiB/s",
            without,
            ">= 95 % of unhashed",
            with_hash / without >= 0.95,
        )
    )
