"""`cdnstore demo`: five local SeaweedFS S3 servers in the original's layout, plus the daemon.

Everything it makes lives under one folder (default var/demo): the S3 servers' data, the database, the
log (`cdnstore.log`: every request, copy and job; the terminal shows only warnings, unless `--verbose`)
and the generated secrets, so a second run picks up where the first stopped. Ctrl-C stops it all at once:
copies still running go back to the queue for the next run.

`--daemons N` (N > 1) shows several daemons serving one service: it starts a throwaway PostgreSQL cluster
(testbed/postgres.py, as the tests do) with a copy of the one-daemon demo's database (its users, servers
and files), and N daemons on it, on ports port, port + 1, ...; each has its own caches, pool and background
work, as separate processes would. What changes in such a run is gone with the cluster when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from cdnstore import appkeys
from cdnstore.api.server import AppRunner
from cdnstore.app import create_app
from cdnstore.config import Config
from cdnstore.db import initialize
from cdnstore.db.copy import copy_database
from cdnstore.errors import NotFound
from cdnstore.logs import log_to_file
from cdnstore.servers import ServerChanges

from .postgres import INSTALL_HINT, PgCluster, bindir
from .seaweed import WeedCluster, WeedError

log = logging.getLogger(__name__)

DEMO_PASSWORD = "qwe12345"  # the original's demo password, printed at start
LOG_FILE = "cdnstore.log"  # in the demo's folder
# Ctrl-C stops the demo at once: copies still running are interrupted and go back to the queue (no attempt
# spent), to run again at the next start; requests in flight get as long.
SHUTDOWN_GRACE = 0.5


@dataclass(frozen=True)
class Site:
    name: str
    location: str
    zone: str
    latitude: float
    longitude: float
    is_active: bool

    def registration(self) -> dict[str, Any]:
        """What a POST /api/v1/servers of this site says besides its S3 connection (on, as in the original)."""
        return {
            "name": self.name,
            "location": self.location,
            "zone": self.zone,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "is_on": True,
            "is_active": self.is_active,
        }


# The original's five MinIO servers; Detroit is inactive there too.
ORIGINAL_LAYOUT = (
    Site("capetown", "Cape Town", "Africa", -33.9249, 18.4241, True),
    Site("vladivostok", "Vladivostok", "Russia", 43.1155, 131.8855, True),
    Site("newyork", "New York", "USA", 40.7128, -74.0060, True),
    Site("dallas", "Dallas", "USA", 32.7767, -96.7970, True),
    Site("detroit", "Detroit", "USA", 42.3314, -83.0458, False),
)
S3_ACCESS_KEY = "cdnstore"


def _persisted_secret(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


# Local clients have no location: the demo places them in the USA (a zone with two active servers, so
# replication shows), and believes X-Forwarded-For from this machine, so that a client can pretend to be
# elsewhere: curl -H 'X-Forwarded-For: 77.88.8.8' ... (Russia).
DEMO_FALLBACK_IP = "8.8.8.8"


def demo_config(cfg: Config, root: Path, port: int | None) -> Config:
    port = cfg.http.port if port is None else port
    public_url = cfg.http.public_url if port == cfg.http.port else f"http://{cfg.http.host}:{port}"
    return cfg.model_copy(
        update={
            "http": cfg.http.model_copy(
                update={
                    "port": port,
                    "public_url": public_url,
                    "trusted_proxies": cfg.http.trusted_proxies or ("127.0.0.1",),
                }
            ),
            "geoip": cfg.geoip.model_copy(update={"fallback_ip": cfg.geoip.fallback_ip or DEMO_FALLBACK_IP}),
            "database": cfg.database.model_copy(update={"path": str(root / "cdnstore.sqlite3")}),
            "auth": cfg.auth.model_copy(
                update={"secret_key": cfg.auth.secret_key or _persisted_secret(root / "secret_key")}
            ),
            "events": cfg.events.model_copy(
                update={"token": cfg.events.token or _persisted_secret(root / "events_token")}
            ),
            "jobs": cfg.jobs.model_copy(update={"shutdown_grace": min(cfg.jobs.shutdown_grace, SHUTDOWN_GRACE)}),
        }
    )


def daemon_config(cfg: Config, i: int) -> Config:
    """The i-th daemon's configuration (0: `cfg` itself): the next port, and its own public URL."""
    if i == 0:
        return cfg
    port = cfg.http.port + i
    return cfg.model_copy(
        update={"http": cfg.http.model_copy(update={"port": port, "public_url": f"http://{cfg.http.host}:{port}"})}
    )


