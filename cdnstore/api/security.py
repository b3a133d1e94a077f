"""Who is calling: bearer access tokens for users, the events token for storage webhooks, and the
page's cookie session (its refresh token in an HttpOnly cookie, guarded against cross-site requests)."""

from __future__ import annotations

import hmac

from aiohttp import web
from yarl import URL

from .. import appkeys
from ..errors import Forbidden, Unauthorized
from ..models import User


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    return token.strip()


async def authenticate_user(request: web.Request) -> User:
    return await request.app[appkeys.ACCOUNTS].authenticate(bearer(request))


# The page opts in to a cookie session with this header. Being a custom header, it cannot be sent
# cross-site without a CORS preflight, which cdnstore never grants; the Origin check is the second lock.
SESSION_HEADER = "X-Cdnstore-Session"


def cookie_session(request: web.Request) -> bool:
    """Whether this call is the page's cookie session; 403 when it comes from another origin."""
    if request.headers.get(SESSION_HEADER) != "cookie":
        return False
    expected = str(URL(request.app[appkeys.CONFIG].http.public_url).origin())
    if request.headers.get("Origin") != expected:
        raise Forbidden(f"a cookie session is only for the page at {expected} (the Origin header)")
    return True


def authenticate_events(request: web.Request) -> None:
    expected = request.app[appkeys.CONFIG].events.token
    if not expected:
        raise Unauthorized("storage events are disabled: events.token is not set")
    if not hmac.compare_digest(bearer(request).encode(), expected.encode()):
        raise Unauthorized("wrong events token")


def current_user(request: web.Request) -> User:
    return request[appkeys.USER]


def origin_ip(request: web.Request) -> str:
    """The address failures are counted against (see geo.origin_ip): not forgeable by the client."""
    return request.app[appkeys.ORIGIN_IP](request.remote, request.headers.get("X-Forwarded-For"))


def remote_ip(request: web.Request) -> str:
    return request.app[appkeys.CLIENT_IP](request.remote, request.headers.get("X-Forwarded-For"))
