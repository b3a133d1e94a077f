"""Routes: download statistics (admins)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..stats import DayStats
from .endpoint import Router, json_response
from .schemas import DownloadStatsList, StatsQuery

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_day(day: DayStats) -> dict[str, Any]:
    """A server's day as a DownloadStatsOut."""
    return {"day": day.day, "server": day.server, "downloads": day.downloads, "bytes": day.bytes}


@endpoint(
    "GET",
    "/api/v1/stats/downloads",
    summary="Downloads per server and day",
    tag="stats",
    admin=True,
    query=StatsQuery,
    responses={200: DownloadStatsList},
    errors=(401, 403, 422),
)
async def download_stats(request: web.Request, query: StatsQuery) -> web.Response:
    """Per storage server and UTC day (`YYYY-MM-DD`) of the last `days` days (today included): the downloads
    handed out (owners' and share links') and the bytes of the files behind them; newest day first, then by
    server name. Days without downloads are left out; a deleted server's statistics go with it."""
    rows = await request.app[appkeys.STATS].days(query.days)
    return json_response({"items": [render_day(d) for d in rows]})
