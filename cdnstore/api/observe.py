"""The outermost middleware: request id, request metrics and the one log line per request.

It sits on the hot download path, so it does only what it must: two clock reads, a header look-up,
a labelled-histogram observation (children cached in Metrics) and, unless `[log] requests = false`,
one INFO line whose text is formatted only if a handler emits it. aiohttp's access logger stays off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..logs import REQUEST_ID
from ..metrics import Metrics

log = logging.getLogger("cdnstore.requests")

REQUEST_ID_HEADER = "X-Request-Id"
_sane_request_id = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}").fullmatch
UNMATCHED = "(unmatched)"  # the route label of requests no route matched (404, 405)


def new_request_id() -> str:
    # Unique enough to follow a request through the logs; not a secret (no syscall per request).
    return f"{random.getrandbits(64):016x}"


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
                log.info("%s %s %d %.1f ms", request.method, request.path, status, elapsed * 1000,
                         extra={"request_id": rid, "method": request.method, "path": request.path,
                                "status": status, "duration_ms": round(elapsed * 1000, 2)})
            REQUEST_ID.reset(token)

    return observe_middleware
