"""Routes: the caller's trash (deleted files kept restorable for `files.trash_days`): list, restore, purge."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..pagination import PageQuery, page
from ..trash import TrashedFile
from .endpoint import Router, json_response
from .files import lifetime, render_file
from .schemas import FileOut, TrashList
from .security import caller_id, current_user

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_trashed(file: TrashedFile) -> dict[str, Any]:
    """A file in the trash as a TrashedFileOut."""
    return {**render_file(file), "deleted_at": file.deleted_at, "purge_at": file.purge_at}


@endpoint(
    "GET",
    "/api/v1/trash",
    summary="Your deleted files, still restorable",
    tag="files",
    permission="can_view_file",
    query=PageQuery,
    responses={200: TrashList},
    errors=(401, 403, 422),
)
async def list_trash(request: web.Request, query: PageQuery) -> web.Response:
    """Each with `deleted_at` and `purge_at` (when it is removed for good). They still count in your quota.
    `trash_days`: how long deleted files are kept (`files.trash_days`; 0: deleting removes at once)."""
    rows = await request.app[appkeys.TRASH].page(caller_id(request), query.limit, query.after())
    answer = page(rows, query.limit, lambda f: f.id, render_trashed)
    return json_response({**answer, "trash_days": request.app[appkeys.CONFIG].files.trash_days})


@endpoint(
    "POST",
    "/api/v1/trash/{id}/restore",
    summary="Restore a deleted file",
    tag="files",
    permission="can_delete_file",
    responses={200: FileOut},
    errors=(401, 403, 404, 409),
)
async def restore_file(request: web.Request) -> web.Response:
    """The file is back as it was, its share links work again (unless they expired meanwhile). 409
    `name_taken` when you have another file of its name now. One whose expiry passed in the trash gets your
    default file lifetime (none: it no longer expires)."""
    row = await request.app[appkeys.TRASH].restore(
        caller_id(request), request.match_info["id"], lifetime(request, current_user(request))
    )
    return json_response(render_file(row))


@endpoint(
    "DELETE",
    "/api/v1/trash/{id}",
    summary="Purge a deleted file now",
    tag="files",
    permission="can_delete_file",
    responses={204: None},
    errors=(401, 403, 404),
)
async def purge_file(request: web.Request) -> web.Response:
    """Removed for good now: its objects are removed in the background from every server holding them."""
    await request.app[appkeys.TRASH].purge(caller_id(request), request.match_info["id"])
    return web.Response(status=204)
