"""Outgoing webhooks, the owner's side: register an endpoint for some events (its signing secret shown
once), list and delete them, read a webhook's delivery log, send it a test event.

- Users subscribe to their own events (`webhook_queue.USER_EVENTS`), administrators also to the fleet's
  (`FLEET_EVENTS`); 403 for a fleet event asked by anyone else.
- The URL is checked as a storage server's is (endpoints.py), stricter: no user info, no link-local or
  metadata address, and no loopback or private one unless `webhooks.allow_private`; 422
  `endpoint_not_allowed` naming `url`. The worker's resolver checks again at every connection.
- The secret is `whsec_` and 24 random bytes in base64, as Standard Webhooks writes it; kept sealed
  (sealing.py, a key of its own), since the worker needs it in clear to sign.
- Another user's webhook is 404 `webhook_not_found`, as one that does not exist.
- Every change raises the `webhooks` counter (changes.py): each daemon's copy of who takes which user's
  events (webhook_queue.Subscriptions) is reloaded, this daemon's at once.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import uuid
from dataclasses import dataclass

from .changes import WEBHOOKS, bump
from .clock import SYSTEM_CLOCK, Clock
from .config import WebhooksConfig
from .db import Database, tx_fetchone
from .endpoints import check_endpoint
from .errors import Conflict, DatabaseUnavailable, Forbidden, NotFound
from .records import fast_init
from .sealing import Sealer
from .webhook_queue import FLEET_EVENTS, LoggedDelivery, Subscriptions, WebhookQueue, emit_test

MAX_PER_USER = 20  # webhooks one user may have: each multiplies what every event of theirs costs
SEALING_PURPOSE = b"cdnstore: webhook signing secrets, v1"  # (sealing.py: a key of their own)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@fast_init
@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    uuid: str
    url: str
    events: tuple[str, ...]
    created_at: str


class Webhooks:
    def __init__(
        self,
        db: Database,
        queue: WebhookQueue,
        subscriptions: Subscriptions,
        sealer: Sealer,
        cfg: WebhooksConfig,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.queue = queue
        self.subscriptions = subscriptions  # this daemon's copy: reloaded after each change here
        self.sealer = sealer
        self.cfg = cfg

    async def create(self, owner_id: int, is_admin: bool, url: str, events: list[str]) -> tuple[Webhook, str]:
        """A new webhook and its secret (the only time the secret is given out)."""
        fleet = [e for e in events if e in FLEET_EVENTS]
        if fleet and not is_admin:
            raise Forbidden(f"only administrators may subscribe to the fleet's events ({', '.join(fleet)})")
        await check_endpoint(url, field="url", private_allowed=self.cfg.allow_private)
        secret, subscribed = new_secret(), tuple(sorted(set(events)))  # (listed in this order too)
        async with self.db.transaction() as tx:
            held = await tx_fetchone(tx, "SELECT count(*) AS n FROM webhooks WHERE owner_id = ?", (owner_id,))
            if held is not None and held["n"] >= MAX_PER_USER:
                raise Conflict(f"you have {MAX_PER_USER} webhooks already; delete one first", code="too_many_webhooks")
            row = await tx_fetchone(
                tx,
                "INSERT INTO webhooks (uuid, owner_id, url, secret, created_at) VALUES (?, ?, ?, ?, ?) "
                "RETURNING id, uuid, url, created_at",
                (str(uuid.uuid4()), owner_id, url, self.sealer.seal(secret), self.clock.now_iso()),
            )
            assert row is not None
            await tx.executemany(
                "INSERT INTO webhook_events (event, owner_id, webhook_id) VALUES (?, ?, ?)",
                [(event, owner_id, row["id"]) for event in subscribed],
            )
            await bump(self.db, tx, WEBHOOKS)  # (the other daemons' copies reload)
        await self._reload()
        return Webhook(row["id"], row["uuid"], row["url"], subscribed, row["created_at"]), secret

    async def page(self, owner_id: int, limit: int, before: int | None) -> list[Webhook]:
        """The owner's webhooks, newest first, older than the row id `before` (limit + 1 of them)."""
        rows = await self.db.fetchall(
            "SELECT id, uuid, url, created_at FROM webhooks WHERE owner_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (owner_id, before or 2**62, limit + 1),
        )
        if not rows:
            return []
        marks = ", ".join("?" * len(rows))
        found = await self.db.fetchall(
            f"SELECT webhook_id, event FROM webhook_events WHERE webhook_id IN ({marks})",
            [r["id"] for r in rows],
        )
        events: dict[int, list[str]] = {}
        for item in found:
            events.setdefault(item["webhook_id"], []).append(item["event"])
        return [
            Webhook(r["id"], r["uuid"], r["url"], tuple(sorted(events.get(r["id"], ()))), r["created_at"]) for r in rows
        ]

    async def delete(self, owner_id: int, webhook_uuid: str) -> None:
        """Gone at once, with its delivery log; a delivery being sent now may still arrive."""
        async with self.db.transaction() as tx:
            cursor = await tx.execute("DELETE FROM webhooks WHERE uuid = ? AND owner_id = ?", (webhook_uuid, owner_id))
            if cursor.rowcount:
                await bump(self.db, tx, WEBHOOKS)
        if not cursor.rowcount:
            raise NotFound("no such webhook", code="webhook_not_found")
        await self._reload()

    async def _reload(self) -> None:
        """This daemon's copy follows its own change at once. (Should the read fail after the commit, the
        change's counter still moved: the copy is reloaded by the next check of changes.py, within a second.)"""
        with contextlib.suppress(DatabaseUnavailable):
            await self.subscriptions.load()

    async def deliveries(
        self, owner_id: int, webhook_uuid: str, limit: int, before: int | None
    ) -> list[LoggedDelivery]:
        """The webhook's delivery log, newest first (limit + 1 of them)."""
        webhook_id = found(await self.db.fetchval(OWNED, (webhook_uuid, owner_id)))
        return await self.queue.page(webhook_id, limit, before)

    async def send_test(self, owner_id: int, webhook_uuid: str) -> LoggedDelivery:
        """A test event, queued like any delivery (so the log shows how it went); its log entry."""
        async with self.db.transaction() as tx:
            owned = await tx_fetchone(tx, OWNED, (webhook_uuid, owner_id))
            webhook_id = found(None if owned is None else owned["id"])
            msg = await emit_test(self.db, tx, webhook_id, {"webhook_id": webhook_uuid}, at=self.clock.now_iso())
            return await self.queue.get(tx, msg)


OWNED = "SELECT id FROM webhooks WHERE uuid = ? AND owner_id = ?"  # (uuid, owner): the caller's webhook


def found(webhook_id: int | None) -> int:
    """The caller's webhook's id; another user's is 404 as one that does not exist."""
    if webhook_id is None:
        raise NotFound("no such webhook", code="webhook_not_found")
    return webhook_id
