"""The job queue on a real SQLite database (no S3): dedupe, leases, backoff, failure, retry, limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apihelp import wait_for

from cdnstore.config import DatabaseConfig, JobsConfig
from cdnstore.db import Database, connect
from cdnstore.errors import Conflict
from cdnstore.job_queue import LEASE_LOST, Job, JobQueue, Retry, job_uuid
from cdnstore.job_worker import JobsFailed, JobWorker
from cdnstore.sealing import Sealer
from cdnstore.servers import ServerRegistry
from cdnstore.storage import Storage

T0 = "2026-01-01T00:00:00.000Z"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    """A job queue's database on each engine (database_url: conftest.py)."""
    database = connect(DatabaseConfig(path=str(tmp_path / "db.sqlite3"), url=database_url))
    await database.open()
    async with database.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
            "VALUES (1, 'u', 'alice', 'x', ?, ?)",
            (T0, T0),
        )
        for sid, zone in ((1, "USA"), (2, "USA"), (3, "Africa")):
            await tx.execute(
                "INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key, location,"
                " zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) VALUES "
                "(?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', ?, 0, 0, 1, 1, 'up', ?, ?)",
                (sid, f"s{sid}", f"server{sid}", zone, T0, T0),
            )
        for vid in range(1, 11):
            await tx.execute(
                "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) VALUES (?, ?, 1, ?, ?, ?)",
                (vid, f"f{vid}", f"file{vid}", T0, T0),
            )
            await tx.execute(
                "INSERT INTO versions (id, file_id, object_key, size, content_type, upload_server_id,"
                " zone, status, created_at) VALUES (?, ?, ?, 10, 'text/plain', 1, 'USA', 'stored', ?)",
                (vid, vid, f"k{vid}", T0),
            )
            await tx.execute("INSERT INTO replicas (server_id, version_id) VALUES (1, ?)", (vid,))
    yield database
    await database.close()


def queue_of(db: Database, clock: Clock, **cfg: object) -> JobQueue:
    return JobQueue(db, JobsConfig.model_validate({"backoff_base": 1.0, "backoff_max": 8.0, **cfg}), clock)


async def on_the_real_clock(db: Database, **cfg: object) -> tuple[ServerRegistry, JobQueue]:
    """The loaded server registry and a queue on the real clock, for a worker that runs in real time."""
    registry = ServerRegistry(db, Storage(), 1, Sealer("a-key-for-sealing"))
    await registry.load()
    queue = queue_of(db, Clock(), **cfg)
    queue.clock = time.time
    return registry, queue


async def copied(db: Database, job: Job) -> None:
    """What a copy that succeeded leaves: the replica on its server."""
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO replicas (server_id, version_id) VALUES (?, ?)", (job.server_id, job.version_id))


async def test_a_copy_that_ends_without_its_replica_where_one_is_still_wanted_is_enqueued_again(db: Database) -> None:
    """The copy found its server unwanted (inactive) and ended; meanwhile the server was activated, whose fill
    met this job still open (one open job per pair) and added none: the copy's end enqueues it again."""
    queue = queue_of(db, Clock())
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
    running = await queue.claim(2)
    assert running is not None
    async with db.transaction() as tx:  # the activation's fill, while the job runs: not for version 1
        assert await queue.enqueue_fill(tx, 2, "USA") == 9
    assert await queue.done(running)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE version_id = 1 AND status = 'queued'") == 1
    async with db.transaction() as tx:  # (the fill's jobs, claimed first otherwise)
        await tx.execute("DELETE FROM jobs WHERE version_id <> 1")
    again = await queue.claim(2)
    assert again is not None and again.version_id == 1 and again.id != running.id
    async with db.transaction() as tx:  # unwanted now: the server left the zone
        await tx.execute("UPDATE servers SET zone = 'Africa' WHERE id = 2")
    assert await queue.done(again)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE version_id = 1") == 0


async def test_enqueueing_twice_opens_one_job_per_version_and_server(db: Database) -> None:
    queue = queue_of(db, Clock())
    async with db.transaction() as tx:
        assert await queue.enqueue_copies(tx, 1, "USA") == 1  # server 1 holds it already
        assert await queue.enqueue_copies(tx, 1, "USA") == 0
    rows = await db.fetchall("SELECT kind, version_id, server_id FROM jobs")
    assert [dict(r) for r in rows] == [{"kind": "copy", "version_id": 1, "server_id": 2}]


