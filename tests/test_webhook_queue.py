"""The webhooks' outbox and delivery queue on a real database of each engine (no HTTP): users' events emitted
with their history rows (and only when the daemon's copy says a webhook takes them), fleet events, claims
under a lease and a claim token, backoff until retry_for, pruning; and the signature against the Standard
Webhooks reference library's own test vector."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apihelp import Clock

from cdnstore import history
from cdnstore.config import DatabaseConfig, WebhooksConfig
from cdnstore.db import Database, connect
from cdnstore.times import iso
from cdnstore.webhook_queue import Delivery, Subscriptions, WebhookQueue, emit_fleet, emit_test, wanted
from cdnstore.webhook_worker import answered, payload, sign

T0 = "2026-01-01T00:00:00.000Z"
ALICE, ROOT = 1, 2


def wall_clock() -> Clock:
    """A hand-moved clock that starts at the time of day: the queue's deadlines count from events' times."""
    clock = Clock()
    clock.now = time.time()
    return clock


@pytest.fixture
async def db(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    """alice (webhook 1: file.stored, link.downloaded) and root, an administrator (webhook 2: server.down);
    a copy of the subscriptions listening, as a daemon's does."""
    database = connect(DatabaseConfig(path=str(tmp_path / "db.sqlite3"), url=database_url))
    await database.open()
    async with database.transaction() as tx:
        for uid, name, admin in ((ALICE, "alice", 0), (ROOT, "root", 1)):
            await tx.execute(
                "INSERT INTO users (id, uuid, username, password_hash, is_admin, created_at, updated_at) "
                "VALUES (?, ?, ?, 'x', ?, ?, ?)",
                (uid, f"u{uid}", name, admin, T0, T0),
            )
        for wid, owner, events in ((1, ALICE, ("file.stored", "link.downloaded")), (2, ROOT, ("server.down",))):
            await tx.execute(
                "INSERT INTO webhooks (id, uuid, owner_id, url, secret, created_at) "
                "VALUES (?, ?, ?, 'http://x', 's', ?)",
                (wid, f"w{wid}", owner, T0),
            )
            for event in events:
                await tx.execute(
                    "INSERT INTO webhook_events (event, owner_id, webhook_id) VALUES (?, ?, ?)", (event, owner, wid)
                )
    copy = Subscriptions(database)
    await copy.load()
    with copy.listening():
        yield database
    await database.close()


def queue_of(db: Database, clock: Clock, **cfg: Any) -> WebhookQueue:
    settings = {"timeout": 5, "backoff_base": 10, "backoff_max": 80, "retry_for": 3600, **cfg}
    return WebhookQueue(db, WebhooksConfig.model_validate(settings), clock)


async def deliveries(db: Database) -> list[tuple[Any, ...]]:
    rows = await db.fetchall("SELECT webhook_id, event, object_id, status FROM webhook_deliveries ORDER BY id")
    return [(r["webhook_id"], r["event"], r["object_id"], r["status"]) for r in rows]


async def test_a_history_row_makes_deliveries_only_for_the_users_webhooks_subscribing_to_its_event(
    db: Database,
) -> None:
    async with db.transaction() as tx:
        await history.record(tx, ALICE, "file.stored", "f1", {"name": "a.txt"}, at=T0)
        await history.record(tx, ALICE, "file.renamed", "f1", {"old_name": "a.txt", "new_name": "b.txt"}, at=T0)
        await history.record(tx, ALICE, "file.deleted", "f1", {"name": "b.txt"}, at=T0)  # (not subscribed to)
        await history.record(
            tx, ROOT, "file.stored", "f2", {"name": "c.txt"}, at=T0
        )  # (root's webhook wants server.down)
    assert await deliveries(db) == [(1, "file.stored", "f1", "pending")]
    row = await db.fetchone("SELECT uuid, data, occurred_at FROM webhook_deliveries")
    assert row is not None
    assert re.fullmatch(r"msg_[0-9a-f]{32}", row["uuid"]) and row["data"] == '{"name":"a.txt"}'
    assert row["occurred_at"] == await db.fetchval("SELECT created_at FROM history WHERE event = 'file.stored'")


async def test_a_rolled_back_change_emits_nothing_and_a_disabled_user_gets_nothing(db: Database) -> None:
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as tx:
            await history.record(tx, ALICE, "file.stored", "f1", {}, at=T0)
            raise ZeroDivisionError
    async with db.transaction() as tx:
        await tx.execute("UPDATE users SET is_disabled = 1 WHERE id = ?", (ALICE,))
        await history.record(tx, ALICE, "link.downloaded", "f1", {}, at=T0)
    assert await deliveries(db) == []


async def test_fleet_events_go_to_enabled_administrators_webhooks_only(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO webhook_events (event, owner_id, webhook_id) VALUES ('server.down', ?, 1)", (ALICE,)
        )
        assert await emit_fleet(db, tx, "server.down", {"name": "dallas"}, at=T0) == 1  # (alice is no administrator)
        assert await emit_fleet(db, tx, "server.up", {"name": "dallas"}, at=T0) == 0
    assert await deliveries(db) == [(2, "server.down", None, "pending")]


async def test_only_a_users_events_that_a_webhook_takes_cost_a_statement_and_a_stale_pair_makes_nothing(
    db: Database,
) -> None:
    assert wanted(ALICE, "file.stored") and wanted(ALICE, "link.downloaded")
    assert not wanted(ALICE, "file.deleted") and not wanted(ROOT, "file.stored")
    assert not wanted(ALICE, "file.downloaded") and not wanted(ROOT, "server.down")  # (not a user's event)
    async with db.transaction() as tx:  # the webhook goes behind this copy's back: it says "wanted" still
        await tx.execute("DELETE FROM webhooks WHERE id = 1")
        await history.record(tx, ALICE, "file.stored", "f1", {}, at=T0)
    assert await deliveries(db) == [] and wanted(ALICE, "file.stored")
    copy = Subscriptions(db)  # (a fresh load, as the changes' reload does)
    await copy.load()
    assert copy.pairs == frozenset()


