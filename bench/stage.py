"""What the scenarios run against: `cdnstore serve` as production runs it (a process of its own, on a config
file), real SeaweedFS servers telling it of their objects, an API client, the floor's bare aiohttp server;
the stage the scenarios of the servers share, and what each scenario is told."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from testbed.daemon import Daemon, write_config
from testbed.demo import ORIGINAL_LAYOUT
from testbed.ports import unused_port
from testbed.postgres import PgCluster
from testbed.seaweed import WeedCluster

from .figures import Results

ROOT = Path(__file__).resolve().parent.parent
ACCESS, SECRET = "benchkey", "benchsecret12345"
PASSWORD = "bench-password-1"
US_IP = "8.8.8.8"
TOKEN = "bench-events-token"


# The background work's intervals an hour long: what scenario E counts is the requests' work alone.
QUIET: dict[str, dict[str, Any]] = {
    "uploads": {"sweep_interval": 3600, "fast_sweep_interval": 3600},
    "jobs": {"poll_interval": 3600},
    "health": {"interval": 3600},
    "integrity": {"verify_interval": 3600},
    "imports": {"poll_interval": 3600},
    "files": {"sweep_interval": 3600},
    "webhooks": {"poll_interval": 3600},
    "periodic": {"lease_seconds": 3600},
}


def bench_daemon(
    work: Path, port: int, events_token: str, *, database_url: str = "", request_logs: bool = True, quiet: bool = False
) -> Daemon:
    """A daemon (not started) keeping its config file, database and log in `work`. `request_logs`: the shipped
    default (a line per request at INFO), as production runs it; off, the log level is WARNING. `quiet`: the
    background work's intervals an hour (QUIET)."""
    work.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    sections: dict[str, dict[str, Any]] = {
        "http": {"port": port, "public_url": url, "trusted_proxies": ["127.0.0.1"]},
        "database": {"path": str(work / "cdnstore.sqlite3"), "url": database_url},
        "auth": {"secret_key": "bench-secret-key-0123456789"},
        "events": {"token": events_token},
        "uploads": {"max_per_minute": 0},
    }
    if not request_logs:
        sections["log"] = {"level": "WARNING", "requests": False}
    if quiet:
        sections = {**sections, **{name: {**sections.get(name, {}), **keys} for name, keys in QUIET.items()}}
    return Daemon(write_config(work / "config.toml", sections), port, work / "daemon.log")


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


def floor_server(port: int, under: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """The floor: a bare aiohttp JSON handler (bench/hello.py) in a process of its own (run `under` a command,
    if given), starting."""
    return subprocess.Popen([*under, sys.executable, "-m", "bench.hello", str(port)], cwd=ROOT)


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


async def stop(daemon: Daemon) -> None:
    """SIGTERM, and its exit waited for (a minute at most), if it was started."""
    if daemon.proc is not None:
        await daemon.stop(60)


async def server_id(client: Client, name: str) -> str:
    servers = (await client.call("GET", "/api/v1/servers"))["items"]
    return str(next(s["id"] for s in servers if s["name"] == name))


@dataclass
class Servers:
    """The stage scenarios 1-4, 7 and 8 share: three SeaweedFS servers (dallas and newyork active in the USA,
    detroit inactive) and one daemon, with a small stored file for the hot paths."""

    weed: WeedCluster
    daemon: Daemon
    client: Client
    bucket: str
    small_file_id: str


@contextlib.asynccontextmanager
async def servers_stage(work: Path, *, under: tuple[str, ...] = (), quiet: bool = False) -> AsyncIterator[Servers]:
    """The stage; its daemon run `under` a command (and its start waited for ten times as long) if given, its
    background work `quiet` if asked."""
    port = unused_port()
    names = ["dallas", "newyork", "detroit"]
    weed = weed_telling(work / "s3", names, port, TOKEN)
    await weed.start()
    daemon = bench_daemon(work, port, TOKEN, quiet=quiet)
    if under:
        daemon.under, daemon.start_timeout = under, daemon.start_timeout * 10
    client = Client(daemon.url)
    try:
        bucket = "bench"
        await start_with_servers(daemon, client, weed, names, bucket, inactive=("detroit",))
        small = await client.call("POST", "/api/v1/files", {"name": "hot.txt", "size": 5})
        await client.put(small["upload"], b"hello")
        await client.call("POST", f"/api/v1/files/{small['file']['id']}/complete")
        yield Servers(weed, daemon, client, bucket, small["file"]["id"])
    finally:
        await client.http.close()
        await stop(daemon)
        await weed.stop()


@dataclass
class Bench:
    """What a scenario is told: the options, a folder it may fill, where its figures go, and the stage it
    asked for (started by the runner for the scenarios that share it, in their order, stopped after them)."""

    args: argparse.Namespace
    work: Path
    results: Results
    servers: Servers | None = None
    pg: PgCluster | None = None

    def need_servers(self) -> Servers:
        assert self.servers is not None, "a scenario of the servers' stage run without it"
        return self.servers

    def need_pg(self) -> PgCluster:
        assert self.pg is not None, "a PostgreSQL scenario run without the cluster"
        return self.pg


@dataclass(frozen=True)
class Scenario:
    """One scenario: its name (its module's), its letters for --only, the stage it shares with its neighbours
    ("servers": `Servers`; "postgres": a durable PostgreSQL cluster; "": none), and what runs it."""

    name: str
    codes: str
    needs: Literal["servers", "postgres", ""]
    run: Callable[[Bench], Awaitable[None]]
