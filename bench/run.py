"""cdnstore's benchmarks: each figure beside a floor measured in the same run, on the same machine.

    python3 dev.py bench            (or: make bench)

Starts real SeaweedFS servers and `cdnstore serve` (a separate process, as in production), and for
scenarios 9-11 a throwaway PostgreSQL cluster (Debian's postgresql-15), drives them with wrk (Debian's
package) and a few clients, prints a table (figure, cdnstore, floor, ratio, goal)
and writes bench/results/latest.json. Absolute numbers depend on the machine; the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from machine import cpu_model  # bench/ is the script's folder: on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbed.demo import ORIGINAL_LAYOUT  # noqa: E402
from testbed.seaweed import WeedCluster  # noqa: E402

MIB = 1 << 20
ACCESS, SECRET = "benchkey", "benchsecret12345"
PASSWORD = "bench-password-1"
US_IP = "8.8.8.8"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    floor: float | None = None
    goal: str = ""
    met: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.floor else self.value / self.floor


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        print(
            f"  {figure.name}: {figure.value:,.2f} {figure.unit}"
            + (f" (floor {figure.floor:,.2f}, ratio {figure.ratio:.2f})" if figure.floor else "")
            + (f"  goal {figure.goal}: {'met' if figure.met else 'NOT met'}" if figure.goal else ""),
            flush=True,
        )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sample_rss(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib(pid))
        await asyncio.sleep(0.05)


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_telling(folder: Path, names: list[str], port: int, token: str) -> WeedCluster:
    """SeaweedFS servers `names` under `folder` (not started), each telling the daemon on `port` of its
    stored objects by webhook, with `token`."""
    return WeedCluster(
        folder,
        names,
        access_key=ACCESS,
        secret_key=SECRET,
        webhook_url=lambda n: f"http://127.0.0.1:{port}/api/v1/events/s3/{n}",
        webhook_token=token,
    )


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


class Daemon:
    def __init__(
        self, work: Path, port: int, events_token: str, *, database_url: str = "", request_logs: bool = True
    ) -> None:
        """`request_logs`: the shipped default (a line per request at INFO); off, the log level is WARNING."""
        self.url = f"http://127.0.0.1:{port}"
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / "config.toml"
        # the [log] section as shipped (INFO, a line per request), as production runs it; or request lines off
        log_section = "" if request_logs else '[log]\nlevel = "WARNING"\nrequests = false\n'
        self.config.write_text(f"""
