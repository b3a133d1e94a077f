"""The typed keys under which app.py stores the process's resources (one module avoids import loops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from .clock import Clock
from .config import Config
from .content import Content
from .db import Database
from .deepscrub import DeepScrubber
from .events import EventReceiver
from .files import Files
from .geo import GeoLocator
from .health import HealthChecker
from .history import HistoryWriter
from .imports import Imports
from .integrity import Integrity
from .job_queue import JobQueue
from .job_worker import JobWorker
from .keys import ApiKeys, Grant
from .links import Links
from .metrics import Metrics
from .models import User
from .oidc import OidcClient
from .scrub import Scrubber
from .servers import ServerRegistry
from .stats import DownloadStats
from .storage_port import StoragePort
from .trash import Trash
from .upload_requests import UploadRequests
from .uploads import Uploads
from .users import Accounts
from .webhook_queue import Subscriptions, WebhookQueue
from .webhook_worker import WebhookWorker
from .webhooks import Webhooks

CONFIG: web.AppKey[Config] = web.AppKey("config")
DB: web.AppKey[Database] = web.AppKey("db")
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts")
KEYS: web.AppKey[ApiKeys] = web.AppKey("keys")
OIDC: web.AppKey[OidcClient | None] = web.AppKey("oidc")  # None: no single sign-on (oidc.issuer empty)
STORAGE: web.AppKey[StoragePort] = web.AppKey("storage")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")  # the clock port every use case was given (clock.py)
GEO: web.AppKey[GeoLocator] = web.AppKey("geo")
SERVERS: web.AppKey[ServerRegistry] = web.AppKey("servers")
FILES: web.AppKey[Files] = web.AppKey("files")
UPLOADS: web.AppKey[Uploads] = web.AppKey("uploads")
EVENTS: web.AppKey[EventReceiver] = web.AppKey("events")
HISTORY: web.AppKey[HistoryWriter] = web.AppKey("history")
STATS: web.AppKey[DownloadStats] = web.AppKey("stats")
LINKS: web.AppKey[Links] = web.AppKey("links")
REQUESTS: web.AppKey[UploadRequests] = web.AppKey("upload_requests")
TRASH: web.AppKey[Trash] = web.AppKey("trash")
JOBS: web.AppKey[JobQueue] = web.AppKey("jobs")
CONTENT: web.AppKey[Content] = web.AppKey("content")
WORKER: web.AppKey[JobWorker] = web.AppKey("worker")
HEALTH: web.AppKey[HealthChecker] = web.AppKey("health")
SCRUB: web.AppKey[Scrubber] = web.AppKey("scrub")
DEEP_SCRUB: web.AppKey[DeepScrubber] = web.AppKey("deep_scrub")
INTEGRITY: web.AppKey[Integrity] = web.AppKey("integrity")
IMPORTS: web.AppKey[Imports] = web.AppKey("imports")
WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks")
WEBHOOK_QUEUE: web.AppKey[WebhookQueue] = web.AppKey("webhook_queue")
SUBSCRIPTIONS: web.AppKey[Subscriptions] = web.AppKey("subscriptions")
WEBHOOK_WORKER: web.AppKey[WebhookWorker] = web.AppKey("webhook_worker")
# (peer, X-Forwarded-For) -> the client's address; cached, the same clients come again and again
CLIENT_IP: web.AppKey[Callable[[str | None, str | None], str]] = web.AppKey("client_ip")
ORIGIN_IP: web.AppKey[Callable[[str | None, str | None], str]] = web.AppKey("origin_ip")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

USER: web.RequestKey[User] = web.RequestKey("user")
GRANT: web.RequestKey[Grant] = web.RequestKey("grant")  # the caller's API key (absent: an access token)
