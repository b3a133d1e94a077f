"""The webhooks' outbox and delivery queue in the database: its SQL (emit, claim, record the outcome, the
delivery log, pruning), the events' names, and each daemon's copy of who subscribes to users' events.
webhook_worker.py sends what is due.

A delivery is one event for one webhook: a row of `webhook_deliveries` inserted in the transaction of the
change it tells (the outbox pattern), so an event is emitted exactly when its change commits. Users' events
are rows of their history: `history.record` (whoever records `file.stored`, `file.deleted`,
`link.downloaded` or `upload_request.received`) calls `emit_user` when this daemon's copy of the
subscriptions (`Subscriptions`) says some webhook of that user takes the event; the copy is in memory, so a
history row nobody subscribes to costs a set lookup and no statement (a link download records one). The
copy is reloaded when another daemon changes the webhooks (changes.py, topic `webhooks`); it may hold a
pair no webhook takes any more (emitting then finds none). Fleet events (a server down or up, a job out of
attempts, a corrupt replica: rare) are emitted by `emit_fleet` without a copy, test events by `emit_test`.
An event's `occurred_at` is the emitter's: its history row's time, or the `at` emit_fleet and emit_test are
given, from the clock of the use case that emits (clock.py); the queue's schedule reads its own `clock`, the
same one in a daemon, so a retry deadline counted from `occurred_at` is on one clock.

A delivery is claimed as a job is (job_queue.py): one row at a time (`FOR UPDATE SKIP LOCKED` on PostgreSQL),
under a claim token (a uuid per claim) without which no outcome is written, and a lease: the claim moves
`run_after` to the lease's end, so a delivery whose daemon died is due again then, for any daemon. The lease
is twice `webhooks.timeout` and an attempt is cut off at the timeout, counted from the claim: no two daemons
send one delivery at once, and a daemon killed mid-delivery loses nothing (it is sent again: at least once).
Delivered: kept in the log with `delivered_at`. Otherwise retried with exponential backoff and jitter until
`webhooks.retry_for` after the event, then `failed`. Emitting notifies CHANNEL, so idle workers of every
daemon wake at once; polling every `webhooks.poll_interval` is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from .config import WebhooksConfig
from .db import Database, Tx, tx_fetchall, tx_fetchone
from .models import DeliveryStatus
from .records import fast_init
from .tables import record
from .times import iso

# Our own generator: the process's global one stays untouched (tests that draw from it, e.g. hypothesis,
# see no other thread move it).
_random = random.Random()

CHANNEL = "webhooks"  # notified when deliveries were emitted: workers wake
# The users' own events: history rows (history.record emits them).
USER_EVENTS = ("file.stored", "file.deleted", "link.downloaded", "upload_request.received")
_USER_EVENTS = frozenset(USER_EVENTS)
# The fleet's events, for administrators.
FLEET_EVENTS = ("replica.corrupt", "server.down", "server.up", "job.failed")
EVENTS = USER_EVENTS + FLEET_EVENTS
TEST_EVENT = "webhook.test"  # sent by POST /webhooks/{id}/test to that webhook alone, whatever it subscribes to
PRUNE_BATCH = 10_000  # log rows deleted per statement (each a short transaction: SQLite's writer stays free)

INSERT = (
    "INSERT INTO webhook_deliveries (uuid, webhook_id, event, object_id, data, occurred_at) VALUES (?, ?, ?, ?, ?, ?)"
)
PENDING, DELIVERED = DeliveryStatus.PENDING.value, DeliveryStatus.DELIVERED.value
# A due delivery (literal statuses: the partial index webhook_deliveries_due serves them), and the claim of
# the oldest one.
_DUE = f"SELECT 1 FROM webhook_deliveries WHERE status = '{PENDING}' AND run_after <= ? LIMIT 1"
_CLAIM = f"""
    UPDATE webhook_deliveries SET attempts = attempts + 1, run_after = :lease, claim_token = :token
    WHERE id = (SELECT id FROM webhook_deliveries WHERE status = '{PENDING}' AND run_after <= :now
                ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, uuid, webhook_id, event, object_id, data, occurred_at, attempts"""
_RELEASE_ALL = (
    "UPDATE webhook_deliveries SET run_after = 0, claim_token = NULL, "
    "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
    f"WHERE status = '{PENDING}' AND claim_token IS NOT NULL"
)
_DELIVERED = f"status = '{DELIVERED}', delivered_at = :at, claim_token = NULL"
LOG_COLUMNS = "id, uuid, event, status, attempts, last_error, delivered_at, occurred_at, run_after"


def message_id() -> str:
    """A delivery's webhook-id: `msg_` and 32 random hex digits."""
    return "msg_" + secrets.token_hex(16)


@fast_init
@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed delivery with what sending it takes."""

    id: int
    uuid: str  # the webhook-id header: the same on every attempt
    webhook_id: int
    url: str
    secret: str  # sealed (sealing.py)
    owner_active: bool  # False: the webhook's owner is disabled or deleted (nothing is sent)
    event: str
    object_id: str | None
    data: str  # JSON text
    occurred_at: str
    attempts: int  # sends begun, this one included
    token: str = field(default="", compare=False)  # this claim's: the outcome is written only under it
    claimed_at: float = field(default=0.0, compare=False)  # time.monotonic() as the claim was sent


@fast_init
@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    """A delivery as a webhook's log shows it (LOG_COLUMNS). Not `Delivery`: that one is a claim, with what
    sending takes (the URL, the sealed secret, the payload); this one is its outcome so far."""

    id: int
    uuid: str
    event: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None  # the last failed attempt's
    delivered_at: str | None
    occurred_at: str
    run_after: float  # unix seconds: when it is due again (0: at once)


class Subscriptions:
    """This daemon's copy of which users' events some webhook takes: (owner's internal id, event) pairs.
    Loaded at start, after this daemon's own changes, and when another daemon's moved the `webhooks` counter
    (changes.py). While `listening()`, `history.record` consults it (`wanted`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pairs: frozenset[tuple[int, str]] = frozenset()

    async def load(self) -> None:
        marks = ", ".join("?" * len(USER_EVENTS))
        rows = await self.db.fetchall(
            f"SELECT DISTINCT owner_id, event FROM webhook_events WHERE event IN ({marks})", USER_EVENTS
        )
        self.pairs = frozenset((int(r["owner_id"]), str(r["event"])) for r in rows)

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        _COPIES.append(self)
        try:
            yield
        finally:
            _COPIES.remove(self)


# The copies of this process: one in a daemon. (A test process may run several apps, each on a database of
# its own: a pair any of them holds only makes emit_user look, and find nothing where no webhook takes it.)
_COPIES: list[Subscriptions] = []


def wanted(user_id: int, event: str) -> list[Subscriptions]:
    """The copies saying some webhook of this user takes this event: empty (the usual case, and all it costs:
    a set lookup) means nothing to emit."""
    if event not in _USER_EVENTS:
        return []
    return [copy for copy in _COPIES if (user_id, event) in copy.pairs]


async def emit_user(
    tx: Tx, copies: list[Subscriptions], user_id: int, event: str, object_id: str | None, data: str, at: str
) -> int:
    """A user's event (its history row's object, JSON data and time), in the transaction that records it: a
    delivery for every webhook of that user, if enabled, that takes it. Returns how many."""
    rows = await tx_fetchall(
        tx,
        "SELECT s.webhook_id FROM webhook_events s JOIN users u ON u.id = s.owner_id "
        "WHERE s.event = ? AND s.owner_id = ? AND u.is_disabled = 0",
        (event, user_id),
    )
    await _insert(tx, [copy.db for copy in copies], [r["webhook_id"] for r in rows], event, object_id, data, at)
    return len(rows)


async def emit_fleet(db: Database, tx: Tx, event: str, data: dict[str, Any], *, at: str) -> int:
    """A fleet event that occurred `at` (the caller's clock), in the transaction of its change: a delivery for
    every webhook of an enabled administrator that subscribes to it. Returns how many."""
    assert event in FLEET_EVENTS, event
    rows = await tx_fetchall(
        tx,
        "SELECT s.webhook_id FROM webhook_events s JOIN users u ON u.id = s.owner_id "
        "WHERE s.event = ? AND u.is_admin = 1 AND u.is_disabled = 0",
        (event,),
    )
    await _insert(tx, [db], [r["webhook_id"] for r in rows], event, None, orjson.dumps(data).decode(), at)
    return len(rows)


async def _insert(
    tx: Tx, dbs: list[Database], webhook_ids: list[int], event: str, object_id: str | None, data: str, at: str
) -> None:
    """One delivery per webhook; the workers of every daemon are woken when the transaction commits."""
    if webhook_ids:
        await tx.executemany(INSERT, [(message_id(), w, event, object_id, data, at) for w in webhook_ids])
        for db in dbs:
            await db.notify(CHANNEL, tx=tx)


async def emit_test(db: Database, tx: Tx, webhook_id: int, data: dict[str, Any], *, at: str) -> str:
    """A test event for one webhook, whatever it subscribes to, occurred `at` (the caller's clock); its
    delivery's id."""
    msg = message_id()
    await tx.execute(INSERT, (msg, webhook_id, TEST_EVENT, None, orjson.dumps(data).decode(), at))
    await db.notify(CHANNEL, tx=tx)
    return msg


class WebhookQueue:
    def __init__(self, db: Database, cfg: WebhooksConfig, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.cfg = cfg
        self.clock = clock
        self.wakeup = asyncio.Event()
        # The claim's lease: an attempt ends at `timeout` after its claim was sent, well before this runs out.
        self.lease_seconds = 2 * cfg.timeout

    def wake(self, payload: str | None = None) -> None:
        """Wake the worker (app.py hands this to `db.listen(CHANNEL)`: deliveries were emitted somewhere)."""
        self.wakeup.set()

    async def due(self) -> bool:
        """Is some delivery due? A read only, so that an idle worker's look costs no write transaction."""
        return bool(
            await self.db.fetchval(
                _DUE,
                (self.clock(),),
            )
        )

    async def claim(self) -> Delivery | None:
        """The oldest due delivery, now under a lease and a new claim token (its attempt counted); None when
        none is due."""
        if not await self.due():
            return None
        now, sent, token = self.clock(), time.monotonic(), str(uuid.uuid4())
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx,
                _CLAIM,
                {"now": now, "lease": now + self.lease_seconds, "token": token},
            )
            if row is None:
                return None
            webhook = await tx_fetchone(
                tx,
                "SELECT w.url, w.secret, u.is_disabled FROM webhooks w JOIN users u ON u.id = w.owner_id "
                "WHERE w.id = ?",
                (row["webhook_id"],),
            )
        assert webhook is not None  # (deliveries go with their webhook: ON DELETE CASCADE)
        return Delivery(
            row["id"],
            row["uuid"],
            row["webhook_id"],
            webhook["url"],
            webhook["secret"],
            not webhook["is_disabled"],
            row["event"],
            row["object_id"],
            row["data"],
            row["occurred_at"],
            row["attempts"],
            token=token,
            claimed_at=sent,
        )

    async def delivered(self, d: Delivery) -> bool:
        """The receiver took it (2xx). False, and nothing written, when the claim is no longer this one's."""
        return await self._outcome(d, _DELIVERED, {"at": iso(self.clock())})

    async def failed(self, d: Delivery, error: str, *, final: bool = False) -> bool:
        """An attempt failed: again after a backoff with jitter (never past `retry_for` after the event: the
        last attempt is then), or `failed` once that time has come (or at once when `final`)."""
        now = self.clock()
        deadline = datetime.fromisoformat(d.occurred_at).timestamp() + self.cfg.retry_for
        delay = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (d.attempts - 1)) * _random.uniform(0.5, 1.5)
        status = DeliveryStatus.FAILED if final or now >= deadline else DeliveryStatus.PENDING
        return await self._outcome(
            d,
            "status = :status, run_after = :after, last_error = :error, claim_token = NULL",
            {"status": status, "after": min(now + delay, deadline), "error": error[:2000]},
        )

    async def release(self, d: Delivery) -> bool:
        """Back to the queue, due at once, its attempt not spent (shutdown interrupted it)."""
        return await self._outcome(d, "run_after = 0, attempts = attempts - 1, claim_token = NULL", {})

    async def _outcome(self, d: Delivery, assignments: str, params: dict[str, Any]) -> bool:
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                f"UPDATE webhook_deliveries SET {assignments} WHERE id = :id AND claim_token = :token",
                {**params, "id": d.id, "token": d.token},
            )
        return bool(cursor.rowcount)

    async def release_all(self) -> int:
        """At the start of the one daemon of a database (SQLite): what a killed process had claimed is due at
        once, without waiting for its leases to run out. Never where daemons share the database."""
        assert self.db.one_daemon, "several daemons share this database: their leases run out instead"
        async with self.db.transaction() as tx:
            cursor = await tx.execute(_RELEASE_ALL)
        return cursor.rowcount

    async def prune(self) -> int:
        """Delete delivered and failed deliveries that occurred over `log_days` ago; how many."""
        before, removed = iso(self.clock() - 86400 * self.cfg.log_days), 0
        while True:
            async with self.db.transaction() as tx:
                cursor = await tx.execute(
                    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
                    f"WHERE status != '{PENDING}' AND occurred_at < ? LIMIT {PRUNE_BATCH})",
                    (before,),
                )
            removed += cursor.rowcount
            if cursor.rowcount < PRUNE_BATCH:
                return removed

    async def page(self, webhook_id: int, limit: int, before: int | None) -> list[LoggedDelivery]:
        """A webhook's delivery log, newest first, older than the row id `before` (limit + 1 of them)."""
        rows = await self.db.fetchall(
            f"SELECT {LOG_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (webhook_id, before or 2**62, limit + 1),
        )
        return [record(LoggedDelivery, r) for r in rows]

    async def get(self, tx: Tx, msg: str) -> LoggedDelivery:
        row = await tx_fetchone(tx, f"SELECT {LOG_COLUMNS} FROM webhook_deliveries WHERE uuid = ?", (msg,))
        assert row is not None
        return record(LoggedDelivery, row)
