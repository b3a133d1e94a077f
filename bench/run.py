"""cdnstore's benchmarks: each figure beside a floor measured in the same run, on the same machine.

    python3 dev.py bench            (or: make bench)

Starts real SeaweedFS servers and `cdnstore serve` (a separate process, as in production), drives them
with wrk (Debian's package) and a few clients, prints a table (figure, cdnstore, floor, ratio, goal)
and writes bench/results/latest.json. Absolute numbers depend on the machine; the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
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

from cdnstore.demo import ORIGINAL_LAYOUT  # noqa: E402
from cdnstore.seaweed import WeedCluster  # noqa: E402

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
        print(f"  {figure.name}: {figure.value:,.2f} {figure.unit}"
              + (f" (floor {figure.floor:,.2f}, ratio {figure.ratio:.2f})" if figure.floor else "")
              + (f"  goal {figure.goal}: {'met' if figure.met else 'NOT met'}" if figure.goal else ""), flush=True)


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
    def __init__(self, work: Path, port: int, events_token: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.config = work / "config.toml"
        self.config.write_text(f"""
[http]
port = {port}
public_url = "{self.url}"
trusted_proxies = ["127.0.0.1"]
[database]
path = "{work / 'cdnstore.sqlite3'}"
[auth]
secret_key = "bench-secret-key-0123456789"
[events]
token = "{events_token}"
[uploads]
max_per_minute = 0
""")  # the [log] section as shipped: INFO, one line per request, as production runs it
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "daemon.log"

    def cli(self, *args: str, stdin: str = "") -> None:
        subprocess.run([sys.executable, "-m", "cdnstore", "--config", str(self.config), *args], input=stdin.encode(),
                       check=True, capture_output=True, cwd=ROOT)

    async def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cdnstore", "--config", str(self.config), "serve"],
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
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


def wrk(url: str, *, lua: str, seconds: int, connections: int = 64, threads: int = 2,
        pid: int | None = None) -> dict[str, float]:
    """wrk's figures; with `pid`, also that server's CPU time per request (`cpu_us`), which a busy machine
    changes far less than requests/s: it is what a request costs the server, whoever else wants the cores."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
                          url], capture_output=True, text=True, check=True).stdout
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
    return lua_get(headers) + """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local me = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"name": "bench-' .. me .. '-' .. n .. '.bin", "size": 1048576}')
end
"""


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
    down = await asyncio.to_thread(wrk, f"{daemon.url}/api/v1/files/{file_id}/download", lua=lua_get(headers),
                                   seconds=seconds, pid=daemon.proc.pid)
    stop.set()
    await sampler
    up = await asyncio.to_thread(wrk, f"{daemon.url}/api/v1/files", lua=lua_post_files(headers), seconds=seconds,
                                 pid=daemon.proc.pid)
    ratio_down, ratio_up = down["rps"] / floor["rps"], up["rps"] / floor["rps"]
    results.add(Figure("1. download link: requests/s", down["rps"], "req/s", floor["rps"], ">= 50 % of floor",
                       ratio_down >= 0.5, f"non-2xx {down['non_2xx']:.0f}"))
    results.add(Figure("1. download link: daemon CPU per request", down["cpu_us"], "us", floor["cpu_us"],
                       "<= 2x floor", down["cpu_us"] <= 2 * floor["cpu_us"]))
    results.add(Figure("1. download link: p50", down["p50_ms"], "ms", floor["p50_ms"]))
    results.add(Figure("1. download link: p99", down["p99_ms"], "ms", floor["p99_ms"], "< 25 ms",
                       down["p99_ms"] < 25))
    results.add(Figure("2. upload link: requests/s", up["rps"], "req/s", floor["rps"], ">= 30 % of floor",
                       ratio_up >= 0.3, f"non-2xx {up['non_2xx']:.0f}"))
    results.add(Figure("2. upload link: daemon CPU per request", up["cpu_us"], "us", floor["cpu_us"]))
    results.add(Figure("2. upload link: p99", up["p99_ms"], "ms", floor["p99_ms"]))
    results.add(Figure("7. memory: daemon idle RSS", idle, "MiB"))
    results.add(Figure("7. memory: daemon RSS under scenario 1", peak[0], "MiB", idle))