[http]
port = {port}
public_url = "{self.url}"
trusted_proxies = ["127.0.0.1"]
[database]
path = "{work / "cdnstore.sqlite3"}"
url = "{database_url}"
[auth]
secret_key = "bench-secret-key-0123456789"
[events]
token = "{events_token}"
[uploads]
max_per_minute = 0
{log_section}""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "daemon.log"

    def cli(self, *args: str, stdin: str = "") -> None:
        subprocess.run(
            [sys.executable, "-m", "cdnstore", "--config", str(self.config), *args],
            input=stdin.encode(),
            check=True,
            capture_output=True,
            cwd=ROOT,
        )

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cdnstore", "--config", str(self.config), "serve"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.token = ""
        self.http = aiohttp.ClientSession()

    async def call(self, method: str, path: str, body: Any = None, ip: str = US_IP) -> Any:
        headers = {"X-Forwarded-For": ip, **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {await resp.text()}")
            return await resp.json() if resp.status != 204 else None

    async def put(self, upload: dict[str, Any], data: bytes | AsyncIterator[bytes]) -> None:
        async with self.http.put(upload["url"], data=data, headers=upload["headers"]) as resp:
            if resp.status != 200:
                raise RuntimeError(f"PUT {resp.status}: {await resp.text()}")


HELLO = """
import sys
from aiohttp import web
async def hello(request): return web.json_response({"hello": "world"})
app = web.Application(); app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


# --- wrk ------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, all its threads (/proc/PID/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


# --- scenarios ------------------------------------------------------------------------------------


async def hot_paths(results: Results, daemon: Daemon, client: Client, file_id: str, seconds: int) -> None:
    hello_port = free_port()
    hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)])
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


async def random_stream(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MIB)
    for i in range(size // MIB):
        yield block[i % 7 :] + block[: i % 7]


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
    import aioboto3
    from botocore.config import Config

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


async def hashing_cost(results: Results, work: Path, size: int, rounds: int = 3) -> None:
    """9: a server-to-server copy (cdnstore's Storage.copy, the daemon's defaults) hashing the bytes as they
    stream and checking them against the known SHA-256, against the same copy with the hasher swapped for
    one that does nothing; alternating, the medians compared."""
    from cdnstore import storage as storage_module

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


def part_data(number: int, size: int, block: bytes) -> bytes:
    """Part `number`'s bytes, made on the fly from one random MiB (never the whole file in memory)."""
    shift = number % 251
    rolled = block[shift:] + block[:shift]
    return (rolled * (size // len(rolled) + 1))[:size]


async def parts_upload(
    results: Results, daemon: Daemon, client: Client, weed: WeedCluster, bucket: str, size: int, parallel: int = 4
) -> None:
    """A big file through the API in parallel parts, against the same bytes as one presigned PUT."""
    from cdnstore.storage import Storage

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


async def seed_versions(tx: Any, count: int) -> None:
    """One user, 4 servers of zone "z" (on, active, up) and `count` files with one stored 1-byte version each:
    set-based SQL that both engines take (scenarios 5 and 10)."""
    now = "2026-01-01T00:00:00Z"
    await tx.execute(
        "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) VALUES (1, 'u', 'u', 'x', ?, ?)",
        (now, now),
    )
    for sid in range(1, 5):
        await tx.execute(
            "INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key,"
            " location, zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) "
            "VALUES (?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', 'z', 0, 0, 1, 1, 'up', ?, ?)",
            (sid, f"s{sid}", f"s{sid}", now, now),
        )
    await tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < CAST(? AS INTEGER)) "
        "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) "
        "SELECT i, 'f' || i, 1, 'f' || i, CAST(? AS TEXT), CAST(? AS TEXT) FROM n",
        (count, now, now),
    )
    await tx.execute(
        "INSERT INTO versions (id, file_id, object_key, size, content_type, zone, status, created_at) "
        "SELECT id, id, 'k' || id, 1, 'x', 'z', 'stored', CAST(? AS TEXT) FROM files",
        (now,),
    )


async def queue_throughput(results: Results, work: Path, jobs: int) -> None:
    from cdnstore.config import JobsConfig
    from cdnstore.db import SqliteDatabase as Database
    from cdnstore.job_queue import Job, JobQueue
    from cdnstore.job_worker import JobWorker
    from cdnstore.sealing import Sealer
    from cdnstore.servers import ServerRegistry
    from cdnstore.storage import Storage

    db = Database(work / "queue.sqlite3")
    await db.open()
    async with db.transaction() as tx:
        await seed_versions(tx, jobs)
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    queue = JobQueue(db, JobsConfig())
    await db.listen("jobs", queue.wake)
    started = time.monotonic()
    async with db.transaction() as tx:
        for sid in range(1, 5):
            await queue.enqueue_fill(tx, sid, "z")
    enqueued = time.monotonic() - started

    async def noop(job: Job) -> None:
        return None

    worker = JobWorker(
        queue,
        registry.available_ids,
        {"copy": noop, "remove": noop},
        JobsConfig(workers=8, per_server=2),
        health_interval=1,
    )
    started = time.monotonic()
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(600):
        while await db.fetchval("SELECT count(*) FROM jobs"):
            await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await db.close()
    total = 4 * jobs
    results.add(
        Figure(
            "5. queue: no-op jobs claimed and completed per second",
            total / elapsed,
            "jobs/s",
            None,
            ">= 2000 jobs/s",
            total / elapsed >= 2000,
            f"{total} jobs; enqueued at {total / enqueued:,.0f}/s",
        )
    )


async def build_files(db: Any, files: int) -> None:
    """1,000 users, 4 servers (3 active in one zone), `files` files of 1 MiB with one stored version on
    each of the 3 active servers: set-based SQL, in one transaction (a million files in seconds)."""
    now = "2026-01-01T00:00:00.000Z"
    async with db.transaction() as tx:
        await tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
            "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
            "SELECT i, 'user-' || i, 'user' || i, 'x', ?, ? FROM n",
            (now, now),
        )
        for sid, zone in ((1, "USA"), (2, "USA"), (3, "USA"), (4, "USA")):
            await tx.execute(
                "INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key,"
                " location, zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) "
                "VALUES (?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', ?, 0, 0, 1, ?, 'up', ?, ?)",
                (sid, f"s{sid}", f"s{sid}", zone, int(sid < 4), now, now),
            )
        # One user with a tenth of the files (the worst first page), the rest spread over 999 users.
        await tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) "
            "SELECT i, lower(hex(randomblob(16))), CASE WHEN i % 10 = 0 THEN 1 ELSE 2 + i % 999 END, "
            "'file-' || i || '.bin', ?, ? FROM n",
            (files, now, now),
        )
        await tx.execute(
            "INSERT INTO versions (id, file_id, object_key, size, content_type, upload_server_id, zone, "
            "status, etag, created_at, stored_at) SELECT id, id, lower(hex(randomblob(16))), 1048576, "
            "'application/octet-stream', 1, 'USA', 'stored', lower(hex(randomblob(16))), ?, ? FROM files",
            (now, now),
        )
        await tx.execute("UPDATE files SET current_version_id = id, latest_version_id = id")
        await tx.execute(
            "INSERT INTO replicas (server_id, version_id) SELECT s.id, v.id FROM versions v, "
            "(SELECT 1 AS id UNION ALL SELECT 2 UNION ALL SELECT 3) s"
        )


