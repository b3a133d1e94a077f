"""A share link's files as one ZIP archive, streamed by the daemon: the one place where a file's bytes pass
through cdnstore (everywhere else clients get presigned URLs).

- Each file is read from the nearest of its holders that is on and up. A holder that fails mid-file is
  left for the next one, read from the offset reached (a ranged GET): the archive goes on where it was.
  When every holder failed, the stream stops (the client sees fewer bytes than its Content-Length).
- Memory stays bounded whatever the archive's size: one chunk (at most 1 MiB, `Storage.read`) is in
  flight per archive, and the HTTP layer's write waits for the client's socket to drain, so a slow client
  slows the reads rather than filling memory. No temporary file is written.
- At most `links.max_archives` archives stream at once on a daemon; one more is 503 `archive_busy` with
  Retry-After, before its download is counted (`Archives.reserve`).
- The framing (stored entries, CRC-32 as the bytes pass, ZIP64 when needed) is zipstream.py's; the sizes
  are known up front, so is the archive's exact length (`Archive.size`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from .errors import Busy, StorageError
from .files import Files
from .metrics import Metrics
from .models import Server
from .storage_port import StoragePort
from .zipstream import ZipWriter, archive_size

log = logging.getLogger(__name__)

RETRY_AFTER = 10  # seconds a refused archive is told to wait (one of the running ones may have ended)


@dataclass(frozen=True)
class ArchiveEntry:
    """One file of an archive: its name in it, its stored content, and who holds it (nearest first)."""

    name: str
    size: int
    modified: datetime
    key: str
    holders: list[Server]


class ArchiveCut(Exception):
    """An archive stopped before its end: no holder of one of its files could give the rest."""


@dataclass
class Archive:
    """An archive granted to a client: `chunks()` are its bytes, `size` their number; `release()` (done by
    `chunks()` at its end, and idempotent) gives its place back."""

    name: str
    entries: list[ArchiveEntry]
    archives: Archives
    size: int = field(init=False)
    _released: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.size = archive_size((e.name, e.size) for e in self.entries)

    def chunks(self) -> AsyncGenerator[bytes, None]:
        return self.archives.stream(self)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.archives.released()


class Archives:
    def __init__(self, storage: StoragePort, files: Files, metrics: Metrics, max_archives: int) -> None:
        self.storage = storage
        self.files = files
        self.metrics = metrics
        self.max = max_archives
        self.streaming = 0

    def reserve(self, name: str, entries: list[ArchiveEntry]) -> Archive:
        """A place for one more archive, or 503 `archive_busy` (Retry-After) when all are taken."""
        if self.streaming >= self.max:
            self.metrics.archive_refused()
            raise Busy(
                f"this server already streams {self.max} archives (links.max_archives); try again shortly",
                retry_after=RETRY_AFTER,
                code="archive_busy",
            )
        self.streaming += 1
        self.metrics.archives_streaming.set(self.streaming)
        return Archive(name, entries, self)

    def released(self) -> None:
        self.streaming -= 1
        self.metrics.archives_streaming.set(self.streaming)

    async def stream(self, archive: Archive) -> AsyncGenerator[bytes, None]:
        """The archive's bytes: each entry's local header, its bytes as they come from its holders, its
        data descriptor; the central directory last. Raises ArchiveCut when an entry cannot be finished."""
        zip_ = ZipWriter()
        outcome = "failed"
        try:
            for entry in archive.entries:
                yield zip_.begin(entry.name, entry.size, entry.modified)
                async for chunk in self._entry(entry):
                    zip_.feed(chunk)
                    self.metrics.archive_bytes.inc(len(chunk))
                    yield chunk
                yield zip_.end()
            yield zip_.finish()
            outcome = "completed"
        finally:
            self.metrics.archive_ended(outcome)
            archive.release()

    async def _entry(self, entry: ArchiveEntry) -> AsyncIterator[bytes]:
        """The entry's bytes, from its nearest holder that gives them; from the next one at the offset
        reached when a holder fails."""
        sent = 0
        for server in entry.holders:
            if sent == entry.size:
                break
            try:
                async with contextlib.aclosing(self.storage.read(server.s3, entry.key, start=sent)) as chunks:
                    async for chunk in chunks:
                        chunk = chunk[: entry.size - sent]  # (never more than the version's size)
                        sent += len(chunk)
                        yield chunk
                        if sent == entry.size:
                            break
            except StorageError as exc:
                log.warning(
                    "archive: %s failed at byte %d of %s (%s); reading on from the next holder",
                    server.name,
                    sent,
                    entry.name,
                    exc.detail,
                )
                continue
            if sent == entry.size:
                self.files.record_read(server, entry.size)
                return
            log.warning("archive: %s gave %d of the %d bytes of %s", server.name, sent, entry.size, entry.name)
        if sent != entry.size:
            raise ArchiveCut(f"no holder of {entry.name!r} gave its bytes past {sent} of {entry.size}")
