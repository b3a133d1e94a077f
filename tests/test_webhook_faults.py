"""Webhook deliveries under faults, against the real receiver (tests/webhook_receiver.py) killed and started
again mid-run: a receiver that is down, slow (past webhooks.timeout) or answering 500 loses no event; a
daemon killed with SIGKILL in the middle of deliveries loses none, alone on SQLite and beside another on
PostgreSQL, where each event is then taken by the receiver once (one daemon sends it at a time)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import test_webhooks as hooks
from apihelp import Api, Session, wait_for
from conftest import MakeApi
from daemonproc import Cluster, RemoteApi, admin_session, write_config
from reliability import LEDGER
from test_webhooks import WEBHOOKS, events_received, log_of, subscribe
from webhook_receiver import Receiver

from testbed.daemon import Daemon

TIMEOUT = 3  # webhooks.timeout: a held attempt fails after it; a dead daemon's claim is taken over after twice it
FAULTS = {**WEBHOOKS, "timeout": TIMEOUT}


receiver = hooks.receiver  # test_webhooks.py's (it answers 204 until a test starts it in another mode)


async def send_tests(user: Session, hook: dict[str, Any], count: int) -> list[str]:
    """`count` test events for the webhook; their delivery ids."""
    return [(await user.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)["id"] for _ in range(count)]


async def failing_with(user: Session, hook: dict[str, Any], ids: list[str], error: str) -> None:
    """Wait until each of `ids` has failed an attempt with `error` (the start of its last_error)."""

    async def seen() -> bool:
        errors = {i["id"]: i["last_error"] or "" for i in await log_of(user, hook)}
        return all(errors[msg].startswith(error) for msg in ids)

    await wait_for(seen, f"{len(ids)} deliveries failing with {error!r}", within=30)


async def all_delivered(
    user: Session, hook: dict[str, Any], ids: list[str], within: float = 60
) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        items = [i for i in await log_of(user, hook) if i["id"] in ids]
        return items if len(items) == len(ids) and all(i["status"] == "delivered" for i in items) else None

    return list(await wait_for(done, f"{len(ids)} deliveries delivered", within))


def started(log: str) -> set[str]:
    """The deliveries whose attempts a daemon's log shows starting."""
    return set(re.findall(r"webhook delivery (msg_\w+) \(\S+\) attempt \d+ starts", log))


def held(receiver: Receiver) -> set[str]:
    """The distinct deliveries the receiver has been sent so far (held, in hold mode)."""
    return {r["headers"]["webhook-id"] for r in receiver.received()}


async def test_a_receiver_that_is_down_slow_or_answering_500_loses_no_event(
    make_api: MakeApi, receiver: Receiver
) -> None:
    api: Api = await make_api(webhooks=FAULTS)
    alice = await api.user("alice")
    await receiver.restart("fail")
    hook = await subscribe(alice, receiver.url, "file.stored")
    failing = await send_tests(alice, hook, 3)
    await failing_with(alice, hook, failing, "HTTP 500")

    await receiver.kill()  # down: nothing listens on its port
    down = await send_tests(alice, hook, 3)
    await failing_with(alice, hook, down, "cannot connect")

    await receiver.start("slow", delay=60)  # answers long after webhooks.timeout
    slow = await send_tests(alice, hook, 2)
    await failing_with(alice, hook, slow, f"no answer within {TIMEOUT} s")

    await receiver.restart("ok")
    ids = failing + down + slow
    log = await all_delivered(alice, hook, ids)
    got = events_received(receiver, hook["secret"])  # (every signature verified)
    lost = [msg for msg in ids if msg not in got]
    LEDGER.add("webhook receiver down, slow (timeouts) or answering 500", faults=3, rounds=1, drift=len(lost))
    assert not lost and all(i["attempts"] >= 2 for i in log), log
    assert all(p["type"] == "webhook.test" for p in got.values())


async def test_a_daemon_killed_mid_delivery_sends_it_again_after_its_restart(
    tmp_path: Path, daemon: Daemon, receiver: Receiver
) -> None:
    write_config(tmp_path, daemon.port, webhooks=FAULTS)
    await receiver.restart("hold")  # takes the requests and never answers
    await daemon.start()
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        root = await admin_session(daemon, http)
        hook = await subscribe(root, receiver.url, "file.stored", "server.down")
        ids = await send_tests(root, hook, 3)
        await wait_for(lambda: held(receiver) == set(ids), "the three deliveries in flight")
        daemon.kill()  # while the receiver holds all three
        assert daemon.proc is not None
        await daemon.proc.wait()

        await receiver.restart("ok")
        await daemon.start()
        root = await RemoteApi(http).login("root")
        await all_delivered(root, hook, ids, within=30)
    taken = Counter(r["headers"]["webhook-id"] for r in receiver.taken())
    lost = [msg for msg in ids if not taken[msg]]
    LEDGER.add("daemon killed (SIGKILL) mid-delivery of webhooks", faults=1, rounds=1, drift=len(lost))
    assert not lost and set(taken) == set(ids), taken


ON_POSTGRES = pytest.mark.parametrize("engine", ["postgres"])  # (the database_url fixture follows it)


@ON_POSTGRES
async def test_two_daemons_deliver_each_event_once_and_a_killed_ones_deliveries_are_taken_over(
    tmp_path: Path, database_url: str, daemon_port: int, receiver: Receiver
) -> None:
    await receiver.restart("hold")
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, webhooks=FAULTS) as cluster:
        first, second = cluster.admins
        hook = await subscribe(first, receiver.url, "file.stored")
        # Eight at once: each daemon's four workers hold four (webhooks.workers), so both are mid-delivery.
        ids = [*await send_tests(first, hook, 4), *await send_tests(second, hook, 4)]
        await wait_for(lambda: held(receiver) == set(ids), "eight deliveries in flight", within=30)
        cluster[1].kill()
        assert cluster[1].proc is not None
        await cluster[1].proc.wait()
        cut_short = started(cluster[1].log.read_text()) & set(ids)  # what it was sending when it died
        assert cut_short, cluster.logs()
        await receiver.restart("ok")  # the survivor's held attempts fail and are tried again; the dead one's
        await all_delivered(first, hook, ids)  # claims are taken over once their leases run out

        await cluster[1].start()  # both daemons again, competing for every delivery
        second = await cluster.apis[1].login("root")
        more = [msg for _ in range(10) for user in (first, second) for msg in await send_tests(user, hook, 1)]
        await all_delivered(first, hook, more)
        logs = cluster.logs()
    assert cut_short <= started(cluster[0].log.read_text()), logs  # taken over by the survivor
    taken = Counter(r["headers"]["webhook-id"] for r in receiver.taken())
    lost = [msg for msg in ids + more if not taken[msg]]
    twice = {msg: n for msg, n in taken.items() if n > 1}
    LEDGER.add(
        "several daemons on PostgreSQL: one killed (SIGKILL) mid-delivery of webhooks",
        faults=1,
        rounds=1,
        drift=len(lost),
    )
    assert not lost, logs
    assert not twice, f"taken more than once: {twice}"  # one success each: never sent by two daemons at once
