"""Failure counting for login and link passwords: too many failures in a window -> wait.

In memory: cdnstore is one process, and a restart forgetting the counts is acceptable (an attacker
gains one window). Bounded: old keys are pruned, and the table never grows past `max_keys`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Throttle:
    def __init__(self, max_failures: int, window: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

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