async def random_stream(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MIB)
    for i in range(size // MIB):
        yield block[i % 7:] + block[:i % 7]


async def replication(results: Results, daemon: Daemon, client: Client, weed: WeedCluster, bucket: str,
                      size: int) -> None:
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
    version = db.execute("SELECT id FROM versions WHERE object_key = ?",
                         (announced["upload"]["url"].split("?")[0].rsplit("/", 1)[1],)).fetchone()[0]
    started = None
    async with asyncio.timeout(600):
        while True:
            running = db.execute("SELECT 1 FROM jobs WHERE version_id = ? AND status = 'running'", (version,)).fetchone()
            if started is None and running:
                started = time.monotonic()
            if db.execute("SELECT count(*) FROM replicas WHERE version_id = ?", (version,)).fetchone()[0] >= 2:
                break
            await asyncio.sleep(0.01)
    elapsed = time.monotonic() - (started or time.monotonic())
    stop.set()
    await sampler
    floor = await plain_copy(weed.target("dallas", bucket), weed.target("newyork", bucket), db.execute(
        "SELECT object_key FROM versions WHERE id = ?", (version,)).fetchone()[0], size)
    mibs, floor_mibs = size / MIB / elapsed, size / MIB / floor
    results.add(Figure(f"3. replication of {size // MIB} MiB: MiB/s", mibs, "MiB/s", floor_mibs,
                       ">= 85 % of floor", mibs / floor_mibs >= 0.85))
    results.add(Figure("3. replication: daemon peak RSS above idle", peak[0] - idle, "MiB", None, "<= 64 MiB",
                       peak[0] - idle <= 64))


async def plain_copy(src: Any, dst: Any, key: str, size: int) -> float:
    """The floor: get_object streamed into a multipart upload with plain aioboto3, same part size."""
    import aioboto3
    from botocore.config import Config

    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                 response_checksum_validation="when_required", max_pool_connections=16)

    def kw(t: Any) -> dict[str, Any]:
        return {"endpoint_url": t.endpoint_url, "aws_access_key_id": t.access_key, "aws_secret_access_key": t.secret_key,
                "region_name": t.region, "config": cfg}

    part, in_flight = 16 * MIB, 4
    session = aioboto3.Session()
    async with session.client("s3", **kw(src)) as s, session.client("s3", **kw(dst)) as d:
        started = time.monotonic()
        obj = await s.get_object(Bucket=src.bucket, Key=key)
        upload = (await d.create_multipart_upload(Bucket=dst.bucket, Key="floor-" + key))["UploadId"]
        sem, etags, tasks, buf, n = asyncio.Semaphore(in_flight), {}, [], bytearray(), 0

        async def send(number: int, data: bytes) -> None:
            try:
                etags[number] = (await d.upload_part(Bucket=dst.bucket, Key="floor-" + key, UploadId=upload,
                                                     PartNumber=number, Body=data))["ETag"]
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
        await d.complete_multipart_upload(Bucket=dst.bucket, Key="floor-" + key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": i, "ETag": etags[i]} for i in sorted(etags)]})
        elapsed = time.monotonic() - started
        assert (await d.head_object(Bucket=dst.bucket, Key="floor-" + key))["ContentLength"] == size
        return elapsed


def part_data(number: int, size: int, block: bytes) -> bytes:
    """Part `number`'s bytes, made on the fly from one random MiB (never the whole file in memory)."""
    shift = number % 251
    rolled = block[shift:] + block[:shift]
    return (rolled * (size // len(rolled) + 1))[:size]


async def parts_upload(results: Results, daemon: Daemon, client: Client, weed: WeedCluster, bucket: str,
                       size: int, parallel: int = 4) -> None:
    """A big file through the API in parallel parts, against the same bytes as one presigned PUT."""
    from cdnstore.storage import Storage

    block = os.urandom(MIB)
    assert daemon.proc is not None
    # The floor: one presigned PUT of the same bytes to the same server (straight, cdnstore not involved).
    async with Storage() as storage:
        url, headers = storage.presign_put(weed.target("dallas", bucket), "floor-upload", size=size,
                                           content_type="application/octet-stream", expires_in=3600)

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
        signed = await client.call("POST", f"/api/v1/files/{file_id}/upload/parts",
                                   {"numbers": numbers[first:first + 100]})
        await asyncio.gather(*(send(item) for item in signed["items"]))
    stored = await client.call("POST", f"/api/v1/files/{file_id}/complete")
    elapsed = time.monotonic() - started
    used = cpu_seconds(daemon.proc.pid) - cpu
    assert stored["status"] == "stored"
    mibs, floor_mibs = size / MIB / elapsed, size / MIB / floor
    results.add(Figure(f"8. upload of {size // MIB} MiB in {parallel} parallel parts: MiB/s", mibs, "MiB/s",
                       floor_mibs, ">= floor (one PUT)", mibs >= floor_mibs,
                       f"{plan['parts']} parts of {plan['part_size'] // MIB} MiB, announce to /complete"))
    results.add(Figure("8. upload in parts: daemon CPU seconds per GiB", used / (size / (1 << 30)), "s/GiB", None,
                       "<= 0.5 s/GiB (the bytes never pass through it)", used / (size / (1 << 30)) <= 0.5))


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
            while db.execute("SELECT count(*) FROM replicas r JOIN versions v ON v.id = r.version_id "
                             "WHERE v.object_key = ?", (key,)).fetchone()[0] < 3:
                await asyncio.sleep(0.005)
        latencies.append(time.monotonic() - put_done)
    p50 = statistics.median(latencies)
    results.add(Figure(f"4. 1 MiB upload to its 3rd replica: p50 over {count}", p50 * 1000, "ms", None, "< 1000 ms",
                       p50 < 1.0, f"p90 {statistics.quantiles(latencies, n=10)[-1] * 1000:.0f} ms"))


async def queue_throughput(results: Results, work: Path, jobs: int) -> None:
    from cdnstore.config import JobsConfig
    from cdnstore.db import SqliteDatabase as Database
    from cdnstore.jobs import Job, JobQueue, JobWorker
    from cdnstore.sealing import Sealer
    from cdnstore.servers import ServerRegistry
    from cdnstore.storage import Storage

    db = Database(work / "queue.sqlite3")
    await db.open()
    now = "2026-01-01T00:00:00Z"
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
                         "VALUES (1, 'u', 'u', 'x', ?, ?)", (now, now))
        for sid in range(1, 5):
            await tx.execute("INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key,"
                             " location, zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) "
                             "VALUES (?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', 'z', 0, 0, 1, 1, 'up', ?, ?)",
                             (sid, f"s{sid}", f"s{sid}", now, now))
        await tx.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                         "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) "
                         "SELECT i, 'f' || i, 1, 'f' || i, ?, ? FROM n", (jobs, now, now))
        await tx.execute("INSERT INTO versions (id, file_id, object_key, size, content_type, zone, status, created_at) "
                         "SELECT id, id, 'k' || id, 1, 'x', 'z', 'stored', ? FROM files", (now,))
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    queue = JobQueue(db, JobsConfig())
    started = time.monotonic()
    async with db.transaction() as tx:
        for sid in range(1, 5):
            await queue.enqueue_fill(tx, sid, "z")
    enqueued = time.monotonic() - started

    async def noop(job: Job) -> None:
        return None

    worker = JobWorker(queue, registry, {"copy": noop, "remove": noop}, JobsConfig(workers=8, per_server=2),
                       health_interval=1)
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
    results.add(Figure("5. queue: no-op jobs claimed and completed per second", total / elapsed, "jobs/s", None,
                       ">= 2000 jobs/s", total / elapsed >= 2000, f"{total} jobs; enqueued at {total / enqueued:,.0f}/s"))


async def scale(results: Results, work: Path, files: int) -> None:
    from cdnstore.config import Config
    from cdnstore.db import SqliteDatabase as Database
    from cdnstore.files import Files
    from cdnstore.jobs import JobQueue
    from cdnstore.sealing import Sealer
    from cdnstore.servers import ServerRegistry
    from cdnstore.storage import Storage

    path = work / "scale.sqlite3"
    db = Database(path)
    await db.open()
    now = "2026-01-01T00:00:00.000Z"
    started = time.monotonic()
    async with db.transaction() as tx:
        await tx.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
                         "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
                         "SELECT i, 'user-' || i, 'user' || i, 'x', ?, ? FROM n", (now, now))
        for sid, zone in ((1, "USA"), (2, "USA"), (3, "USA"), (4, "USA")):
            await tx.execute("INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key,"
                             " location, zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) "
                             "VALUES (?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', ?, 0, 0, 1, ?, 'up', ?, ?)",
                             (sid, f"s{sid}", f"s{sid}", zone, int(sid < 4), now, now))
        # One user with a tenth of the files (the worst first page), the rest spread over 999 users.
        await tx.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                         "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) "
                         "SELECT i, lower(hex(randomblob(16))), CASE WHEN i % 10 = 0 THEN 1 ELSE 2 + i % 999 END, "
                         "'file-' || i || '.bin', ?, ? FROM n", (files, now, now))
        await tx.execute("INSERT INTO versions (id, file_id, object_key, size, content_type, upload_server_id, zone, "
                         "status, etag, created_at, stored_at) SELECT id, id, lower(hex(randomblob(16))), 1048576, "
                         "'application/octet-stream', 1, 'USA', 'stored', lower(hex(randomblob(16))), ?, ? FROM files",
                         (now, now))
        await tx.execute("UPDATE files SET current_version_id = id, latest_version_id = id")
        await tx.execute("INSERT INTO replicas (server_id, version_id) SELECT s.id, v.id FROM versions v, "
                         "(SELECT 1 AS id UNION ALL SELECT 2 UNION ALL SELECT 3) s")
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
    results.add(Figure(f"6. scale: first page of files of a user with {files // 10:,} files, p99", p99, "ms", None,
                       "< 20 ms", p99 < 20, f"p50 {statistics.median(timings):.2f} ms"))
    started = time.monotonic()
    async with db.transaction() as tx:
        await tx.execute("UPDATE servers SET is_active = 1 WHERE id = 4")
        count = await queue.enqueue_fill(tx, 4, "USA")
    fill = time.monotonic() - started
    assert count == files
    results.add(Figure(f"6. scale: enqueue the fill of a new server in a zone of {files:,} files", fill, "s", None,
                       "< 30 s", fill < 30))
    await db.close()
    size = path.stat().st_size
    results.add(Figure("6. scale: database bytes per file (3 replicas each)", size / files, "bytes", None, "",
                       None, f"{size / MIB:,.0f} MiB for {files:,} files, built in {built:.0f} s"))


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
    return results


