"""The framing of a ZIP archive written as its entries' bytes stream through: stored entries (no
compression), each entry's CRC-32 computed as its bytes pass and written after them in a data descriptor,
ZIP64 fields wherever a size, an offset or the number of entries needs them. No I/O: the caller moves the
bytes (archives.py), this module only frames them.

Why not a library: stream-zip, the best kept of them, buffers a whole stored entry in memory to write its
CRC before the bytes (or needs the CRC up front, which no storage server gives); zipstream-ng streams but
from synchronous iterables, so every chunk read from S3 would cross into a thread and back. The sizes are
known before the first byte here (the versions' sizes), which also gives the archive's exact length up
front (`archive_size`): the answer carries a Content-Length, and a client can tell a cut-short archive.

The format, after PKWARE's APPNOTE 6.3.10 (sections 4.3.7 local header, 4.3.9 data descriptor, 4.3.12
central directory, 4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field):

    [local header][bytes][data descriptor] ... [central directory][zip64 end + locator, if needed][end]

General purpose flags: bit 3 (sizes and CRC in the data descriptor; zero in the local header) and bit 11
(names in UTF-8). An entry of ZIP64_LIMIT bytes or more carries a ZIP64 extra field in its local header
and 8-byte sizes in its descriptor; the central directory gives ZIP64 values for what does not fit in 32
bits (sizes, offsets), and the end records for the directory's offset, size and count.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

ZIP64_LIMIT = 0xFFFFFFFF  # a size or offset from here on needs its ZIP64 field
COUNT_LIMIT = 0xFFFF  # a number of entries from here on needs the ZIP64 end record
_FLAGS = 0x0008 | 0x0800  # data descriptor, UTF-8 names
_STORED = 0
_VERSION_20, _VERSION_45 = 20, 45  # needed to extract: plain / ZIP64
_MADE_BY = (3 << 8) | _VERSION_45  # Unix, so the external attributes below are permissions
_FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR_32 = struct.Struct("<IIII")
_DESCRIPTOR_64 = struct.Struct("<IIQQ")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")


def dos_time(when: datetime) -> tuple[int, int]:
    """(time, date) in MS-DOS form, two-second steps; before 1980 (DOS's epoch) it is 1980-01-01."""
    if when.year < 1980:
        return 0, (0 << 9) | (1 << 5) | 1
    return (when.hour << 11) | (when.minute << 5) | (when.second // 2), (
        ((when.year - 1980) << 9) | (when.month << 5) | when.day
    )


def entry_name(name: str) -> bytes:
    """A file's name as an entry's (UTF-8): never a path, so no unzipper writes outside its folder."""
    cleaned = name.replace("/", "_").replace("\\", "_").lstrip(".") or "file"
    return cleaned.encode("utf-8", errors="replace")


@dataclass
class _Entry:
    name: bytes
    size: int
    offset: int
    time: int
    date: int
    crc: int = 0
    written: int = 0


class ZipWriter:
    """The bytes that frame each entry, in order:

        begin(name, size, modified) -> the local header; then for each chunk of the entry, feed(chunk) (and
        send the chunk); end() -> the data descriptor; after the last entry, finish() -> the central
        directory and end records.

    `zip64_limit` is ZIP64_LIMIT but in tests, which lower it to take the ZIP64 paths with small archives."""

    def __init__(self, *, zip64_limit: int = ZIP64_LIMIT) -> None:
        self.limit = zip64_limit
        self.offset = 0  # bytes of the archive framed so far (headers and entries' bytes)
        self._entries: list[_Entry] = []
        self._open: _Entry | None = None

    def begin(self, name: str, size: int, modified: datetime) -> bytes:
        assert self._open is None, "end() the entry before the next"
        time, date = dos_time(modified)
        entry = self._open = _Entry(entry_name(name), size, self.offset, time, date)
        zip64 = size >= self.limit
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        header = _LOCAL.pack(
            0x04034B50,
            _VERSION_45 if zip64 else _VERSION_20,
            _FLAGS,
            _STORED,
            time,
            date,
            0,  # CRC-32, sizes: in the data descriptor (flag bit 3)
            ZIP64_LIMIT if zip64 else 0,
            ZIP64_LIMIT if zip64 else 0,
            len(entry.name),
            len(extra),
        )
        return self._framed(header + entry.name + extra)

    def feed(self, chunk: bytes) -> None:
        """One piece of the open entry's bytes, in order (zlib's crc32 lets go of the GIL on big pieces)."""
        entry = self._open
        assert entry is not None
        entry.crc = zlib.crc32(chunk, entry.crc)
        entry.written += len(chunk)
        self.offset += len(chunk)

    def skip(self, size: int) -> None:
        """Counts `size` bytes of the open entry without their CRC (archive_size's dry run)."""
        assert self._open is not None
        self._open.written += size
        self.offset += size

    def end(self) -> bytes:
        """The data descriptor of the open entry. ValueError when it was not given the size it was begun
        with (the archive would not match its central directory)."""
        entry = self._open
        assert entry is not None
        if entry.written != entry.size:
            raise ValueError(f"{entry.name!r}: {entry.written} bytes given, {entry.size} announced")
        self._open = None
        self._entries.append(entry)
        if entry.size >= self.limit:
            return self._framed(_DESCRIPTOR_64.pack(0x08074B50, entry.crc, entry.size, entry.size))
        return self._framed(_DESCRIPTOR_32.pack(0x08074B50, entry.crc, entry.size, entry.size))

    def finish(self) -> bytes:
        """The central directory and the end records: the last bytes of the archive."""
        assert self._open is None, "end() the last entry first"
        start = self.offset
        directory = b"".join(self._central(e) for e in self._entries)
        size, count = len(directory), len(self._entries)
        tail = b""
        if count >= COUNT_LIMIT or size >= self.limit or start >= self.limit:
            end64_at = start + size
            tail = _END64.pack(
                0x06064B50, _END64.size - 12, _MADE_BY, _VERSION_45, 0, 0, count, count, size, start
            ) + _LOCATOR64.pack(0x07064B50, 0, end64_at, 1)
        end = _END.pack(
            0x06054B50,
            0,
            0,
            min(count, COUNT_LIMIT),
            min(count, COUNT_LIMIT),
            ZIP64_LIMIT if size >= self.limit else size,
            ZIP64_LIMIT if start >= self.limit else start,
            0,
        )
        return self._framed(directory + tail + end)

    def _central(self, e: _Entry) -> bytes:
        big, far = e.size >= self.limit, e.offset >= self.limit
        fields = ([e.size, e.size] if big else []) + ([e.offset] if far else [])
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        header = _CENTRAL.pack(
            0x02014B50,
            _MADE_BY,
            _VERSION_45 if fields else _VERSION_20,
            _FLAGS,
            _STORED,
            e.time,
            e.date,
            e.crc,
            ZIP64_LIMIT if big else e.size,
            ZIP64_LIMIT if big else e.size,
            len(e.name),
            len(extra),
            0,  # comment
            0,  # disk
            0,  # internal attributes
            _FILE_MODE,
            ZIP64_LIMIT if far else e.offset,
        )
        return header + e.name + extra

    def _framed(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data


def archive_size(entries: Iterable[tuple[str, int]], *, zip64_limit: int = ZIP64_LIMIT) -> int:
    """The exact length of the archive of these (name, size) entries: the framing run dry (the CRCs change
    no length)."""
    dry = ZipWriter(zip64_limit=zip64_limit)
    epoch = datetime(1980, 1, 1)
    for name, size in entries:
        dry.begin(name, size, epoch)
        dry.skip(size)
        dry.end()
    dry.finish()
    return dry.offset
