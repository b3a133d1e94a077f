"""Routes: how one signs in (password, single sign-on), and the OpenID Connect redirect and callback.

The login route sends the browser to the provider with a sealed cookie of what it must bring back (oidc.py);
the callback checks the provider's answer and the ID token, finds or creates the user (users.py), and signs
the page in with the same cookie session as a password login (api/auth.py), then goes back to `return_to`:
a path of this site only, never another site's address.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from .. import appkeys
from ..config import OidcConfig
from ..errors import NotFound, OidcFailed
from ..oidc import OidcClient
from ..users import Identity
from .auth import end_replaced_session, secure_cookies, set_refresh_cookie
from .endpoint import Router, json_response
from .schemas import AuthMethodsOut, OidcCallbackQuery, OidcLoginQuery, Username

log = logging.getLogger(__name__)

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints

PENDING_COOKIE = "cdnstore_oidc"
PENDING_PATH = "/api/v1/auth/oidc/"  # the callback alone reads it
USERNAME = TypeAdapter(Username)  # the username rule of users made by hand, for the provider's too


def configured(request: web.Request) -> OidcClient:
    oidc = request.app[appkeys.OIDC]
    if oidc is None:
        raise NotFound("single sign-on is not configured here (oidc.issuer)", code="oidc_disabled")
    return oidc


def identity_of(claims: dict[str, Any], cfg: OidcConfig) -> Identity:
    """Who signed in, from the checked claims: the username from `oidc.username_claim` (it must make a valid
    cdnstore username), an admin when `oidc.admin_group` is among the groups claim's values."""
    try:
        username = USERNAME.validate_python(claims.get(cfg.username_claim), strict=True)
    except ValidationError:
        raise OidcFailed(
            f"the provider's {cfg.username_claim!r} claim gives no valid cdnstore username "
            "(1 to 64 letters, digits, '_', '.', '@' or '-')"
        ) from None
    is_admin = None
    if cfg.admin_group:
        groups = claims.get(cfg.groups_claim) or []
        is_admin = cfg.admin_group in ([groups] if isinstance(groups, str) else groups)
    return Identity(str(claims["sub"]), username, is_admin)


@endpoint(
    "GET",
    "/api/v1/auth/methods",
    summary="How to sign in",
    tag="auth",
    auth="none",
    responses={200: AuthMethodsOut},
)
async def auth_methods(request: web.Request) -> web.Response:
    """Whether passwords are taken, and the single sign-on's name (the page's "Sign in with <name>")."""
    oidc = request.app[appkeys.OIDC]
    name = None if oidc is None else oidc.name
    return json_response(render_methods(request.app[appkeys.CONFIG].oidc.password_login, name))


def render_methods(password: bool, oidc_name: str | None) -> dict[str, Any]:
    """How one signs in, as an AuthMethodsOut (`oidc_name` None: no single sign-on)."""
    return {"password": password, "oidc": None if oidc_name is None else {"name": oidc_name}}


@endpoint(
    "GET",
    "/api/v1/auth/oidc/login",
    summary="Sign in with single sign-on",
    tag="auth",
    auth="none",
    query=OidcLoginQuery,
    responses={302: None},
    errors=(404, 414, 422, 503),  # (414: a return_to of many escaped characters can pass the request target's limit)
)
async def oidc_login(request: web.Request, query: OidcLoginQuery) -> web.Response:
    """302 to the identity provider (authorization code flow with PKCE, `state` and `nonce`); back at the
    callback, then at `return_to` (a path of this site; default `/`). 404 `oidc_disabled` when single
    sign-on is not configured; 503 `oidc_unavailable` when the provider cannot be reached."""
    url, sealed = await configured(request).begin(query.return_to)
    response = web.Response(status=302, headers={"Location": url})
    # SameSite=Lax, not Strict: the provider sends the browser back from another site, and the cookie must come.
    response.set_cookie(
        PENDING_COOKIE,
        sealed,
        path=PENDING_PATH,
        max_age=600,
        httponly=True,
        secure=secure_cookies(request),
        samesite="Lax",
    )
    return response


@endpoint(
    "GET",
    "/api/v1/auth/oidc/callback",
    summary="Single sign-on's way back",
    tag="auth",
    auth="none",
    query=OidcCallbackQuery,
    responses={302: None},
    errors=(401, 404, 414, 422),  # (414: what the provider appends, escaped, can pass the request target's limit)
)
async def oidc_callback(request: web.Request, query: OidcCallbackQuery) -> web.Response:
    """Where the provider sends the browser back: the answer (`state`, the code exchanged with the PKCE
    verifier) and the ID token (signature, issuer, audience, expiry, nonce) are checked, the user found or
    created, and the page signed in (the same cookie session as a password login); 302 to `return_to`. 401
    `oidc_failed` with a sentence saying why (never the provider's own error): a tampered or foreign answer,
    a used code, an ID token not for cdnstore or expired, a user disabled or deleted in cdnstore."""
    oidc = configured(request)
    pending = oidc.pending(request.cookies.get(PENDING_COOKIE))
    if query.error is not None:
        log.info("single sign-on: the provider answered the error %.100r", query.error)
        raise OidcFailed("the identity provider did not sign you in (refused or cancelled); sign in again")
    if not query.code or not query.state:
        raise OidcFailed("the identity provider's answer has no code or state; sign in again")
    claims = await oidc.finish(pending, query.state, query.code, query.iss)
    cfg = request.app[appkeys.CONFIG]
    identity = identity_of(claims, cfg.oidc)
    _, _, refresh = await request.app[appkeys.ACCOUNTS].sign_in_oidc(identity, create=cfg.oidc.create_users)
    await end_replaced_session(request)
    response = web.Response(status=302, headers={"Location": cfg.http.public_url + pending.return_to})
    set_refresh_cookie(request, response, refresh)
    response.del_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return response