async def servers_scenarios(results: Results, args: argparse.Namespace, work: Path, port: int, token: str) -> None:
    names = ["dallas", "newyork", "detroit"]
    weed = WeedCluster(work / "s3", names, access_key=ACCESS, secret_key=SECRET,
                       webhook_url=lambda n: f"http://127.0.0.1:{port}/api/v1/events/s3/{n}", webhook_token=token)
    await weed.start()
    daemon = Daemon(work, port, token)
    client = Client(daemon.url)
    try:
        daemon.cli("init")
        daemon.cli("user", "add", "bench", "--admin", "--password-stdin", stdin=PASSWORD)
        await daemon.start()
        client.token = (await client.call("POST", "/api/v1/auth/login",
                                          {"username": "bench", "password": PASSWORD}))["access_token"]
        bucket = "bench"
        for site in ORIGINAL_LAYOUT:
            if site.name in names:
                await client.call("POST", "/api/v1/servers", {
                    "name": site.name, "endpoint_url": weed.instance(site.name).endpoint_url, "bucket": bucket,
                    "access_key": ACCESS, "secret_key": SECRET, "location": site.location, "zone": site.zone,
                    "latitude": site.latitude, "longitude": site.longitude, "is_on": True,
                    "is_active": site.name != "detroit"})
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
            await client.call("PATCH", f"/api/v1/servers/{(await server_id(client, 'detroit'))}",
                              {"is_active": True})
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
        rows.append((f.name, f"{f.value:,.2f} {f.unit}", "" if f.floor is None else f"{f.floor:,.2f}",
                     "" if f.ratio is None else f"{f.ratio:.2f}", f.goal,
                     "" if f.met is None else ("yes" if f.met else "NO")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "cpu": cpu_model()}
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine,
           "seconds": round(time.monotonic() - started), "args": vars(args),
           "figures": [asdict(f) | {"ratio": f.ratio} for f in results.figures]}
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
    parser.add_argument("--only", default="12345678", help="the scenarios to run, e.g. --only 56 (1, 2 and 7 run together)")
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
