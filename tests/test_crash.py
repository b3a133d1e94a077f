"""A daemon killed with SIGKILL in the middle of replication converges after a restart, losing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from apihelp import EVENTS_TOKEN, PASSWORD, SECRET, US_IP
from weedbed import ACCESS_KEY, SECRET_KEY, md5_of_get

from cdnstore.demo import ORIGINAL_LAYOUT
from cdnstore.models import S3Target
from cdnstore.seaweed import WeedCluster
from cdnstore.storage import Storage

MIB = 1 << 20


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[http]
port = {port}
public_url = "http://127.0.0.1:{port}"
trusted_proxies = ["127.0.0.1"]
[database]
path = "{tmp_path / 'db.sqlite3'}"
[auth]
secret_key = "{SECRET}"
argon2_time_cost = 1
argon2_memory_kib = 1024
argon2_parallelism = 1
[events]
token = "{EVENTS_TOKEN}"
[jobs]
part_size = {5 * MIB}
parts_in_flight = 1
backoff_base = 0.1
backoff_max = 1.0
poll_interval = 0.1
[health]
interval = 1.0
""")
    return path


class Daemon:
    def __init__(self, config: Path, port: int) -> None:
        self.config, self.url = config, f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDNSTORE_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "cdnstore", "--config", str(self.config), "serve"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with aiohttp.ClientSession() as http, asyncio.timeout(20):
            while True:
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"X-Forwarded-For": US_IP, **({"Authorization": f"Bearer {token}"} if token else {})}
        async with aiohttp.ClientSession() as http, http.request(method, self.url + path, headers=headers,
                                                                  **kw) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json() if resp.status != 204 else None


async def test_a_daemon_killed_mid_replication_converges_after_restart(tmp_path: Path, weed: WeedCluster,
                                                                       bucket: str, daemon_port: int) -> None:
    config = write_config(tmp_path, daemon_port)
    made = subprocess.run([sys.executable, "-m", "cdnstore", "--config", str(config), "user", "add", "root", "--admin",
                           "--password-stdin"], input=PASSWORD.encode(), capture_output=True)
    assert made.returncode == 0, made.stderr
    daemon = Daemon(config, daemon_port)
    await daemon.start()
    try:
        token = (await daemon.call("POST", "/api/v1/auth/login", json={"username": "root", "password": PASSWORD}))[
            "access_token"]
        for site in ORIGINAL_LAYOUT:
            if site.zone == "USA":
                await daemon.call("POST", "/api/v1/servers", token, json={
                    "name": site.name, "endpoint_url": weed.instance(site.name).endpoint_url, "bucket": bucket,
                    "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "location": site.location, "zone": site.zone,
                    "latitude": site.latitude, "longitude": site.longitude, "is_on": True, "is_active": True})
        data = os.urandom(MIB) * 40
        announced = await daemon.call("POST", "/api/v1/files", token,
                                      json={"name": "big.bin", "size": len(data), "content_type": "application/zip"})
        async with aiohttp.ClientSession() as http, http.put(announced["upload"]["url"], data=io.BytesIO(data),
                                                             headers=announced["upload"]["headers"]) as resp:
            assert resp.status == 200
        # Kill it while a copy is running.
        db = sqlite3.connect(tmp_path / "db.sqlite3", timeout=5)
        async with asyncio.timeout(30):
            while not db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0]:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        daemon.kill()
        assert db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] >= 1

        await daemon.start()
        async with asyncio.timeout(60):
            while db.execute("SELECT count(*) FROM jobs").fetchone()[0] or \
                    db.execute("SELECT count(*) FROM replicas").fetchone()[0] < 3:
                await asyncio.sleep(0.1)
        file_id = announced["file"]["id"]
        assert (await daemon.call("GET", f"/api/v1/files/{file_id}", token))["status"] == "stored"
        key = announced["upload"]["url"].split("?")[0].rsplit("/", 1)[1]
        async with Storage() as storage, aiohttp.ClientSession() as http:
            for site in ("dallas", "newyork", "detroit"):
                target = S3Target(weed.instance(site).endpoint_url, bucket, "us-east-1", ACCESS_KEY, SECRET_KEY)
                url = storage.presign_get(target, key, filename="big.bin", expires_in=60)
                digest, size, _ = await md5_of_get(http, url)
                assert size == len(data), site
        assert digest == hashlib.md5(data).hexdigest()
    finally:
        daemon.stop()
