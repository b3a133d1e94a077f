"""Storage servers failing in the middle of work, against real SeaweedFS servers: one killed while a
copy streams to or from it, one killed while clients ask for download links, connections cut or slowed
by a proxy. Nothing is lost (every copy arrives, byte for byte, and no multipart upload is left that scrub
would not clean), nothing stalls (jobs wait for a server without spending their attempts, the API keeps
answering), and the only 5xx is the documented 503 `no_replica_available` while no holder is up.

Every killed server is started again before the test ends: the `weed` fixture is shared by the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from apihelp import US_IP, Answer, Api, Session, from_ip, object_key, put_bytes, s3_storage, wait_for
from conftest import MakeApi
from reliability import LEDGER, area, server_errors
from weedbed import md5_of_get

from cdnstore import appkeys
from cdnstore.storage import Storage
from testbed.faultproxy import FaultProxy, fault_proxy
from testbed.seaweed import WeedCluster

MIB = 1 << 20
BIG = 36 * MIB  # 8 parts of 5 MiB (make_config's jobs.part_size), 2 in flight
MAX_ATTEMPTS = 3
# Quick health checks, so that a killed server is seen down (and a restarted one up) within a second;
# few attempts with fast backoff, so that a job spending attempts while a server is down would run out.
FAULTY: dict[str, dict[str, Any]] = {
    "jobs": {"max_attempts": MAX_ATTEMPTS},
    # A killed server refuses connections at once; the timeout only has to spare a busy one.
    "health": {"interval": 0.3, "timeout": 3},
    "scrub": {"stale_upload_after": 0},  # scrub (run by hand) aborts every unfinished upload of ours
}
# How long a killed server stays down once the job that needs it is back in the queue. A job whose source is
# down is tried again every health interval, one whose target is down not at all (the worker skips servers
# that are down); a job that spent an attempt on each try would have run out of MAX_ATTEMPTS (the backoff of
# make_config is 0.05 s, then 0.1 s) well within it.
OUTAGE = 2.0
DOCUMENTED = "no_replica_available"  # the one 5xx a client may see: no holder of the file is up


# --- helpers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    id: str
    key: str
    md5: str
    size: int


async def store(admin: Session, name: str, size: int) -> Stored:
    """Upload `size` random bytes from the USA (to Dallas, the nearest) and wait until they are stored."""
    data = os.urandom(size)
    answer = await admin.upload(name, data, content_type="application/octet-stream")
    key = object_key(answer["upload"])
    stored = Stored(answer["file"]["id"], key, hashlib.md5(data).hexdigest(), size)
    await admin.wait_stored(stored.id, within=30)
    return stored


async def faulty_daemon(make_api: MakeApi, weed: WeedCluster, bucket: str, *servers: str) -> tuple[Api, Session]:
    """A daemon with the fault tests' settings (FAULTY), its administrator, and `servers` registered."""
    api = await make_api(**FAULTY)
    admin = await api.user("root", admin=True)
    for name in servers:
        await admin.add_server(weed, name, bucket)
    return api, admin


async def health(admin: Session, name: str) -> str:
    servers = (await admin.get("/api/v1/servers")).expect(200)["items"]
    return str(next(s["health"] for s in servers if s["name"] == name))


async def seen(admin: Session, name: str, state: str) -> None:
    """Wait until the periodic health checker has seen server `name` `state` ('up' or 'down')."""

    async def check() -> bool:
        return await health(admin, name) == state

    await wait_for(check, f"the health checker sees {name} {state}")


async def jobs(admin: Session) -> list[dict[str, Any]]:
    return list((await admin.get("/api/v1/jobs")).expect(200)["items"])


async def queued_job(admin: Session) -> dict[str, Any]:
    """The one open job, once it is seen in the queue (not running)."""
    found: list[dict[str, Any]] = []

    async def queued() -> bool:
        found[:] = await jobs(admin)
        return [j["status"] for j in found] == ["queued"]

    await wait_for(queued, "one job, queued")
    return found[0]


async def holders(admin: Session, file: Stored) -> set[str]:
    """The servers that cdnstore says hold the file (replica rows, not pending copies)."""
    items = (await admin.get(f"/api/v1/files/{file.id}/servers")).expect(200)["items"]
    return {i["server"]["name"] for i in items if i["status"] == "present"}


