"""Several daemons on one PostgreSQL, under faults: three `cdnstore serve` processes share a throwaway
PostgreSQL cluster of this module's own; uploads go through any of them while copies run on all of them.
Each round one daemon is killed with SIGKILL at a seeded random moment (and restarted); once, PostgreSQL
itself is stopped with `-m immediate` during the work and started again. Afterwards: every acknowledged
upload is stored, on every active server of its zone, byte for byte; no job ran on two daemons at once
(each run's start and end are in the daemons' logs; a killed daemon's runs end with it); scrub finds no
drift; no 500 was answered (a 503 `database_unavailable` while PostgreSQL is down is the documented answer).

CDNSTORE_FAULT_SEED picks other moments, as in test_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from apihelp import US_IP, Answer, put_bytes, wait_for
from daemonproc import Cluster
from reliability import LEDGER
from test_faults import Model, check_model, check_objects, scrub

from cdnstore.config import DatabaseConfig
from cdnstore.db import RESYNC, connect
from testbed.postgres import PgCluster
from testbed.seaweed import WeedCluster

ROUNDS = 6
CRASH_ROUND = 3  # PostgreSQL crashes during this round's work (no daemon is killed in it)
FILL_ROUND = 2  # Detroit is activated: a fill of every USA file runs beside the uploads' copies
SEED = int(os.environ.get("CDNSTORE_FAULT_SEED", "20261128"))
LEASE = 3.0  # jobs.lease_seconds and periodic.lease_seconds: takeovers within the test's time
KIB, MIB = 1 << 10, 1 << 20
RUN_LINE = re.compile(r"^(\S+ \S+) INFO cdnstore\.job_worker: job (\d+) \(\w+\) (starts|ends), claim ([0-9a-f-]+)")


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PgCluster]:
    """A PostgreSQL cluster for this module alone: its tests crash it."""
    cluster = PgCluster(schema_template=True)
    cluster.start()
    yield cluster
    cluster.stop()


def test_a_test_database_made_ahead_while_postgresql_was_down_is_made_again_when_taken() -> None:
    """The suite's cluster makes test databases ahead, in a thread (testbed/postgres.py, `ahead`); one whose
    making failed because a test crashed the server is made again by the `fresh()` that takes it."""
    cluster = PgCluster(schema_template=True, ahead=1)
    cluster.start()
    try:
        cluster.crash()
        with pytest.raises(subprocess.CalledProcessError):
            cluster.fresh()  # both copies asked for fail, and so does making the first again
        cluster.resume()
        url = cluster.fresh()  # the second copy failed too: made again
        assert asyncio.run(schema_rows(url)) == 1
    finally:
        cluster.stop()


async def schema_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM cdnstore_schema"))
    finally:
        await conn.close()


async def test_a_listener_is_told_to_resync_after_postgresql_restarts_and_hears_again(own_pg: PgCluster) -> None:
    database = connect(DatabaseConfig(url=own_pg.fresh()))
    await database.open()
    heard: list[str | None] = []
    try:
        await database.listen("servers", heard.append)
        own_pg.crash()
        own_pg.resume()
        await wait_for(lambda: RESYNC in heard, "the listener to be told to re-read", within=20)
        await wait_for(lambda: database.unavailable is None and heard == [RESYNC], "nothing else heard", within=5)

        async def sent() -> bool:
            with contextlib.suppress(Exception):  # the pool may hand out a connection the crash cut first
                await database.notify("servers", "s1")
                return True
            return False

        await wait_for(sent, "a notification to be sent")
        await wait_for(lambda: heard == [RESYNC, "s1"], "the notification after the restart")
    finally:
        await database.close()


class Faults:
    """The daemons of a `daemonproc.Cluster`, killed and restarted; requests go to the ones alive, and are
    sent again while PostgreSQL is down."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.kills: dict[int, list[float]] = defaultdict(list)  # daemon -> unix times of its SIGKILLs
        self.down: set[int] = set()
        self.answers: list[Answer] = []

    def alive(self, rng: random.Random) -> int:
        return rng.choice([n for n in range(len(self.cluster.daemons)) if n not in self.down])

    async def call(self, rng: random.Random, method: str, path: str, **kw: Any) -> Answer:
        """The request on a live daemon; while PostgreSQL is down (503 database_unavailable) again later."""
        async with asyncio.timeout(30):
            while True:
                answer = await self.cluster.admins[self.alive(rng)].call(method, path, **kw)
                self.answers.append(answer)
                if answer.status != 503:
                    return answer
                answer.problem(503, "database_unavailable")  # documented while PostgreSQL is away
                await asyncio.sleep(0.2)

    async def kill(self, n: int) -> None:
        daemon = self.cluster[n]
        daemon.kill()
        assert daemon.proc is not None
        await daemon.proc.wait()
        self.kills[n].append(time.time())
        self.down.add(n)

    async def restart(self, n: int) -> None:
        await self.cluster[n].start()
        self.down.discard(n)

    @contextlib.asynccontextmanager
    async def others_stopped(self) -> AsyncIterator[None]:
        """Every daemon but the first stopped (SIGTERM) while the admin changes the servers through the first,
        then started again: each loads the server registry at its start. (Until each daemon's registry
        hears of the others' changes, the others would route uploads with the servers as they were.)"""
        for daemon in self.cluster.daemons[1:]:
            code, _ = await daemon.stop(within=30)
            assert code == 0
        yield
        await asyncio.gather(*(daemon.start() for daemon in self.cluster.daemons[1:]))


