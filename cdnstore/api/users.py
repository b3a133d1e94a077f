"""Routes: user administration (admins only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..models import User
from ..pagination import PageQuery, page
from ..users import Account, UserChanges, check_zones
from .endpoint import Router, json_response
from .schemas import UserCreate, UserList, UserOut, UserPatch, changes_of

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_user(user: User, used_bytes: int) -> dict[str, Any]:
    """A user as a UserOut (the admins' view adds `files` and `files_outside_zones`: admin_view)."""
    return {
        "id": user.id,
        "username": user.username,
        "is_admin": user.is_admin,
        "permissions": user.effective_permissions,
        "is_disabled": user.is_disabled,
        "quota_bytes": user.quota_bytes,
        "used_bytes": used_bytes,
        "zones": None if user.zones is None else list(user.zones),
        "max_file_lifetime": user.max_file_lifetime,
        "default_file_lifetime": user.default_file_lifetime,
    }


def render_account(account: Account) -> dict[str, Any]:
    """A user with the bytes they store, as a UserOut."""
    return render_user(account.user, account.used_bytes)


async def admin_view(request: web.Request, accounts: list[Account]) -> list[dict[str, Any]]:
    """User answers for admins: with `files` (their count), and `files_outside_zones` for users limited to zones."""
    users = [a.user for a in accounts]
    outside = await request.app[appkeys.ACCOUNTS].files_outside_zones(users)
    files = await request.app[appkeys.ACCOUNTS].file_counts(users)
    return [
        {
            **render_account(a),
            "files": files[a.user.pk],
            **({"files_outside_zones": outside[a.user.pk]} if a.user.pk in outside else {}),
        }
        for a in accounts
    ]


def known_zones(request: web.Request) -> set[str]:
    return {s.zone for s in request.app[appkeys.SERVERS].all()}


@endpoint(
    "POST",
    "/api/v1/users",
    summary="Create a user",
    tag="users",
    admin=True,
    body=UserCreate,
    responses={201: UserOut},
    errors=(400, 401, 403, 409, 422, 429),
)
async def create_user(request: web.Request, body: UserCreate) -> web.Response:
    """Without `permissions`, a new user holds the file and share-link permissions. Without `quota_bytes`,
    the quota is `users.default_quota_bytes`. `zones` must be zones of registered servers (422 naming others).
    Usernames are compared ignoring case and kept as spelled: 409 `username_taken` for a name another user
    holds in any case."""
    check_zones(body.zones, known_zones(request))
    given = body.model_dump(include={"quota_bytes"}, exclude_unset=True)
    made = await request.app[appkeys.ACCOUNTS].create(
        body.username,
        body.password,
        is_admin=body.is_admin,
        permissions=None if body.permissions is None else list(body.permissions),
        zones=body.zones,
        max_file_lifetime=body.max_file_lifetime,
        default_file_lifetime=body.default_file_lifetime,
        **given,
    )
    return json_response((await admin_view(request, [made]))[0], status=201)


@endpoint(
    "GET",
    "/api/v1/users",
    summary="List users",
    tag="users",
    admin=True,
    query=PageQuery,
    responses={200: UserList},
    errors=(401, 403, 422),
)
async def list_users(request: web.Request, query: PageQuery) -> web.Response:
    """Each with `used_bytes`, and for users limited to zones `files_outside_zones`."""
    accounts = await request.app[appkeys.ACCOUNTS].page(query.limit, query.after())
    shown = await admin_view(request, accounts[: query.limit])
    answer = page(accounts, query.limit, lambda a: a.user.pk, lambda a: a)
    return json_response({**answer, "items": shown})


@endpoint(
    "GET",
    "/api/v1/users/{id}",
    summary="One user",
    tag="users",
    admin=True,
    responses={200: UserOut},
    errors=(401, 403, 404),
)
async def get_user(request: web.Request) -> web.Response:
    account = await request.app[appkeys.ACCOUNTS].account(request.match_info["id"])
    return json_response((await admin_view(request, [account]))[0])


@endpoint(
    "PATCH",
    "/api/v1/users/{id}",
    summary="Change a user",
    tag="users",
    admin=True,
    body=UserPatch,
    responses={200: UserOut},
    errors=(400, 401, 403, 404, 409, 422, 429),
)
async def update_user(request: web.Request, body: UserPatch) -> web.Response:
    """A new password ends every session of the user; so does disabling them (their tokens answer 401 at
    once, their share links 410). 409 `last_admin` when no enabled administrator would be left. `zones`
    must be zones of registered servers; changing them moves no file (see `files_outside_zones`)."""
    check_zones(body.zones, known_zones(request))
    changed = await request.app[appkeys.ACCOUNTS].update(request.match_info["id"], changes_of(body, UserChanges))
    return json_response((await admin_view(request, [changed]))[0])


@endpoint(
    "DELETE",
    "/api/v1/users/{id}",
    summary="Delete a user",
    tag="users",
    admin=True,
    responses={204: None},
    errors=(401, 403, 404, 409),
)
async def delete_user(request: web.Request) -> web.Response:
    """At once: the user's sessions end, their links stop and their history goes; their files are removed
    from every server in the background. 409 `last_admin` for the last enabled administrator (oneself too)."""
    await request.app[appkeys.ACCOUNTS].delete(request.match_info["id"], request.app[appkeys.JOBS])
    return web.Response(status=204)