async def copied_bytes_differ(api: Api, weed: WeedCluster, bucket: str, file: Stored, names: set[str]) -> int:
    """How many of the servers `names` serve other bytes than were uploaded (MD5 and size of a presigned
    GET straight to the SeaweedFS server, never through a proxy)."""
    storage = s3_storage(api)
    differ = 0
    async with aiohttp.ClientSession() as http:
        for name in sorted(names):
            url = storage.presign_get(weed.target(name, bucket), file.key, filename="check.bin", expires_in=300)
            digest, size, _ = await md5_of_get(http, url)
            differ += (digest, size) != (file.md5, file.size)
    return differ


async def unfinished_uploads(storage: Storage, weed: WeedCluster, name: str, bucket: str) -> list[tuple[str, str]]:
    """(key, upload id) of every multipart upload begun on server `name` and neither completed nor aborted."""
    return await storage.stale_uploads(weed.target(name, bucket), datetime.now(UTC) + timedelta(minutes=5))


async def scrub_drift(api: Api) -> int:
    """Differences between the replica table and the buckets that a scrub finds (after convergence: 0)."""
    return sum(d.missing + d.orphans + d.adopted for d in await api.app[appkeys.SCRUB].scrub())


class PartGate:
    """Holds the first copy that reaches multipart part `number`, just before uploading it, until released:
    the moment to kill a server mid-copy. Counts how many times part 1 was uploaded (copies started)."""

    def __init__(self, storage: Storage, monkeypatch: pytest.MonkeyPatch, number: int) -> None:
        self.number = number
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.starts = 0
        real = storage._upload_part

        async def gated(client: Any, dst: Any, key: str, upload_id: str, number: int, *rest: Any) -> None:
            if number == 1:
                self.starts += 1
            if number == self.number and not self.release.is_set():
                self.reached.set()
                await self.release.wait()
            await real(client, dst, key, upload_id, number, *rest)

        monkeypatch.setattr(storage, "_upload_part", gated)

    async def wait(self) -> None:
        async with asyncio.timeout(30):
            await self.reached.wait()


@dataclass
class Attempts:
    """What became of the job attempts that did not succeed: spent (failed, to be retried after a backoff)
    or given back (the job waits for a server: a Retry, or a server unreachable)."""

    spent: list[str] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, api: Api, monkeypatch: pytest.MonkeyPatch) -> Attempts:
        queue, made = api.app[appkeys.JOBS], cls()
        fail, postpone = queue.fail, queue.postpone

        async def failed(job: Any, error: str) -> None:
            made.spent.append(error)
            await fail(job, error)

        async def postponed(job: Any, delay: float, reason: str) -> None:
            made.waited.append(reason)
            await postpone(job, delay, reason)

        monkeypatch.setattr(queue, "fail", failed)
        monkeypatch.setattr(queue, "postpone", postponed)
        return made


# The reliability table's areas these tests count into (through copy_faults_counted).
KILLED_DURING_COPIES = area("SeaweedFS server killed during copies")
CUT_OR_SLOWED = area("connections cut or slowed mid-copy")


def copy_faults_counted(
    area: str, faults: int, differ: int, drift: int, attempts: Attempts, answers: list[Answer]
) -> None:
    """Count the run (one round, one file) in the reliability table's `area`, then check what every copy
    fault test checks: the copies hold the source's bytes, scrub finds no drift, the faults cost no attempt,
    and no 5xx was answered beyond the documented ones."""
    errors = server_errors(answers, DOCUMENTED)
    LEDGER.add(area, faults=faults, rounds=1, files_checked=1, drift=drift, server_errors=errors)
    assert (differ, drift, attempts.spent, errors) == (0, 0, [], 0)


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[Answer]:
    """Every answer the test client gets during the test (they still go to the ledger too)."""
    got: list[Answer] = []
    real = LEDGER.answered

    def answered(answer: Answer, what: str) -> None:
        got.append(answer)
        real(answer, what)

    monkeypatch.setattr(LEDGER, "answered", answered)
    return got


# --- a server killed during a copy -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def killed_mid_copy(
    admin: Session, weed: WeedCluster, gate: PartGate, name: str
) -> AsyncIterator[dict[str, Any]]:
    """Kill `name` while the copy to New York waits at the gate, and let the copy go on: it breaks, and its
    job goes back to the queue and waits there through the outage without spending an attempt. The block
    sees that job; `name` is restarted after it, and seen up again."""
    try:
        await weed.kill(name)
        gate.release.set()
        await seen(admin, name, "down")
        await queued_job(admin)  # the broken copy is back in the queue
        await asyncio.sleep(OUTAGE)  # the outage goes on; the job waits, it does not fail
        job = await queued_job(admin)  # (it is tried every health interval: it may be running for a moment)
        assert (job["kind"], job["status"], job["server"]["name"]) == ("copy", "queued", "newyork")
        assert job["attempts"] == 0, job  # waiting is not failing
        yield job
    finally:
        await weed.restart(name)
    await seen(admin, name, "up")