async def scale(results: Results, work: Path, files: int) -> None:
    from cdnstore.config import Config
    from cdnstore.db import SqliteDatabase as Database
    from cdnstore.files import Files
    from cdnstore.job_queue import JobQueue
    from cdnstore.sealing import Sealer
    from cdnstore.servers import ServerRegistry
    from cdnstore.storage import Storage

    path = work / "scale.sqlite3"
    db = Database(path)
    await db.open()
    started = time.monotonic()
    await build_files(db, files)
    built = time.monotonic() - started
    await db.close()
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.close()
    db = Database(path)
    await db.open()
    config = Config()
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    queue = JobQueue(db, config.jobs)
    service = Files(db, Storage(), registry, queue, config)
    timings = []
    for _ in range(200):
        t = time.perf_counter()
        rows = await service.page(1, 50, None, None)
        timings.append((time.perf_counter() - t) * 1000)
        assert len(rows) == 51
    p99 = statistics.quantiles(timings, n=100)[98]
    results.add(
        Figure(
            f"6. scale: first page of files of a user with {files // 10:,} files, p99",
            p99,
            "ms",
            None,
            "< 20 ms",
            p99 < 20,
            f"p50 {statistics.median(timings):.2f} ms",
        )
    )
    started = time.monotonic()
    async with db.transaction() as tx:
        await tx.execute("UPDATE servers SET is_active = 1 WHERE id = 4")
        count = await queue.enqueue_fill(tx, 4, "USA")
    fill = time.monotonic() - started
    assert count == files
    results.add(
        Figure(
            f"6. scale: enqueue the fill of a new server in a zone of {files:,} files",
            fill,
            "s",
            None,
            "< 30 s",
            fill < 30,
        )
    )
    await db.close()
    size = path.stat().st_size
    results.add(
        Figure(
            "6. scale: database bytes per file (3 replicas each)",
            size / files,
            "bytes",
            None,
            "",
            None,
            f"{size / MIB:,.0f} MiB for {files:,} files, built in {built:.0f} s",
        )
    )


