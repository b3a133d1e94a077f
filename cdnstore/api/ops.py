"""Routes: liveness and the API description."""

from __future__ import annotations

from aiohttp import web

from .. import appkeys
from .endpoint import endpoint, json_response
from .schemas import Health


@endpoint("GET", "/healthz", summary="Liveness", tag="operations", auth="none", responses={200: Health})
async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves."""
    return json_response({"status": "ok"})


@endpoint("GET", "/api/openapi.json", summary="This API's OpenAPI 3.1 document", tag="operations",
          auth="none", responses={200: "application/json"})
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[appkeys.OPENAPI])
