"""Who is calling: bearer access tokens for users, the events token for storage webhooks, and the
page's cookie session (its refresh token in an HttpOnly cookie, guarded against cross-site requests)."""

from __future__ import annotations

import hmac

from aiohttp import web
from yarl import URL

from .. import appkeys
from ..errors import Forbidden, NotFound, Unauthorized
from ..models import User
from ..servers import events_token_hash


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not token.isascii():  # (tokens are ASCII: bytes
        raise Unauthorized("send Authorization: Bearer <token>")  # beyond it are no token, and no UTF-8)
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
    """A server registered with its own events_token accepts only that token on its path (not events.token,
    nor another server's). Other servers take events.token; so do unknown names, so that a caller without a
    valid token learns nothing of which names exist (401 before the handler's 404)."""
    try:
        server = request.app[appkeys.SERVERS].by_name(request.match_info["server_name"])
    except NotFound:
        server = None
    if server is not None and server.events_token_hash is not None:
        if not hmac.compare_digest(events_token_hash(bearer(request)), server.events_token_hash):
            raise Unauthorized("wrong events token for this server")
        return
    expected = request.app[appkeys.CONFIG].events.token
    if not expected:
        raise Unauthorized("storage events are disabled: events.token is not set")
    if not hmac.compare_digest(bearer(request).encode(), expected.encode()):
        raise Unauthorized("wrong events token")


def current_user(request: web.Request) -> User:
    return request[appkeys.USER]


async def caller_id(request: web.Request) -> int:
    """The caller's internal id: what the use cases key owners and actors by (never shown outside)."""
    return await request.app[appkeys.ACCOUNTS].internal_id(current_user(request))


def origin_ip(request: web.Request) -> str:
    """The address failures are counted against (see geo.origin_ip): not forgeable by the client."""
    return request.app[appkeys.ORIGIN_IP](request.remote, request.headers.get("X-Forwarded-For"))


def remote_ip(request: web.Request) -> str:
    return request.app[appkeys.CLIENT_IP](request.remote, request.headers.get("X-Forwarded-For"))