async def upload(faults: Faults, model: Model, rng: random.Random, name: str, data: bytes) -> None:
    """Announce, PUT to the storage server, confirm (through any live daemon): acknowledged at the 200."""
    body = {"name": name, "size": len(data), "content_type": "application/octet-stream"}
    announced = (await faults.call(rng, "POST", "/api/v1/files", json=body, headers={"X-Forwarded-For": US_IP})).expect(
        201
    )
    assert await put_bytes(announced["upload"], data) == 200
    (await faults.call(rng, "POST", f"/api/v1/files/{announced['file']['id']}/complete")).expect(200)
    model.uploaded(name, data, announced["file"]["id"])


async def test_daemons_killed_and_postgresql_crashed_lose_nothing_and_never_run_a_job_twice_at_once(
    tmp_path: Path, own_pg: PgCluster, weed: WeedCluster, bucket: str, daemon_port: int
) -> None:
    rng, model = random.Random(SEED), Model()
    url = own_pg.fresh()
    settings: dict[str, dict[str, Any]] = {
        "uploads": {"sweep_interval": 0.3, "sweep_after": 0},
        "health": {"interval": 1.0},
        "scrub": {"interval": 0, "stale_upload_after": 0},
        "periodic": {"lease_seconds": LEASE},
        "jobs": {"workers": 4, "per_server": 2, "lease_seconds": LEASE},
    }
    async with Cluster(tmp_path, url, 3, first_port=daemon_port, weed=weed, bucket=bucket, **settings) as cluster:
        faults, count = Faults(cluster), 0
        for n in range(ROUNDS):
            victim = None if n == CRASH_ROUND else n % len(cluster.daemons)  # each in turn
            faults.down = {victim} if victim is not None else set()  # the work goes to the others
            if n == FILL_ROUND:
                async with faults.others_stopped():
                    detroit = f"/api/v1/servers/{cluster.servers['detroit']['id']}"
                    (await cluster.admins[0].patch(detroit, json={"is_active": True})).expect(200)
            files = []
            for _ in range(3):
                count += 1
                files.append((f"file-{count:03}.bin", rng.randbytes(rng.randint(64 * KIB, 3 * MIB))))
            await asyncio.gather(*(upload(faults, model, rng, name, data) for name, data in files))
            moment = rng.uniform(0, 0.5)
            await asyncio.sleep(moment)  # the scenario: the fault at a random (seeded) moment of the copies
            if victim is None:
                own_pg.crash()
                await asyncio.sleep(1.0)
                own_pg.resume()
                print(f"round {n + 1}: PostgreSQL crashed {moment:.3f} s into the copies")
            else:
                await faults.kill(victim)
                print(f"round {n + 1}: daemon {victim} killed {moment:.3f} s into the copies")
                await faults.restart(victim)
        faults.down = set()
        conn = await asyncpg.connect(url)
        try:
            await converged(conn)
            servers_rows = [tuple(r) for r in await conn.fetch("SELECT name, zone, is_on, is_active FROM servers")]
            versions = [tuple(r) for r in await conn.fetch("SELECT object_key, size, zone, status FROM versions")]
        finally:
            await conn.close()
        model_mismatches = await check_model(model, cluster.admins[1])
        for daemon in cluster.daemons:
            code, _ = await daemon.stop(within=30)
            assert code == 0
    scrubbed = scrub(cluster[0])
    checked, mismatches = await check_objects(servers_rows, versions, weed, bucket)
    overlaps, again = concurrent_runs(cluster, faults.kills)
    print(f"{again} jobs ran more than once (taken over, or stopped with their daemon and run again)")
    errors = [a for a in faults.answers if a.status >= 500 and a.status != 503]
    LEDGER.add(
        "several daemons on PostgreSQL: one killed (SIGKILL) per round, PostgreSQL crashed once",
        faults=sum(map(len, faults.kills.values())) + 1,
        rounds=ROUNDS,
        files_checked=checked,
        drift=scrubbed + len(mismatches) + len(model_mismatches),
        server_errors=len(errors),
    )
    assert not mismatches and not model_mismatches and not scrubbed, (mismatches, model_mismatches, scrubbed)
    assert not overlaps, overlaps
    assert not errors, [(a.status, a.body) for a in errors]
    assert checked == len(model.live()) == 3 * ROUNDS


