"""Routes: user administration (admins only)."""

from __future__ import annotations

from aiohttp import web

from .. import appkeys
from ..pagination import PageQuery, page
from ..users import render_row
from .endpoint import Router, json_response
from .schemas import UserCreate, UserList, UserOut, UserPatch

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


@endpoint("POST", "/api/v1/users", summary="Create a user", tag="users", admin=True, body=UserCreate,
          responses={201: UserOut}, errors=(400, 401, 403, 409, 422))
async def create_user(request: web.Request, body: UserCreate) -> web.Response:
    """Without `permissions`, a new user holds the file and share-link permissions."""
    user = await request.app[appkeys.ACCOUNTS].create(
        body.username, body.password, is_admin=body.is_admin,
        permissions=None if body.permissions is None else list(body.permissions))
    return json_response(await request.app[appkeys.ACCOUNTS].answer(user), status=201)


@endpoint("GET", "/api/v1/users", summary="List users", tag="users", admin=True, query=PageQuery,
          responses={200: UserList}, errors=(401, 403, 422))
async def list_users(request: web.Request, query: PageQuery) -> web.Response:
    rows = await request.app[appkeys.ACCOUNTS].page(query.limit, query.after())
    return json_response(page(rows, query.limit, lambda r: r["id"],
                              render_row))


@endpoint("PATCH", "/api/v1/users/{id}", summary="Change a user", tag="users", admin=True,
          body=UserPatch, responses={200: UserOut}, errors=(400, 401, 403, 404, 422))
async def update_user(request: web.Request, body: UserPatch) -> web.Response:
    """A new password ends the user's sessions (their refresh tokens stop working)."""
    user = await request.app[appkeys.ACCOUNTS].update(
        request.match_info["id"], **body.model_dump(exclude_unset=True))
    return json_response(await request.app[appkeys.ACCOUNTS].answer(user))
