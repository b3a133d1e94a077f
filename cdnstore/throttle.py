"""Failure counting for login and link passwords (and uploads a minute): too many in a window -> wait.

- `Throttle`, in memory: SQLite's one daemon. A restart forgetting the counts is acceptable (an attacker
  gains one window). Bounded: old keys are pruned, and the table never grows past `max_keys`.
- `SharedThrottle`, in the database (`throttle_failures`, one row per failure): several daemons on
  PostgreSQL count together, so failures on any daemon add up. Times there are unix seconds (the daemons'
  clocks, kept in step by NTP: the windows are minutes long); rows older than the window are deleted
  as new failures come. `throttle(db, ...)` picks one by the engine.

Checks still running count like failures (`attempt`): otherwise a burst of guesses sent at once all
pass the "locked out?" test before the first of them has failed. That count is per daemon (it lives as
long as a request): with D daemons, a burst gets at most D x max_failures checks before the failures
start to count, and then none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .db import Database
from .errors import TooManyAttempts


def address_key(ip: str) -> str:
    """The key an address's failures count under: IPv6 by its /64 (one subscriber or host usually
    holds a whole /64, and picks any address in it at will), IPv4 as it is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Window:
    failures: int  # failures of the key in the window now
    retry_after: float  # seconds until the key may try again; 0 when it may try now


class Throttle:
    """In memory (one daemon). `state`, `fail` and `reset` are coroutines for the sake of `SharedThrottle`;
    here they never wait, so a check and what it decides happen without another request in between."""

    def __init__(
        self, max_failures: int, window: float, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._running: dict[str, int] = {}  # checks of each key running now (see `attempt`)
        self.checking = asyncio.Lock()  # `attempt`'s check-and-begin, one at a time (see SharedThrottle)

    async def state(self, key: str) -> Window:
        times = self._fresh(key)
        if times is None:
            return Window(0, 0.0)
        if len(times) < self.max_failures:
            return Window(len(times), 0.0)
        return Window(len(times), max(0.0, times[-self.max_failures] + self.window - self._clock()))

    async def fail(self, key: str) -> None:
        times = self._fresh(key)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._prune()
            times = self._failures[key] = deque(maxlen=self.max_failures)
        times.append(self._clock())

    def running(self, key: str) -> int:
        """How many checks of `key` run now (in this daemon)."""
        return self._running.get(key, 0)

    def begin(self, key: str) -> None:
        self._running[key] = self._running.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._running.pop(key) - 1
        if left:
            self._running[key] = left

    async def reset(self, key: str) -> None:
        self._failures.pop(key, None)

    def _fresh(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = self._clock() - self.window
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _prune(self) -> None:
        horizon = self._clock() - self.window
        for key in [k for k, t in self._failures.items() if not t or t[-1] < horizon]:
            del self._failures[key]
        while len(self._failures) >= self.max_keys:  # all fresh: drop the oldest keys
            del self._failures[next(iter(self._failures))]


class SharedThrottle(Throttle):
    """In the database (several daemons on PostgreSQL): every daemon's failures count. `scope` names the
    throttle in the table (one table for all of them)."""

    def __init__(
        self, db: Database, scope: str, max_failures: int, window: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(max_failures, window, clock=clock)
        self.db = db
        self.scope = scope

    async def state(self, key: str) -> Window:
        now = self._clock()
        row = await self.db.fetchone(
            STATE_SQL, {"scope": self.scope, "key": key, "horizon": now - self.window, "nth": self.max_failures - 1}
        )
        failures = int(row["failures"]) if row is not None else 0
        if row is None or row["nth_at"] is None:
            return Window(failures, 0.0)
        return Window(failures, max(0.0, float(row["nth_at"]) + self.window - now))

    async def fail(self, key: str) -> None:
        now = self._clock()
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO throttle_failures (scope, key, at) VALUES (?, ?, ?)", (self.scope, key, now))
            await tx.execute(
                "DELETE FROM throttle_failures WHERE scope = ? AND at <= ?", (self.scope, now - self.window)
            )

    async def reset(self, key: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM throttle_failures WHERE scope = ? AND key = ?", (self.scope, key))


# The failures of a key in the window, and the time of the max_failures-th latest (whose leaving the window
# lets the key try again), as the in-memory Throttle computes them.
STATE_SQL = """
SELECT count(*) AS failures,
       (SELECT at FROM throttle_failures WHERE scope = :scope AND key = :key AND at > :horizon
        ORDER BY at DESC LIMIT 1 OFFSET :nth) AS nth_at
FROM throttle_failures WHERE scope = :scope AND key = :key AND at > :horizon
"""


def throttle(db: Database, scope: str, max_failures: int, window: float) -> Throttle:
    """The throttle for `db`'s engine: in memory for SQLite's one daemon, shared on PostgreSQL."""
    if db.engine == "postgres":
        return SharedThrottle(db, scope, max_failures, window)
    return Throttle(max_failures, window)


async def count_or_refuse(throttle_: Throttle, key: str, detail: str, code: str) -> None:
    """One more use of `key` (a user announcing an upload, making a link), counted whether what follows
    succeeds or not; 429 `code` with Retry-After when the key has had its `max_failures` in the window."""
    wait = (await throttle_.state(key)).retry_after
    if wait > 0:
        raise TooManyAttempts(f"{detail}; try again later", retry_after=int(wait) + 1, code=code)
    await throttle_.fail(key)


class Attempt:
    """One check running against several (throttle, key) pairs; `failed` counts it against each."""

    def __init__(self, checks: Sequence[tuple[Throttle, str]]) -> None:
        self.checks = checks

    async def failed(self) -> None:
        for throttle_, key in self.checks:
            await throttle_.fail(key)


@asynccontextmanager
async def attempt(checks: Sequence[tuple[Throttle, str]], detail: str) -> AsyncIterator[Attempt]:
    """429 when a key is locked out, or would be if the checks running now all failed; otherwise this
    check counts as running until the block ends (await `failed()` inside the block, so that no moment
    passes in which a failed check counts neither as running nor as a failure).

    The check and the `begin` that follows it hold the first throttle's lock: a SharedThrottle's state is
    read from the database, and without the lock a burst would all read it before any of them began."""
    async with checks[0][0].checking:
        # The running counts before the failures: a check that ends meanwhile has counted its failure
        # first, so it is seen in one or the other (or both: refused once too often, never too seldom).
        running = [throttle_.running(key) for throttle_, key in checks]
        states = [await throttle_.state(key) for throttle_, key in checks]
        wait = max(state.retry_after for state in states)
        if wait > 0:
            raise TooManyAttempts(f"{detail}; try again later", retry_after=math.ceil(wait))
        if any(
            state.failures + now >= throttle_.max_failures
            for (throttle_, _), state, now in zip(checks, states, running, strict=True)
        ):
            raise TooManyAttempts(f"{detail} at once; try again in a moment", retry_after=1)
        for throttle_, key in checks:
            throttle_.begin(key)
    try:
        yield Attempt(checks)
    finally:
        for throttle_, key in checks:
            throttle_.end(key)