async def test_a_copy_whose_target_dies_midway_completes_when_it_returns(
    make_api: MakeApi, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch, answers: list[Answer]
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket, "dallas", "newyork")
    storage = s3_storage(api)
    attempts = Attempts.watch(api, monkeypatch)
    gate = PartGate(storage, monkeypatch, 3)
    film = await store(admin, "film.bin", BIG)  # on Dallas; the copy to New York starts at once
    await gate.wait()  # two parts are on New York (or on their way), the third is ready
    async with killed_mid_copy(admin, weed, gate, "newyork") as job:  # the job waits for the server
        assert "unreachable" in job["last_error"], job
        assert await holders(admin, film) == {"dallas"}
    await api.app[appkeys.WORKER].run_until_idle()
    assert await jobs(admin) == []
    assert gate.starts >= 2  # the copy started over
    assert await holders(admin, film) == {"dallas", "newyork"}
    differ = await copied_bytes_differ(api, weed, bucket, film, {"dallas", "newyork"})

    # The broken copy's multipart upload could not be aborted then (its server was dead): the copy that
    # started over aborted it first, so nothing is left for scrub.
    left = await unfinished_uploads(storage, weed, "newyork", bucket)
    assert left == []
    drift = await scrub_drift(api)
    left_after_scrub = await unfinished_uploads(storage, weed, "newyork", bucket)
    drift += differ + len(left_after_scrub)
    copy_faults_counted(KILLED_DURING_COPIES, 1, differ, drift, attempts, answers)
    assert left_after_scrub == []


async def test_a_copy_whose_source_dies_midway_finishes_from_another_holder(
    make_api: MakeApi, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch, answers: list[Answer]
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket)
    servers = {name: await admin.add_server(weed, name, bucket) for name in ("dallas", "newyork", "detroit")}
    film = await store(admin, "film.bin", BIG)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders(admin, film) == {"dallas", "newyork"}  # Detroit is inactive
    storage = s3_storage(api)
    attempts = Attempts.watch(api, monkeypatch)
    gate = PartGate(storage, monkeypatch, 2)
    # Activated, Detroit is filled from the nearest holder: New York.
    (await admin.patch(f"/api/v1/servers/{servers['detroit']['id']}", json={"is_active": True})).expect(200)
    await gate.wait()
    kills = 0
    try:
        await weed.kill("newyork")
        kills += 1
        gate.release.set()

        async def copied() -> bool:
            return "detroit" in await holders(admin, film)

        await wait_for(copied, "the copy to Detroit done from Dallas")
        assert not weed.instance("newyork").running  # so it came from Dallas
        assert await jobs(admin) == []
        assert gate.starts >= 2
        differ = await copied_bytes_differ(api, weed, bucket, film, {"dallas", "detroit"})
        assert await unfinished_uploads(storage, weed, "detroit", bucket) == []  # the broken copy was aborted
    finally:
        await weed.restart("newyork")
    await seen(admin, "newyork", "up")
    differ += await copied_bytes_differ(api, weed, bucket, film, {"newyork"})  # it kept its copy
    drift = differ + await scrub_drift(api)
    copy_faults_counted(KILLED_DURING_COPIES, kills, differ, drift, attempts, answers)


async def test_a_copy_whose_only_source_dies_midway_waits_for_it_and_completes(
    make_api: MakeApi, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch, answers: list[Answer]
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket, "dallas", "newyork")
    storage = s3_storage(api)
    attempts = Attempts.watch(api, monkeypatch)
    gate = PartGate(storage, monkeypatch, 2)
    film = await store(admin, "film.bin", BIG)  # on Dallas only, until the copy to New York is done
    await gate.wait()
    async with killed_mid_copy(admin, weed, gate, "dallas"):  # the job waits for its source
        assert await holders(admin, film) == {"dallas"}
        assert await unfinished_uploads(storage, weed, "newyork", bucket) == []  # the broken copy was aborted
    await api.app[appkeys.WORKER].run_until_idle()
    assert await jobs(admin) == []
    assert gate.starts >= 2
    assert await holders(admin, film) == {"dallas", "newyork"}
    differ = await copied_bytes_differ(api, weed, bucket, film, {"dallas", "newyork"})
    drift = differ + await scrub_drift(api)
    copy_faults_counted(KILLED_DURING_COPIES, 1, differ, drift, attempts, answers)


