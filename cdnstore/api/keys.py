"""Routes: the caller's personal API keys (create, list, revoke). Signed-in users only: a key never manages
keys (`auth="session"`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..errors import Invalid
from ..keys import ApiKey
from ..pagination import PageQuery, page
from .endpoint import Router, json_response
from .schemas import KeyCreate, KeyCreatedOut, KeyList
from .security import caller_id, current_user

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_key(key: ApiKey) -> dict[str, Any]:
    """A key as a KeyOut: never its secret."""
    return {
        "id": key.uuid,
        "name": key.name,
        "scopes": key.scope_names,
        "prefix": key.prefix,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "created_at": key.created_at,
    }


def render_new_key(key: ApiKey, secret: str) -> dict[str, Any]:
    """A key just made, as a KeyCreatedOut: with its secret, this once."""
    return {**render_key(key), "secret": secret}


@endpoint(
    "POST",
    "/api/v1/me/keys",
    summary="Create an API key",
    tag="auth",
    auth="session",
    body=KeyCreate,
    responses={201: KeyCreatedOut},
    errors=(400, 401, 403, 422),
)
async def create_key(request: web.Request, body: KeyCreate) -> web.Response:
    """A key that acts as you within its `scopes`, sent as `Authorization: Bearer cdn_...`. The answer's
    `secret` is shown only here (cdnstore keeps its hash). `admin` is for administrators (422 otherwise).
    An API key cannot call this (403 `insufficient_scope`): keys are made by signed-in users."""
    if "admin" in body.scopes and not current_user(request).is_admin:
        raise Invalid("scopes", "admin is a scope for administrators only")
    key, secret = await request.app[appkeys.KEYS].create(caller_id(request), body.name, body.scopes, body.expires_in)
    return json_response(render_new_key(key, secret), status=201)


@endpoint(
    "GET",
    "/api/v1/me/keys",
    summary="List your API keys",
    tag="auth",
    auth="session",
    query=PageQuery,
    responses={200: KeyList},
    errors=(401, 403, 422),
)
async def list_keys(request: web.Request, query: PageQuery) -> web.Response:
    """Newest first, with when each was last used (written in batches: a use may show a few seconds late
    when another daemon served it)."""
    keys = await request.app[appkeys.KEYS].page(caller_id(request), query.limit, query.after())
    return json_response(page(keys, query.limit, lambda k: k.id, render_key))


@endpoint(
    "DELETE",
    "/api/v1/me/keys/{id}",
    summary="Revoke an API key",
    tag="auth",
    auth="session",
    responses={204: None},
    errors=(401, 403, 404),
)
async def revoke_key(request: web.Request) -> web.Response:
    """At once: the key answers 401 from the next request on, on every daemon within 2 seconds. 404
    `key_not_found` for a key that is not yours (or was revoked already)."""
    await request.app[appkeys.KEYS].revoke(caller_id(request), request.match_info["id"])
    return web.Response(status=204)
