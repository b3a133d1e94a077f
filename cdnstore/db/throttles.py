"""Where throttles count failures (throttle.py holds what they decide: windows, checks still running, 429s).
`Database.failures` picks the store:

- `MemoryFailures`, where one daemon uses the database (SQLite): a restart forgetting the counts is
  acceptable (an attacker gains one window). Bounded: old keys are pruned, and it never holds more than
  `max_keys` keys. Its clock is monotonic.
- `TableFailures`, where daemons share the database (PostgreSQL): one row of `throttle_failures` per failure,
  so failures on any daemon add up. Times there are unix seconds (the daemons' clocks, kept in step by NTP:
  the windows are minutes long); rows older than the window are deleted as new failures come.

Two stores rather than the table on both engines, for a measured reason: a use counted in memory costs
~2 us, in SQLite's table ~85 us (a read, and a write transaction), and every upload announced and every
link made counts one (docs/performance.md, "Throttles"). Both answer one question, with the same arithmetic
in throttle.py: how many failures of a key are in the window, and when the `max_failures`-th latest of them
was (its leaving the window lets the key try again)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .base import Database


class FailureLog(Protocol):
    # The clock its times are on (the throttle reads it and passes `now` in).
    clock: Callable[[], float]

    async def recent(self, key: str, now: float) -> tuple[int, float | None]:
        """(failures of `key` in the window ending `now`, the time of the max_failures-th latest, None
        when there are fewer)."""
        ...

    async def add(self, key: str, now: float) -> None: ...

    async def clear(self, key: str) -> None: ...


class MemoryFailures:
    """The failures of each key in a deque of their times (at most max_failures: older ones cannot matter)."""

    def __init__(self, max_failures: int, window: float, *, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self.clock: Callable[[], float] = time.monotonic
        self._failures: dict[str, deque[float]] = {}

    async def recent(self, key: str, now: float) -> tuple[int, float | None]:
        times = self._fresh(key, now)
        if times is None:
            return 0, None
        return len(times), times[-self.max_failures] if len(times) >= self.max_failures else None

    async def add(self, key: str, now: float) -> None:
        times = self._fresh(key, now)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._prune(now)
            times = self._failures[key] = deque(maxlen=self.max_failures)
        times.append(now)

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _fresh(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = now - self.window
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        for key in [k for k, t in self._failures.items() if not t or t[-1] < horizon]:
            del self._failures[key]
        while len(self._failures) >= self.max_keys:  # all fresh: drop the oldest keys
            del self._failures[next(iter(self._failures))]


class TableFailures:
    """The failures in `throttle_failures`, one table for every throttle: `scope` names this one."""

    def __init__(self, db: Database, scope: str, max_failures: int, window: float) -> None:
        self.db = db
        self.scope = scope
        self.max_failures = max_failures
        self.window = window
        self.clock: Callable[[], float] = time.time

    async def recent(self, key: str, now: float) -> tuple[int, float | None]:
        row = await self.db.fetchone(
            _RECENT, {"scope": self.scope, "key": key, "horizon": now - self.window, "nth": self.max_failures - 1}
        )
        if row is None:
            return 0, None
        return int(row["failures"]), None if row["nth_at"] is None else float(row["nth_at"])

    async def add(self, key: str, now: float) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO throttle_failures (scope, key, at) VALUES (?, ?, ?)", (self.scope, key, now))
            await tx.execute(
                "DELETE FROM throttle_failures WHERE scope = ? AND at <= ?", (self.scope, now - self.window)
            )

    async def clear(self, key: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM throttle_failures WHERE scope = ? AND key = ?", (self.scope, key))


# The failures of a key in the window, and the time of the max_failures-th latest.
_RECENT = """
SELECT count(*) AS failures,
       (SELECT at FROM throttle_failures WHERE scope = :scope AND key = :key AND at > :horizon
        ORDER BY at DESC LIMIT 1 OFFSET :nth) AS nth_at
FROM throttle_failures WHERE scope = :scope AND key = :key AND at > :horizon
"""