# --- a server killed while clients download --------------------------------------------------------


@dataclass
class LinkClients:
    """Clients in the USA asking for a file's download link over and over; each answer is kept with the
    phase of the test in which it was asked (a request asked after a phase began is served after it began)."""

    admin: Session
    file: Stored
    phase: str = "both up"
    asked: list[tuple[str, Answer]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def ask(self) -> None:
        while not self.stop.is_set():
            phase = self.phase
            answer = await self.admin.get(f"/api/v1/files/{self.file.id}/download", headers=from_ip(US_IP))
            self.asked.append((phase, answer))
            await asyncio.sleep(0.01)  # pacing, so that the clients leave the machine some breath

    def answers(self, phase: str) -> list[Answer]:
        return [a for p, a in self.asked if p == phase]

    async def enter(self, phase: str, count: int = 10) -> list[Answer]:
        """Start `phase` and wait until the clients have got `count` answers in it."""
        self.phase = phase

        async def enough() -> bool:
            return len(self.answers(phase)) >= count

        await wait_for(enough, f"{count} answers in phase {phase!r}")
        return self.answers(phase)


@contextlib.asynccontextmanager
async def asking(clients: LinkClients, count: int) -> AsyncIterator[LinkClients]:
    async with asyncio.TaskGroup() as group:
        for n in range(count):
            group.create_task(clients.ask(), name=f"link client {n}")
        try:
            yield clients
        finally:
            clients.stop.set()


async def serve_other_bytes(http: aiohttp.ClientSession, got: list[Answer], file: Stored) -> int:
    """How many of the distinct links in `got` serve other bytes than the file's."""
    urls = {a.body["url"] for a in got}
    return sum([(await md5_of_get(http, url))[:2] != (file.md5, file.size) for url in sorted(urls)])


async def test_downloads_move_to_the_other_holder_while_the_nearest_is_down_and_back_after(
    make_api: MakeApi, weed: WeedCluster, bucket: str, answers: list[Answer]
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket, "dallas", "newyork")
    clip = await store(admin, "clip.bin", 3 * MIB)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await holders(admin, clip) == {"dallas", "newyork"}

    def elsewhere(got: list[Answer], holder: str) -> int:
        """How many answers are not a link to `holder`."""
        return sum(a.status != 200 or a.body["server"]["name"] != holder for a in got)

    wrong = differ = kills = 0
    clients = LinkClients(admin, clip)
    killed: set[str] = set()
    try:
        async with aiohttp.ClientSession() as http, asking(clients, 3):
            got = await clients.enter("both up")
            wrong += elsewhere(got, "dallas")  # the nearest
            differ += await serve_other_bytes(http, got, clip)

            for name in ("dallas", "newyork"):  # the nearest holder dies, then the other one too
                await weed.kill(name)
                killed.add(name)
                kills += 1
                clients.phase = f"{name} killed"  # links may still point at it until the checker sees it down
                await seen(admin, name, "down")
                if name == "dallas":
                    got = await clients.enter("dallas down")
                    wrong += elsewhere(got, "newyork")
                    differ += await serve_other_bytes(http, got, clip)
            for answer in await clients.enter("none up"):  # the documented answer, and the only 5xx
                answer.problem(503, "no_replica_available")

            for name in ("newyork", "dallas"):  # back, one after the other; each the nearest of those up
                clients.phase = f"{name} restarting"  # links to it only once the checker sees it up
                await weed.restart(name)
                killed.discard(name)
                await seen(admin, name, "up")
                got = await clients.enter(f"{name} up")
                wrong += elsewhere(got, name)
                differ += await serve_other_bytes(http, got, clip)
    finally:
        for name in killed:
            await weed.restart(name)

    # Between a kill (or a restart) and the checker seeing it, links go to the holder believed up: any 200
    # is right, and so is the 503 while neither is up.
    for phase, answer in clients.asked:
        if answer.status == 503 and phase in ("newyork killed", "none up", "newyork restarting"):
            answer.problem(503, "no_replica_available")
        elif answer.status < 500:
            answer.expect(200)
    errors = server_errors(answers, DOCUMENTED)
    LEDGER.add(
        "SeaweedFS server killed during downloads",
        faults=kills,
        rounds=1,
        files_checked=1,
        drift=wrong + differ,
        server_errors=errors,
    )
    assert (wrong, differ, errors) == (0, 0, 0)


# --- connections cut or slowed -----------------------------------------------------------------------


async def proxied_pair(admin: Session, weed: WeedCluster, bucket: str, proxy: FaultProxy, side: str) -> None:
    """Dallas (uploads land there) and New York (inactive: a copy to it starts when it is activated), the
    proxy in front of the copy's `side`: 'source' (Dallas) or 'target' (New York)."""
    await admin.add_server(weed, "dallas", bucket, **({"endpoint_url": proxy.url} if side == "source" else {}))
    await admin.add_server(
        weed, "newyork", bucket, is_active=False, **({"endpoint_url": proxy.url} if side == "target" else {})
    )


async def activate(admin: Session, name: str) -> None:
    servers = (await admin.get("/api/v1/servers")).expect(200)["items"]
    server = next(s for s in servers if s["name"] == name)
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"is_active": True})).expect(200)


