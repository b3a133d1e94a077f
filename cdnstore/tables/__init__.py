"""The table gateways of the content tables: the one writer of `files`, `versions` and `replicas`.

Use cases (files.py, integrity.py, replicator.py, ...) decide; these modules write. Each state change is one
function taking the caller's transaction and plain arguments: its `WHERE` names the state it leaves, its new
state comes from the models.py enum (spelt into the statement once, at import), and it returns what it
changed (a count, the ids, or records) so that a caller can tell a lost race from a change. Nothing here
decides, awaits storage or opens a transaction. `tests/test_layers.py` holds that no other module writes
these tables nor spells their statuses in SQL.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

R = TypeVar("R")

# A record class's field names, read once per class: fields() per row would cost more than the row's reads
# (the download and upload links build a record per request).
_NAMES: dict[type, tuple[str, ...]] = {}


def record(cls: type[R], row: Any, **given: Any) -> R:
    """A row as the frozen record `cls` (a dataclass), each field read by its column's name, never by position;
    the fields in `given` are taken from there instead (a column converted: an enum, a flag as a bool; or what
    is no column of the row)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    # The values read by name, handed over in the fields' own order: a third cheaper than keyword arguments.
    if not given:
        return cls(*map(row.__getitem__, names))
    return cls(*(given[name] if name in given else row[name] for name in names))
