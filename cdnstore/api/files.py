"""Routes: the caller's files (upload links, completion, downloads, rename, delete, where they are)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..config import UploadsConfig
from ..errors import Forbidden
from ..files import Download, FileChanges, FileRow, Lifetime, PresignedPut, Upload
from ..geo import Point
from ..links import LinkRequest
from ..models import Server, User, VersionStatus
from ..pagination import page
from ..uploads import PartUrl, UploadState
from .endpoint import Router, json_response
from .schemas import (
    DownloadOut,
    DownloadQuery,
    FileCreate,
    FileList,
    FileOut,
    FilePatch,
    FilesQuery,
    FileUploadOut,
    LinkCreate,
    PartsIn,
    PartUrlList,
    ReplicaList,
    UploadSettingsOut,
    UploadStateOut,
    changes_of,
)
from .security import caller_id, current_user, remote_ip, require_scope
from .servers import render_ref

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_file(file: FileRow) -> dict[str, Any]:
    """A file as a FileOut."""
    stored = file.current_version_id is not None
    return {
        "id": file.uuid,
        "name": file.name,
        "size": file.size,
        "content_type": file.content_type,
        "status": VersionStatus.STORED if stored else VersionStatus.UPLOADING,
        "zone": file.zone if stored else None,
        "sha256": file.sha256,
        "created_at": file.created_at,
        "updated_at": file.updated_at,
        "expires_at": file.expires_at,
        "received_via": file.received_via,
    }


def lifetime(request: web.Request, user: User) -> Lifetime:
    """The bounds an admin set on `user`'s files' lives, on the app's clock."""
    return Lifetime(user.max_file_lifetime, user.default_file_lifetime, request.app[appkeys.CLOCK])


def render_replicas(found: list[tuple[Server, str]]) -> list[dict[str, Any]]:
    return [{"server": render_ref(s), "status": status} for s, status in found]


def render_with_servers(file: FileRow, replicas: dict[int, list[tuple[Server, str]]]) -> dict[str, Any]:
    """A file with `servers`, its current content's replicas (`replicas`: by version id, Files.replicas_of_files)."""
    held = [] if file.current_version_id is None else replicas.get(file.current_version_id, [])
    return {**render_file(file), "servers": render_replicas(held)}


def render_upload(upload: Upload) -> dict[str, Any]:
    """An announced upload as a FileUploadOut: the file and where to send its bytes."""
    send = upload.send
    if isinstance(send, PresignedPut):
        how: dict[str, Any] = {
            "url": send.url,
            "method": "PUT",
            "headers": send.headers,
            "expires_at": send.expires_at,
            "server": render_ref(send.server),
        }
    else:
        how = {
            "method": "multipart",
            "part_size": send.part_size,
            "parts": send.parts,
            "expires_at": send.expires_at,
            "server": render_ref(send.server),
        }
    return {"file": render_file(upload.file), "upload": how}


def render_upload_settings(cfg: UploadsConfig) -> dict[str, Any]:
    return {"multipart_threshold": cfg.multipart_threshold, "max_file_size": cfg.max_file_size}


def render_link_request(link: LinkRequest, public_url: str) -> dict[str, Any]:
    """The link an announcement asked for (`link` of a FileUploadOut): it works once the file is stored."""
    return {"id": link.uuid, "token": link.token, "url": f"{public_url}/s/{link.token}"}


def render_upload_state(state: UploadState) -> dict[str, Any]:
    """The upload in progress as an UploadStateOut (a single PUT's `url` and `headers` only for it)."""
    out = {
        "server": render_ref(state.server),
        "method": "multipart" if state.put is None else "PUT",
        "part_size": state.part_size,
        "parts": state.parts,
        "uploaded": [{"number": p.number, "size": p.size, "etag": p.etag} for p in state.uploaded],
        "expires_at": state.expires_at,
    }
    return out if state.put is None else {**out, "url": state.put.url, "headers": state.put.headers}


