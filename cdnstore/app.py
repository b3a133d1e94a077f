"""create_app(config): the composition root. The only place that wires resources together.

Cleanup contexts run in order at start-up and in reverse at shutdown, so background work stops
before the S3 clients and the database close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from . import appkeys, job_queue, webhook_queue
from .api import auth as auth_api
from .api import events as events_api
from .api import files as files_api
from .api import history as history_api
from .api import jobs as jobs_api
from .api import keys as keys_api
from .api import links as links_api
from .api import oidc as oidc_api
from .api import ops as ops_api
from .api import pages as pages_api
from .api import servers as servers_api
from .api import stats as stats_api
from .api import trash as trash_api
from .api import upload_requests as requests_api
from .api import users as users_api
from .api import webhooks as webhooks_api
from .api.endpoint import Endpoint, add_routes
from .api.headers import security_headers
from .api.observe import observe
from .api.openapi import build as build_openapi
from .api.problems import problems_middleware
from .api.server import handler_args
from .archives import Archives
from .auth import Passwords, Tokens
from .changes import KEYS, SERVERS, SESSIONS, USERS, WEBHOOKS, CacheSync
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .content import Content
from .db import connect, leases
from .deepscrub import DeepScrubber
from .errors import DatabaseUnavailable
from .events import EventReceiver
from .files import Files
from .geo import GeoDatabaseError, GeoLocator, client_ip, origin_ip, parse_networks
from .health import HealthChecker
from .history import HistoryWriter
from .imports import Imports
from .integrity import Integrity
from .job_queue import JobQueue
from .job_worker import JobWorker
from .keys import ApiKeys
from .links import Links
from .metrics import Metrics
from .oidc import OidcClient
from .probe import Prober
from .replicator import Replicator
from .scrub import Scrubber
from .sealing import Sealer
from .servers import ServerRegistry
from .sns import SubscriptionConfirmer
from .stats import DownloadStats
from .storage import Storage
from .storage_port import StoragePort
from .tasks import every, every_exclusively, running
from .trash import Trash
from .upload_requests import UploadRequests
from .uploads import Uploads
from .users import Accounts
from .webhook_queue import Subscriptions, WebhookQueue
from .webhook_worker import WebhookWorker
from .webhooks import SEALING_PURPOSE, Webhooks

LOG_PRUNE_INTERVAL = 3600.0  # seconds between two prunings of the webhooks' delivery logs

log = logging.getLogger(__name__)

# Every route, each api module's own table: the app serves and documents these and nothing else (in this
# order: the OpenAPI document lists them so, and aiohttp tries them so).
ROUTES: tuple[Endpoint, ...] = (
    *auth_api.ROUTES,
    *oidc_api.ROUTES,
    *keys_api.ROUTES,
    *events_api.ROUTES,
    *files_api.ROUTES,
    *trash_api.ROUTES,
    *history_api.ROUTES,
    *jobs_api.ROUTES,
    *links_api.ROUTES,
    *requests_api.ROUTES,
    *ops_api.ROUTES,
    *pages_api.ROUTES,
    *servers_api.ROUTES,
    *users_api.ROUTES,
    *stats_api.ROUTES,
    *webhooks_api.ROUTES,
)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of ROUTES, a function of the code alone: built once per process (pydantic's schema
    generation is most of what building an app costs, and the tests and `dev.py types` build many). Shared by
    every app of the process: read only."""
    return build_openapi(ROUTES)


KEY_USES_EVERY = 5.0  # seconds between two writes of the API keys' last uses