# --- PostgreSQL: moving up (scenarios 9, 10, 11) --------------------------------------------------


class PgServer:
    """A throwaway PostgreSQL cluster (Debian's postgresql-15 binaries, as the tests start it) with the
    server's default settings: fsync and synchronous_commit on (a commit waits for its WAL flush)."""

    def __init__(self, work: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL's server binaries are missing (apt-get install postgresql)")
        self.bin, self.work, self.port = found[-1].parent, work, free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bin / args[0]), *args[1:]], check=True, capture_output=True)

    def start(self) -> None:
        self.work.mkdir(parents=True)
        if self.as_postgres:  # the server runs as `postgres`: its directory, and a way into it
            shutil.chown(self.work, "postgres")
            os.chmod(self.work.parent, 0o711)
        self._run("initdb", "-D", str(self.work / "data"), "-A", "trust", "-U", "cdnstore", "-E", "UTF8")
        self._run(
            "pg_ctl",
            "-D",
            str(self.work / "data"),
            "-l",
            str(self.work / "log"),
            "-w",
            "start",
            "-o",
            f"-p {self.port} -k {self.work} -c listen_addresses=127.0.0.1 -c max_connections=200",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.work / "data"), "-m", "fast", "-w", "stop")

    def createdb(self, name: str) -> str:
        subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-d", self.url("postgres"), "-c", f"CREATE DATABASE {name}"],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def sql(self, *statements: str) -> None:
        for statement in statements:
            subprocess.run(
                [str(self.bin / "psql"), "-X", "-q", "-d", self.url("postgres"), "-c", statement],
                check=True,
                capture_output=True,
            )

    def wal_bytes(self) -> int:
        """WAL bytes the cluster has written since it started (pg_stat_wal)."""
        out = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-A",
                "-t",
                "-d",
                self.url("postgres"),
                "-c",
                "SELECT wal_bytes FROM pg_stat_wal",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return int(out.stdout.strip())

    def url(self, name: str) -> str:
        return f"postgresql://cdnstore@127.0.0.1:{self.port}/{name}"

    def cpu(self) -> float:
        """CPU seconds used so far by this cluster's processes (the postmaster and its children)."""
        main = int((self.work / "data" / "postmaster.pid").read_text().split()[0])
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


async def engines_download(results: Results, args: argparse.Namespace, work: Path, pg: PgServer) -> None:
    """9. The download link on one daemon, SQLite against PostgreSQL, each against the bare aiohttp floor,
    in alternating rounds of the same wrk command; the daemons run the default config (request logs on)."""
    names = ["dallas", "newyork"]
    ports = {"sqlite": free_port(), "postgres": free_port(), "sqlite, request logs off": free_port()}
    token = "bench-events-token"
    weed = weed_telling(work / "s3-engines", names, ports["sqlite"], token)
    await weed.start()
    daemons = {
        engine: Daemon(
            work / f"daemon-{engine.split(',')[0]}-{port}",
            port,
            token,
            request_logs="logs off" not in engine,
            database_url=pg.createdb("download") if engine == "postgres" else "",
        )
        for engine, port in ports.items()
    }
    clients: dict[str, Client] = {}
    hello_port = free_port()
    hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)])
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
                cpu, server = cpu_seconds(proc.pid), pg.cpu()
                got = await asyncio.to_thread(wrk, url, lua=lua, seconds=args.seconds)
                requests = got["rps"] * args.seconds
                # CPU per request: what the daemon (and PostgreSQL) spent, whatever else the machine ran
                got["cpu_us"] = (cpu_seconds(proc.pid) - cpu) / requests * 1e6
                got["pg_us"] = (pg.cpu() - server) / requests * 1e6
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
            daemon.stop()
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


