"""Routes: the caller's outgoing webhooks (register, list, delete), each one's delivery log, a test event."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..models import DeliveryStatus
from ..pagination import PageQuery, page
from ..times import iso
from ..webhook_queue import LoggedDelivery
from ..webhooks import Webhook
from .endpoint import Router, json_response
from .schemas import DeliveryList, DeliveryOut, WebhookCreate, WebhookCreatedOut, WebhookList
from .security import caller_id

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_webhook(webhook: Webhook) -> dict[str, Any]:
    return {"id": webhook.uuid, "url": webhook.url, "events": list(webhook.events), "created_at": webhook.created_at}


def render_created(webhook: Webhook, secret: str) -> dict[str, Any]:
    """A new webhook with its secret: the one answer that shows it."""
    return {**render_webhook(webhook), "secret": secret}


def render_delivery(d: LoggedDelivery) -> dict[str, Any]:
    """A delivery of a webhook's log. A pending one due at once has run_after 0."""
    pending = d.status == DeliveryStatus.PENDING
    return {
        "id": d.uuid,
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
        "created_at": d.occurred_at,
        "next_attempt_at": (iso(d.run_after) if d.run_after else d.occurred_at) if pending else None,
    }


@endpoint(
    "POST",
    "/api/v1/webhooks",
    scope="share",  # (an API key that sets webhooks up can send the user's events out: the share scope)
    summary="Register a webhook",
    tag="webhooks",
    body=WebhookCreate,
    responses={201: WebhookCreatedOut},
    errors=(400, 401, 403, 409, 422),
)
async def create_webhook(request: web.Request, body: WebhookCreate) -> web.Response:
    """The events are POSTed to `url` as Standard Webhooks (signed with `secret`, shown only here), at least
    once, retried with backoff for `webhooks.retry_for` seconds (a day). 403 for the fleet's events unless
    an administrator; 422 `endpoint_not_allowed` for link-local and metadata addresses, and loopback and
    private ones unless `webhooks.allow_private`; 409 `too_many_webhooks` past 20."""
    webhook, secret = await request.app[appkeys.WEBHOOKS].create(
        caller_id(request), request[appkeys.USER].is_admin, body.url, list(body.events)
    )
    return json_response(render_created(webhook, secret), status=201)


@endpoint(
    "GET",
    "/api/v1/webhooks",
    summary="Your webhooks",
    tag="webhooks",
    query=PageQuery,
    responses={200: WebhookList},
    errors=(401, 422),
)
async def list_webhooks(request: web.Request, query: PageQuery) -> web.Response:
    """Newest first, without their secrets."""
    rows = await request.app[appkeys.WEBHOOKS].page(caller_id(request), query.limit, query.after())
    return json_response(page(rows, query.limit, lambda w: w.id, render_webhook))


@endpoint(
    "DELETE",
    "/api/v1/webhooks/{id}",
    scope="share",  # (an API key that sets webhooks up can send the user's events out: the share scope)
    summary="Delete a webhook",
    tag="webhooks",
    responses={204: None},
    errors=(401, 404),
)
async def delete_webhook(request: web.Request) -> web.Response:
    """It gets nothing more (a delivery being sent at this moment may still arrive); its log goes with it."""
    await request.app[appkeys.WEBHOOKS].delete(caller_id(request), request.match_info["id"])
    return web.Response(status=204)


@endpoint(
    "GET",
    "/api/v1/webhooks/{id}/deliveries",
    summary="A webhook's delivery log",
    tag="webhooks",
    query=PageQuery,
    responses={200: DeliveryList},
    errors=(401, 404, 422),
)
async def list_deliveries(request: web.Request, query: PageQuery) -> web.Response:
    """Newest first: pending (sent or about to be, `next_attempt_at`), delivered (`delivered_at`), or failed
    after a day of attempts; `last_error` is the last failed attempt's. Kept `webhooks.log_days` days."""
    webhooks = request.app[appkeys.WEBHOOKS]
    log = await webhooks.deliveries(caller_id(request), request.match_info["id"], query.limit, query.after())
    return json_response(page(log, query.limit, lambda d: d.id, render_delivery))


@endpoint(
    "POST",
    "/api/v1/webhooks/{id}/test",
    scope="share",  # (an API key that sets webhooks up can send the user's events out: the share scope)
    summary="Send a test event",
    tag="webhooks",
    responses={202: DeliveryOut},
    errors=(401, 404),
)
async def send_test(request: web.Request) -> web.Response:
    """A `webhook.test` event, queued for this webhook like any other: its delivery, to follow in the log."""
    sent = await request.app[appkeys.WEBHOOKS].send_test(caller_id(request), request.match_info["id"])
    return json_response(render_delivery(sent), status=202)
