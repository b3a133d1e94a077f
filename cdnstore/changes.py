"""How each daemon's in-memory copies (the server registry, cached users, ended sessions, API keys, webhook
subscriptions) learn of changes that another daemon, or a command-line tool, made in the shared database.

Every change raises its topic's counter in `cache_versions`, in the transaction of the change (`bump`):
the counter moves exactly when the change commits, never before and never for a rolled-back one. Each
daemon reads the counters (`CacheSync.check`: one small query) and calls the reloaders of the topics that
moved. The counters are read before the reload: a change committing meanwhile is in the reload or moves
the counter again, so none is missed. A daemon's own changes update its copies at once (the use cases do
that themselves); they also move the counter, which costs one needless reload.

When does a daemon check? (`CacheSync.run`)
- at once when told: `bump` also sends a notification (PostgreSQL NOTIFY, delivered at commit) that
  wakes every daemon's check: another daemon's change is obeyed within milliseconds;
- when the listening connection comes back after a cut (the database's RESYNC): what was sent meanwhile
  is lost, the counters are not;
- every `CHECK_INTERVAL` seconds whatever happens: the fallback that alone keeps the 2-second promise
  (a listening connection silently dead, a notification lost).

The reloads are cheap (servers: a handful of rows; users: the cache is dropped and refilled on use;
sessions: the "still live" marks are dropped, each live session is read again once on its next use; keys: the
cache of checked keys is dropped, each key is read again once on its next use; webhooks: one row per user and
event some webhook takes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .db import Database, Tx
from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)

SERVERS, USERS, SESSIONS, KEYS, WEBHOOKS = "servers", "users", "sessions", "keys", "webhooks"
TOPICS = (SERVERS, USERS, SESSIONS, KEYS, WEBHOOKS)
CHECK_INTERVAL = 1.0  # seconds between two reads of the counters (the bound on another daemon's lag)
CHANNEL = "cdnstore_changes"  # the notification channel; the payload is the topic

Reload = Callable[[], Awaitable[None]]


async def bump(db: Database, tx: Tx, topic: str) -> None:
    """Record, in the transaction of a change, that `topic`'s copies are out of date on every daemon, and
    wake their checks when it commits."""
    await tx.execute(
        "INSERT INTO cache_versions (topic, version) VALUES (?, 1) "
        "ON CONFLICT (topic) DO UPDATE SET version = cache_versions.version + 1",
        (topic,),
    )
    await db.notify(CHANNEL, topic, tx=tx)


class CacheSync:
    """Reloads this daemon's copies when another daemon (or a tool) changed what they copy."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reloads: dict[str, list[Reload]] = {}
        self._seen: dict[str, int] = {}  # topic -> the counter the copies are known to follow
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Check at once when notified (or when notifications may have been lost), else every
        CHECK_INTERVAL seconds; until cancelled."""
        await self.db.listen(CHANNEL, self._heard)
        while True:
            self._wake.clear()  # before the check: a notification during it makes the next one at once
            try:
                await self.check()
            except DatabaseUnavailable as exc:  # the database logged it once; the next check tries again
                log.debug("cache check: %s", exc.detail)
            except Exception:
                log.exception("cache check failed; trying again in %.0f s", CHECK_INTERVAL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL):
                    await self._wake.wait()

    def _heard(self, payload: str | None) -> None:
        """A topic changed (payload), or notifications may have been lost (None): check now."""
        self._wake.set()

    def on(self, topic: str, reload: Reload) -> None:
        assert topic in TOPICS, topic
        self._reloads.setdefault(topic, []).append(reload)

    async def check(self) -> list[str]:
        """Read the counters; reload the copies of every topic that moved. Returns those topics.

        The first check reloads every copy once: a change committed between the copies' load at start and
        this first read would otherwise go unseen."""
        rows = await self.db.fetchall("SELECT topic, version FROM cache_versions")
        versions = {row["topic"]: int(row["version"]) for row in rows}
        moved = [topic for topic in TOPICS if versions.get(topic, 0) != self._seen.get(topic)]
        for topic in moved:
            await self.reload(topic)
            self._seen[topic] = versions.get(topic, 0)  # only once reloaded: a failed reload is tried again
        return moved

    async def reload(self, topic: str) -> None:
        for reload in self._reloads.get(topic, []):
            await reload()
