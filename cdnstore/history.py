"""The history of what users did: one row per action, written in the transaction of the action."""

from __future__ import annotations

import json
import uuid
from typing import Any

from .db import Row, Tx, now_iso

EVENTS = ("file.uploaded", "file.stored", "file.downloaded", "file.renamed", "file.deleted",
          "link.created", "link.deleted", "link.downloaded",
          "server.created", "server.updated", "server.deleted")


async def record(tx: Tx, user_id: int, event: str, object_id: str | None, data: dict[str, Any]) -> None:
    assert event in EVENTS, event
    await tx.execute("INSERT INTO history (uuid, user_id, event, object_id, data, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (str(uuid.uuid4()), user_id, event, object_id, json.dumps(data), now_iso()))


def render(row: Row) -> dict[str, Any]:
    return {"id": row["uuid"], "event": row["event"], "object_id": row["object_id"],
            "data": json.loads(row["data"]), "created_at": row["created_at"]}
