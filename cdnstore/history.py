"""The history of what users did: one row per action, written in the transaction of the action, or,
for downloads (the hot path, which changes nothing else), batched by a HistoryWriter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from .db import Database, Row, Tx, now_iso

log = logging.getLogger(__name__)
INSERT = "INSERT INTO history (uuid, user_id, event, object_id, data, created_at) VALUES (?, ?, ?, ?, ?, ?)"

EVENTS = ("file.uploaded", "file.stored", "file.downloaded", "file.renamed", "file.deleted",
          "link.created", "link.deleted", "link.downloaded",
          "server.created", "server.updated", "server.deleted")


async def record(tx: Tx, user_id: int, event: str, object_id: str | None, data: dict[str, Any]) -> None:
    assert event in EVENTS, event
    await tx.execute(INSERT, _row(user_id, event, object_id, data))


def _row(user_id: int, event: str, object_id: str | None, data: dict[str, Any]) -> tuple[Any, ...]:
    return str(uuid.uuid4()), user_id, event, object_id, json.dumps(data), now_iso()


class HistoryWriter:
    """Collects rows (downloads: the hot path, which changes nothing else) and writes them at the start
    of the next transaction, whoever opens it, or in one of its own every `interval` seconds: one
    transaction for many downloads instead of one each, and rows still land in the order things happened.
    `run()` flushes what is left when it is cancelled, so a clean shutdown loses nothing."""

    def __init__(self, db: Database, *, interval: float = 0.2, batch: int = 2000) -> None:
        self.db = db
        self.interval = interval
        self.batch = batch
        self._rows: list[tuple[Any, ...]] = []
        self._writing: list[tuple[Any, ...]] = []
        self._full = asyncio.Event()
        db.on_begin(self._write, self._rolled_back)

    def add(self, user_id: int, event: str, object_id: str | None, data: dict[str, Any]) -> None:
        assert event in EVENTS, event
        self._rows.append(_row(user_id, event, object_id, data))
        if len(self._rows) >= self.batch:
            self._full.set()

    async def _write(self, tx: Tx) -> None:
        self._writing, self._rows = self._rows, []
        if self._writing:
            await tx.executemany(INSERT, self._writing)

    def _rolled_back(self) -> None:
        self._rows, self._writing = self._writing + self._rows, []

    async def flush(self) -> None:
        if self._rows:
            async with self.db.transaction():
                pass  # _write ran at its start

    async def run(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.interval)
                self._full.clear()
                try:
                    await self.flush()
                except Exception:
                    log.exception("writing %d history rows failed; will try again", len(self._rows))
        finally:
            await asyncio.shield(self.flush())


def render(row: Row) -> dict[str, Any]:
    return {"id": row["uuid"], "event": row["event"], "object_id": row["object_id"],
            "data": json.loads(row["data"]), "created_at": row["created_at"]}