def render_part_url(part: PartUrl) -> dict[str, Any]:
    return {
        "number": part.number,
        "url": part.url,
        "method": "PUT",
        "headers": part.headers,
        "expires_at": part.expires_at,
    }


def client_location(request: web.Request) -> Point | None:
    return request.app[appkeys.GEO].locate_client(remote_ip(request), request.app[appkeys.CONFIG].geoip.fallback_ip)


def download_answer(got: Download, redirect: bool) -> web.Response:
    """The answer to a download, the owner's or through a link: the presigned GET, or a 302 to it."""
    if redirect:
        raise web.HTTPFound(got.url)
    return json_response(
        {"url": got.url, "expires_at": got.expires_at, "server": render_ref(got.server), "sha256": got.sha256}
    )


@endpoint(
    "GET",
    "/api/v1/files",
    summary="List your files",
    tag="files",
    permission="can_view_file",
    query=FilesQuery,
    responses={200: FileList},
    errors=(401, 403, 422),
)
async def list_files(request: web.Request, query: FilesQuery) -> web.Response:
    """Newest first; `q` keeps the names that contain it (case-insensitive for ASCII). `include=servers`
    (needs `can_view_cdnserver`) gives each file `servers`, where it is, in the same answer: the page's
    file list makes one call, not one per row."""
    files = request.app[appkeys.FILES]
    if query.include == "servers" and not current_user(request).can("can_view_cdnserver"):
        raise Forbidden("include=servers needs the permission can_view_cdnserver")
    rows = await files.page(caller_id(request), query.limit, query.after(), query.q, query.received_via)
    if query.include == "servers":
        found = await files.replicas_of_files(rows[: query.limit])
        return json_response(page(rows, query.limit, lambda f: f.id, lambda f: render_with_servers(f, found)))
    return json_response(page(rows, query.limit, lambda f: f.id, render_file))


@endpoint(
    "GET",
    "/api/v1/uploads/settings",
    summary="How uploads are sent",
    tag="files",
    auth="none",
    responses={200: UploadSettingsOut},
)
async def upload_settings(request: web.Request) -> web.Response:
    """What a client needs to know before it announces a file: which files go in one PUT (those of at most
    `multipart_threshold` bytes: a `sha256` declared for them binds the PUT, so a client hashes them
    first) and which in parts, and the largest file taken. Open to anyone: the owner's page and the public
    upload page of an upload request (whose senders have no account) both ask it."""
    return json_response(render_upload_settings(request.app[appkeys.CONFIG].uploads))


@endpoint(
    "POST",
    "/api/v1/files",
    summary="Start an upload",
    tag="files",
    permission="can_upload_file",
    body=FileCreate,
    responses={201: FileUploadOut, 200: FileUploadOut},
    errors=(400, 401, 403, 413, 422, 429, 503, 507),
)
async def create_file(request: web.Request, body: FileCreate) -> web.Response:
    """Answers a presigned PUT on the nearest server that is on and active: PUT the bytes to `upload.url`
    with exactly `upload.headers`. A name you already have starts a new version of that file (200); its
    previous content stays downloadable until the new content is stored. With `sha256` the PUT is bound to
    it (`upload.headers` carry `x-amz-checksum-sha256`: the storage server refuses other bytes). 429
    `too_many_uploads` past `uploads.max_per_minute` announcements a minute. 507 `quota_exceeded` when the
    upload would pass your `quota_bytes` (stored files, plus uploads in progress and uploads stored but
    awaiting the read that confirms their declared `sha256`: `pending_bytes`; a new version counts what it
    adds); the problem says how much is left (`available_bytes`). With `zones` set, the nearest server
    among those zones. `expires_at`: when the file is deleted (into the trash); absent, a new file lives
    your `default_file_lifetime` and a new version keeps its file's expiry; 422 past your
    `max_file_lifetime`. With `link` (needs `can_add_filesharelink`, and an API key the `share` scope), a
    share link is made in the transaction that stores the file, as `POST /files/{id}/links` makes one
    (`expires_in` counted from then); the answer's `link` gives its `url` now (it works once the file is
    stored). 503 `no_server_available` when no server takes uploads, `storage_unavailable` (with Retry-After)
    when a big file's upload server does not answer in time."""
    user = current_user(request)
    link = await requested_link(request, body.link)
    upload = await request.app[appkeys.FILES].announce(
        caller_id(request),
        body.name,
        body.size,
        body.content_type,
        client_location(request),
        user.zones,
        body.sha256,
        expiry=lifetime(request, user).expiry(body.expires_at, "expires_at" in body.model_fields_set),
        link_request=None if link is None else link.stored,
    )
    answer = render_upload(upload)
    if link is not None:
        answer["link"] = render_link_request(link, request.app[appkeys.CONFIG].http.public_url)
    return json_response(answer, status=201 if upload.created else 200)


