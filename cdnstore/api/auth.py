"""Routes: log in, refresh, log out, who am I.

Bearer clients send and receive the refresh token in JSON bodies. The page instead asks for a cookie
session (header X-Cdnstore-Session: cookie, see security.cookie_session): its refresh token then lives
in an HttpOnly, SameSite=Strict cookie (Secure when http.public_url is https) whose Path covers exactly
the three routes here that read it, so that a reload or another tab keeps the session while script on
the page never sees the token. Access tokens stay in the page's memory.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..errors import Forbidden, Invalid, Unauthorized
from ..models import User
from .endpoint import Router, json_response
from .schemas import LoginIn, MePatch, RefreshIn, TokensOut, UserOut
from .security import SESSION_HEADER, bearer, cookie_session, current_user, origin_ip
from .users import render_user

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints

REFRESH_COOKIE = "cdnstore_refresh"
COOKIE_PATH = "/api/v1/auth/"  # login (ends the session it replaces), refresh and logout
# Beside it, a cookie the page's script may read, holding nothing but "1", and living as long: the page asks
# for a refresh only when it is there, so a visit without a session asks nothing (no 401 in the console).
HINT_COOKIE = "cdnstore_session"


async def user_answer(request: web.Request, user: User) -> dict[str, Any]:
    """The caller's User answer, with the bytes they store as stored now."""
    return render_user(user, await request.app[appkeys.ACCOUNTS].used_bytes(user))


async def tokens_answer(
    request: web.Request, user: User, access: str, refresh: str, *, cookie: bool = False
) -> web.Response:
    response = json_response(
        {
            "access_token": access,
            "refresh_token": "" if cookie else refresh,
            "token_type": "Bearer",
            "expires_in": request.app[appkeys.ACCOUNTS].tokens.access_ttl,
            "user": await user_answer(request, user),
        }
    )
    if cookie:
        set_refresh_cookie(request, response, refresh)
    return response


def set_refresh_cookie(request: web.Request, response: web.StreamResponse, refresh: str) -> None:
    """The page's session (a login's, or a single sign-on's): its refresh token in the HttpOnly cookie, and
    beside it a hint the page can read (it holds nothing) so that it asks for a refresh only when there is a
    session to refresh."""
    for name, value, path, httponly in ((REFRESH_COOKIE, refresh, COOKIE_PATH, True), (HINT_COOKIE, "1", "/", False)):
        response.set_cookie(
            name,
            value,
            path=path,
            max_age=request.app[appkeys.ACCOUNTS].tokens.refresh_ttl,
            httponly=httponly,
            secure=secure_cookies(request),
            samesite="Strict",
        )


def secure_cookies(request: web.Request) -> bool:
    """Cookies go over https only when the page is served over https."""
    return request.app[appkeys.CONFIG].http.public_url.startswith("https")


def refresh_token_of(request: web.Request, body: RefreshIn, cookie: bool) -> str:
    token = request.cookies.get(REFRESH_COOKIE) if cookie else body.refresh_token
    if token:
        return token
    if cookie:
        raise Unauthorized("no session cookie; log in")
    raise Invalid("refresh_token", f"is required (unless {SESSION_HEADER}: cookie)")


async def end_replaced_session(request: web.Request) -> None:
    """A login in a browser that still holds a session cookie ends that session (best effort)."""
    old = request.cookies.get(REFRESH_COOKIE)
    if old:
        try:
            await request.app[appkeys.ACCOUNTS].logout(old)
        except Unauthorized:
            pass


@endpoint(
    "POST",
    "/api/v1/auth/login",
    summary="Log in",
    tag="auth",
    auth="none",
    body=LoginIn,
    responses={200: TokensOut},
    errors=(400, 401, 403, 422, 429),
)
async def login(request: web.Request, body: LoginIn) -> web.Response:
    """Exchange a username (in any case) and password for an access token and a refresh token (a new session).
    Repeated failures for one username from one client address, or from one client address (IPv6: its
    /64), answer 429 `too_many_attempts` for a while; checks still running count as failures.
    With `X-Cdnstore-Session: cookie` (the bundled page, same origin only, else 403) the refresh token
    is set as an HttpOnly cookie instead of being returned. 403 `password_login_disabled` when
    `oidc.password_login` is off (single sign-on only)."""
    if not request.app[appkeys.CONFIG].oidc.password_login:
        raise Forbidden("this service signs in with single sign-on only", code="password_login_disabled")
    cookie = cookie_session(request)
    user, access, refresh = await request.app[appkeys.ACCOUNTS].login(body.username, body.password, origin_ip(request))
    if cookie:
        await end_replaced_session(request)
    return await tokens_answer(request, user, access, refresh, cookie=cookie)


@endpoint(
    "POST",
    "/api/v1/auth/refresh",
    summary="Rotate the tokens",
    tag="auth",
    auth="none",
    body=RefreshIn,
    responses={200: TokensOut},
    errors=(400, 401, 403, 422),
)
async def refresh(request: web.Request, body: RefreshIn) -> web.Response:
    """A new pair for a refresh token; the used refresh token stops working. Presenting a used refresh
    token again ends the session of that login: its access tokens answer 401 at once. A cookie session
    (`X-Cdnstore-Session: cookie`) sends no token: the cookie's is used and replaced."""
    cookie = cookie_session(request)
    user, access, new_refresh = await request.app[appkeys.ACCOUNTS].refresh(refresh_token_of(request, body, cookie))
    return await tokens_answer(request, user, access, new_refresh, cookie=cookie)


@endpoint(
    "POST",
    "/api/v1/auth/logout",
    summary="Log out",
    tag="auth",
    auth="none",
    body=RefreshIn,
    responses={204: None},
    errors=(400, 401, 403, 422),
)
async def logout(request: web.Request, body: RefreshIn) -> web.Response:
    """The session of this refresh token ends: its refresh and access tokens answer 401 at once. A
    cookie session (`X-Cdnstore-Session: cookie`) ends the cookie's session and clears the cookie."""
    if not cookie_session(request):
        await request.app[appkeys.ACCOUNTS].logout(refresh_token_of(request, body, False))
        return web.Response(status=204)
    await end_replaced_session(request)
    response = web.Response(status=204)
    response.del_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    response.del_cookie(HINT_COOKIE, path="/")
    return response


@endpoint("GET", "/api/v1/me", summary="The caller", tag="auth", responses={200: UserOut}, errors=(401,))
async def me(request: web.Request) -> web.Response:
    return json_response(await user_answer(request, current_user(request)))


@endpoint(
    "PATCH",
    "/api/v1/me",
    summary="Change your password",
    tag="auth",
    auth="session",
    body=MePatch,
    responses={200: UserOut},
    errors=(400, 401, 403, 422, 429),
)
async def change_password(request: web.Request, body: MePatch) -> web.Response:
    """With the current password (403 `invalid_credentials` when wrong; repeated failures 429 like logins).
    Every other session of the user ends (their access and refresh tokens answer 401); this one stays. An
    API key cannot call this (403 `insufficient_scope`)."""
    accounts = request.app[appkeys.ACCOUNTS]
    session = accounts.tokens.read_access(bearer(request)).session
    user = current_user(request)
    await accounts.change_own_password(user, session, body.current_password, body.password, origin_ip(request))
    return json_response(await user_answer(request, user))
