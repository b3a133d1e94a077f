"""Download statistics: per storage server and UTC day, the downloads handed out (owners' and share links'
alike) and the bytes of the files behind them.

A download is the hot path and changes nothing else, so, as the download history (history.py), it is not
written by itself: DownloadStats adds it to a counter in memory, and every `interval` seconds one
transaction adds all the counters to their rows (an upsert per (day, server), never a row per download).
Several daemons add to the same rows. A read flushes first, so it sees every download this daemon handed out;
a daemon killed with SIGKILL loses at most its last `interval` of counts (a clean stop flushes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .db import Database
from .errors import DatabaseUnavailable
from .records import fast_init
from .tables import record
from .times import UtcText

log = logging.getLogger(__name__)

# INSERT ... SELECT: a server deleted since the download adds nothing (its statistics went with it).
UPSERT = """INSERT INTO download_stats (day, server_id, downloads, bytes)
    SELECT ?, id, CAST(? AS BIGINT), CAST(? AS BIGINT) FROM servers WHERE id = ?
    ON CONFLICT (day, server_id) DO UPDATE SET downloads = download_stats.downloads + excluded.downloads,
                                              bytes = download_stats.bytes + excluded.bytes"""


def utc_day(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%d")


_DAY = UtcText("%Y-%m-%d", every=86400)


def today() -> str:
    """utc_day() of now, its strftime done once a day: every download asks."""
    return _DAY.now()


@fast_init
@dataclass(frozen=True, slots=True)
class DayStats:
    """A server's downloads on a UTC day (`YYYY-MM-DD`), and the bytes of the files behind them."""

    day: str
    server: str  # its name
    downloads: int
    bytes: int


class DownloadStats:
    def __init__(self, db: Database, *, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self._counts: dict[tuple[str, int], list[int]] = {}  # (day, server id) -> [downloads, bytes]
        self._lock = asyncio.Lock()

    def add(self, server_id: int, size: int) -> None:
        """One download of `size` bytes handed out by the server of internal id `server_id`, now."""
        counts = self._counts.setdefault((today(), server_id), [0, 0])
        counts[0] += 1
        counts[1] += size

    async def flush(self) -> None:
        """Add the counters to the table now (they stay for the next try when the database refuses)."""
        async with self._lock:
            if not self._counts:
                return
            counts, self._counts = self._counts, {}
            try:
                async with self.db.transaction() as tx:
                    await tx.executemany(
                        UPSERT, [(day, n, size, server) for (day, server), (n, size) in counts.items()]
                    )
            except BaseException:
                for key, (n, size) in counts.items():  # back, with what came meanwhile
                    kept = self._counts.setdefault(key, [0, 0])
                    kept[0] += n
                    kept[1] += size
                raise

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    await self.flush()
                except DatabaseUnavailable:
                    pass  # the database logged it; the counts wait for the next try
                except Exception:
                    log.exception("writing the download statistics failed; will try again")
        finally:
            with contextlib.suppress(DatabaseUnavailable):
                await asyncio.shield(self.flush())

    async def days(self, days: int) -> list[DayStats]:
        """The last `days` UTC days (today included), newest day first, then by server name."""
        if self.db.unavailable is None:
            with contextlib.suppress(DatabaseUnavailable):
                await self.flush()
        since = utc_day(datetime.now(UTC) - timedelta(days=days - 1))
        rows = await self.db.fetchall(
            "SELECT d.day, s.name AS server, d.downloads, d.bytes FROM download_stats d "
            "JOIN servers s ON s.id = d.server_id WHERE d.day >= ? ORDER BY d.day DESC, s.name",
            (since,),
        )
        return [record(DayStats, r) for r in rows]
