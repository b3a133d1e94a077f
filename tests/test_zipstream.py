"""The ZIP framing of streamed archives (zipstream.py): what it writes unpacks with Python's zipfile to the
same names, times and bytes, with the ZIP64 fields wherever sizes, offsets or the count need them."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from datetime import datetime

import pytest

from cdnstore.zipstream import COUNT_LIMIT, ZipWriter, archive_size, dos_time, entry_name

WHEN = datetime(2026, 11, 28, 11, 43, 24)


def archive(files: list[tuple[str, bytes]], *, zip64_limit: int | None = None, piece: int = 7000) -> bytes:
    """The archive of `files`, each fed in pieces of `piece` bytes as a stream would give them."""
    zip_ = ZipWriter() if zip64_limit is None else ZipWriter(zip64_limit=zip64_limit)
    out = io.BytesIO()
    for name, data in files:
        out.write(zip_.begin(name, len(data), WHEN))
        for at in range(0, len(data), piece):
            zip_.feed(data[at : at + piece])
            out.write(data[at : at + piece])
        out.write(zip_.end())
    out.write(zip_.finish())
    return out.getvalue()


FILES = [
    ("report.pdf", random.Random(1).randbytes(100_000)),
    ("empty.txt", b""),
    ("Grüße, 写真.jpg", random.Random(2).randbytes(3000)),
    ("notes.txt", b"notes\n" * 1000),
]


@pytest.mark.parametrize("zip64_limit", [None, 5000, 1], ids=["plain", "zip64-for-big-entries", "zip64-everywhere"])
def test_an_archive_unpacks_with_zipfile_to_the_same_names_times_and_bytes(zip64_limit: int | None) -> None:
    """A lowered zip64_limit takes the ZIP64 paths (sizes, offsets, end records) with small archives."""
    made = archive(FILES, zip64_limit=zip64_limit)
    assert len(made) == archive_size(((n, len(d)) for n, d in FILES), zip64_limit=zip64_limit or 0xFFFFFFFF)
    with zipfile.ZipFile(io.BytesIO(made)) as unzipped:
        assert unzipped.testzip() is None  # every CRC-32 matches
        infos = unzipped.infolist()
        assert [i.filename for i in infos] == [n for n, _ in FILES]
        for info, (_, data) in zip(infos, FILES, strict=True):
            assert unzipped.read(info) == data
            assert info.compress_type == zipfile.ZIP_STORED and info.file_size == info.compress_size == len(data)
            assert info.flag_bits & 0x0808 == 0x0808  # sizes in a data descriptor; UTF-8 names
            assert info.date_time == (2026, 11, 28, 11, 43, 24)
            assert info.external_attr >> 16 == 0o100644
    has_end64 = b"PK\x06\x06" in made and b"PK\x06\x07" in made
    assert has_end64 == (zip64_limit is not None)


def test_a_big_entry_carries_zip64_sizes_in_its_local_header_and_descriptor() -> None:
    data = bytes(6000)
    made = archive([("big.bin", data)], zip64_limit=5000)
    local = struct.unpack("<IHHHHHIIIHH", made[:30])
    assert local[0] == 0x04034B50 and local[1] == 45 and local[7:9] == (0xFFFFFFFF, 0xFFFFFFFF)
    extra = made[30 + len(b"big.bin") : 30 + len(b"big.bin") + local[10]]
    assert struct.unpack("<HHQQ", extra) == (1, 16, 0, 0)
    descriptor = made[30 + len(b"big.bin") + 20 + 6000 :][:24]
    signature, crc, compressed, size = struct.unpack("<IIQQ", descriptor)
    assert signature == 0x08074B50 and crc == zlib.crc32(data) and compressed == size == 6000


def test_more_entries_than_the_old_format_counts_need_the_zip64_end_record() -> None:
    files = [(f"{n}.txt", b"") for n in range(COUNT_LIMIT + 1)]
    made = archive(files)
    assert b"PK\x06\x06" in made
    with zipfile.ZipFile(io.BytesIO(made)) as unzipped:
        assert len(unzipped.infolist()) == COUNT_LIMIT + 1


def test_an_entry_not_given_the_size_it_announced_is_refused() -> None:
    zip_ = ZipWriter()
    zip_.begin("short.bin", 10, WHEN)
    zip_.feed(b"12345")
    with pytest.raises(ValueError, match="5 bytes given, 10 announced"):
        zip_.end()


def test_names_never_become_paths_and_old_times_become_1980() -> None:
    assert entry_name("../../etc/passwd") == b"_.._etc_passwd"
    assert entry_name("a\\b") == b"a_b" and entry_name(".hidden") == b"hidden" and entry_name("...") == b"file"
    assert dos_time(datetime(1970, 1, 1)) == (0, (1 << 5) | 1)
    with zipfile.ZipFile(io.BytesIO(archive([("../evil.sh", b"x")]))) as unzipped:
        assert unzipped.namelist() == ["_evil.sh"]