async def requested_link(request: web.Request, asked: LinkCreate | None) -> LinkRequest | None:
    """The link an upload asks for, checked as `POST /files/{id}/links` checks one (403 without the permission
    or, for an API key, the `share` scope; 422 past `links.max_expires_in`)."""
    if asked is None:
        return None
    if not current_user(request).can("can_add_filesharelink"):
        raise Forbidden("a link needs the permission can_add_filesharelink")
    require_scope(request, "share")
    links = request.app[appkeys.LINKS]
    expires_in = links.expires_in(asked.expires_in, "expires_in" in asked.model_fields_set)
    return await links.request(
        caller_id(request), password=asked.password, expires_in=expires_in, max_downloads=asked.max_downloads
    )


@endpoint(
    "POST",
    "/api/v1/files/{id}/complete",
    summary="Confirm an upload",
    tag="files",
    permission="can_upload_file",
    responses={200: FileOut},
    errors=(401, 403, 404, 409, 503),
)
async def complete_file(request: web.Request) -> web.Response:
    """For storage servers that send no events: the object is looked for on the upload server; 409
    `upload_incomplete` while it is not there with the announced size. A multipart upload is assembled
    when parts 1..N are all on its server with the right sizes; else 409 `upload_incomplete` with
    `missing`, the part numbers still to send. 503 `storage_unavailable` (with Retry-After) when the upload
    server does not answer within `storage.request_timeout`: ask again."""
    row = await request.app[appkeys.UPLOADS].complete(caller_id(request), request.match_info["id"])
    return json_response(render_file(row))


@endpoint(
    "GET",
    "/api/v1/files/{id}/upload",
    summary="The upload in progress",
    tag="files",
    permission="can_upload_file",
    responses={200: UploadStateOut},
    errors=(401, 403, 404, 503),
)
async def get_upload(request: web.Request) -> web.Response:
    """To resume: for a multipart upload, the parts its server already holds (asked of the server, so this
    survives a restart of cdnstore); for a single PUT, a fresh URL. 404 `no_upload` when nothing uploads;
    503 `storage_unavailable` (with Retry-After) when the upload server does not answer in time."""
    state = await request.app[appkeys.UPLOADS].view(caller_id(request), request.match_info["id"])
    return json_response(render_upload_state(state))


@endpoint(
    "POST",
    "/api/v1/files/{id}/upload/parts",
    summary="URLs for parts of a multipart upload",
    tag="files",
    permission="can_upload_file",
    body=PartsIn,
    responses={200: PartUrlList},
    errors=(400, 401, 403, 404, 409, 422),
)
async def sign_parts(request: web.Request, body: PartsIn) -> web.Response:
    """Presigned PUTs for up to 100 parts; with `md5` for a part its URL requires that `Content-MD5` (in
    `headers`), so the server refuses other bytes. 422 for numbers outside 1..`parts`; 409 `not_multipart`
    for a single-PUT upload."""
    items = await request.app[appkeys.UPLOADS].sign_parts(
        caller_id(request), request.match_info["id"], body.numbers, body.md5
    )
    return json_response({"items": [render_part_url(p) for p in items]})