async def idle_statements(pg: PgServer, seconds: float = 3) -> float:
    """Statements per second PostgreSQL ran for an idle daemon, counted in its log with log_statement =
    all (PostgreSQL's view of the daemon's background work: job claims, health checks, flushes)."""
    log = pg.work / "log"
    pg.sql("ALTER SYSTEM SET log_statement = 'all'", "SELECT pg_reload_conf()")
    await asyncio.sleep(1)  # every backend has reloaded
    start = log.stat().st_size
    await asyncio.sleep(seconds)
    end = log.stat().st_size
    pg.sql("ALTER SYSTEM RESET log_statement", "SELECT pg_reload_conf()")
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read(end - start).decode(errors="replace").splitlines()
    return (
        sum((" statement: " in line or " execute " in line) and "pg_reload_conf" not in line for line in lines)
        / seconds
    )


QUEUE_WORKER = """
import asyncio, json, resource, sys, time
from cdnstore.config import DatabaseConfig, JobsConfig
from cdnstore.db import connect
from cdnstore.job_queue import CHANNEL, JobQueue
from cdnstore.job_worker import JobWorker
from cdnstore.sealing import Sealer
from cdnstore.servers import ServerRegistry
from cdnstore.storage import Storage

async def main():
    db = connect(DatabaseConfig(path=sys.argv[1], url=sys.argv[2]))
    await db.open()
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    cfg = JobsConfig(workers=8, per_server=2)
    done = 0
    async def noop(job):
        nonlocal done
        done += 1
    queue = JobQueue(db, cfg)
    await db.listen(CHANNEL, queue.wake)  # wake-ups from the other daemon's enqueues, as app.py wires them
    worker = JobWorker(queue, registry.available_ids, {"copy": noop, "remove": noop}, cfg, health_interval=1)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    before = resource.getrusage(resource.RUSAGE_SELF)
    # The worker's loops alone: no start-up work of run() is measured
    loops = [asyncio.create_task(worker._loop()) for _ in range(cfg.workers)]
    while await db.fetchval("SELECT count(*) FROM jobs"):
        await asyncio.sleep(0.05)
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    await db.close()
    use = resource.getrusage(resource.RUSAGE_SELF)
    cpu = use.ru_utime + use.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"done": done, "cpu": cpu}), flush=True)

asyncio.run(main())
"""


async def queue_jobs(path: Path, url: str, files: int) -> None:
    """`files` stored versions and 4 servers, then a fill of each server: 4 x `files` queued copy jobs."""
    from cdnstore.config import DatabaseConfig, JobsConfig
    from cdnstore.db import connect
    from cdnstore.job_queue import JobQueue

    db = connect(DatabaseConfig(path=str(path), url=url))
    await db.open()
    async with db.transaction() as tx:
        await seed_versions(tx, files)
        queue = JobQueue(db, JobsConfig())
        for sid in range(1, 5):
            await queue.enqueue_fill(tx, sid, "z")
    await db.close()