async def test_filling_a_server_enqueues_every_version_of_its_zone_it_lacks(db: Database) -> None:
    queue = queue_of(db, Clock())
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO replicas (server_id, version_id) VALUES (2, 3)")
        assert await queue.enqueue_fill(tx, 2, "USA") == 9
        assert await queue.enqueue_fill(tx, 3, "Africa") == 0


async def test_removal_cancels_queued_copies_and_reaches_every_holder(db: Database) -> None:
    queue = queue_of(db, Clock())
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
        await tx.execute("INSERT INTO replicas (server_id, version_id) VALUES (3, 1)")
        await queue.enqueue_removals(tx, [1])
    rows = await db.fetchall("SELECT kind, server_id FROM jobs ORDER BY server_id")
    assert [(r["kind"], r["server_id"]) for r in rows] == [("remove", 1), ("remove", 3)]


async def test_a_claim_takes_the_oldest_due_job_under_a_lease(db: Database) -> None:
    clock = Clock()
    queue = queue_of(db, clock, lease_seconds=60)
    async with db.transaction() as tx:
        await queue.enqueue_fill(tx, 2, "USA")
    job = await queue.claim(2)
    assert job == Job(job.id, "copy", job.version_id, 2, 1)  # type: ignore[union-attr]
    row = await db.fetchone("SELECT status, lease_until FROM jobs WHERE id = ?", (job.id,))  # type: ignore[union-attr]
    assert tuple(row) == ("running", clock.now + 60)  # type: ignore[arg-type]
    assert await queue.claim(1) is None


async def test_failures_back_off_then_stay_failed_until_retried(db: Database) -> None:
    clock = Clock()
    queue = queue_of(db, clock, max_attempts=3)
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
    delays = []
    for attempt in (1, 2):
        job = await queue.claim(2)
        assert job is not None and job.attempts == attempt
        await queue.fail(job, "boom")
        run_after = await db.fetchval("SELECT run_after FROM jobs")
        delays.append(run_after - clock.now)
        assert await queue.claim(2) is None  # not due yet
        clock.now = run_after
    assert 0.5 <= delays[0] <= 1.5 and 1.0 <= delays[1] <= 3.0
    job = await queue.claim(2)
    assert job is not None
    await queue.fail(job, "boom at last")
    assert tuple(await db.fetchone("SELECT status, attempts, last_error FROM jobs")) == (  # type: ignore[arg-type]
        "failed",
        3,
        "boom at last",
    )
    clock.now += 10_000
    assert await queue.claim(2) is None
    retried = await queue.retry(job_uuid(job.id))
    assert (retried.status, retried.attempts) == ("queued", 0)
    with pytest.raises(Conflict):
        await queue.retry(job_uuid(job.id))
    assert await queue.claim(2) is not None


async def test_a_postponed_job_does_not_spend_an_attempt(db: Database) -> None:
    clock = Clock()
    queue = queue_of(db, clock)
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
    job = await queue.claim(2)
    assert job is not None
    await queue.postpone(job, 30, "server down")
    assert await db.fetchval("SELECT attempts FROM jobs") == 0
    clock.now += 30
    assert (await queue.claim(2)).attempts == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ["sqlite"])  # one daemon per database: what runs at its start is a dead one's
async def test_jobs_of_a_killed_process_run_again_at_the_next_start(db: Database) -> None:
    queue = queue_of(db, Clock())
    async with db.transaction() as tx:
        await queue.enqueue_fill(tx, 2, "USA")
    assert await queue.claim(2) is not None and await queue.claim(2) is not None
    # The process dies here; the next one starts.
    assert await queue_of(db, Clock()).requeue_running() == 2
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'queued' AND attempts = 0") == 10


async def test_a_job_whose_daemon_died_is_taken_over_once_its_lease_runs_out(db: Database) -> None:
    clock = Clock()
    dead, alive = queue_of(db, clock, lease_seconds=30), queue_of(db, clock, lease_seconds=30)
    async with db.transaction() as tx:
        await dead.enqueue_copies(tx, 1, "USA")
    claimed = await dead.claim(2)
    assert claimed is not None and claimed.attempts == 1
    # Its daemon dies here. Within the lease nobody else may run it.
    clock.now += 29
    assert await alive.claim(2) is None
    clock.now += 2
    taken = await alive.claim(2)
    assert taken is not None and taken.id == claimed.id and taken.token != claimed.token
    assert taken.attempts == 1 and taken.ran_before  # its attempt is not spent again; it may have left work
    assert await db.fetchval("SELECT lease_until FROM jobs") == clock.now + 30


