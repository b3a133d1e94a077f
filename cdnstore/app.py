"""create_app(config): the composition root. The only place that wires resources together.

Cleanup contexts run in order at start-up and in reverse at shutdown, so background work stops
before the S3 clients and the database close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from . import appkeys
from .api import auth as _auth_routes  # noqa: F401  (each api module registers its endpoints)
from .api import ops as _ops_routes  # noqa: F401
from .api import servers as _server_routes  # noqa: F401
from .api import users as _user_routes  # noqa: F401
from .api.endpoint import endpoint
from .api.openapi import build as build_openapi
from .api.problems import problems_middleware
from .auth import Passwords, Tokens
from .config import Config
from .db import Database
from .geo import GeoLocator, parse_networks
from .servers import ServerRegistry
from .storage import Storage
from .users import Accounts


def create_app(config: Config) -> web.Application:
    config.require_secret()
    app = web.Application(middlewares=[problems_middleware], client_max_size=config.http.max_body_bytes)
    app[appkeys.CONFIG] = config
    app[appkeys.TRUSTED_PROXIES] = parse_networks(config.http.trusted_proxies)
    app[appkeys.OPENAPI] = build_openapi(endpoint.endpoints)
    app.cleanup_ctx.extend([database, storage, geoip, accounts, servers])
    endpoint.add_to(app)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    db = app[appkeys.DB] = Database(app[appkeys.CONFIG].database.path)
    await db.open()
    yield
    await db.close()


async def storage(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG].storage
    app[appkeys.STORAGE] = Storage(connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout)
    yield
    await app[appkeys.STORAGE].close()


async def geoip(app: web.Application) -> AsyncIterator[None]:
    locator = app[appkeys.GEO] = GeoLocator(app[appkeys.CONFIG].geoip.database or None)
    yield
    locator.close()


async def accounts(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG].auth
    passwords = await asyncio.to_thread(Passwords, cfg)
    app[appkeys.ACCOUNTS] = Accounts(app[appkeys.DB], cfg, passwords, Tokens(cfg))
    yield


async def servers(app: web.Application) -> AsyncIterator[None]:
    registry = app[appkeys.SERVERS] = ServerRegistry(
        app[appkeys.DB], app[appkeys.STORAGE], app[appkeys.CONFIG].storage.check_timeout)
    await registry.load()
    yield
