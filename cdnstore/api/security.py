"""Who is calling: bearer access tokens for users, the events token for storage webhooks."""

from __future__ import annotations

import hmac

from aiohttp import web

from .. import appkeys
from ..errors import Unauthorized
from ..models import User


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    return token.strip()


async def authenticate_user(request: web.Request) -> User:
    return await request.app[appkeys.ACCOUNTS].authenticate(bearer(request))


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