async def drain_with(daemons: int, path: Path, url: str) -> tuple[float, float]:
    """Start `daemons` worker processes on the database, let them go at once, wait for the queue to be
    empty: (seconds from go to empty, their CPU seconds in all)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", QUEUE_WORKER, str(path), url, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(daemons)
    ]
    for proc in procs:
        assert proc.stdout is not None and (await proc.stdout.readline()).strip() == b"ready"
    started = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outs = [json.loads((await proc.communicate())[0]) for proc in procs]
    elapsed = time.monotonic() - started
    return elapsed, sum(o["cpu"] for o in outs)


async def engines_queue(results: Results, args: argparse.Namespace, work: Path, pg: PgServer) -> None:
    """10. Jobs claimed and completed per second (no-op handlers: the queue's own cost): SQLite with one
    daemon, PostgreSQL with one and with two, each on a fresh queue of the same 4 x N jobs."""
    from cdnstore.db import initialize

    files = args.queue_jobs
    rates: dict[str, float] = {}
    for n, (name, daemons, engine) in enumerate(
        (
            ("sqlite, 1 daemon", 1, "sqlite"),
            ("postgres, 1 daemon", 1, "postgres"),
            ("postgres, 2 daemons", 2, "postgres"),
            ("postgres, 2 daemons, synchronous_commit off", 2, "postgres"),
        )
    ):
        path, url = work / f"queue-{n}.sqlite3", ""
        if engine == "postgres":
            url = pg.createdb(f"queue{n}")
            if "synchronous_commit off" in name:  # commits no longer wait for their WAL flush: is that the bound?
                url += "?options=-c%20synchronous_commit%3Doff"
        else:
            initialize(path)
        await queue_jobs(path, url, files)
        before, said = pg.cpu(), load()
        elapsed, cpu = await drain_with(daemons, path, url)
        rates[name] = 4 * files / elapsed
        server = f"; PostgreSQL CPU {pg.cpu() - before:.1f} s" if engine == "postgres" else ""
        results.add(
            Figure(
                f"10. queue on {name}: no-op jobs claimed and completed per second",
                rates[name],
                "jobs/s",
                None,
                "",
                None,
                f"{4 * files} jobs in {elapsed:.1f} s; daemons' CPU {cpu:.1f} s{server}; {said}",
            )
        )
    results.add(
        Figure(
            "10. queue: PostgreSQL with 2 daemons / SQLite with 1",
            rates["postgres, 2 daemons"],
            "jobs/s",
            rates["sqlite, 1 daemon"],
        )
    )


COPY_CHILD = """
import resource, subprocess, sys, time
started = time.monotonic()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
for line in child.stderr:  # the progress lines, with the seconds since the start
    sys.stderr.write(f"{time.monotonic() - started:8.1f} {line}")
child.wait()
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(child.returncode, use.ru_maxrss, use.ru_utime + use.ru_stime)
"""


def phases(progress: str, total: float) -> str:
    """Seconds per phase of copy-database, from its time-stamped progress lines: the start (Python, the
    migration), each table (from the end of the one before), the foreign keys' check, sequences and commit."""
    marks = [
        (float(t), rest)
        for t, _, rest in (line.strip().partition(" ") for line in progress.splitlines())
        if t.replace(".", "", 1).isdigit()
    ]
    out, last = [], 0.0
    for when, line in marks:
        if line.startswith("cdnstore: migrating"):
            out.append(f"start {when:.1f} s")
            last = when
        elif " rows copied" in line:
            if when - last >= 1:
                out.append(f"{line.split(':')[1].strip()} {when - last:.1f} s")
            last = when
        elif "foreign keys" in line:
            out.append(f"foreign keys, sequences and commit {total - when:.1f} s")
    return ", ".join(out)


async def copy_million(results: Results, args: argparse.Namespace, work: Path, pg: PgServer) -> None:
    """11. `cdnstore copy-database` of a SQLite installation of N files (each a version on 3 servers and a
    history row) into an empty PostgreSQL database: wall time, peak RSS of the copying process, and where
    the time goes (its CPU, PostgreSQL's CPU, and a bare read of the same rows from SQLite)."""
    from cdnstore.db import SqliteDatabase

    files = args.copy_files
    daemon = Daemon(work / "copy", free_port(), "bench-events-token")  # its config: the source's path
    path = work / "copy" / "cdnstore.sqlite3"
    db = SqliteDatabase(path)
    await db.open()
    started = time.monotonic()
    await build_files(db, files)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO history (uuid, user_id, event, object_id, data, created_at) "
            "SELECT lower(hex(randomblob(16))), owner_id, 'file.stored', uuid, '{\"server\": \"s1\"}', "
            "created_at FROM files"
        )
    await db.close()
    built = time.monotonic() - started
    conn = sqlite3.connect(path)
    rows = sum(
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("users", "servers", "files", "versions", "replicas", "history")
    )
    started = time.monotonic()
    for table in ("users", "servers", "files", "versions", "replicas", "history"):
        cur = conn.execute(f"SELECT * FROM {table}")
        while cur.fetchmany(5000):
            pass
    read = time.monotonic() - started
    conn.close()
    url = pg.createdb("copied")
    wal = -pg.wal_bytes()
    before, said = pg.cpu(), load()
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            COPY_CHILD,
            sys.executable,
            "-m",
            "cdnstore",
            "--config",
            str(daemon.config),
            "copy-database",
            url,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    server = pg.cpu() - before
    wal += pg.wal_bytes()
    code, maxrss_kib, cpu = out.stdout.split()
    if code != "0":
        raise RuntimeError(f"copy-database failed: {out.stderr}")
    print(out.stderr, flush=True)
    results.add(
        Figure(
            f"11. copy-database of {files:,} files ({rows:,} rows): seconds",
            elapsed,
            "s",
            None,
            "",
            None,
            f"{rows / elapsed:,.0f} rows/s; source built in {built:.0f} s; {said}",
        )
    )
    results.add(Figure("11. copy-database: peak RSS of the copying process", int(maxrss_kib) / 1024, "MiB"))
    results.add(
        Figure(
            "11. copy-database: its CPU seconds / wall seconds",
            float(cpu),
            "s",
            elapsed,
            "",
            None,
            f"PostgreSQL's CPU {server:.1f} s; a bare fetchmany of the same rows from SQLite {read:.1f} s; "
            f"WAL written {wal / MIB:,.0f} MiB; {phases(out.stderr, elapsed)}",
        )
    )


