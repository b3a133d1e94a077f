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


_second: tuple[int, str] = (-1, "")  # (a unix second, its "YYYY-MM-DDTHH:MM:SS")


def now_iso() -> str:
    """iso() of now, the same text: its strftime done once a second (every download's history row asks).
    Milliseconds are cut, not rounded, as datetime.now() cuts its microseconds."""
    global _second
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _second  # (one read: a thread may replace it meanwhile)
    if second != cached[0]:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{nanos // 1_000_000:03d}Z"


def iso_in(seconds: float, *, timespec: str = "milliseconds") -> str:
    """Now plus `seconds` (negative: ago), as `iso` writes it."""
    return iso(time.time() + seconds, timespec=timespec)
