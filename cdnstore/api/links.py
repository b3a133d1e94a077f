"""Routes: share links, the owner's side (create, list, revoke) and the public side (look, download).

The public page for a link (`GET /s/{token}`) is the bundled page's, not registered here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..db import Row
from ..pagination import PageQuery, page
from .endpoint import Router, json_response
from .files import client_location, download_answer
from .schemas import DownloadOut, DownloadQuery, LinkCreate, LinkDownloadIn, LinkList, LinkOut, PublicLinkOut
from .security import caller_id, origin_ip

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_link(row: Row, public_url: str) -> dict[str, Any]:
    """A link row (links.LINK_COLUMNS) as a LinkOut; `url` is its public page under `http.public_url`."""
    return {
        "id": row["uuid"],
        "file_id": row["file_uuid"],
        "token": row["token"],
        "url": f"{public_url}/s/{row['token']}",
        "has_password": row["password_hash"] is not None,
        "expires_at": row["expires_at"],
        "max_downloads": row["max_downloads"],
        "downloads": row["downloads"],
        "created_at": row["created_at"],
    }


def render_public(row: Row) -> dict[str, Any]:
    """A live link (Links.public) as a PublicLinkOut: what anyone holding the token may see."""
    return {
        "name": row["name"],
        "size": row["size"],
        "has_password": row["password_hash"] is not None,
        "expires_at": row["expires_at"],
    }


def public_url(request: web.Request) -> str:
    return request.app[appkeys.CONFIG].http.public_url


@endpoint(
    "POST",
    "/api/v1/files/{id}/links",
    summary="Share a file",
    tag="links",
    permission="can_add_filesharelink",
    body=LinkCreate,
    responses={201: LinkOut},
    errors=(400, 401, 403, 404, 422, 429),
)
async def create_link(request: web.Request, body: LinkCreate) -> web.Response:
    """A new link to the file: `url` is the public page, `token` the capability in it. `password` is kept
    only as a hash. `expires_in` (seconds) absent takes `links.default_expires_in`; null asks for no expiry;
    above `links.max_expires_in` it is 422. `max_downloads` absent or null: unlimited. 429 `too_many_links`
    (with Retry-After) past `links.max_per_minute` links a minute; 429 `too_many_attempts` when too many
    password hashes wait already (a password costs one)."""
    links = request.app[appkeys.LINKS]
    expires_in = links.expires_in(body.expires_in, "expires_in" in body.model_fields_set)
    row = await links.create(
        await caller_id(request),
        request.match_info["id"],
        password=body.password,
        expires_in=expires_in,
        max_downloads=body.max_downloads,
    )
    return json_response(render_link(row, public_url(request)), status=201)


@endpoint(
    "GET",
    "/api/v1/files/{id}/links",
    summary="A file's links",
    tag="links",
    permission="can_view_filesharelink",
    query=PageQuery,
    responses={200: LinkList},
    errors=(401, 403, 404, 422),
)
async def list_links(request: web.Request, query: PageQuery) -> web.Response:
    """Newest first, expired and used-up ones included; revoked ones are gone."""
    links = request.app[appkeys.LINKS]
    rows = await links.page(await caller_id(request), request.match_info["id"], query.limit, query.after())
    url = public_url(request)
    return json_response(page(rows, query.limit, lambda r: r["id"], lambda r: render_link(r, url)))


@endpoint(
    "DELETE",
    "/api/v1/files/{id}/links/{link_id}",
    summary="Revoke a link",
    tag="links",
    permission="can_delete_filesharelink",
    responses={204: None},
    errors=(401, 403, 404),
)
async def delete_link(request: web.Request) -> web.Response:
    """The link stops working at once: its token answers 404 `link_not_found`, as if it never existed."""
    await request.app[appkeys.LINKS].revoke(
        await caller_id(request), request.match_info["id"], request.match_info["link_id"]
    )
    return web.Response(status=204)


@endpoint(
    "GET",
    "/api/v1/public/links/{token}",
    summary="What a link shares",
    tag="links",
    auth="none",
    responses={200: PublicLinkOut},
    errors=(404, 410),
)
async def public_link(request: web.Request) -> web.Response:
    """For anyone holding the token. 404 `link_not_found` for an unknown or revoked token; 410
    `link_expired` when it expired, its downloads are used up, or its file was deleted."""
    links = request.app[appkeys.LINKS]
    return json_response(render_public(await links.public(request.match_info["token"])))


@endpoint(
    "POST",
    "/api/v1/public/links/{token}/download",
    summary="Download through a link",
    tag="links",
    auth="none",
    body=LinkDownloadIn,
    query=DownloadQuery,
    responses={200: DownloadOut, 302: None},
    errors=(400, 401, 404, 409, 410, 422, 429, 503),
)
async def download_link(request: web.Request, body: LinkDownloadIn, query: DownloadQuery) -> web.StreamResponse:
    """A presigned GET on the nearest server that is on, up and holds the file, as for the owner's
    download; `?redirect=true` answers 302 to it. Each success counts one download. 401
    `password_required` / `invalid_password`; 429 `too_many_attempts` (with Retry-After) after repeated
    wrong passwords for the link or from the client's address, until the window ends."""
    got = await request.app[appkeys.LINKS].download(
        request.match_info["token"], body.password, origin_ip(request), client_location(request)
    )
    return download_answer(got, query.redirect)
