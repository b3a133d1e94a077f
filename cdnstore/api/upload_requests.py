"""Routes: upload requests, the owner's side (create, list, change, close, delete) and the public side (what
a request asks for, a sender's file and the rest of its upload under its upload_token).

The public upload page (`GET /u/{token}`) is the bundled page's (api/pages.py), not registered here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..pagination import page
from ..upload_requests import Caller, RequestChanges, UploadRef, UploadRequest, is_open, left
from .endpoint import Router, json_response
from .files import client_location, render_file, render_part_url, render_upload, render_upload_state
from .schemas import (
    FileOut,
    PartsIn,
    PartUrlList,
    PublicRequestOut,
    SenderFileCreate,
    SenderUploadOut,
    UploadRequestCreate,
    UploadRequestList,
    UploadRequestOut,
    UploadRequestPatch,
    UploadRequestsQuery,
    UploadStateOut,
    changes_of,
)
from .security import caller_id, current_user, origin_ip

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_request(request: UploadRequest, public_url: str, now: str) -> dict[str, Any]:
    """A request as an UploadRequestOut; `now` (the app's clock) says whether it is still open."""
    return {
        "id": request.uuid,
        "token": request.token,
        "url": f"{public_url}/u/{request.token}",
        "owner": request.owner,
        "message": request.message,
        "has_password": request.password_hash is not None,
        "expires_at": request.expires_at,
        "max_files": request.max_files,
        "max_bytes": request.max_bytes,
        "files": request.files,
        "bytes": request.bytes,
        "is_open": is_open(request, now),
        "closed_at": request.closed_at,
        "created_at": request.created_at,
    }


def render_public_request(request: UploadRequest) -> dict[str, Any]:
    """An open request (UploadRequests.public) as a PublicRequestOut: what anyone holding the token may see."""
    return {
        "owner": request.owner,
        "message": request.message,
        "has_password": request.password_hash is not None,
        "expires_at": request.expires_at,
        "files_left": left(request.max_files, request.files),
        "bytes_left": left(request.max_bytes, request.bytes),
    }


async def caller(request: web.Request) -> Caller:
    return Caller(caller_id(request), current_user(request).is_admin)


def public_url(request: web.Request) -> str:
    return request.app[appkeys.CONFIG].http.public_url


async def sender_upload(request: web.Request) -> UploadRef:
    """The upload the path's upload_token names (404 `no_upload` for anything else)."""
    return await request.app[appkeys.REQUESTS].upload_of(request.match_info["upload_token"])


@endpoint(
    "POST",
    "/api/v1/upload-requests",
    summary="Ask people for files",
    tag="upload requests",
    permission="can_upload_file",
    body=UploadRequestCreate,
    responses={201: UploadRequestOut},
    errors=(400, 401, 403, 422),
)
async def create_request(request: web.Request, body: UploadRequestCreate) -> web.Response:
    """A link (`url`, the page /u/<token>) through which anyone holding it sends you files, without an
    account: to the storage server nearest to them among your zones, into your files and your quota.
    `expires_in` absent: `requests.default_expires_in`; null: open until you close it. `max_files`,
    `max_bytes`: what it takes at most (null: no limit). `password`: kept only as a hash."""
    requests = request.app[appkeys.REQUESTS]
    made = await requests.create(
        caller_id(request),
        message=body.message,
        password=body.password,
        expires_in=requests.expires_in(body.expires_in, "expires_in" in body.model_fields_set),
        max_files=body.max_files,
        max_bytes=body.max_bytes,
    )
    return json_response(render_request(made, public_url(request), request.app[appkeys.CLOCK].now_iso()), status=201)


@endpoint(
    "GET",
    "/api/v1/upload-requests",
    summary="Your upload requests",
    tag="upload requests",
    permission="can_view_file",
    query=UploadRequestsQuery,
    responses={200: UploadRequestList},
    errors=(401, 403, 422),
)
async def list_requests(request: web.Request, query: UploadRequestsQuery) -> web.Response:
    """Newest first, closed and expired ones included (deleted ones are gone), each with what it received
    (`files`, `bytes`: `GET /api/v1/files?received_via=<id>` lists them). `all=true` (administrators):
    every user's, with their `owner`."""
    asked = await request.app[appkeys.REQUESTS].page(
        await caller(request), query.limit, query.after(), everyone=query.all
    )
    url, now = public_url(request), request.app[appkeys.CLOCK].now_iso()
    return json_response(page(asked, query.limit, lambda r: r.id, lambda r: render_request(r, url, now)))


@endpoint(
    "GET",
    "/api/v1/upload-requests/{id}",
    summary="One upload request",
    tag="upload requests",
    permission="can_view_file",
    responses={200: UploadRequestOut},
    errors=(401, 403, 404),
)
async def get_request(request: web.Request) -> web.Response:
    found = await request.app[appkeys.REQUESTS].get(await caller(request), request.match_info["id"])
    return json_response(render_request(found, public_url(request), request.app[appkeys.CLOCK].now_iso()))


@endpoint(
    "PATCH",
    "/api/v1/upload-requests/{id}",
    summary="Change, close or reopen an upload request",
    tag="upload requests",
    permission="can_upload_file",
    body=UploadRequestPatch,
    responses={200: UploadRequestOut},
    errors=(400, 401, 403, 404, 422),
)
async def update_request(request: web.Request, body: UploadRequestPatch) -> web.Response:
    """Null removes the message, the password, the expiry (`expires_in` counts from now) or a limit. `is_open`
    false closes it: senders get 410 `request_closed` (uploads already under way may finish); true opens it
    again. Administrators may close anyone's (`{"is_open": false}` only: 403 for anything else)."""
    requests = request.app[appkeys.REQUESTS]
    changes = changes_of(body, RequestChanges, expires_in=lambda asked: requests.expires_in(asked, True))
    changed = await requests.update(await caller(request), request.match_info["id"], changes)
    return json_response(render_request(changed, public_url(request), request.app[appkeys.CLOCK].now_iso()))


@endpoint(
    "DELETE",
    "/api/v1/upload-requests/{id}",
    summary="Delete an upload request",
    tag="upload requests",
    permission="can_upload_file",
    responses={204: None},
    errors=(401, 403, 404),
)
async def delete_request(request: web.Request) -> web.Response:
    """Its link answers 404 from now on; the files it received stay yours. Administrators may delete anyone's."""
    await request.app[appkeys.REQUESTS].delete(await caller(request), request.match_info["id"])
    return web.Response(status=204)


# --- the public side ------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/api/v1/public/upload-requests/{token}",
    summary="What an upload request asks for",
    tag="upload requests",
    auth="none",
    responses={200: PublicRequestOut},
    errors=(404, 410),
)
async def public_request(request: web.Request) -> web.Response:
    """For anyone holding the token. 404 `request_not_found` for an unknown or deleted request; 410
    `request_closed` when it was closed, expired, or its owner is disabled."""
    asked = await request.app[appkeys.REQUESTS].public(request.match_info["token"])
    return json_response(render_public_request(asked))


