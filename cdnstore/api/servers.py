"""Routes: the storage server registry (the can_*_cdnserver permissions)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from .. import appkeys
from ..models import Server
from ..pagination import PageQuery, page
from .endpoint import Router, json_response
from .schemas import ServerCreate, ServerList, ServerOut, ServerPatch
from .security import caller_id

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_ref(server: Server) -> dict[str, str]:
    """A server reference (where a file, an upload, a download or a job is). Here, with the server's own
    answer: api/files.py and api/jobs.py both import it, and this module imports neither."""
    return {"name": server.name, "location": server.location, "zone": server.zone}


def render_server(server: Server, stats: dict[str, Any] | None) -> dict[str, Any]:
    stats = stats or {
        "files": 0,
        "bytes": 0,
        "pending_jobs": 0,
        "verified_at": None,
        "corrupt": 0,
        "unrecoverable": 0,
        "awaiting_verification": 0,
        "rejected_uploads": 0,
    }
    return {
        "id": server.id,
        "name": server.name,
        "endpoint_url": server.endpoint_url,
        "bucket": server.bucket,
        "region": server.region,
        "location": server.location,
        "zone": server.zone,
        "latitude": server.latitude,
        "longitude": server.longitude,
        "is_on": server.is_on,
        "is_active": server.is_active,
        "health": server.health.value,
        "has_events_token": server.events_token_hash is not None,
        **stats,
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    }


async def server_stats(app: web.Application) -> dict[str, dict[str, Any]]:
    """What each server holds, what the deep scrub found there and where its uploads' verification stands,
    by server id."""
    registry, integrity = app[appkeys.SERVERS], app[appkeys.INTEGRITY]
    stats, found = await registry.stats(), await app[appkeys.DEEP_SCRUB].findings()
    verifying = await integrity.findings()
    for server in registry.all():
        if server.id in stats:
            internal_id = registry.internal_id(server)
            stats[server.id] |= asdict(found.of(internal_id)) | integrity.of(verifying, internal_id)
    return stats


async def _answer(request: web.Request, server: Server, status: int = 200) -> web.Response:
    stats = await server_stats(request.app)
    return json_response(render_server(server, stats.get(server.id)), status=status)


@endpoint(
    "GET",
    "/api/v1/servers",
    summary="List storage servers",
    tag="servers",
    permission="can_view_cdnserver",
    query=PageQuery,
    responses={200: ServerList},
    errors=(401, 403, 422),
)
async def list_servers(request: web.Request, query: PageQuery) -> web.Response:
    registry = request.app[appkeys.SERVERS]
    after = query.after() or 0
    servers = [s for s in registry.all() if registry.internal_id(s) > after][: query.limit + 1]
    stats = await server_stats(request.app)
    return json_response(page(servers, query.limit, registry.internal_id, lambda s: render_server(s, stats.get(s.id))))


@endpoint(
    "POST",
    "/api/v1/servers",
    summary="Add a storage server",
    tag="servers",
    permission="can_add_cdnserver",
    body=ServerCreate,
    responses={201: ServerOut},
    errors=(400, 401, 403, 409, 422),
)
async def create_server(request: web.Request, body: ServerCreate) -> web.Response:
    """The endpoint and credentials are checked and the bucket is created if missing (422 with the
    reason when that fails). The secret key is stored and never shown again; so is the server's own
    `events_token` (then the only token its webhook path accepts), of which the answer says only
    `has_events_token`."""
    server = await request.app[appkeys.SERVERS].create(await caller_id(request), body.model_dump())
    return await _answer(request, server, 201)


@endpoint(
    "GET",
    "/api/v1/servers/{id}",
    summary="One storage server",
    tag="servers",
    permission="can_view_cdnserver",
    responses={200: ServerOut},
    errors=(401, 403, 404),
)
async def get_server(request: web.Request) -> web.Response:
    return await _answer(request, request.app[appkeys.SERVERS].get(request.match_info["id"]))


@endpoint(
    "PATCH",
    "/api/v1/servers/{id}",
    summary="Change a storage server",
    tag="servers",
    permission="can_update_cdnserver",
    body=ServerPatch,
    responses={200: ServerOut},
    errors=(400, 401, 403, 404, 409, 422),
)
async def update_server(request: web.Request, body: ServerPatch) -> web.Response:
    """Any subset of the fields. New connection settings are checked like on creation. When the server
    ends up on and active, and was not before or changed zone, the files of its zone are copied onto it."""
    server = await request.app[appkeys.SERVERS].update(
        await caller_id(request), request.match_info["id"], body.model_dump(exclude_unset=True)
    )
    return await _answer(request, server)


@endpoint(
    "DELETE",
    "/api/v1/servers/{id}",
    summary="Remove a storage server",
    tag="servers",
    permission="can_delete_cdnserver",
    responses={204: None},
    errors=(401, 403, 404, 409),
)
async def delete_server(request: web.Request) -> web.Response:
    """409 `server_holds_sole_copies` while some file has no other copy on a server that is on."""
    await request.app[appkeys.SERVERS].delete(await caller_id(request), request.match_info["id"])
    return web.Response(status=204)
