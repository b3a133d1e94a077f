"""Who is calling: bearer access tokens and API keys for users, the events token for storage webhooks, and
the page's cookie session (its refresh token in an HttpOnly cookie, guarded against cross-site requests)."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web
from yarl import URL

from .. import appkeys
from ..errors import Forbidden, InsufficientScope, NotFound, Unauthorized
from ..keys import Grant, is_key
from ..models import User
from ..servers import events_token_hash


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not token.isascii():  # (tokens are ASCII: bytes
        raise Unauthorized("send Authorization: Bearer <token>")  # beyond it are no token, and no UTF-8)
    return token.strip()


async def authenticate_user(request: web.Request) -> tuple[User, Grant | None]:
    """The caller's user, and the grant of the API key they sent (None for an access token)."""
    token = bearer(request)
    if is_key(token):
        grant = await request.app[appkeys.KEYS].grant(token)
        return await request.app[appkeys.ACCOUNTS].live_user(grant.user_uuid), grant
    return await request.app[appkeys.ACCOUNTS].authenticate(token), None


def require_scope(request: web.Request, scope: str) -> None:
    """For what a route does beyond its own scope (an upload that also makes a share link): 403
    `insufficient_scope` for an API key without `scope`; a signed-in user passes."""
    grant = request.get(appkeys.GRANT)
    if grant is not None and scope not in grant.scopes:
        raise InsufficientScope(f"this API key lacks the scope {scope!r} that this action needs")


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


def presented_events_token(request: web.Request) -> str | None:
    """The events token a storage server sent beside the body: in the path (a server that cannot send
    headers, Ceph RGW), else as `Authorization: Bearer <token>`, or as the password of Basic auth (RGW and
    SNS send user:password of the endpoint URL so); None when it sent none (it may be in the body)."""
    in_path = request.match_info.get("token")
    if in_path is not None:
        return in_path
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            _, colon, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            colon = password = ""
        if not colon or not password:
            raise Unauthorized("Basic auth of the storage webhook must be base64 of user:<events token>")
        return password
    return bearer(request)


def authenticate_events(request: web.Request, token: str | None) -> None:
    """A server registered with its own events_token accepts only that token on its path (not events.token,
    nor another server's). Other servers take events.token; so do unknown names, so that a caller without a
    valid token learns nothing of which names exist (401 before the handler's 404)."""
    if token is None:
        raise Unauthorized(
            "send the events token: Authorization: Bearer <token>, the path /api/v1/events/s3/<server>/<token>, "
            "or an RGW topic's OpaqueData"
        )
    try:
        server = request.app[appkeys.SERVERS].by_name(request.match_info["server_name"])
    except NotFound:
        server = None
    if server is not None and server.events_token_hash is not None:
        if not hmac.compare_digest(events_token_hash(token), server.events_token_hash):
            raise Unauthorized("wrong events token for this server")
        return
    expected = request.app[appkeys.CONFIG].events.token
    if not expected:
        raise Unauthorized("storage events are disabled: events.token is not set")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("wrong events token")


def current_user(request: web.Request) -> User:
    return request[appkeys.USER]


def caller_id(request: web.Request) -> int:
    """The caller's internal id: what the use cases key owners and actors by (never shown outside)."""
    return current_user(request).pk


def origin_ip(request: web.Request) -> str:
    """The address failures are counted against (see geo.origin_ip): not forgeable by the client."""
    return request.app[appkeys.ORIGIN_IP](request.remote, request.headers.get("X-Forwarded-For"))


def remote_ip(request: web.Request) -> str:
    return request.app[appkeys.CLIENT_IP](request.remote, request.headers.get("X-Forwarded-For"))