async def test_a_daemon_whose_claim_was_taken_over_cannot_finish_fail_or_postpone_the_job(db: Database) -> None:
    clock = Clock()
    slow, other = queue_of(db, clock, lease_seconds=30), queue_of(db, clock, lease_seconds=30)
    async with db.transaction() as tx:
        await slow.enqueue_copies(tx, 1, "USA")
    stale = await slow.claim(2)
    clock.now += 31  # the slow daemon did not renew in time
    taken = await other.claim(2)
    assert stale is not None and taken is not None
    assert not await slow.renew(stale)
    assert not await slow.done(stale)
    assert not await slow.fail(stale, "boom")
    assert not await slow.postpone(stale, 0, "server down")
    row = await db.fetchone("SELECT status, attempts, claim_token, last_error FROM jobs")
    assert tuple(row) == ("running", 1, taken.token, LEASE_LOST)  # type: ignore[arg-type]
    await copied(db, taken)
    assert await other.renew(taken) and await other.done(taken)
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_a_running_job_keeps_its_lease_while_its_handler_runs(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, lease_seconds=1, poll_interval=0.05)
    other = queue_of(db, Clock(), lease_seconds=1)
    other.clock = time.time
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
    release, started = asyncio.Event(), time.time()

    async def slow(job: Job) -> None:
        await release.wait()
        await copied(db, job)

    worker = JobWorker(queue, registry.available_ids, {"copy": slow, "remove": slow}, queue.cfg, health_interval=1)
    task = asyncio.create_task(worker.run())
    try:
        # Renewed twice: the lease now ends over 1.6 s after the start, longer than one lease.
        await wait_for(lambda: db.fetchval("SELECT lease_until > ? FROM jobs", (started + 1.6,)), "renewals")
        assert await other.claim(2) is None
        release.set()
        await wait_for(lambda: db.fetchval("SELECT count(*) = 0 FROM jobs"), "the job to be done")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_worker_that_loses_a_jobs_lease_stops_running_it(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, lease_seconds=1, poll_interval=0.05)
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
    runs: list[str] = []

    async def endless(job: Job) -> None:
        runs.append("started")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            runs.append("stopped")
            raise

    worker = JobWorker(
        queue, registry.available_ids, {"copy": endless, "remove": endless}, queue.cfg, health_interval=1
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: runs == ["started"], "the job to start")
        # Another daemon, whose clock is ahead (a lease it thinks ran out), takes the job over.
        ahead = queue_of(db, Clock(), lease_seconds=1)
        ahead.clock = lambda: time.time() + 5
        taken = await ahead.claim(2)
        assert taken is not None
        await wait_for(lambda: runs == ["started", "stopped"], "the first daemon to stop the job")
        assert await db.fetchval("SELECT claim_token FROM jobs") == taken.token  # its outcome not written
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_server_switched_off_while_a_worker_looks_for_jobs_gets_none_of_them(db: Database) -> None:
    queue = queue_of(db, Clock(), workers=1, poll_interval=0.05)
    queue.clock = time.time
    available, asked, ran = [1, 2], [], []
    gate, looking = asyncio.Event(), asyncio.Event()
    claim = queue.claim

    async def slow_claim(server_id: int) -> Job | None:
        asked.append(server_id)
        if server_id == 1 and not gate.is_set():  # the worker is asking for server 1's jobs; 2 is next
            looking.set()
            await gate.wait()
        return await claim(server_id)

    async def handler(job: Job) -> None:
        ran.append(job.server_id)

    queue.claim = slow_claim  # type: ignore[method-assign]
    worker = JobWorker(
        queue, lambda: list(available), {"copy": handler, "remove": handler}, queue.cfg, health_interval=1
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(looking.is_set, "the worker to ask for server 1's jobs")
        available.remove(2)  # server 2 is switched off meanwhile, and then gets a job
        async with db.transaction() as tx:
            assert await queue.enqueue_copies(tx, 1, "USA") == 1
        gate.set()
        await wait_for(lambda: asked.count(1) >= 3, "the worker to look twice more")
        assert 2 not in asked and ran == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_worker_respects_the_per_server_limit_and_releases_on_shutdown(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, workers=4, per_server=2, poll_interval=0.05)
    async with db.transaction() as tx:
        await queue.enqueue_fill(tx, 2, "USA")
    running: set[int] = set()
    peak = 0
    release = asyncio.Event()

    async def slow(job: Job) -> None:
        nonlocal peak
        running.add(job.id)
        peak = max(peak, len(running))
        await release.wait()

    worker = JobWorker(queue, registry.available_ids, {"copy": slow, "remove": slow}, queue.cfg, health_interval=1)
    claim, refused_while_full = worker._claim_next, 0

    async def counted_claim() -> Job | None:
        nonlocal refused_while_full
        job = await claim()
        refused_while_full += job is None and len(running) == 2
        return job

    worker._claim_next = counted_claim  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    # Two jobs run, and the idle workers looked for more (eight times) and were given none.
    await wait_for(lambda: refused_while_full >= 8 or peak > 2, "the idle workers to be refused a third job")
    assert peak == 2 and len(running) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'") == 0
    assert await db.fetchval("SELECT max(attempts) FROM jobs") == 0


async def test_a_handler_asking_to_wait_is_postponed_not_failed(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, poll_interval=0.05)
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")

    async def waits(job: Job) -> None:
        raise Retry("source down", 3600)

    worker = JobWorker(queue, registry.available_ids, {"copy": waits, "remove": waits}, queue.cfg, health_interval=1)
    task = asyncio.create_task(worker.run())
    await worker.run_until_idle(within=5, horizon=1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await db.fetchone("SELECT status, attempts, last_error FROM jobs")
    assert tuple(row) == ("queued", 0, "source down")  # type: ignore[arg-type]


async def test_run_until_idle_runs_every_due_job_and_returns_once_none_is_left(db: Database) -> None:
    registry, queue = await on_the_real_clock(db)
    async with db.transaction() as tx:
        assert await queue.enqueue_fill(tx, 2, "USA") == 10

    async def copy(job: Job) -> None:
        await copied(db, job)

    worker = JobWorker(queue, registry.available_ids, {"copy": copy, "remove": copy}, queue.cfg, health_interval=1)
    await worker.run_until_idle(within=30)  # no worker loop runs: it ran them itself
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    assert await db.fetchval("SELECT count(*) FROM replicas WHERE server_id = 2") == 10


async def test_run_until_idle_raises_naming_each_job_that_ran_out_of_attempts_and_its_error(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
        await queue.enqueue_copies(tx, 2, "USA")
    ids = {int(r["id"]) for r in await db.fetchall("SELECT id FROM jobs")}

    async def refused(job: Job) -> None:
        raise RuntimeError(f"disk of server {job.server_id} is full")

    worker = JobWorker(
        queue, registry.available_ids, {"copy": refused, "remove": refused}, queue.cfg, health_interval=1
    )
    with pytest.raises(JobsFailed) as raised:
        await worker.run_until_idle(within=30)
    assert {(id_, kind) for id_, kind, _ in raised.value.failed} == {(id_, "copy") for id_ in ids}
    assert all("disk of server 2 is full" in error for *_, error in raised.value.failed)
    assert "disk of server 2 is full" in str(raised.value)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'failed' AND attempts = 2") == 2


async def test_run_until_idle_waits_out_a_retry_and_is_quiet_about_a_job_that_then_succeeded(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")

    async def refused_once(job: Job) -> None:
        if job.attempts == 1:
            raise RuntimeError("busy")
        await copied(db, job)

    worker = JobWorker(
        queue, registry.available_ids, {"copy": refused_once, "remove": refused_once}, queue.cfg, health_interval=1
    )
    await worker.run_until_idle(within=30)
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    assert await db.fetchval("SELECT count(*) FROM replicas WHERE server_id = 2 AND version_id = 1") == 1


async def test_run_until_idle_also_waits_for_the_jobs_the_worker_loops_run(db: Database) -> None:
    registry, queue = await on_the_real_clock(db, workers=2, poll_interval=0.05)
    release = asyncio.Event()
    started: list[int] = []

    async def slow(job: Job) -> None:
        started.append(job.id)
        await release.wait()
        await copied(db, job)

    worker = JobWorker(queue, registry.available_ids, {"copy": slow, "remove": slow}, queue.cfg, health_interval=1)
    loops = asyncio.create_task(worker.run())
    async with db.transaction() as tx:
        await queue.enqueue_copies(tx, 1, "USA")
    queue.wake()
    await wait_for(lambda: bool(started), "a worker loop to take the job")
    idle = asyncio.create_task(worker.run_until_idle(within=30))
    assert not idle.done()  # the loop's job still runs
    release.set()
    await idle
    assert await db.fetchval("SELECT count(*) FROM replicas WHERE server_id = 2 AND version_id = 1") == 1
    loops.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loops