def create_app(
    config: Config, *, tool: bool = False, store: StoragePort | None = None, clock: Clock = SYSTEM_CLOCK
) -> web.Application:
    """The daemon. `tool=True` is for command-line tools: no background work, and no secret needed
    (nothing is served). `store`: the S3 servers are reached through it instead of through a `Storage`
    built from the config (its maker closes it). `clock`: the time every use case reads (clock.py)."""
    if not tool:
        config.require_secret()
    metrics = Metrics()  # a registry per app, never prometheus_client's global one
    app = web.Application(
        middlewares=[observe(metrics, log_requests=config.log.requests), problems_middleware],
        client_max_size=config.http.max_body_bytes,
        handler_args=handler_args(config.http.max_header_bytes, config.http.idle_timeout),
    )
    app.on_response_prepare.append(security_headers)  # nosniff, Server, no-store: on every answer
    app[appkeys.METRICS] = metrics
    if store is not None:
        app[appkeys.STORAGE] = store
    app[appkeys.CONFIG] = config
    app[appkeys.CLOCK] = clock
    trusted = parse_networks(config.http.trusted_proxies)
    locate_client: Callable[[str | None, str | None], str] = functools.lru_cache(maxsize=65536)(
        functools.partial(client_ip, trusted_proxies=trusted)
    )
    app[appkeys.CLIENT_IP] = locate_client
    throttle_origin: Callable[[str | None, str | None], str] = functools.partial(origin_ip, trusted_proxies=trusted)
    app[appkeys.ORIGIN_IP] = throttle_origin
    app[appkeys.OPENAPI] = openapi_document()
    app.cleanup_ctx.extend([database, storage, geoip, accounts, servers, replication, share_links, webhooks])
    if not tool:
        app.cleanup_ctx.append(background_work)
        app.on_shutdown.append(stop_taking_jobs)
    add_routes(app, ROUTES)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    db = app[appkeys.DB] = connect(app[appkeys.CONFIG].database)
    await db.open()
    writer = app[appkeys.HISTORY] = HistoryWriter(db)
    db.write_ahead(writer)  # the download rows waiting go in before any later transaction's work
    stats = app[appkeys.STATS] = DownloadStats(db)
    async with running(
        {
            "history-writer": writer.run(),
            "download-stats": stats.run(),
            "checkpoint": every(1.0, db.checkpoint, "checkpoint"),
        }
    ):
        yield
    await db.close()


async def storage(app: web.Application) -> AsyncIterator[None]:
    if appkeys.STORAGE in app:  # handed to create_app: whoever made it closes it
        yield
        return
    cfg = app[appkeys.CONFIG].storage
    jobs = app[appkeys.CONFIG].jobs
    app[appkeys.STORAGE] = Storage(
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        part_size=jobs.part_size,
        parts_in_flight=jobs.parts_in_flight,
    )
    yield
    await app[appkeys.STORAGE].close()


async def geoip(app: web.Application) -> AsyncIterator[None]:
    locator = app[appkeys.GEO] = GeoLocator(app[appkeys.CONFIG].geoip.database or None)
    yield
    locator.close()


GEOIP_LOOK_EVERY = 60.0  # seconds between looks at the GeoIP database's file: an update is used within this
_SAID_OUTDATED: set[tuple[Path, datetime]] = set()  # each outdated database is said once a process (--daemons N)


async def geoip_current(app: web.Application) -> None:
    """Use the GeoIP database's file again once it was replaced (geoipupdate, a download moved into place),
    and say in the log, once, when the one in use is over a year old."""
    locator = app[appkeys.GEO]
    try:
        if locator.reload_if_changed():
            log.info("GeoIP database %s reloaded: %s", locator.path, locator.describe())
    except GeoDatabaseError as exc:  # a half-written or wrong file: the one in use stays
        log.warning("%s; still using the one opened before (%s)", exc, locator.describe())
    if locator.outdated() and (locator.path, locator.built_at) not in _SAID_OUTDATED:
        _SAID_OUTDATED.add((locator.path, locator.built_at))
        log.warning(
            "the GeoIP database %s (%s) is over a year old: clients may be placed wrongly, and sent to farther "
            'servers than the nearest; update it (docs/operations.md, "GeoIP data")',
            locator.path,
            locator.describe(),
        )


async def accounts(app: web.Application) -> AsyncIterator[None]:
    config = app[appkeys.CONFIG]
    cfg = config.auth
    passwords = await asyncio.to_thread(Passwords, cfg)
    clock = app[appkeys.CLOCK]
    keys = app[appkeys.KEYS] = ApiKeys(app[appkeys.DB], clock=clock.time)
    app[appkeys.ACCOUNTS] = Accounts(
        app[appkeys.DB],
        cfg,
        passwords,
        Tokens(cfg, clock),
        default_quota=config.users.default_quota_bytes,
        default_zones=config.users.default_zones,
        keys_ended=keys.reload,
        clock=clock,
    )
    oidc = app[appkeys.OIDC] = (
        OidcClient(config.oidc, config.http.public_url, cfg.secret_key) if config.oidc.issuer else None
    )
    # Keys' last uses are written every few seconds, not once per request (and at a clean stop).
    async with running({"api-key-uses": every(KEY_USES_EVERY, keys.flush, "api-key-uses")}):
        yield
    with contextlib.suppress(DatabaseUnavailable):
        await keys.flush()
    if oidc is not None:
        await oidc.close()


