"""`FakeClock`: the clock port (cdnstore/clock.py) standing still until a test moves it, so what waits
for time (a link's expiry, an upload's deadline, the trash's retention) happens at once and exactly."""

from __future__ import annotations

import time

from cdnstore.times import iso


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start  # unix seconds (by default: the real now)

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` on (never back: stored times only grow)."""
        if seconds < 0:
            raise ValueError("a clock moves forward")
        self.now += seconds

    def time(self) -> float:
        return self.now

    def now_iso(self) -> str:
        return iso(self.now)

    def iso_in(self, seconds: float, *, timespec: str = "milliseconds") -> str:
        return iso(self.now + seconds, timespec=timespec)
