"""Routes: the webhook storage servers call when objects are created or removed."""

from __future__ import annotations

from aiohttp import web

from .. import appkeys, events
from .endpoint import Router, read_json

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


@endpoint(
    "POST",
    "/api/v1/events/s3/{server_name}",
    summary="Storage event webhook",
    tag="events",
    auth="events",
    responses={204: None},
    errors=(400, 401, 404, 422),
)
async def storage_event(request: web.Request) -> web.Response:
    """MinIO's bucket notification body or the SeaweedFS filer webhook body, with
    `Authorization: Bearer <events.token>`, or the server's own `events_token` if it was registered with
    one (then only that token is accepted here). Objects cdnstore does not know are ignored; the same event
    twice, or events out of order, change nothing."""
    registry = request.app[appkeys.SERVERS]
    server = registry.by_name(request.match_info["server_name"])
    files = request.app[appkeys.FILES]
    found = [event for event in events.parse(await read_json(request)) if event.bucket == server.bucket]
    if found:  # its events reach cdnstore (the server's capabilities say so: probe.events_state)
        await registry.event_seen(server)
    for event in found:
        if event.created:
            await files.event_created(server, event.key, event.size, event.etag)
    return web.Response(status=204)