async def servers(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG]
    prober = Prober(app[appkeys.STORAGE], cfg.http.public_url, cfg.storage.check_timeout, app[appkeys.CLOCK])
    registry = app[appkeys.SERVERS] = ServerRegistry(
        app[appkeys.DB],
        app[appkeys.STORAGE],
        cfg.storage.check_timeout,
        Sealer(cfg.auth.secret_key),
        prober,
        clock=app[appkeys.CLOCK],
    )
    await registry.load()
    yield


async def replication(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG]
    db, storage, registry, clock = app[appkeys.DB], app[appkeys.STORAGE], app[appkeys.SERVERS], app[appkeys.CLOCK]
    queue = app[appkeys.JOBS] = JobQueue(db, cfg.jobs, clock.time)
    await db.listen(job_queue.CHANNEL, queue.wake)  # a job became due, on any daemon
    # (a file's content: an upload, a copy and a verification read each reach it; its listeners: share_links)
    content = app[appkeys.CONTENT] = Content(db, queue, registry.by_internal_id, app[appkeys.METRICS], clock)
    files = app[appkeys.FILES] = Files(
        db,
        storage,
        registry,
        queue,
        content,
        cfg,
        metrics=app[appkeys.METRICS],
        stats=app[appkeys.STATS],
        history=app[appkeys.HISTORY],
        clock=clock,
    )
    app[appkeys.UPLOADS] = Uploads(db, storage, registry, files, cfg, clock)
    app[appkeys.TRASH] = Trash(db, files, clock)
    events = app[appkeys.EVENTS] = EventReceiver(
        files,
        SubscriptionConfirmer(cfg.events.sns_origins, timeout=cfg.storage.check_timeout),
        app[appkeys.METRICS],
        answer_within=cfg.events.answer_within,
        seen=registry.event_seen,
    )
    deep_scrub = app[appkeys.DEEP_SCRUB] = DeepScrubber(
        db,
        storage,
        registry,
        queue,
        cfg.scrub,
        app[appkeys.METRICS],
        lease_seconds=cfg.periodic.lease_seconds,
        clock=clock,
    )
    integrity = app[appkeys.INTEGRITY] = Integrity(
        db, storage, registry, content, deep_scrub, cfg.integrity, metrics=app[appkeys.METRICS], clock=clock
    )
    files.stored_again = integrity.stored_again  # a storage event for a stored version's key: re-checked
    replicator = Replicator(
        db, storage, registry, queue, content, retry_delay=cfg.health.interval, metrics=app[appkeys.METRICS]
    )
    registry.listeners.append(replicator.server_changed)
    app[appkeys.WORKER] = JobWorker(
        queue, registry.available_ids, replicator.handlers, cfg.jobs, health_interval=cfg.health.interval
    )
    app[appkeys.IMPORTS] = Imports(
        db, storage, registry, app[appkeys.ACCOUNTS], queue, cfg.imports, cfg.periodic.lease_seconds, clock
    )
    app[appkeys.HEALTH] = HealthChecker(registry, storage, queue, cfg.health.timeout)
    app[appkeys.SCRUB] = Scrubber(db, storage, registry, queue, cfg.scrub.stale_upload_after)
    yield
    await events.close()  # (events still being handled after their answer: the sweep confirms theirs)


async def share_links(app: web.Application) -> AsyncIterator[None]:
    cfg, clock = app[appkeys.CONFIG], app[appkeys.CLOCK]
    archives = Archives(app[appkeys.STORAGE], app[appkeys.FILES], app[appkeys.METRICS], cfg.links.max_archives)
    links = app[appkeys.LINKS] = Links(
        app[appkeys.DB], app[appkeys.FILES], app[appkeys.ACCOUNTS].passwords, cfg, archives, clock
    )
    app[appkeys.CONTENT].stored_listeners.append(links.version_stored)  # the link an upload asked for
    app[appkeys.REQUESTS] = UploadRequests(
        app[appkeys.DB], app[appkeys.FILES], app[appkeys.ACCOUNTS].passwords, cfg, clock
    )
    yield


async def webhooks(app: web.Application) -> AsyncIterator[None]:
    cfg, db, clock = app[appkeys.CONFIG], app[appkeys.DB], app[appkeys.CLOCK]
    queue = app[appkeys.WEBHOOK_QUEUE] = WebhookQueue(db, cfg.webhooks, clock.time)
    await db.listen(webhook_queue.CHANNEL, queue.wake)  # deliveries were emitted, on any daemon
    subscriptions = app[appkeys.SUBSCRIPTIONS] = Subscriptions(db)
    await subscriptions.load()
    sealer = Sealer(cfg.auth.secret_key, SEALING_PURPOSE)
    app[appkeys.WEBHOOKS] = Webhooks(db, queue, subscriptions, sealer, cfg.webhooks, clock)
    app[appkeys.WEBHOOK_WORKER] = WebhookWorker(queue, sealer, cfg.webhooks, app[appkeys.METRICS])
    with subscriptions.listening():  # history.record emits the users' events this copy says are taken
        yield