async def converged(conn: asyncpg.Connection[Any], within: float = 60) -> None:
    """No job open or failed and no upload pending: what was acknowledged is done."""

    async def done() -> bool:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM jobs WHERE status != 'failed') AS open_jobs, "
            "(SELECT count(*) FROM jobs WHERE status = 'failed') AS failed, "
            "(SELECT count(*) FROM versions WHERE status = 'uploading') AS pending"
        )
        assert counts is not None  # a SELECT without FROM always gives its one row
        assert not counts["failed"], await conn.fetch("SELECT kind, server_id, last_error FROM jobs")
        return not counts["open_jobs"] and not counts["pending"]

    await wait_for(done, "no job open and no upload pending", within, every=0.2)


def concurrent_runs(cluster: Cluster, kills: dict[int, list[float]]) -> tuple[list[str], int]:
    """Runs of one job that overlapped in time, on any daemons, and how many jobs ran more than once: each
    run from its daemon's log lines (a run without an end ended when its daemon was killed)."""
    runs: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for n, daemon in enumerate(cluster.daemons):
        started: dict[str, tuple[int, float]] = {}
        for line in daemon.log.read_text().splitlines():
            match = RUN_LINE.match(line)
            if not match:
                continue
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if match[3] == "starts":
                started[match[4]] = (int(match[2]), at)
            else:
                job, began = started.pop(match[4])
                runs[job].append((began, at, f"daemon {n}"))
        for job, began in started.values():
            ended = min(k for k in kills[n] if k >= began)  # only a kill ends a run without a line
            runs[job].append((began, ended, f"daemon {n} (killed)"))
    found = []
    for job, spans in runs.items():
        spans.sort()
        found += [
            f"job {job}: {a} until {a_end:.3f}, {b} from {b_start:.3f}"
            for (_, a_end, a), (b_start, _, b) in itertools.pairwise(spans)
            if b_start < a_end
        ]
    assert runs, "no job run was logged"
    return found, sum(len(spans) > 1 for spans in runs.values())


pytestmark = pytest.mark.timeout(300)