def run_demo(cfg: Config, folder: str, port: int | None, daemons: int = 1, *, verbose: bool = False) -> int:
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    log_to_file(root / LOG_FILE, cfg.log, terminal_level=logging.NOTSET if verbose else logging.WARNING)
    cfg = demo_config(cfg, root, port)
    if daemons < 1:
        return _refuse("--daemons must be at least 1")
    for i in range(daemons):
        taken = daemon_config(cfg, i).http.port
        if not _port_free(cfg.http.host, taken):
            return _refuse(
                f"port {taken} on {cfg.http.host} is in use (an earlier demo still running?): "
                "stop it, or choose another port with --port"
            )
    if daemons > 1 and bindir() is None:
        return _refuse(f"--daemons {daemons} needs a PostgreSQL server on this machine ({INSTALL_HINT})")
    pg = PgCluster() if daemons > 1 else None
    try:
        if pg is not None:
            print(f"starting a throwaway PostgreSQL cluster under {pg.root} ...", flush=True)
            pg.start()
            url = pg.create_database("cdnstore")
            _copy_demo_data(Path(cfg.database.path), url)
            cfg = cfg.model_copy(update={"database": cfg.database.model_copy(update={"url": url})})
        return asyncio.run(_demo(cfg, root, daemons))
    except WeedError as exc:  # one line, not weed's Go stack dump (that stays in the file it names)
        return _refuse(exc.summary)
    finally:
        if pg is not None:
            pg.stop()


def _copy_demo_data(sqlite: Path, url: str) -> None:
    """The one-daemon demo's database (users, servers, files, history) into the cluster's, so that the
    daemons serve what the demo held; nothing flows back (the cluster is thrown away at the end)."""
    if not sqlite.exists():
        print("  (no earlier one-daemon demo to copy: the daemons start with the demo users only)", flush=True)
        return
    initialize(sqlite)  # the copy wants both at the latest schema
    copied = asyncio.run(copy_database(sqlite, "", url, lambda line: None))
    print(
        f"  copied the demo's database ({_shown(sqlite)}, {sum(copied.tables.values())} rows) into it: the "
        "same users, servers and files; what changes in this run is not kept after it stops",
        flush=True,
    )


def _shown(path: Path) -> str:
    """`path` as the user would type it: relative to the current directory when it is inside it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative


def _refuse(reason: str) -> int:
    print(f"cdnstore demo: {reason}", file=sys.stderr, flush=True)
    return 1


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp's listener does
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def _demo(cfg: Config, root: Path, daemons: int) -> int:
    s3_secret = _persisted_secret(root / "s3_secret")
    cluster = WeedCluster(
        root / "s3",
        [site.name for site in ORIGINAL_LAYOUT],
        access_key=S3_ACCESS_KEY,
        secret_key=s3_secret,
        webhook_url=lambda name: f"http://127.0.0.1:{cfg.http.port}/api/v1/events/s3/{name}",
        webhook_token=cfg.events.token,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"starting {len(ORIGINAL_LAYOUT)} local S3 servers (SeaweedFS) under {root / 's3'} ...", flush=True)
    await cluster.start()
    # (AppRunner: unparsable requests answered as problem+json)
    runners = [
        AppRunner(create_app(daemon_config(cfg, i)), access_log=None, shutdown_timeout=cfg.jobs.shutdown_grace)
        for i in range(daemons)
    ]
    try:
        await _provision_first(cfg, cluster, s3_secret)
        for i, runner in enumerate(runners):
            await runner.setup()
            await web.TCPSite(runner, cfg.http.host, daemon_config(cfg, i).http.port).start()
        _announce(cfg, cluster, daemons, root / LOG_FILE)
        await stop.wait()
        print("\nstopping ...", flush=True)
    finally:
        await _stop(runners, cluster)
    print("stopped", flush=True)
    return 0


async def _stop(runners: list[AppRunner], cluster: WeedCluster) -> None:
    """The daemons first (so that no copy is cut off by its storage server going away), all at once; then
    the storage servers, all at once."""
    started = time.monotonic()
    await asyncio.gather(*(runner.cleanup() for runner in runners))
    stopped_daemons = time.monotonic()
    log.info("demo: daemons stopped in %.2f s", stopped_daemons - started)
    await cluster.stop()
    log.info("demo: storage servers stopped in %.2f s", time.monotonic() - stopped_daemons)


async def _provision_first(cfg: Config, cluster: WeedCluster, s3_secret: str) -> None:
    """Register the servers before the daemon listens and checks them. Else the events they send meanwhile
    (their start, the bucket being made) are answered 404 "unknown server" and logged, which reads as
    errors; and the first health checks go to the previous run's ports."""
    tool = web.AppRunner(create_app(cfg, tool=True))  # the database and registry, no background work
    await tool.setup()
    try:
        await _provision(tool.app, cluster, s3_secret)
    finally:
        await tool.cleanup()


