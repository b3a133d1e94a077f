"""Named leases: work that must run on one daemon at a time (health checks, the upload sweep, scrub) runs
where its lease is held. A lease is a row `leases(name, holder, until)`: the holder renews it every third
of its length; any daemon takes it once `until` has passed (its holder died), and a holder that stops
cleanly gives it up at once. Rows, not advisory locks, so that SQLite has the same code and a lease
outlives a lost connection for as long as it says (no work doubled while PostgreSQL restarts).

    lease = Lease(db, "scrub", holder=daemon_id(), seconds=30)
    async with running({"scrub-lease": lease.keep()}):       # try to take it, renew it, on every daemon
        await every(interval, functools.partial(lease.run, scrub), "scrub")   # runs only where held

`tasks.every_exclusively` is that, in one call. Times are unix seconds of the daemons' clocks (keep them
in sync with NTP: a clock ahead by d takes leases over d seconds early)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import DatabaseUnavailable
from .base import Database

log = logging.getLogger(__name__)


def daemon_id() -> str:
    """A holder name for this process: host, pid and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def forget_all(db: Database) -> None:
    """At the start of the one daemon of a database (SQLite): leases found are a dead process's."""
    assert db.one_daemon, "several daemons share this database: their leases run out instead"
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM leases")


class Lease:
    def __init__(
        self, db: Database, name: str, holder: str, seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db, self.name, self.holder, self.seconds, self.clock = db, name, holder, seconds, clock
        self._valid_until = 0.0  # time.monotonic() until which this daemon surely holds it (0: it does not)
        self._work: asyncio.Future[Any] | None = None

    @property
    def held(self) -> bool:
        """Held, with a third of the lease to spare (time to stop the work before another may take it)."""
        return time.monotonic() < self._valid_until - self.seconds / 3

    async def acquire(self) -> bool:
        """Take the lease if it is free or has run out, or renew it if held; True when held now."""
        sent, now = time.monotonic(), self.clock()
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                "INSERT INTO leases (name, holder, until) VALUES (:name, :holder, :until) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
                "WHERE leases.holder = excluded.holder OR leases.until < :now RETURNING holder",
                {"name": self.name, "holder": self.holder, "until": now + self.seconds, "now": now},
            )
            got = await cursor.fetchone() is not None
        self._valid_until = sent + self.seconds if got else 0.0
        return got

    async def release(self) -> None:
        self._valid_until = 0.0
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (self.name, self.holder))

    async def keep(self) -> None:
        """Take or renew the lease every third of its length, for as long as this runs; stop the work
        running under it when it is lost (taken over, or not renewed in time); give it up when cancelled."""
        try:
            while True:
                was_held = self.held
                with contextlib.suppress(DatabaseUnavailable, TimeoutError):
                    async with asyncio.timeout(self.seconds / 3):
                        await self.acquire()
                if self.held != was_held:
                    log.info("lease %s: %s", self.name, "held here now" if self.held else "lost")
                if not self.held and self._work is not None:
                    self._work.cancel()
                await asyncio.sleep(self.seconds / 3)
        finally:
            if self._valid_until:
                with contextlib.suppress(DatabaseUnavailable, OSError, TimeoutError):
                    async with asyncio.timeout(self.seconds / 3):
                        await asyncio.shield(self.release())

    async def run(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run `work` if the lease is held here (else nothing); stop it when the lease is lost."""
        if not self.held:
            return
        self._work = asyncio.ensure_future(work())
        try:
            await self._work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this task is being cancelled (shutdown): not the lease's doing
            log.warning("lease %s lost: the work under it was stopped", self.name)
        finally:
            self._work = None
