"""The outermost middleware: request id, request metrics and the one log line per request.

It sits on the hot download path, so it does only what it must: two clock reads, a header look-up,
a labelled-histogram observation (children cached in Metrics) and, unless `[log] requests = false`,
one INFO line whose text is formatted only if a handler emits it. aiohttp's access logger stays off.

The line names the path, except where the path carries a secret: a route with a `{token}` parameter (a
share link's capability: `/s/{token}`, `/api/v1/public/links/{token}...`), or with a free-form `{path}`
(the page's static files, `/static/{path}`, where a token pasted by mistake would land), is logged as its
template, so a log file never holds a working link. Ids in other routes (`/api/v1/files/{id}`) stay: they are
uuids that grant nothing without the caller's credentials, and an operator needs them to follow a
request. A path no route matched is the client's text: segments long enough to be a token are masked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..logs import REQUEST_ID, log_request
from ..metrics import Metrics

# Our own generator: the process's global one stays untouched (tests that draw from it, e.g. hypothesis,
# see no other thread move it).
_random = random.Random()

log = logging.getLogger("cdnstore.requests")

REQUEST_ID_HEADER = "X-Request-Id"
_sane_request_id = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}").fullmatch
UNMATCHED = "(unmatched)"  # the route label of requests no route matched (404, 405)
# A route whose path has one of these parameters is logged as its template: share links' and upload requests'
# tokens, and the upload_token a sender continues an upload with.
SECRET_PARAMETERS = ("{token}", "{upload_token}")
FREE_PATH_PARAMETER = "{path}"  # ... and so is one whose path has this one
_token_like = re.compile(r"[A-Za-z0-9_-]{32,}")  # share tokens are 43 characters of this alphabet


def new_request_id() -> str:
    # Unique enough to follow a request through the logs; not a secret (no syscall per request).
    return f"{_random.getrandbits(64):016x}"


def logged_path(request: web.BaseRequest) -> str:
    """The path as a log line may show it: no share-link token in it (see the module's docstring)."""
    resource = request.match_info.route.resource if isinstance(request, web.Request) else None
    if resource is None:
        return _token_like.sub("{redacted}", request.path)
    template = resource.canonical
    return (
        template if any(p in template for p in SECRET_PARAMETERS) or FREE_PATH_PARAMETER in template else request.path
    )


def observe(metrics: Metrics, *, log_requests: bool) -> Middleware:
    @web.middleware
    async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = perf_counter()
        rid = request.headers.get(REQUEST_ID_HEADER)
        if rid is None or _sane_request_id(rid) is None:
            rid = new_request_id()
        token = REQUEST_ID.set(rid)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = rid
            return response
        except web.HTTPException as exc:  # redirects (problems_middleware answers the errors)
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away before the answer (nginx's code for it)
            raise
        finally:
            elapsed = perf_counter() - start
            resource = request.match_info.route.resource
            metrics.request(request.method, UNMATCHED if resource is None else resource.canonical, status, elapsed)
            if log_requests:
                path = logged_path(request)
                ms = elapsed * 1000
                log_request(
                    log,
                    f"{request.method} {path} {status} {ms:.1f} ms",
                    {
                        "request_id": rid,
                        "method": request.method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(ms, 2),
                    },
                )
            REQUEST_ID.reset(token)

    return observe_middleware
