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


def now_iso() -> str:
    return iso()


def iso_in(seconds: float, *, timespec: str = "milliseconds") -> str:
    """Now plus `seconds` (negative: ago), as `iso` writes it."""
    return iso(time.time() + seconds, timespec=timespec)
