"""How a large file is cut into the parts of a multipart upload (pure functions, no I/O).

S3 allows at most 10,000 parts, each at least 5 MiB but the last. The part size grows with the file so
that the largest file (5 TiB) still fits; a smaller file gets smaller parts (quicker to resend, more of
them in flight), never under the 5 MiB minimum.
"""

from __future__ import annotations

MIN_PART = 5 << 20
MAX_PARTS = 10_000
_MIB = 1 << 20


def part_size_for(size: int) -> int:
    """The part size for a file of `size` bytes: the smallest whole MiB that fits it in MAX_PARTS parts."""
    needed = -(-size // MAX_PARTS)
    return max(MIN_PART, -(-needed // _MIB) * _MIB)


def part_count(size: int, part_size: int) -> int:
    return max(1, -(-size // part_size))


def part_sizes(size: int, part_size: int) -> dict[int, int]:
    """Number -> expected size of each part (all `part_size` but the last)."""
    count = part_count(size, part_size)
    sizes = dict.fromkeys(range(1, count), part_size)
    sizes[count] = size - (count - 1) * part_size
    return sizes


def missing_parts(size: int, part_size: int, held: dict[int, int]) -> list[int]:
    """The part numbers still to send: absent from `held` (number -> size) or of the wrong size."""
    return [n for n, want in part_sizes(size, part_size).items() if held.get(n) != want]
