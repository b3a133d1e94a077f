"""One middleware turns every error into application/problem+json (RFC 9457), a storage server's failure
into 503 `storage_unavailable` with a fixed sentence (the details to the log), and refuses requests whose
header fields are too large together (431; aiohttp's parser refuses a single field over the limit, and
api/server.py answers that as problem+json too)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import appkeys
from ..errors import CdnError, HeadersTooLarge, StorageError, StorageUnavailable
from .headers import BASE_HEADERS
from .observe import logged_path

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

# aiohttp's own HTTP errors (unknown route, wrong method, body too large) get stable codes too.
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int, code: str, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    body = {
        "type": f"urn:cdnstore:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    # BASE_HEADERS here too: answers made outside the app (api/server.py) get no on_response_prepare.
    return web.Response(
        status=status, text=json.dumps(body), content_type=PROBLEM_TYPE, headers={**BASE_HEADERS, **(headers or {})}
    )


def from_error(exc: CdnError) -> web.Response:
    extra = {k: v for k, v in exc.extra.items() if k not in {"type", "title", "status", "detail", "code"}}
    return problem(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, **extra)


def check_header_size(request: web.BaseRequest, limit: int) -> None:
    """431 when the header fields together (names, values, ': ' and CRLF) are larger than `limit`;
    the parser has already refused any single field larger than that."""
    raw = request.raw_headers
    total = sum(len(name) + len(value) for name, value in raw) + 4 * len(raw)
    if total > limit:
        name, value = max(raw, key=lambda field: len(field[0]) + len(field[1]))
        field = name.decode("latin-1")[:64]
        raise HeadersTooLarge(
            f"the header fields take {total} bytes, more than the {limit} this server accepts "
            f"(the largest is {field}, {len(name) + len(value) + 4} bytes)",
            limit=limit,
            field=field,
        )


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_header_size(request, request.app[appkeys.CONFIG].http.max_header_bytes)
        return await handler(request)
    except StorageError as exc:
        # Its detail names the server's address, the bucket, the key and the upload id: the log's, not the
        # caller's (who gets one sentence and when to try again).
        log.warning("%s %s: a storage call failed (%s): %s", request.method, logged_path(request), exc.code, exc.detail)
        return from_error(StorageUnavailable())
    except CdnError as exc:
        return from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return problem(exc.status, code, exc.reason, exc.text or exc.reason, headers=headers)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, logged_path(request))
        return problem(500, "internal_error", "Internal error", "The server failed to answer; the error was logged.")
