"""Routes: the webhook storage servers call when objects are created or removed."""

from __future__ import annotations

from aiohttp import web

from .. import appkeys, events
from ..errors import CdnError, Unauthorized
from .endpoint import Router, read_json
from .security import authenticate_events, presented_events_token

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


@endpoint(
    "POST",
    "/api/v1/events/s3/{server_name}",
    summary="Storage event webhook",
    tag="events",
    auth="events",
    responses={204: None},
    errors=(400, 401, 404, 422, 502),
)
async def storage_event(request: web.Request) -> web.Response:
    """S3 event records (MinIO, AWS, Ceph RGW, RustFS: `eventName` with or without `s3:`), an SNS envelope
    around them (a `SubscriptionConfirmation` is confirmed by fetching its SubscribeURL when that is an AWS
    SNS host, the server's own host or in `events.sns_origins`; a `Notification` is unwrapped), or the
    SeaweedFS filer webhook body. The token: `Authorization: Bearer <token>` (or Basic auth with the token as
    password), or, without that, the records' `opaqueData` (an RGW topic's OpaqueData); the server's own
    `events_token` if it was registered with one (then only that token is accepted here), else
    `events.token`. Objects cdnstore does not know are ignored; the same event twice, or events out of
    order, change nothing. The answer comes within `events.answer_within` seconds (RGW holds its client's
    write until then): what takes longer goes on after it."""
    return await _receive(request)


@endpoint(
    "POST",
    "/api/v1/events/s3/{server_name}/{token}",
    summary="Storage event webhook, the token in the path",
    tag="events",
    auth="events",
    responses={204: None},
    errors=(400, 401, 404, 422, 502),
)
async def storage_event_token_in_path(request: web.Request) -> web.Response:
    """The storage webhook for servers that cannot send an `Authorization` header (Ceph RGW's HTTP push, an
    SNS subscription): the events token is the last path segment (percent-encoded where it holds `/`), and
    the request log shows the route's template, never the token. Bodies and answers as the webhook above."""
    return await _receive(request)


async def _receive(request: web.Request) -> web.Response:
    presented = presented_events_token(request)
    if presented is not None:  # (checked before the body is read: a wrong token learns nothing of it)
        authenticate_events(request, presented)
    try:
        delivery = events.parse(await read_json(request))
    except CdnError:
        if presented is None:  # nothing proved who sent it: say only that
            raise Unauthorized("send the events token") from None
        raise
    if presented is None:
        authenticate_events(request, delivery.token)
    server = request.app[appkeys.SERVERS].by_name(request.match_info["server_name"])
    await request.app[appkeys.EVENTS].receive(server, delivery)
    return web.Response(status=204)