@endpoint(
    "POST",
    "/api/v1/public/upload-requests/{token}/files",
    summary="Send a file through an upload request",
    tag="upload requests",
    auth="none",
    body=SenderFileCreate,
    responses={201: SenderUploadOut},
    errors=(400, 401, 404, 410, 413, 422, 429, 503, 507),
)
async def send_file(request: web.Request, body: SenderFileCreate) -> web.Response:
    """Like `POST /api/v1/files` (a single PUT, or multipart above `uploads.multipart_threshold`), to the
    storage server nearest to the sender among the owner's zones, plus the `upload_token` for the rest of
    this file's upload (`/api/v1/public/uploads/{upload_token}/...`). Always a new file of the owner's: a
    name the owner has becomes "name (2).ext". 401 `password_required` / `invalid_password`; 413
    `request_limit` past `max_files` or `max_bytes`; 507 `quota_exceeded` (the owner's quota); 410
    `request_closed`; 429 past `requests.max_per_minute` files a minute from one address."""
    sent = await request.app[appkeys.REQUESTS].announce(
        request.match_info["token"],
        password=body.password,
        name=body.name,
        size=body.size,
        content_type=body.content_type,
        sha256=body.sha256,
        client_ip=origin_ip(request),
        client=client_location(request),
    )
    return json_response({**render_upload(sent.upload), "upload_token": sent.upload_token}, status=201)


@endpoint(
    "GET",
    "/api/v1/public/uploads/{upload_token}/upload",
    summary="A sender's upload in progress",
    tag="upload requests",
    auth="none",
    responses={200: UploadStateOut},
    errors=(404, 502),
)
async def sender_view(request: web.Request) -> web.Response:
    """As `GET /api/v1/files/{id}/upload`, for the file the upload_token names. 404 `no_upload` once it is
    no longer in progress."""
    ref = await sender_upload(request)
    state = await request.app[appkeys.UPLOADS].view(ref.owner_id, ref.file_uuid, ref.version_id)
    return json_response(render_upload_state(state))


@endpoint(
    "POST",
    "/api/v1/public/uploads/{upload_token}/upload/parts",
    summary="URLs for parts of a sender's multipart upload",
    tag="upload requests",
    auth="none",
    body=PartsIn,
    responses={200: PartUrlList},
    errors=(400, 404, 409, 422),
)
async def sender_parts(request: web.Request, body: PartsIn) -> web.Response:
    """As `POST /api/v1/files/{id}/upload/parts`."""
    ref = await sender_upload(request)
    items = await request.app[appkeys.UPLOADS].sign_parts(
        ref.owner_id, ref.file_uuid, body.numbers, body.md5, ref.version_id
    )
    return json_response({"items": [render_part_url(p) for p in items]})


@endpoint(
    "POST",
    "/api/v1/public/uploads/{upload_token}/complete",
    summary="Confirm a sender's upload",
    tag="upload requests",
    auth="none",
    responses={200: FileOut},
    errors=(404, 409, 502),
)
async def sender_complete(request: web.Request) -> web.Response:
    """As `POST /api/v1/files/{id}/complete`: the file, `stored` once its bytes are on the upload server."""
    ref = await sender_upload(request)
    row = await request.app[appkeys.UPLOADS].complete(ref.owner_id, ref.file_uuid, ref.version_id)
    return json_response(render_file(row))


@endpoint(
    "DELETE",
    "/api/v1/public/uploads/{upload_token}/upload",
    summary="Cancel a sender's upload",
    tag="upload requests",
    auth="none",
    responses={204: None},
    errors=(404, 502),
)
async def sender_cancel(request: web.Request) -> web.Response:
    """As `DELETE /api/v1/files/{id}/upload`: the file goes (it has no other content), and its place in the
    request's limits is free again."""
    ref = await sender_upload(request)
    await request.app[appkeys.UPLOADS].abort(ref.owner_id, ref.file_uuid, ref.version_id)
    return web.Response(status=204)
