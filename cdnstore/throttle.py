"""Failure counting for login and link passwords (and uploads a minute): too many in a window -> wait.

One `Throttle` on both engines; where it counts (in memory for one daemon, in the database for several) is
the database's to say (`Database.failures`, db/throttles.py): on PostgreSQL, failures on any daemon add up.

Checks still running count like failures (`attempt`): otherwise a burst of guesses sent at once all
pass the "locked out?" test before the first of them has failed. That count is per daemon (it lives as
long as a request): with D daemons, a burst gets at most D x max_failures checks before the failures
start to count, and then none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .db import Database
from .errors import TooManyAttempts
from .records import fast_init


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


@fast_init
@dataclass(frozen=True, slots=True)
class Window:
    failures: int  # failures of the key in the window now
    retry_after: float  # seconds until the key may try again; 0 when it may try now


class Throttle:
    """The failures of keys (an address, an account, a link) in a sliding window of `window` seconds: a key
    with `max_failures` of them waits until the oldest that counts leaves the window. `scope` names the
    throttle where its failures are kept (the database's `throttle_failures`, shared by every throttle).

    Where the failures are kept in memory, `state`, `fail` and `reset` never wait, so a check and what it
    decides happen without another request in between; in the database they do wait, hence `checking`."""

    def __init__(self, db: Database, scope: str, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures = db.failures(scope, max_failures, window)
        self._clock = self._failures.clock  # (its store's: monotonic in memory, unix time in the database)
        self._running: dict[str, int] = {}  # checks of each key running now (see `attempt`)
        self.checking = asyncio.Lock()  # `attempt`'s check-and-begin, one at a time

    async def state(self, key: str) -> Window:
        now = self._clock()
        failures, nth_at = await self._failures.recent(key, now)
        if nth_at is None:
            return Window(failures, 0.0)
        return Window(failures, max(0.0, nth_at + self.window - now))

    async def fail(self, key: str) -> None:
        await self._failures.add(key, self._clock())

    async def reset(self, key: str) -> None:
        await self._failures.clear(key)

    def running(self, key: str) -> int:
        """How many checks of `key` run now (in this daemon)."""
        return self._running.get(key, 0)

    def begin(self, key: str) -> None:
        self._running[key] = self._running.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._running.pop(key) - 1
        if left:
            self._running[key] = left


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

    The check and the `begin` that follows it hold the first throttle's lock: where failures are kept in the
    database their state is read from it, and without the lock a burst would all read it before any of them
    began."""
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
