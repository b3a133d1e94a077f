"""The clock port: the time the use cases read, passed to them rather than read from a module, so a test
hands in a clock it moves (testbed/clock.py's `FakeClock`) and a link, an upload or the trash ages at once.

`Clock` is what the use cases call: `time()` (unix seconds, as the job and webhook queues and the API keys
store them), `now_iso()` and `iso_in(seconds)` (stored times: RFC 3339 UTC text, times.py's format, which
SQL compares as text; no statement asks the database for its own now, so the time passed in reaches every
comparison). `SYSTEM_CLOCK` is the real one and the default; `create_app(config, clock=...)` wires the
one it is given into every use case.

What goes through the clock: every time a use case stores or compares with a stored time, i.e. that
decides a domain outcome or records when something happened: expiries of links, files (`files.Lifetime`),
API keys, upload requests and sessions; upload URLs' and deadlines' times and the upload sweep; trash
retention; the job queue's and the webhook queue's schedules (they take `clock.time`) and the webhook log's
pruning; verification back-off, deep-scrub and probe due times; imports' and servers' stamps and a probe's
(probe.Prober: a probe is due again, and a server's events awaited, counted from them), and a server's
events state (the servers list judges it at the clock's now); history rows' `created_at` (`history.record`,
`record_many` and `HistoryWriter.add` take `at`, the caller's clock's now, read once per transaction where
the use case has one; a download's batched row reads it once, as it did) and webhook events' `occurred_at`
(their history row's time, or the `at` that `emit_fleet` and `emit_test` take), so a delivery's retry
deadline, counted from `occurred_at` on the queue's clock, is on one clock; a delivery's `delivered_at`
(the queue's clock).

What does not, and why:
- durations measured for logs, metrics and pacing (`time.monotonic()`: a request's or a pass's length, a
  rate limiter's tokens, backoff sleeps, a lease's local validity, in-memory cache ages): they measure this
  process's elapsed time, which a moved wall clock must not disturb, and no stored state depends on them;
- what another party checks against the real time: presigned URLs (presign.py, and the reuse of one in
  `Files._signed_get`: the S3 server judges them by its clock), access tokens (itsdangerous' signed
  stamps), webhook signatures' timestamps (the receiver checks them against its own clock), the S3 servers'
  own upload times (scrub's stale uploads);
- what no use case's outcome turns on: log records, the download statistics' UTC day (stats.py: written and
  read by the real day alike; the hot path's strftime is cached per day), the GeoIP database's age.
"""

from __future__ import annotations

import time
from typing import Protocol

from .times import iso_in, now_iso


class Clock(Protocol):
    def time(self) -> float:
        """Unix time in seconds."""
        ...

    def now_iso(self) -> str:
        """Now as a stored time (RFC 3339 UTC, milliseconds)."""
        ...

    def iso_in(self, seconds: float, *, timespec: str = "milliseconds") -> str:
        """Now plus `seconds` (negative: ago) as a stored time; `timespec` as `times.iso` takes it."""
        ...


class SystemClock:
    """The machine's clock: times.py's functions themselves (staticmethods, so a call costs what calling
    the module function costs: `now_iso` is on the download path)."""

    time = staticmethod(time.time)
    now_iso = staticmethod(now_iso)
    iso_in = staticmethod(iso_in)


SYSTEM_CLOCK: Clock = SystemClock()
