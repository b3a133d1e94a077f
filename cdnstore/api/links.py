"""Routes: share links, the owner's side (create for one file or several, list, edit, revoke) and the public
side (look, download one file, the ZIP archive of them all).

The public page for a link (`GET /s/{token}`) is the bundled page's, not registered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from .. import appkeys
from ..archives import Archive, ArchiveCut
from ..links import Link, LinkChanges
from ..pagination import PageQuery, page
from ..storage import content_disposition
from .endpoint import Router, json_response
from .files import client_location, download_answer
from .schemas import (
    DownloadOut,
    DownloadQuery,
    LinkArchiveIn,
    LinkCreate,
    LinkDownloadIn,
    LinkList,
    LinkOut,
    LinkPatch,
    LinksCreate,
    LinksQuery,
    PublicLinkOut,
    changes_of,
)
from .security import caller_id, origin_ip

log = logging.getLogger(__name__)

# A client that takes longer than this to take one chunk of an archive (1 MiB: under 17 kB/s) loses its
# place among links.max_archives: slow readers cannot hold every place for ever.
ARCHIVE_STALL = 60.0

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_link(link: Link, public_url: str) -> dict[str, Any]:
    """A link (links.Link) as a LinkOut; `url` is its public page under `http.public_url`."""
    return {
        "id": link.uuid,
        "file_id": link.file_uuid,
        "token": link.token,
        "url": f"{public_url}/s/{link.token}",
        "has_password": link.password_hash is not None,
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "downloads": link.downloads,
        "created_at": link.created_at,
        "files": [{"id": f.uuid, "name": f.name, "size": f.size} for f in link.files],
        "state": link.state,
    }


def render_public(link: Link) -> dict[str, Any]:
    """A live link (Links.public) as a PublicLinkOut: what anyone holding the token may see."""
    files, limit = link.files, link.max_downloads
    many = len(files)
    return {
        "name": files[0].name if link.single else f"{many} file{'' if many == 1 else 's'}",
        "size": sum(f.size for f in files),
        "has_password": link.password_hash is not None,
        "expires_at": link.expires_at,
        "downloads_left": None if limit is None else limit - link.downloads,
        "files": [{"id": f.uuid, "name": f.name, "size": f.size, "content_type": f.content_type} for f in files],
    }


def public_url(request: web.Request) -> str:
    return request.app[appkeys.CONFIG].http.public_url


def links_page(links: list[Link], query: PageQuery, url: str) -> dict[str, Any]:
    return page(links, query.limit, lambda link: link.id, lambda link: render_link(link, url))


# --- the owner's side ---------------------------------------------------------------------------


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
    return await _create(request, body, [request.match_info["id"]], single=True)


@endpoint(
    "POST",
    "/api/v1/links",
    summary="Share several files in one link",
    tag="links",
    permission="can_add_filesharelink",
    body=LinksCreate,
    responses={201: LinkOut},
    errors=(400, 401, 403, 404, 422, 429),
)
async def create_links(request: web.Request, body: LinksCreate) -> web.Response:
    """One link to several of your files (`file_id` null, `files` in the order given): its page lists them,
    each downloadable alone, and offers them all as one ZIP archive. 404 `file_not_found` when one of them is
    not yours. A file deleted later disappears from the link; once all are gone it answers 410."""
    return await _create(request, body, body.file_ids, single=False)


async def _create(request: web.Request, body: LinkCreate, file_ids: list[str], *, single: bool) -> web.Response:
    links = request.app[appkeys.LINKS]
    link = await links.create(
        caller_id(request),
        file_ids,
        single=single,
        password=body.password,
        expires_in=links.expires_in(body.expires_in, "expires_in" in body.model_fields_set),
        max_downloads=body.max_downloads,
    )
    return json_response(render_link(link, public_url(request)), status=201)


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
    """The links that share the file, alone or with others; newest first, expired and used-up ones
    included (each says its `state`); revoked ones are gone."""
    links = request.app[appkeys.LINKS]
    rows = await links.page(caller_id(request), request.match_info["id"], query.limit, query.after())
    return json_response(links_page(rows, query, public_url(request)))


@endpoint(
    "GET",
    "/api/v1/links",
    summary="All your links",
    tag="links",
    permission="can_view_filesharelink",
    query=LinksQuery,
    responses={200: LinkList},
    errors=(401, 403, 422),
)
async def all_links(request: web.Request, query: LinksQuery) -> web.Response:
    """Every link of yours, to one file or several, newest first, each with its `state`: `active`,
    `expired`, `used_up` or `files_gone`; `?state=` keeps those in one state."""
    rows = await request.app[appkeys.LINKS].all(caller_id(request), query.limit, query.after(), query.state)
    return json_response(links_page(rows, query, public_url(request)))


@endpoint(
    "GET",
    "/api/v1/links/{link_id}",
    summary="One of your links",
    tag="links",
    permission="can_view_filesharelink",
    responses={200: LinkOut},
    errors=(401, 403, 404),
)
async def get_link(request: web.Request) -> web.Response:
    link = await request.app[appkeys.LINKS].get(caller_id(request), request.match_info["link_id"])
    return json_response(render_link(link, public_url(request)))


@endpoint(
    "PATCH",
    "/api/v1/files/{id}/links/{link_id}",
    summary="Edit a link",
    tag="links",
    permission="can_add_filesharelink",
    body=LinkPatch,
    responses={200: LinkOut},
    errors=(400, 401, 403, 404, 422),
)
async def edit_file_link(request: web.Request, body: LinkPatch) -> web.Response:
    """Changes only what is given: `password` (null removes it), `expires_in` (seconds from now; null:
    never), `max_downloads` (null: unlimited; below the downloads already made it is 422 unless
    `reset_downloads`), `reset_downloads` (the count starts again from 0). The token and URL stay."""
    return await _edit(request, body, request.match_info["id"])


@endpoint(
    "PATCH",
    "/api/v1/links/{link_id}",
    summary="Edit a link (of any kind)",
    tag="links",
    permission="can_add_filesharelink",
    body=LinkPatch,
    responses={200: LinkOut},
    errors=(400, 401, 403, 404, 422),
)
async def edit_link(request: web.Request, body: LinkPatch) -> web.Response:
    """As `PATCH /files/{id}/links/{link_id}`, for links to one file or several."""
    return await _edit(request, body, None)


async def _edit(request: web.Request, body: LinkPatch, file_id: str | None) -> web.Response:
    links = request.app[appkeys.LINKS]
    changes = changes_of(body, LinkChanges, expires_in=lambda asked: links.expires_in(asked, True))
    link = await links.update(caller_id(request), request.match_info["link_id"], file_id, changes)
    return json_response(render_link(link, public_url(request)))


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
    await request.app[appkeys.LINKS].revoke(caller_id(request), request.match_info["link_id"], request.match_info["id"])
    return web.Response(status=204)


@endpoint(
    "DELETE",
    "/api/v1/links/{link_id}",
    summary="Revoke a link (of any kind)",
    tag="links",
    permission="can_delete_filesharelink",
    responses={204: None},
    errors=(401, 403, 404),
)
async def revoke_link(request: web.Request) -> web.Response:
    """As `DELETE /files/{id}/links/{link_id}`, for links to one file or several."""
    await request.app[appkeys.LINKS].revoke(caller_id(request), request.match_info["link_id"])
    return web.Response(status=204)


# --- the public side ----------------------------------------------------------------------------


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
    `link_expired` when it expired, its downloads are used up, or its files were deleted."""
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
    download; `?redirect=true` answers 302 to it, `?inline=true` asks for a preview. `file_id` picks the
    file of a link to several (422 without it there). Each success counts one download. 401
    `password_required` / `invalid_password`; 429 `too_many_attempts` (with Retry-After) after repeated
    wrong passwords for the link or from the client's address, until the window ends."""
    got = await request.app[appkeys.LINKS].download(
        request.match_info["token"],
        body.password,
        origin_ip(request),
        client_location(request),
        body.file_id,
        inline=query.inline,
    )
    return download_answer(got, query.redirect)