async def emitted(db: Database, clock: Clock) -> str:
    """A test event, occurred at the clock's now (as Webhooks.send_test emits it)."""
    async with db.transaction() as tx:
        return await emit_test(db, tx, 1, {"webhook_id": "w1"}, at=iso(clock.now))


async def test_a_claim_is_one_daemons_until_its_lease_runs_out_and_a_late_outcome_changes_nothing(
    db: Database,
) -> None:
    clock = wall_clock()
    queue = queue_of(db, clock)
    msg = await emitted(db, clock)
    first = await queue.claim()
    assert first is not None and (first.uuid, first.attempts, first.url, first.owner_active) == (
        msg,
        1,
        "http://x",
        True,
    )
    assert await queue.claim() is None  # leased: nobody else sends it
    clock.now += queue.lease_seconds + 1  # its daemon died: the lease ran out
    second = await queue.claim()
    assert second is not None and second.uuid == msg and second.attempts == 2 and second.token != first.token
    assert not await queue.delivered(first)  # the dead claim's late outcome is not written
    assert await queue.delivered(second)
    assert await deliveries(db) == [(1, "webhook.test", None, "delivered")]
    assert await db.fetchval("SELECT delivered_at FROM webhook_deliveries") == iso(clock.now)  # (the queue's clock)
    assert await queue.claim() is None


async def test_failed_attempts_back_off_until_retry_for_then_the_delivery_is_failed(db: Database) -> None:
    clock = wall_clock()
    queue = queue_of(db, clock, retry_for=100)
    await emitted(db, clock)
    waits = []
    while (claimed := await queue.claim()) is not None or await pending(db):
        if claimed is None:  # not due yet: the next attempt's time
            clock.now = await db.fetchval("SELECT run_after FROM webhook_deliveries")
            continue
        assert await queue.failed(claimed, "HTTP 500")
        after = await db.fetchval("SELECT run_after FROM webhook_deliveries")
        waits.append(after - clock.now)
    row = await db.fetchone("SELECT status, attempts, last_error FROM webhook_deliveries")
    assert row is not None and dict(row) == {"status": "failed", "attempts": len(waits), "last_error": "HTTP 500"}
    assert 5 <= waits[0] <= 15 and 10 <= waits[1] <= 30  # 10 s, then 20 s, each with ±50 % jitter
    occurred = await db.fetchval("SELECT occurred_at FROM webhook_deliveries")
    assert clock.now >= iso_seconds(occurred) + 100  # the last attempt came once retry_for had passed


async def pending(db: Database) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))


def iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def test_a_delivery_whose_owner_was_disabled_since_is_claimed_as_such_and_given_up_at_once(
    db: Database,
) -> None:
    clock = wall_clock()
    queue = queue_of(db, clock)
    await emitted(db, clock)
    async with db.transaction() as tx:
        await tx.execute("UPDATE users SET is_disabled = 1 WHERE id = ?", (ALICE,))
    claimed = await queue.claim()
    assert claimed is not None and not claimed.owner_active  # (the worker sends nothing then)
    assert await queue.failed(claimed, "not sent: the webhook's owner is disabled", final=True)
    assert await deliveries(db) == [(1, "webhook.test", None, "failed")]


async def test_a_released_delivery_is_due_at_once_its_attempt_unspent(db: Database) -> None:
    clock = wall_clock()
    queue = queue_of(db, clock)
    await emitted(db, clock)
    claimed = await queue.claim()
    assert claimed is not None and await queue.release(claimed)
    again = await queue.claim()
    assert again is not None and again.attempts == 1


async def test_old_delivered_and_failed_deliveries_are_pruned_pending_ones_kept(db: Database) -> None:
    queue = queue_of(db, wall_clock(), log_days=7)
    old, recent = iso(time.time() - 8 * 86400), iso(time.time() - 6 * 86400)
    async with db.transaction() as tx:
        for n, (status, when) in enumerate(
            [("delivered", old), ("failed", old), ("pending", old), ("delivered", recent)]
        ):
            await tx.execute(
                "INSERT INTO webhook_deliveries (uuid, webhook_id, event, occurred_at, status) "
                "VALUES (?, 1, 'e', ?, ?)",
                (f"msg_{n}", when, status),
            )
    assert await queue.prune() == 2
    assert sorted(r["uuid"] for r in await db.fetchall("SELECT uuid FROM webhook_deliveries")) == ["msg_2", "msg_3"]


def test_the_signature_is_the_reference_librarys_for_its_own_test_vector() -> None:
    """standard-webhooks/libraries/python/tests/test_webhooks.py::test_sign_function."""
    body = b'{"test": 2432232314}'
    found = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert found == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_body_is_type_timestamp_and_data_and_an_error_answer_is_kept_short() -> None:
    d = Delivery(1, "msg_1", 1, "http://x", "s", True, "file.stored", "f1", '{"name":"a"}', T0, 1)
    assert (
        payload(d)
        == b'{"type":"file.stored","timestamp":"2026-01-01T00:00:00.000Z","data":{"name":"a","file_id":"f1"}}'
    )
    assert answered(503, b"  busy\n\x00now " + b"x" * 5000) == "HTTP 503: busy now " + "x" * 191
    assert answered(301, b"elsewhere") == "HTTP 301 (redirects are not followed)"
    assert answered(404, b"") == "HTTP 404"