async def moving_up(results: Results, args: argparse.Namespace, work: Path) -> None:
    pg = PgServer(work / "pg")
    pg.start()
    try:
        if "9" in args.only:
            print("scenario 9: the download link, SQLite against PostgreSQL", flush=True)
            await engines_download(results, args, work, pg)
        if "A" in args.only:
            print("scenario 10: the job queue, SQLite with 1 daemon against PostgreSQL with 2", flush=True)
            await engines_queue(results, args, work, pg)
        if "B" in args.only:
            print(f"scenario 11: copy-database of {args.copy_files:,} files", flush=True)
            await copy_million(results, args, work, pg)
    finally:
        pg.stop()


# --- main -----------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> Results:
    results = Results()
    with tempfile.TemporaryDirectory(prefix="cdnbench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        port = free_port()
        token = "bench-events-token"
        if set(args.only) & set("123478"):
            await servers_scenarios(results, args, work, port, token)
        if "5" in args.only:
            print("scenario 5: the job queue", flush=True)
            await queue_throughput(results, work, args.queue_jobs)
        if "6" in args.only:
            print(f"scenario 6: scale, {args.scale_files:,} files", flush=True)
            await scale(results, work, args.scale_files)
        if set(args.only) & set("9AB"):
            await moving_up(results, args, work)
        if "C" in args.only:
            print(f"scenario 12: copies of {args.hash_mib} MiB with and without hashing", flush=True)
            await hashing_cost(results, work, args.hash_mib * MIB)
    return results


async def start_with_servers(
    daemon: Daemon, client: Client, weed: WeedCluster, names: list[str], bucket: str, inactive: tuple[str, ...] = ()
) -> None:
    """A fresh daemon started with an admin `client` logged in, and the sites `names` of the original's layout
    registered on `weed` (each with `bucket`; those in `inactive` not active)."""
    daemon.cli("init")
    daemon.cli("user", "add", "bench", "--admin", "--password-stdin", stdin=PASSWORD)
    await daemon.start()
    login = await client.call("POST", "/api/v1/auth/login", {"username": "bench", "password": PASSWORD})
    client.token = login["access_token"]
    for site in ORIGINAL_LAYOUT:
        if site.name in names:
            await client.call(
                "POST",
                "/api/v1/servers",
                {
                    **site.registration(),
                    "endpoint_url": weed.instance(site.name).endpoint_url,
                    "bucket": bucket,
                    "access_key": ACCESS,
                    "secret_key": SECRET,
                    "is_active": site.name not in inactive,
                },
            )


async def servers_scenarios(results: Results, args: argparse.Namespace, work: Path, port: int, token: str) -> None:
    names = ["dallas", "newyork", "detroit"]
    weed = weed_telling(work / "s3", names, port, token)
    await weed.start()
    daemon = Daemon(work, port, token)
    client = Client(daemon.url)
    try:
        bucket = "bench"
        await start_with_servers(daemon, client, weed, names, bucket, inactive=("detroit",))
        small = await client.call("POST", "/api/v1/files", {"name": "hot.txt", "size": 5})
        await client.put(small["upload"], b"hello")
        await client.call("POST", f"/api/v1/files/{small['file']['id']}/complete")
        if set(args.only) & set("127"):
            print("scenarios 1, 2, 7: hot paths with wrk", flush=True)
            await hot_paths(results, daemon, client, small["file"]["id"], args.seconds)
        if "3" in args.only:
            print(f"scenario 3: replication of {args.big_mib} MiB", flush=True)
            await replication(results, daemon, client, weed, bucket, args.big_mib * MIB)
        if "4" in args.only:
            print("scenario 4: upload to every replica", flush=True)
            await client.call("PATCH", f"/api/v1/servers/{(await server_id(client, 'detroit'))}", {"is_active": True})
            await every_replica(results, daemon, client, args.replica_files)
        if "8" in args.only:
            print(f"scenario 8: an upload of {args.upload_mib} MiB in parallel parts", flush=True)
            await parts_upload(results, daemon, client, weed, bucket, args.upload_mib * MIB)
    finally:
        await client.http.close()
        daemon.stop()
        await weed.stop()


async def server_id(client: Client, name: str) -> str:
    servers = (await client.call("GET", "/api/v1/servers"))["items"]
    return str(next(s["id"] for s in servers if s["name"] == name))


def report(results: Results, args: argparse.Namespace, started: float) -> None:
    rows = [("figure", "cdnstore", "floor", "ratio", "goal", "met")]
    for f in results.figures:
        rows.append(
            (
                f.name,
                f"{f.value:,.2f} {f.unit}",
                "" if f.floor is None else f"{f.floor:,.2f}",
                "" if f.ratio is None else f"{f.ratio:.2f}",
                f.goal,
                "" if f.met is None else ("yes" if f.met else "NO"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
    }
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "seconds": round(time.monotonic() - started),
        "args": vars(args),
        "figures": [asdict(f) | {"ratio": f.ratio} for f in results.figures],
    }
    path = ROOT / "bench" / "results" / "latest.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)} in {out['seconds']} s")


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per hot-path scenario")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the replicated file (scenario 3)")
    parser.add_argument("--replica-files", type=int, default=50, help="files for scenario 4")
    parser.add_argument("--queue-jobs", type=int, default=5000, help="no-op jobs per server for scenario 5 (x4)")
    parser.add_argument("--scale-files", type=int, default=1_000_000, help="files for scenario 6")
    parser.add_argument("--workdir", default=None, help="where the temporary data goes (default: the system's)")
    parser.add_argument("--upload-mib", type=int, default=1024, help="size of the file uploaded in parts (scenario 8)")
    parser.add_argument("--copy-files", type=int, default=1_000_000, help="files for scenario 11 (copy-database)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating wrk rounds of scenario 9")
    parser.add_argument("--hash-mib", type=int, default=256, help="size of the file copied in scenario 12")
    parser.add_argument(
        "--only",
        default="123456789ABC",
        help="the scenarios to run, e.g. --only 56 (1, 2 and 7 run together; A is 10, B is 11, C is 12)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None and set(args.only) & set("127"):
        print("bench: wrk is missing (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    results = asyncio.run(main(args))
    report(results, args, started)
    return 0


_: Callable[..., Any] = cli
if __name__ == "__main__":
    sys.exit(cli())
