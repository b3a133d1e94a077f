"""Routes: log in, refresh, log out, who am I."""

from __future__ import annotations

from aiohttp import web

from .. import appkeys
from ..models import User
from ..users import render_user
from .endpoint import endpoint, json_response
from .schemas import LoginIn, RefreshIn, TokensOut, UserOut
from .security import current_user, origin_ip


def tokens_answer(request: web.Request, user: User, access: str, refresh: str) -> web.Response:
    return json_response({"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                          "expires_in": request.app[appkeys.ACCOUNTS].tokens.access_ttl,
                          "user": render_user(user)})


@endpoint("POST", "/api/v1/auth/login", summary="Log in", tag="auth", auth="none", body=LoginIn,
          responses={200: TokensOut}, errors=(400, 401, 422, 429))
async def login(request: web.Request, body: LoginIn) -> web.Response:
    """Exchange a username and password for an access token and a refresh token (a new session).
    Repeated failures for one username from one client address, or from one client address (IPv6: its
    /64), answer 429 `too_many_attempts` for a while; checks still running count as failures."""
    user, access, refresh = await request.app[appkeys.ACCOUNTS].login(
        body.username, body.password, origin_ip(request))
    return tokens_answer(request, user, access, refresh)


@endpoint("POST", "/api/v1/auth/refresh", summary="Rotate the tokens", tag="auth", auth="none",
          body=RefreshIn, responses={200: TokensOut}, errors=(400, 401, 422))
async def refresh(request: web.Request, body: RefreshIn) -> web.Response:
    """A new pair for a refresh token; the used refresh token stops working. Presenting a used refresh
    token again ends the session of that login: its access tokens answer 401 at once."""
    user, access, new_refresh = await request.app[appkeys.ACCOUNTS].refresh(body.refresh_token)
    return tokens_answer(request, user, access, new_refresh)


@endpoint("POST", "/api/v1/auth/logout", summary="Log out", tag="auth", auth="none", body=RefreshIn,
          responses={204: None}, errors=(400, 401, 422))
async def logout(request: web.Request, body: RefreshIn) -> web.Response:
    """The session of this refresh token ends: its refresh and access tokens answer 401 at once."""
    await request.app[appkeys.ACCOUNTS].logout(body.refresh_token)
    return web.Response(status=204)


@endpoint("GET", "/api/v1/me", summary="The caller", tag="auth", responses={200: UserOut}, errors=(401,))
async def me(request: web.Request) -> web.Response:
    return json_response(render_user(current_user(request)))
