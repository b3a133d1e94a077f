"""How each daemon's in-memory copies (the server registry, cached users, ended sessions) learn of changes
that another daemon, or a command-line tool, made in the shared database.

Every change raises its topic's counter in `cache_versions`, in the transaction of the change (`bump`):
the counter moves exactly when the change commits, never before and never for a rolled-back one. Each
daemon reads the counters every `CHECK_INTERVAL` seconds (`CacheSync.check`: one small query) and calls the
reloaders of the topics that moved, so another daemon's change is obeyed within that interval plus the
reload (under 2 seconds). The counters are read before the reload: a change committing meanwhile is in
the reload or moves the counter again, so none is missed. A daemon's own changes update its copies at once
(the use cases do that themselves); they also move the counter, which costs one needless reload.

The reloads are cheap (servers: a handful of rows; users: the cache is dropped and refilled on use;
sessions: the "still live" marks are dropped, each live session is read again once on its next use).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from .db import Database, Tx

log = logging.getLogger(__name__)

SERVERS, USERS, SESSIONS = "servers", "users", "sessions"
TOPICS = (SERVERS, USERS, SESSIONS)
CHECK_INTERVAL = 1.0  # seconds between two reads of the counters (the bound on another daemon's lag)

Reload = Callable[[], Awaitable[None]]


async def bump(tx: Tx, topic: str) -> None:
    """Record, in the transaction of a change, that `topic`'s copies are out of date on every daemon."""
    await tx.execute("INSERT INTO cache_versions (topic, version) VALUES (?, 1) "
                     "ON CONFLICT (topic) DO UPDATE SET version = cache_versions.version + 1", (topic,))


class CacheSync:
    """Reloads this daemon's copies when another daemon (or a tool) changed what they copy."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reloads: dict[str, list[Reload]] = {}
        self._seen: dict[str, int] = {}  # topic -> the counter the copies are known to follow

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

    async def reload_all(self) -> None:
        """Everything may have changed unseen (a listener reconnected): reload every copy."""
        for topic in TOPICS:
            await self.reload(topic)
