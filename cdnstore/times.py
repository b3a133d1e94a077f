"""Times as cdnstore stores and shows them: RFC 3339 UTC text with millisecond precision, which compares
correctly as text (so SQL can compare stored times without parsing them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(ts: float | None = None, *, timespec: str = "milliseconds") -> str:
    """Unix time `ts` (now when None) as RFC 3339 UTC; with the default millisecond precision this is
    the format every stored time uses, so stored times compare correctly as text."""
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


class UtcText:
    """`time.strftime(fmt)` of the current UTC time, redone only when the unit of `every` seconds it falls
    in changes (1: a second, 86,400: a UTC day, which is 86,400 unix seconds): hot paths (a history row, a
    presigned URL, the download statistics' day) ask many times a unit, and strftime is the dear part."""

    def __init__(self, fmt: str, every: int = 1) -> None:
        self.fmt, self.every = fmt, every
        self._cached: tuple[int, str] = (-1, "")  # (unit, its text): one tuple, so a thread reads both or neither

    def at(self, second: int) -> str:
        """The text of unix time `second` (a whole second)."""
        cached = self._cached
        if cached[0] != second // self.every:
            cached = self._cached = (second // self.every, time.strftime(self.fmt, time.gmtime(second)))
        return cached[1]

    def now(self) -> str:
        return self.at(int(time.time()))


_SECOND = UtcText("%Y-%m-%dT%H:%M:%S")


def now_iso() -> str:
    """iso() of now, the same text (every download's history row asks). Milliseconds are cut, not rounded,
    as datetime.now() cuts its microseconds."""
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{_SECOND.at(second)}.{nanos // 1_000_000:03d}Z"


def iso_in(seconds: float, *, timespec: str = "milliseconds") -> str:
    """Now plus `seconds` (negative: ago), as `iso` writes it."""
    return iso(time.time() + seconds, timespec=timespec)
