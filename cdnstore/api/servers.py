"""Routes: the storage server registry (the can_*_cdnserver permissions)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from aiohttp import web

from .. import appkeys, probe
from ..imports import Import, ReportedKey
from ..models import Server
from ..pagination import PageQuery, page
from ..servers import ServerChanges
from .endpoint import Router, json_response
from .schemas import (
    ImportCreate,
    ImportOut,
    ImportStartedOut,
    ServerCreate,
    ServerList,
    ServerOut,
    ServerPatch,
    changes_of,
)
from .security import caller_id

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_ref(server: Server) -> dict[str, str]:
    """A server reference (where a file, an upload, a download or a job is). Here, with the server's own
    answer: api/files.py and api/jobs.py both import it, and this module imports neither."""
    return {"name": server.name, "location": server.location, "zone": server.zone}


def render_capabilities(server: Server, now: str) -> dict[str, Any] | None:
    """What the probes found (None: never probed); `now` (the app's clock) judges whether events arrive."""
    found = server.capabilities
    if found is None:
        return None
    return {
        "checked_at": found.checked_at,
        "checksum_enforced": found.checksum_enforced,
        "content_md5_enforced": found.content_md5_enforced,
        "conditional_write": found.conditional_write,
        "cors": found.cors,
        "cors_rule": json.loads(found.cors_rule) if found.cors_rule else None,
        "versioning": found.versioning,
        "bucket_region": found.bucket_region,
        "signing_region": found.signing_region,
        "events": probe.events_state(server, now),
    }


def render_import(found: Import, reported: Sequence[ReportedKey] | None = None) -> dict[str, Any]:
    """An import's progress; with `reported`, the keys it did not adopt (GET .../import)."""
    answer: dict[str, Any] = {
        "import_id": found.uuid,
        "state": found.state,
        "owner": found.owner,
        "prefix": found.prefix,
        "strip_prefix": found.strip_prefix,
        "objects_seen": found.objects_seen,
        "files_adopted": found.files_adopted,
        "bytes": found.bytes,
        "errors": found.errors,
        "last_error": found.last_error,
        "started_at": found.created_at,
        "updated_at": found.updated_at,
        "finished_at": found.finished_at,
    }
    if reported is not None:
        answer["error_keys"] = [{"key": r.key, "reason": r.reason} for r in reported]
    return answer


def render_server(server: Server, stats: dict[str, Any] | None, now: str) -> dict[str, Any]:
    stats = {
        "import_progress": None,
        **(
            stats
            or {
                "files": 0,
                "bytes": 0,
                "pending_jobs": 0,
                "verified_at": None,
                "corrupt": 0,
                "unrecoverable": 0,
                "awaiting_verification": 0,
                "rejected_uploads": 0,
            }
        ),
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
        "public_url": server.public_url,
        "addressing_style": server.addressing_style,
        "health": server.health.value,
        "has_events_token": server.events_token_hash is not None,
        "capabilities": render_capabilities(server, now),
        **stats,
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    }


async def server_stats(app: web.Application) -> dict[str, dict[str, Any]]:
    """What each server holds, what the deep scrub found there, where its uploads' verification stands and its
    latest import, by server id."""
    registry, integrity = app[appkeys.SERVERS], app[appkeys.INTEGRITY]
    stats: dict[str, dict[str, Any]] = {
        uuid: {"files": held.files, "bytes": held.bytes, "pending_jobs": held.pending_jobs}
        for uuid, held in (await registry.stats()).items()
    }
    found = await app[appkeys.DEEP_SCRUB].findings()
    verifying = await integrity.findings()
    imports = await app[appkeys.IMPORTS].latest_of_all()
    for server in registry.all():
        if server.id in stats:
            internal = server.pk
            stats[server.id] |= asdict(found.of(internal)) | integrity.of(verifying, internal)
            latest = imports.get(internal)
            stats[server.id]["import_progress"] = None if latest is None else render_import(latest)
    return stats


async def _answer(request: web.Request, server: Server, status: int = 200) -> web.Response:
    stats, now = await server_stats(request.app), request.app[appkeys.CLOCK].now_iso()
    return json_response(render_server(server, stats.get(server.id), now), status=status)


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
    servers = [s for s in registry.all() if s.pk > after][: query.limit + 1]
    stats, now = await server_stats(request.app), request.app[appkeys.CLOCK].now_iso()
    return json_response(page(servers, query.limit, lambda s: s.pk, lambda s: render_server(s, stats.get(s.id), now)))


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
    server = await request.app[appkeys.SERVERS].create(caller_id(request), body.model_dump())
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
        caller_id(request), request.match_info["id"], changes_of(body, ServerChanges)
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
    await request.app[appkeys.SERVERS].delete(caller_id(request), request.match_info["id"])
    return web.Response(status=204)


@endpoint(
    "POST",
    "/api/v1/servers/{id}/probe",
    summary="Prove a storage server's capabilities now",
    tag="servers",
    permission="can_update_cdnserver",
    responses={200: ServerOut},
    errors=(401, 403, 404),
)
async def probe_server(request: web.Request) -> web.Response:
    """Tries checksum enforcement, Content-MD5 per part, conditional writes, CORS for the page's origin (adding
    a bucket rule when missing and allowed), versioning and the region, on the server's bucket (leaving
    nothing behind), and answers the server with `capabilities` measured now. Registration, and every change
    of the server's addresses or keys, probe too, and the daemon once every `storage.probe_interval`."""
    server = await request.app[appkeys.SERVERS].probe(request.match_info["id"])
    return await _answer(request, server)


@endpoint(
    "POST",
    "/api/v1/servers/{id}/import",
    summary="Import the objects already in a server's bucket",
    tag="servers",
    admin=True,
    body=ImportCreate,
    responses={202: ImportStartedOut},
    errors=(400, 401, 403, 404, 409, 422),
)
async def start_import(request: web.Request, body: ImportCreate) -> web.Response:
    """The objects of the server's bucket under `prefix` that cdnstore does not know become files of the user
    named `owner`, named by their key (without the prefix with `strip_prefix`; a key that is not a valid file
    name is reported, not renamed), and are copied to the zone like any upload; their SHA-256 is computed by
    cdnstore's first read. Runs in the background, resumed after a restart; a second import adopts only what
    is new. 409 `import_running` while one runs; 422 for an unknown `owner` or one whose zones exclude the
    server's."""
    started = await request.app[appkeys.IMPORTS].start(
        request.match_info["id"], body.owner, body.prefix, body.strip_prefix
    )
    return json_response({"import_id": started.uuid}, status=202)


@endpoint(
    "GET",
    "/api/v1/servers/{id}/import",
    summary="The progress of a server's latest import",
    tag="servers",
    permission="can_view_cdnserver",
    responses={200: ImportOut},
    errors=(401, 403, 404),
)
async def import_progress(request: web.Request) -> web.Response:
    """The latest import of the server (running or finished): how many objects it listed, the files it
    adopted and their bytes, and the keys it did not adopt (the first 100, with why). 404 `no_import`."""
    imports = request.app[appkeys.IMPORTS]
    latest = await imports.latest(request.match_info["id"])
    return json_response(render_import(latest, await imports.reported(latest.uuid)))