async def browse(admin: Session, file: Stored) -> None:
    """What users do meanwhile: list their files, ask for a download link."""
    (await admin.get("/api/v1/files")).expect(200)
    (await admin.get(f"/api/v1/files/{file.id}/download", headers=from_ip(US_IP))).expect(200)


# Every connection cut: the copy breaks (whatever botocore's and aiohttp's own retries of a part), the job
# waits and tries again; every other connection cut: a retry of a part on another connection may get through.
@pytest.mark.parametrize(("side", "every"), [("target", 1), ("target", 2), ("source", 1)])
async def test_a_copy_through_connections_cut_midway_completes_and_the_api_keeps_answering(
    side: str,
    every: int,
    make_api: MakeApi,
    weed: WeedCluster,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[Answer],
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket)
    upstream = "dallas" if side == "source" else "newyork"
    async with fault_proxy(weed.instance(upstream).endpoint_url) as proxy:
        await proxied_pair(admin, weed, bucket, proxy, side)
        film = await store(admin, "film.bin", BIG)
        attempts = Attempts.watch(api, monkeypatch)
        proxy.cut_after, proxy.cut_every = MIB, every  # reset once 1 MiB has passed: mid-part
        await activate(admin, "newyork")

        async def copied() -> bool:  # users go on meanwhile, and are answered: nothing waits on the copy
            await browse(admin, film)
            if proxy.max_cuts is None and proxy.cuts >= 4 and (attempts.waited or every > 1):
                proxy.max_cuts = proxy.cuts  # the link heals
            return "newyork" in await holders(admin, film)

        await wait_for(copied, "the copy through the cut connections done")
        if every == 1:  # nothing got through until the link healed
            assert proxy.cuts >= 4 and attempts.waited, "the copy broke, and the job waited and tried again"
        assert proxy.cuts >= 1
        assert await jobs(admin) == []
        proxy.heal()
        differ = await copied_bytes_differ(api, weed, bucket, film, {"dallas", "newyork"})
        storage = s3_storage(api)
        # An abort may have been cut too: the copy that got through aborted what the broken ones left.
        assert await unfinished_uploads(storage, weed, "newyork", bucket) == []
        drift = differ + await scrub_drift(api) + len(await unfinished_uploads(storage, weed, "newyork", bucket))
    copy_faults_counted(CUT_OR_SLOWED, proxy.cuts, differ, drift, attempts, answers)


async def test_a_copy_through_a_slow_link_completes_and_the_api_keeps_answering(
    make_api: MakeApi, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch, answers: list[Answer]
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket)
    async with fault_proxy(weed.instance("newyork").endpoint_url) as proxy:
        await proxied_pair(admin, weed, bucket, proxy, "target")
        film = await store(admin, "film.bin", BIG)
        attempts = Attempts.watch(api, monkeypatch)
        proxy.delay = 0.05  # a crawl: 64 KiB a connection every 50 ms at best
        await activate(admin, "newyork")

        async def streaming() -> bool:
            return proxy.passed > MIB

        await wait_for(streaming, "the copy streaming to New York")
        for _ in range(20):
            await browse(admin, film)
        # All that was answered while the copy crawled on.
        assert [j["status"] for j in await jobs(admin)] == ["running"]
        assert "newyork" not in await holders(admin, film)
        proxy.delay = 0.002  # still slow, but not for minutes

        async def copied() -> bool:
            return "newyork" in await holders(admin, film)

        await wait_for(copied, "the slow copy done")
        differ = await copied_bytes_differ(api, weed, bucket, film, {"dallas", "newyork"})
        drift = differ + await scrub_drift(api)
    copy_faults_counted(CUT_OR_SLOWED, proxy.slowed, differ, drift, attempts, answers)


