"""Fault rounds: `cdnstore serve` is killed with SIGKILL at a random moment of upload confirmation,
replication, removal or a server's fill, 20 times over, and restarted after each kill. Then it must
converge: no job left failed, scrub finds no drift, every stored file is on every active server of its
zone with its exact bytes, and no object of a deleted or replaced version is left on any server.

The moments are drawn from a seeded random generator (CDNSTORE_FAULT_SEED picks another seed), so a
failing round can be replayed. Requests cut short by a kill are uncertain: the check accepts either
outcome for them, and only for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apihelp import PASSWORD, RUSSIA_IP, US_IP, Session, put_bytes, wait_for
from clihelp import cdnstore
from daemonproc import admin_session, write_config
from reliability import LEDGER
from weedbed import md5_of_get

from cdnstore.storage import Storage
from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster

ROUNDS = 20
SEED = int(os.environ.get("CDNSTORE_FAULT_SEED", "20261124"))
PHASES = ("confirmation", "replication", "removal", "fill")
KIB, MIB = 1 << 10, 1 << 20


@dataclass
class Model:
    """What the client was told: the contents a name may hold, and the names it deleted."""

    contents: dict[str, bytes] = field(default_factory=dict)  # name -> the bytes of its last upload
    deleted: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)  # a delete the kill cut short: either outcome is right
    ids: dict[str, str] = field(default_factory=dict)

    def uploaded(self, name: str, data: bytes, file_id: str) -> None:
        self.contents[name] = data
        self.ids[name] = file_id
        self.deleted.discard(name)

    def live(self) -> list[str]:
        return sorted(n for n in self.contents if n not in self.deleted and n not in self.uncertain)


class Rounds:
    def __init__(self, daemon: Daemon, weed: WeedCluster, bucket: str, db: sqlite3.Connection) -> None:
        self.daemon, self.weed, self.bucket, self.db = daemon, weed, bucket, db
        self.rng = random.Random(SEED)
        self.model = Model()
        self.count = self.fills = 0
        self.user: Session
        self.admin: Session

    def name(self) -> str:
        self.count += 1
        return f"file-{self.count:03}.bin"

    def data(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    async def upload(self, name: str, data: bytes, ip: str = US_IP) -> dict[str, Any]:
        """Announce (answered before any kill) and PUT straight to the server, as a client does."""
        announced = await self.user.announce(name, data, ip=ip, expect=200 if name in self.model.contents else 201)
        self.model.uploaded(name, data, announced["file"]["id"])
        return announced

    async def kill_after(self, work: Awaitable[Any], low: float, high: float) -> None:
        """Start `work`, SIGKILL the daemon a random moment later, then let `work` end either way
        (a request the kill cut short fails to connect; any other failure is the test's)."""
        task = asyncio.ensure_future(work)
        delay = self.rng.uniform(low, high)
        await asyncio.sleep(delay)  # the scenario: a kill at a random (seeded) moment of the work
        self.daemon.kill()
        assert self.daemon.proc is not None
        await self.daemon.proc.wait()
        with contextlib.suppress(aiohttp.ClientError):
            await task
        jobs = self.db.execute("SELECT kind || ' ' || status, count(*) FROM jobs GROUP BY 1").fetchall()
        pending = self.db.execute("SELECT count(*) FROM versions WHERE status = 'uploading'").fetchone()[0]
        print(f"killed {delay:.3f} s in, leaving jobs {dict(jobs)} and {pending} uploads unconfirmed")

    # One phase per round, in turn. Each ends with the daemon killed.

    async def confirmation(self) -> None:
        # The uploads' webhooks reach the daemon, or are lost with it: the sweep must confirm them.
        files = [(self.name(), self.data(1, 64 * KIB)) for _ in range(3)]
        uploads = [(await self.upload(name, data), data) for name, data in files]
        await self.kill_after(asyncio.gather(*(put_bytes(u["upload"], d) for u, d in uploads)), 0, 0.08)

    async def replication(self) -> None:
        files = [(self.name(), self.data(1 * MIB, 7 * MIB), ip) for ip in (US_IP, US_IP, RUSSIA_IP)]
        for name, data, ip in files:
            assert await put_bytes((await self.upload(name, data, ip))["upload"], data) == 200
            await self.user.post(f"/api/v1/files/{self.model.ids[name]}/complete")
        await self.kill_after(asyncio.sleep(0), 0, 0.3)  # copies to the zone's other servers are running

    async def removal(self) -> None:
        live = self.model.live()
        doomed = self.rng.sample(live, min(2, len(live)))
        if live:  # a new version of a file: the old one's objects are removed once the new one is stored
            name = self.rng.choice([n for n in live if n not in doomed] or live)
            if name not in doomed:
                data = self.data(1, 2 * MIB)
                assert await put_bytes((await self.upload(name, data))["upload"], data) == 200
        await self.kill_after(self.delete_all(doomed), 0, 0.3)

    async def delete_all(self, names: list[str]) -> None:
        for name in names:
            self.model.uncertain.add(name)  # until the answer comes back
            (await self.user.delete(f"/api/v1/files/{self.model.ids[name]}")).expect(204)
            self.model.uncertain.discard(name)
            self.model.deleted.add(name)

    async def fill(self) -> None:
        # Detroit and Vladivostok take turns: Detroit is (re)activated, Vladivostok moves between zones.
        servers = {s["name"]: s for s in (await self.admin.get("/api/v1/servers")).expect(200)["items"]}
        self.fills += 1
        if self.fills % 2:
            detroit = servers["detroit"]
            if detroit["is_active"]:
                (await self.admin.patch(f"/api/v1/servers/{detroit['id']}", json={"is_active": False})).expect(200)
            change = self.admin.patch(f"/api/v1/servers/{detroit['id']}", json={"is_active": True})
        else:
            vlad = servers["vladivostok"]
            change = self.admin.patch(
                f"/api/v1/servers/{vlad['id']}", json={"zone": "USA" if vlad["zone"] == "Russia" else "Russia"}
            )
        (await change).expect(200)
        await self.kill_after(asyncio.sleep(0), 0, 0.2)


async def test_twenty_kills_at_random_moments_converge_with_nothing_lost(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    write_config(
        tmp_path,
        daemon.port,
        uploads={"sweep_interval": 0.3, "sweep_after": 0},
        health={"interval": 1.0},
        scrub={"interval": 0, "stale_upload_after": 0},
        jobs={"workers": 4, "per_server": 2},
    )
    await daemon.start()
    db = sqlite3.connect(tmp_path / "cdnstore.sqlite3", timeout=5)
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        rounds = Rounds(daemon, weed, bucket, db)
        rounds.admin = await admin_session(daemon, http)
        await rounds.admin.add_layout(weed, bucket)
        await rounds.admin.post("/api/v1/users", json={"username": "alice", "password": PASSWORD, "is_admin": False})
        rounds.user = await rounds.admin.api.login("alice")
        phases: dict[str, Callable[[], Awaitable[None]]] = {p: getattr(rounds, p) for p in PHASES}
        for n in range(ROUNDS):
            print(f"round {n + 1}: {PHASES[n % len(PHASES)]}", end=", ")
            await phases[PHASES[n % len(PHASES)]]()
            await daemon.start()  # the same tokens stay valid across restarts
        await converged(db)
        model_mismatches = await check_model(rounds.model, rounds.user)
        code, _ = await daemon.stop(within=30)
        assert code == 0
    miscounted = db.execute(COUNTERS_DRIFTED).fetchall()  # before scrub, which would fix them
    scrubbed = scrub(daemon)
    checked, mismatches = await check_buckets(db, weed, bucket)
    LEDGER.add(
        "daemon killed (SIGKILL) during confirmation, replication, removal, fill",
        faults=ROUNDS,
        rounds=ROUNDS,
        files_checked=checked,
        drift=scrubbed + len(mismatches) + len(model_mismatches) + len(miscounted),
    )
    assert not mismatches and not model_mismatches and not scrubbed and not miscounted, (
        mismatches,
        model_mismatches,
        scrubbed,
        miscounted,
    )
    assert checked >= len(rounds.model.live()) > 10  # every file the client still has was checked


async def converged(db: sqlite3.Connection, within: float = 90) -> None:
    """No job open or failed and no upload pending: what was acknowledged is done."""

    def done() -> bool:
        open_jobs, failed = db.execute(
            "SELECT count(*) FILTER (WHERE status != 'failed'), count(*) FILTER (WHERE status = 'failed') FROM jobs"
        ).fetchone()
        assert not failed, db.execute("SELECT kind, server_id, last_error FROM jobs").fetchall()
        pending = db.execute("SELECT count(*) FROM versions WHERE status = 'uploading'").fetchone()[0]
        return not open_jobs and not pending

    await wait_for(done, "no job open and no upload pending", within, every=0.2)


# The servers whose trigger-kept counters differ from a recount of the replica table (either engine).
COUNTERS_DRIFTED = """SELECT s.name, s.files_present, s.bytes_present, count(r.version_id), coalesce(sum(v.size), 0)
    FROM servers s LEFT JOIN replicas r ON r.server_id = s.id LEFT JOIN versions v ON v.id = r.version_id
    GROUP BY s.id, s.name, s.files_present, s.bytes_present
    HAVING s.files_present != count(r.version_id) OR s.bytes_present != coalesce(sum(v.size), 0)"""


def scrub(daemon: Daemon) -> int:
    """`cdnstore scrub --deep` on the stopped daemon's database: the servers with missing, orphan or
    unknown-to-the-table objects (unfinished multipart uploads of killed copies are cleaned, not drift),
    plus the servers whose counters it had to fix, plus the replicas whose bytes differ from their SHA-256
    or could not be read back."""
    done = cdnstore("scrub", "--deep", cwd=daemon.config.parent, env={"CDNSTORE_CONFIG": str(daemon.config)})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "objects=" in line]
    assert len(lines) == 5, done.stdout
    deep = re.search(
        r"^deep scrub: verified=(\d+) corrupt=(\d+) missing=(\d+) .*undecided=(\d+) skipped=(\d+)",
        done.stdout,
        re.MULTILINE,
    )
    assert deep is not None and int(deep[1]) > 0, done.stdout
    return (
        sum(any(int(n) for n in re.findall(r"(?:missing|orphans|adopted)=(\d+)", line)) for line in lines)
        + done.stdout.count("counters fixed")
        + sum(int(n) for n in deep.groups()[1:])
    )


async def check_buckets(db: sqlite3.Connection, weed: WeedCluster, bucket: str) -> tuple[int, list[str]]:
    """Every stored version is on every active server of its zone, byte for byte; the objects of deleted
    and replaced versions are on no server. Returns the stored files checked and what is wrong."""
    servers = db.execute("SELECT name, zone, is_on, is_active FROM servers").fetchall()
    versions = db.execute("SELECT object_key, size, zone, status FROM versions").fetchall()
    return await check_objects(servers, versions, weed, bucket)


async def check_objects(
    servers: list[tuple[Any, ...]], versions: list[tuple[Any, ...]], weed: WeedCluster, bucket: str
) -> tuple[int, list[str]]:
    """check_buckets on rows read from any engine: servers (name, zone, is_on, is_active) and versions
    (object_key, size, zone, status)."""
    wrong: list[str] = []
    async with Storage() as storage, aiohttp.ClientSession() as http:
        held = {
            name: {o.key: o.size async for o in storage.list_objects(weed.target(name, bucket))} for name, *_ in servers
        }
        stored = [v for v in versions if v[3] == "stored"]
        for key, size, zone, _ in stored:
            digests = set()
            for name, server_zone, is_on, is_active in servers:
                if is_on and is_active and server_zone == zone:
                    if held[name].get(key) != size:
                        wrong.append(f"{key} ({size} B) missing on {name}")
                        continue
                    url = storage.presign_get(weed.target(name, bucket), key, filename="x", expires_in=60)
                    digests.add((await md5_of_get(http, url))[0])
            if len(digests) > 1:
                wrong.append(f"{key}: copies differ {digests}")
        for key, _, _, status in versions:
            if status in ("deleted", "superseded"):
                wrong += [f"{key} ({status}) still on {name}" for name in held if key in held[name]]
    return len(stored), wrong


async def check_model(model: Model, user: Session) -> list[str]:
    """The API agrees with what it told the client: every acknowledged upload is listed, stored, and its
    download serves the bytes last sent; every acknowledged delete is gone."""
    listed = {f["name"]: f for f in (await user.get("/api/v1/files?limit=1000")).expect(200)["items"]}
    wrong = []
    async with aiohttp.ClientSession() as http:
        for name, content in model.contents.items():
            if name in model.uncertain:
                continue
            if name in model.deleted:
                if name in listed:
                    wrong.append(f"{name} was deleted but is listed")
            elif name not in listed or listed[name]["status"] != "stored":
                wrong.append(f"{name} was uploaded but is {listed.get(name, {}).get('status', 'missing')}")
            else:
                link = (await user.get(f"/api/v1/files/{listed[name]['id']}/download")).expect(200)
                if (await md5_of_get(http, link["url"]))[0] != hashlib.md5(content).hexdigest():
                    wrong.append(f"{name} does not serve the bytes last uploaded")
    return wrong


pytestmark = pytest.mark.timeout(400)