async def background_work(app: web.Application) -> AsyncIterator[None]:
    """The job worker and the periodic work (on the daemon holding each one's lease); stopped before S3 and
    the database close."""
    cfg, db = app[appkeys.CONFIG], app[appkeys.DB]
    if db.one_daemon:  # SQLite: a lease found at start is a dead process's
        with contextlib.suppress(DatabaseUnavailable):  # (the disk refuses writes: they run out instead)
            await leases.forget_all(db)
    holder = leases.daemon_id()

    def lease(name: str) -> leases.Lease:
        return leases.Lease(db, name, holder, cfg.periodic.lease_seconds)

    tasks = {
        "jobs": app[appkeys.WORKER].run(),
        "webhooks": app[appkeys.WEBHOOK_WORKER].run(),
        "webhook-log": every_exclusively(
            lease("webhook-log"), LOG_PRUNE_INTERVAL, app[appkeys.WEBHOOK_QUEUE].prune, "webhook-log"
        ),
        "cache-sync": cache_sync(app).run(),
        "health": every_exclusively(lease("health"), cfg.health.interval, app[appkeys.HEALTH].check_all, "health"),
        # (every fast_sweep_interval: servers whose events are not seen; the others every sweep_interval)
        "upload-sweep": every_exclusively(
            lease("upload-sweep"),
            min(cfg.uploads.fast_sweep_interval, cfg.uploads.sweep_interval),
            app[appkeys.UPLOADS].sweep_due,
            "upload-sweep",
        ),
        # (each import runs under a lease of its own: every daemon looks, one runs it)
        "imports": every(cfg.imports.poll_interval, app[appkeys.IMPORTS].run_pending, "imports"),
        "verify": every_exclusively(
            lease("verify"), cfg.integrity.verify_interval, app[appkeys.INTEGRITY].verify, "verify"
        ),
        "rechecks": app[appkeys.INTEGRITY].run_rechecks(),
        "file-expiry": every_exclusively(
            lease("file-expiry"), cfg.files.sweep_interval, app[appkeys.TRASH].sweep, "file-expiry"
        ),
        "geoip": every(GEOIP_LOOK_EVERY, functools.partial(geoip_current, app), "geoip"),
    }
    if cfg.storage.probe_interval:  # (servers never probed, e.g. registered by an older cdnstore: at once)
        registry = app[appkeys.SERVERS]
        tasks["probe"] = every_exclusively(
            lease("probe"),
            min(3600.0, cfg.storage.probe_interval),
            functools.partial(registry.probe_due, cfg.storage.probe_interval),
            "probe",
        )
    if cfg.scrub.interval:
        tasks["scrub"] = every_exclusively(
            lease("scrub"), cfg.scrub.interval, app[appkeys.SCRUB].scrub, "scrub", first_after=cfg.scrub.interval
        )
    if cfg.scrub.deep_interval:
        tasks["deep-scrub"] = app[appkeys.DEEP_SCRUB].run()
    async with running(tasks):
        yield
        await app[appkeys.WORKER].stop(cfg.jobs.shutdown_grace)


def cache_sync(app: web.Application) -> CacheSync:
    """What reloads each in-memory copy when another daemon (or a tool) changed it: changes.py."""
    sync = CacheSync(app[appkeys.DB])
    sync.on(SERVERS, app[appkeys.SERVERS].load)
    sync.on(USERS, app[appkeys.ACCOUNTS].reload_users)
    sync.on(SESSIONS, app[appkeys.ACCOUNTS].reload_sessions)
    sync.on(KEYS, app[appkeys.KEYS].reload)
    sync.on(WEBHOOKS, app[appkeys.SUBSCRIPTIONS].load)
    return sync


async def stop_taking_jobs(app: web.Application) -> None:
    """At shutdown, as the listening sockets close: no new job starts, and the grace period of the running
    ones starts now (in-flight requests are awaited meanwhile; background_work's cleanup waits out the rest)."""
    app[appkeys.WORKER].stop_claiming(app[appkeys.CONFIG].jobs.shutdown_grace)
