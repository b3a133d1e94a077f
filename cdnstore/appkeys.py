"""The typed keys under which app.py stores the process's resources (one module avoids import loops)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .config import Config
from .db import Database
from .geo import GeoLocator, IPNetwork
from .models import User
from .servers import ServerRegistry
from .storage import Storage
from .users import Accounts

CONFIG: web.AppKey[Config] = web.AppKey("config")
DB: web.AppKey[Database] = web.AppKey("db")
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
GEO: web.AppKey[GeoLocator] = web.AppKey("geo")
TRUSTED_PROXIES: web.AppKey[tuple[IPNetwork, ...]] = web.AppKey("trusted_proxies")
SERVERS: web.AppKey[ServerRegistry] = web.AppKey("servers")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")

USER: web.RequestKey[User] = web.RequestKey("user")