@endpoint(
    "POST",
    "/api/v1/public/links/{token}/archive",
    summary="Download all of a link's files as one ZIP",
    tag="links",
    auth="none",
    body=LinkArchiveIn,
    forms=True,
    responses={200: "application/zip"},
    errors=(400, 401, 404, 409, 410, 422, 429, 503),
)
async def archive_link(request: web.Request, body: LinkArchiveIn) -> web.StreamResponse:
    """The link's stored files as one ZIP archive streamed by cdnstore from the nearest holders (stored
    entries, ZIP64 when needed, its exact length in Content-Length), counted as one download. The body may
    be JSON or an HTML form's fields. 409 `file_not_ready` while none is stored; 503 `no_replica_available`;
    503 `archive_busy` with Retry-After while this server streams `links.max_archives` archives already."""
    archive = await request.app[appkeys.LINKS].archive(
        request.match_info["token"], body.password, origin_ip(request), client_location(request)
    )
    try:
        return await _stream(request, archive)
    finally:
        archive.release()


async def _stream(request: web.Request, archive: Archive) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "application/zip", "Content-Disposition": content_disposition(archive.name)}
    )
    response.content_length = archive.size
    await response.prepare(request)
    try:
        async with contextlib.aclosing(archive.chunks()) as chunks:
            async for chunk in chunks:
                async with asyncio.timeout(ARCHIVE_STALL):
                    await response.write(chunk)
    except (ArchiveCut, TimeoutError) as exc:
        # The answer has begun: no problem can be sent now. The connection is closed short of its
        # Content-Length, which every client reports as a failed download.
        why = str(exc) if isinstance(exc, ArchiveCut) else f"the client took no bytes for {ARCHIVE_STALL:.0f} s"
        log.warning("archive %s cut short: %s", archive.name, why)
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionError:  # the client went away (aiohttp's ClientConnectionResetError is one)
        log.info("archive %s: the client left before its end", archive.name)
        return response
    await response.write_eof()
    return response
