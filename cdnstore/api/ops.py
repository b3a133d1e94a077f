"""Routes: liveness, readiness, metrics and the API description."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from aiohttp import web

from .. import appkeys
from ..errors import DatabaseUnavailable, Forbidden, Unauthorized
from ..geo import GeoLocator
from ..job_queue import KINDS, STATUSES
from ..metrics import CONTENT_TYPE
from ..models import Health, Readiness
from ..times import iso
from .endpoint import Router, json_response
from .schemas import LivenessOut, Ready
from .security import bearer

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints

log = logging.getLogger(__name__)

READY_DB_WAIT = 2.0  # seconds /readyz waits for the database's write lock
# What /readyz says of a database that refuses writes, by DatabaseUnavailable.reason: fixed words, never
# the database's own error text (the probe is public); the details are in the log (db.py logs them).
REFUSED = {
    "disk_full": "writes are refused: the disk is full",
    "disk_error": "writes are refused: the disk failed",
    "read_only": "writes are refused: the file system is read-only",
    "unreachable": "the database cannot be reached",
}


@endpoint("GET", "/healthz", summary="Liveness", tag="operations", auth="none", responses={200: LivenessOut})
async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves."""
    return json_response({"status": Readiness.OK})


@endpoint("GET", "/readyz", summary="Readiness", tag="operations", auth="none", responses={200: Ready, 503: Ready})
async def readyz(request: web.Request) -> web.Response:
    """200 when the database takes a write (one page, really written: a full disk shows) and at least one
    storage server that is on is up; else 503 (so a new installation until its first server is registered).
    Each check says what it found, in fixed words (this route is public: the database's own error text goes
    to the log only); `geoip` names the GeoIP database in use and when it was built (never failing: an old
    one still places most clients, but says so)."""
    checks = {
        "database": await _database_check(request.app),
        "servers": _servers_check(request.app),
        "geoip": geoip_check(request.app[appkeys.GEO]),
    }
    ok = all(check["ok"] for check in checks.values())
    return json_response(
        {"status": Readiness.OK if ok else Readiness.UNAVAILABLE, "checks": checks}, status=200 if ok else 503
    )


async def _database_check(app: web.Application) -> dict[str, object]:
    try:
        await app[appkeys.DB].check_writable(READY_DB_WAIT)
    except TimeoutError:
        return {"ok": False, "detail": f"no write transaction could start within {READY_DB_WAIT:g} s"}
    except DatabaseUnavailable as exc:  # logged by db.py when writes started failing
        return {"ok": False, "detail": REFUSED.get(exc.reason, "writes are refused")}
    except Exception:
        log.exception("readiness: the database failed its test write")
        return {"ok": False, "detail": "the test write failed (the log says why)"}
    return {"ok": True, "detail": "writable"}


def _servers_check(app: web.Application) -> dict[str, object]:
    on = [s for s in app[appkeys.SERVERS].all() if s.is_on]
    up = sum(s.health is Health.UP for s in on)
    return {"ok": up > 0, "detail": f"{up} of {len(on)} server(s) that are on are up"}


# Headers a proxy adds when it passes a request on: a request that carries one came from elsewhere.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def from_this_machine(request: web.Request) -> bool:
    """The request came straight from this machine: a loopback peer, and no proxy's forwarding header (a
    reverse proxy on this machine is a loopback peer too, passing on requests from anywhere)."""
    try:
        peer = ipaddress.ip_address((request.remote or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return peer.is_loopback and not any(name in request.headers for name in FORWARDING_HEADERS)


def geoip_check(locator: GeoLocator) -> dict[str, object]:
    detail = locator.describe()
    if locator.outdated():
        detail += ': over a year old, update it (docs/operations.md, "GeoIP data")'
    return {"ok": True, "detail": detail, "built_at": iso(locator.built_at.timestamp(), timespec="seconds")}


def _check_metrics_token(request: web.Request) -> None:
    """With `http.metrics_token` set, the scraper must send it as a bearer token (compared in constant time);
    without one, /metrics answers this machine only (`from_this_machine`), 403 to anyone else."""
    expected = request.app[appkeys.CONFIG].http.metrics_token
    if not expected:
        if not from_this_machine(request):
            raise Forbidden(
                "/metrics answers this machine only (not through a proxy) while http.metrics_token is empty; "
                "set it to scrape from elsewhere",
                code="metrics_not_local",
            )
        return
    try:
        sent = bearer(request)
    except Unauthorized:
        raise Unauthorized("/metrics asks for Authorization: Bearer <http.metrics_token>") from None
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Unauthorized("wrong metrics token")


@endpoint(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    tag="operations",
    auth="none",
    responses={200: "text/plain"},
    errors=(401, 403),
)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: requests by route and status with latency histograms, uploads and
    downloads by server, bytes replicated, jobs by kind and state, server health, whether the database
    takes writes and the download history waiting to be written; what the deep scrub read, verified and
    found corrupt, the corrupt replicas by server and the versions with no good copy left. With
    `http.metrics_token` set, only with `Authorization: Bearer <http.metrics_token>` (401 otherwise);
    empty, only to a client on this machine that is not a proxy passing a request on (403
    `metrics_not_local` otherwise)."""
    _check_metrics_token(request)
    app = request.app
    counts = await app[appkeys.JOBS].counts()
    registry, metrics = app[appkeys.SERVERS], app[appkeys.METRICS]
    metrics.set_jobs(KINDS, STATUSES, ((c.kind, c.status, c.n) for c in counts))
    metrics.set_servers((s.name, s.is_on, s.health is Health.UP) for s in registry.all())
    metrics.set_database(app[appkeys.DB].unavailable is None, app[appkeys.HISTORY].pending)
    found = await app[appkeys.DEEP_SCRUB].findings()
    metrics.set_integrity(((s.name, found.of(s.pk).corrupt) for s in registry.all()), found.without_good_holder)
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


@endpoint(
    "GET",
    "/api/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    tag="operations",
    auth="none",
    responses={200: "application/json"},
)
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[appkeys.OPENAPI])
