"""Cursor pagination: `?limit=` 1..1000 (default 50), `?cursor=` the previous answer's next_cursor.

A cursor is the opaque encoding of the last internal row id seen; lists run newest (highest id) first
or oldest first, and the cursor continues after that id.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import Invalid

T = TypeVar("T")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = None

    def after(self) -> int | None:
        return None if not self.cursor else decode_cursor(self.cursor)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"c1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "c1":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor", "not a cursor this service gave out") from None


def page(rows: Sequence[T], limit: int, row_id: Callable[[T], int], render: Callable[[T], Any]) -> dict[str, Any]:
    """`rows` were fetched with LIMIT limit + 1: the extra row says whether there is a next page."""
    items = rows[:limit]
    more = len(rows) > limit
    return {
        "items": [render(r) for r in items],
        "next_cursor": encode_cursor(row_id(items[-1])) if more and items else None,
    }
