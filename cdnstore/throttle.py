"""Failure counting for login and link passwords: too many failures in a window -> wait.

In memory: cdnstore is one process, and a restart forgetting the counts is acceptable (an attacker
gains one window). Bounded: old keys are pruned, and the table never grows past `max_keys`.

Checks still running count like failures (`attempt`): otherwise a burst of guesses sent at once all
pass the "locked out?" test before the first of them has failed.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

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


class Throttle:
    def __init__(self, max_failures: int, window: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._running: dict[str, int] = {}  # checks of each key running now (see `attempt`)

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may try now."""
        times = self._fresh(key)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[-self.max_failures] + self.window - self._clock())

    def failures(self, key: str) -> int:
        """How many failures of `key` the window holds now."""
        times = self._fresh(key)
        return 0 if times is None else len(times)

    def fail(self, key: str) -> None:
        times = self._fresh(key)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._prune()
            times = self._failures[key] = deque(maxlen=self.max_failures)
        times.append(self._clock())

    def full(self, key: str) -> bool:
        """Whether the failures so far plus the checks running now already reach the limit."""
        return self.failures(key) + self._running.get(key, 0) >= self.max_failures

    def begin(self, key: str) -> None:
        self._running[key] = self._running.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._running.pop(key) - 1
        if left:
            self._running[key] = left

    def reset(self, key: str) -> None:
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


class Attempt:
    """One check running against several (throttle, key) pairs; `failed` counts it against each."""

    def __init__(self, checks: Sequence[tuple[Throttle, str]]) -> None:
        self.checks = checks

    def failed(self) -> None:
        for throttle, key in self.checks:
            throttle.fail(key)


@contextmanager
def attempt(checks: Sequence[tuple[Throttle, str]], detail: str) -> Iterator[Attempt]:
    """429 when a key is locked out, or would be if the checks running now all failed; otherwise this
    check counts as running until the block ends (call `failed()` inside the block, so that no moment
    passes in which a failed check counts neither as running nor as a failure)."""
    wait = max(throttle.retry_after(key) for throttle, key in checks)
    if wait > 0:
        raise TooManyAttempts(f"{detail}; try again later", retry_after=math.ceil(wait))
    if any(throttle.full(key) for throttle, key in checks):
        raise TooManyAttempts(f"{detail} at once; try again in a moment", retry_after=1)
    for throttle, key in checks:
        throttle.begin(key)
    try:
        yield Attempt(checks)
    finally:
        for throttle, key in checks:
            throttle.end(key)
