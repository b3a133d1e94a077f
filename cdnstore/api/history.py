"""Routes: the caller's own history."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

from .. import appkeys, history
from ..errors import DatabaseUnavailable
from ..history import HistoryEntry
from ..pagination import page
from .endpoint import Router, json_response
from .schemas import HistoryList, HistoryQuery
from .security import caller_id

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_entry(entry: HistoryEntry) -> dict[str, Any]:
    """A history row as a HistoryOut."""
    return {
        "id": entry.uuid,
        "event": entry.event,
        "object_id": entry.object_id,
        "data": json.loads(entry.data),
        "created_at": entry.created_at,
    }


@endpoint(
    "GET",
    "/api/v1/history",
    summary="Your history",
    tag="history",
    query=HistoryQuery,
    responses={200: HistoryList},
    errors=(401, 422),
)
async def list_history(request: web.Request, query: HistoryQuery) -> web.Response:
    """Newest first; `event` keeps one kind of event."""
    if request.app[appkeys.DB].unavailable is None:  # else (a full disk) the history so far, without them
        with contextlib.suppress(DatabaseUnavailable):
            await request.app[appkeys.HISTORY].flush()  # read your own downloads
    rows = await history.page(request.app[appkeys.DB], caller_id(request), query.event, query.limit, query.after())
    return json_response(page(rows, query.limit, lambda e: e.id, render_entry))