@endpoint(
    "DELETE",
    "/api/v1/files/{id}/upload",
    summary="Cancel the upload in progress",
    tag="files",
    permission="can_upload_file",
    responses={204: None},
    errors=(401, 403, 404, 503),
)
async def abort_upload(request: web.Request) -> web.Response:
    """A multipart upload is aborted on its server (no parts left). The file keeps its stored content, or
    disappears if it has none. 404 `no_upload` when nothing uploads; 503 `storage_unavailable` (with
    Retry-After) when the upload server does not answer in time (nothing is changed)."""
    await request.app[appkeys.UPLOADS].abort(caller_id(request), request.match_info["id"])
    return web.Response(status=204)


@endpoint(
    "GET",
    "/api/v1/files/{id}",
    summary="One file",
    tag="files",
    permission="can_view_file",
    responses={200: FileOut},
    errors=(401, 403, 404),
)
async def get_file(request: web.Request) -> web.Response:
    row = await request.app[appkeys.FILES].get(caller_id(request), request.match_info["id"])
    return json_response(render_file(row))


@endpoint(
    "GET",
    "/api/v1/files/{id}/download",
    summary="Download a file",
    tag="files",
    permission="can_view_file",
    query=DownloadQuery,
    responses={200: DownloadOut, 302: None},
    errors=(401, 403, 404, 409, 422, 503),
)
async def download_file(request: web.Request, query: DownloadQuery) -> web.StreamResponse:
    """A presigned GET on the nearest server that is on, up and holds the content, saving under the file's
    current name; `?redirect=true` answers 302 to it instead. `?inline=true` asks for a preview: for images,
    audio, video, PDF and plain text a URL the browser shows (Range works: video seeks); HTML, SVG, XML and
    any other type stay attachments."""
    got = await request.app[appkeys.FILES].download(
        caller_id(request), request.match_info["id"], client_location(request), query.inline
    )
    return download_answer(got, query.redirect)


@endpoint(
    "PATCH",
    "/api/v1/files/{id}",
    summary="Rename a file, or change when it expires",
    tag="files",
    permission="can_rename_file",
    body=FilePatch,
    responses={200: FileOut},
    errors=(400, 401, 403, 404, 409, 422),
)
async def rename_file(request: web.Request, body: FilePatch) -> web.Response:
    """409 `name_taken` for a name you have. `expires_at` null: never (422 when an admin set you a
    `max_file_lifetime`, as for a time beyond it)."""
    changes = changes_of(
        body, FileChanges, expires_at=lambda asked: lifetime(request, current_user(request)).expiry(asked, True)
    )
    row = await request.app[appkeys.FILES].update(caller_id(request), request.match_info["id"], changes)
    return json_response(render_file(row))


@endpoint(
    "DELETE",
    "/api/v1/files/{id}",
    summary="Delete a file",
    tag="files",
    permission="can_delete_file",
    responses={204: None},
    errors=(401, 403, 404),
)
async def delete_file(request: web.Request) -> web.Response:
    """At once. With `files.trash_days` > 0 a stored file goes to your trash (`GET /api/v1/trash`): not
    listed, not served, its links 410, still counted in your quota, restorable until its `purge_at`. Else
    (and for a file with no stored content) its objects are removed in the background from every server
    that is on and holds them."""
    await request.app[appkeys.FILES].delete(caller_id(request), request.match_info["id"])
    return web.Response(status=204)


@endpoint(
    "GET",
    "/api/v1/files/{id}/servers",
    summary="Where a file is",
    tag="files",
    permission="can_view_cdnserver",
    responses={200: ReplicaList},
    errors=(401, 403, 404),
)
async def file_servers(request: web.Request) -> web.Response:
    """The servers holding the current content (`present`) or about to (`pending`). Any user's file: this is
    how holders of `can_view_cdnserver` see where a file is (every other file route is owner-only)."""
    found = await request.app[appkeys.FILES].replicas(request.match_info["id"])
    return json_response({"items": render_replicas(found)})
