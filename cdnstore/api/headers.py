"""Headers on every answer: `X-Content-Type-Options: nosniff`, a `Server` that names no versions, and
`Cache-Control: no-store` on API answers that set no caching of their own.

They are set in the app's on_response_prepare signal, so they reach every answer the app sends (pages,
static files, API answers, problems, 404s of unknown routes, redirects), whichever code made it. The
answers aiohttp's connection handler makes before the app runs (unparsable requests, api/server.py)
get BASE_HEADERS from `problems.problem`.

API answers carry access and refresh tokens, presigned URLs (whoever holds one gets the file) and the
caller's own data: no cache, shared or private, may keep them.
"""

from __future__ import annotations

from aiohttp import web

SERVER = "cdnstore"  # aiohttp's default names Python's and aiohttp's versions
BASE_HEADERS = {"Server": SERVER, "X-Content-Type-Options": "nosniff"}
API_PREFIX = "/api/"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.update(BASE_HEADERS)
    if request.path.startswith(API_PREFIX) and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