# --- a source that gives other bytes -----------------------------------------------------------------


async def store_declared(admin: Session, name: str, size: int) -> Stored:
    """`store`, declaring the bytes' SHA-256 (so that every copy is checked against it)."""
    data = os.urandom(size)
    answer = (
        await admin.post(
            "/api/v1/files",
            json={"name": name, "size": size, "sha256": hashlib.sha256(data).hexdigest()},
            headers=from_ip(US_IP),
        )
    ).expect(201)
    assert await put_bytes(answer["upload"], data) == 200
    stored = Stored(answer["file"]["id"], object_key(answer["upload"]), hashlib.md5(data).hexdigest(), size)
    await admin.wait_stored(stored.id, within=30)
    return stored


# Checked against: the upload's MD5 (no SHA-256 known yet), with one PUT to the target or a multipart upload;
# the declared SHA-256.
@pytest.mark.parametrize(("size", "declared"), [(2 * MIB, False), (BIG, False), (2 * MIB, True)])
async def test_a_copy_whose_source_flips_a_byte_mid_stream_is_not_recorded_present_and_is_made_again(
    size: int, declared: bool, make_api: MakeApi, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket)
    db, storage = api.app[appkeys.DB], api.app[appkeys.STORAGE]
    async with fault_proxy(weed.instance("dallas").endpoint_url) as proxy:
        await proxied_pair(admin, weed, bucket, proxy, "source")
        film = await (store_declared if declared else store)(admin, "film.bin", size)
        queue = api.app[appkeys.JOBS]
        fail, at_failure = queue.fail, []

        async def failed(job: Any, error: str) -> None:  # what was there when the wrong copy failed
            at_failure.append(
                (
                    error,
                    await db.fetchval(
                        "SELECT count(*) FROM replicas WHERE server_id = "
                        "(SELECT id FROM servers WHERE name = 'newyork')"
                    ),
                    await storage.head(weed.target("newyork", bucket), film.key),
                )
            )
            await fail(job, error)

        monkeypatch.setattr(queue, "fail", failed)
        proxy.flip_at, proxy.max_flips = MIB + 1000, 1  # one byte of the source's answer, mid-body
        await activate(admin, "newyork")

        async def copied() -> bool:
            return "newyork" in await holders(admin, film)

        await wait_for(copied, "the copy made again from good bytes")
        assert proxy.flips == 1
        [(error, recorded, written)] = at_failure
        assert error.startswith("checksum_mismatch") and (recorded, written) == (0, None)
        assert await copied_bytes_differ(api, weed, bucket, film, {"dallas", "newyork"}) == 0
        verified = await db.fetchval(
            "SELECT verified_at FROM replicas WHERE server_id = (SELECT id FROM servers WHERE name = 'newyork')"
        )
        assert verified is not None
        registry = api.app[appkeys.METRICS].registry
        assert registry.get_sample_value("cdnstore_copy_wrong_bytes_total", {"server": "dallas"}) == 1


async def test_a_copy_whose_nearest_source_gave_wrong_bytes_is_made_again_from_another_holder(
    make_api: MakeApi, weed: WeedCluster, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    api, admin = await faulty_daemon(make_api, weed, bucket)
    async with fault_proxy(weed.instance("newyork").endpoint_url) as proxy:
        await admin.add_server(weed, "dallas", bucket)
        await admin.add_server(weed, "newyork", bucket, endpoint_url=proxy.url)  # Detroit's nearest holder
        await admin.add_server(weed, "detroit", bucket, is_active=False)
        film = await store_declared(admin, "film.bin", 2 * MIB)
        await api.app[appkeys.WORKER].run_until_idle()
        proxy.flip_at, proxy.max_flips = MIB + 1000, 1
        caplog.set_level("INFO", logger="cdnstore.replicator")
        await activate(admin, "detroit")

        async def copied() -> bool:
            return "detroit" in await holders(admin, film)

        await wait_for(copied, "the copy to Detroit made again")
        assert proxy.flips == 1
        copies = [r.getMessage() for r in caplog.records if r.getMessage().startswith("copied ")]
        assert [c.rsplit(" ", 3)[1:] for c in copies if c.endswith("detroit")] == [["dallas", "->", "detroit"]]
        assert any("newyork gave bytes" in r.getMessage() for r in caplog.records)
        assert await copied_bytes_differ(api, weed, bucket, film, {"dallas", "newyork", "detroit"}) == 0