async def _provision(app: web.Application, cluster: WeedCluster, s3_secret: str) -> None:
    """Create the demo users and register the S3 servers (again: their ports change between runs)."""
    accounts, registry = app[appkeys.ACCOUNTS], app[appkeys.SERVERS]
    for username, admin in (("admin", True), ("user", False)):
        if await app[appkeys.DB].fetchone("SELECT 1 FROM users WHERE username = ?", (username,)) is None:
            await accounts.create(username, DEMO_PASSWORD, is_admin=admin)
    admin_id = await app[appkeys.DB].fetchval("SELECT id FROM users WHERE username = 'admin'")
    for site in ORIGINAL_LAYOUT:
        fields = {
            "endpoint_url": cluster.instance(site.name).endpoint_url,
            "bucket": "files",
            "region": "us-east-1",
            "access_key": S3_ACCESS_KEY,
            "secret_key": s3_secret,
        }
        try:
            existing = registry.by_name(site.name)
        except NotFound:
            await registry.create(admin_id, {**fields, **site.registration()})
            continue
        if existing.endpoint_url != fields["endpoint_url"]:
            # A new address takes the credentials with it (they are never sent to a new address otherwise).
            moved = ServerChanges(endpoint_url=fields["endpoint_url"], access_key=S3_ACCESS_KEY, secret_key=s3_secret)
            await registry.update(admin_id, existing.id, moved)


def _announce(cfg: Config, cluster: WeedCluster, daemons: int, log_file: Path) -> None:
    """What runs where, with the URL and the credentials last: the lines a person looks for."""
    url = cfg.http.public_url
    others = [f"{daemon_config(cfg, i).http.public_url}/" for i in range(1, daemons)]
    lines = [
        "",
        f"  S3 servers (SeaweedFS, their data under {_shown(cluster.root)}):",
        *(
            f"    {s.name:<12} {s.location:<12} {s.zone:<7} {cluster.instance(s.name).endpoint_url}"
            f"{'' if s.is_active else '  (inactive)'}"
            for s in ORIGINAL_LAYOUT
        ),
        f"  API description: {url}/api/openapi.json",
        f"  clients on this machine count as {cfg.geoip.fallback_ip}; send X-Forwarded-For to be elsewhere",
        f"  log: {_shown(log_file)} (every request, copy and job; --verbose shows them here too)",
        "",
        f"cdnstore demo is running at {url}/",
        *(
            [
                f"  and at {' and '.join(others)}: {daemons} daemons on one PostgreSQL database "
                f"({cfg.database.url}), serving the same files"
            ]
            if others
            else []
        ),
        f"  log in as  admin / {DEMO_PASSWORD}  (administrator)",
        f"         or  user / {DEMO_PASSWORD}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
