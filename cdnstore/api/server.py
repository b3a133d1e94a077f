"""How the app is served: aiohttp's server, with the requests it cannot parse answered as problem+json.

aiohttp answers a request it cannot parse (a header field or request line over its limit, too many
header fields, broken syntax) itself, before any middleware runs, in plain text. `ProblemRequestHandler`
answers them like every other error: 431 `headers_too_large`, 414 `uri_too_long`, 400 `bad_request`.
`serve()` runs the daemon with it (`cdnstore serve`). The parser's limits come from the app
(`handler_args`, set by create_app from `http.max_header_bytes`), so they hold under any runner; header
fields that are each within the limit but too large together are refused by the problems middleware
(`problems.check_header_size`), so under any runner too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from ..errors import BadRequest, CdnError, HeadersTooLarge, UriTooLong
from .problems import from_error, problem

log = logging.getLogger("cdnstore.requests")

MAX_REQUEST_LINE = 8190  # bytes of the request target (aiohttp's default; RFC 9112 asks for 8000 at least)
MAX_HEADER_FIELDS = 128  # header fields in one request (aiohttp's default)


def handler_args(max_header_bytes: int) -> dict[str, Any]:
    """aiohttp's parser limits for `http.max_header_bytes` (web.Application's handler_args). The request
    line's limit is kept apart from the field limit, by a byte if need be, so a LineTooLong says which."""
    line = MAX_REQUEST_LINE if max_header_bytes != MAX_REQUEST_LINE else MAX_REQUEST_LINE - 1
    return {"max_line_size": line, "max_field_size": max_header_bytes, "max_headers": MAX_HEADER_FIELDS}


def parse_error(exc: BaseException | None, handler: web.RequestHandler) -> CdnError:
    """The problem for a request aiohttp's parser refused."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1]
        if limit == handler.max_line_size and limit != handler.max_field_size:
            return UriTooLong(f"the request target is longer than {limit} bytes", limit=limit)
        return HeadersTooLarge(f"a header field is longer than the {limit} bytes this server accepts", limit=limit)
    if isinstance(exc, BadHttpMessage) and exc.message.startswith("Too many headers"):
        return HeadersTooLarge(f"more than {handler.max_headers} header fields", limit=handler.max_headers)
    what = (exc.message if isinstance(exc, BadHttpMessage) else str(exc or "")).split("\n")[0].rstrip(":")
    return BadRequest(f"the request is not valid HTTP: {what[:200] or 'unreadable'}")


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering errors outside the app (unparsable requests) as problem+json."""

    __slots__ = ()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp's: an answer has begun, the connection is broken
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:  # an error outside the app's middlewares (500), or a handler's timeout (504)
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            code, title = ("timeout", "Timeout") if status == 504 else ("internal_error", "Internal error")
            response = problem(status, code, title, "The server failed to answer; the error was logged.")
        else:
            error = parse_error(exc, self)
            # One line, as for any answered request; the client's fault, so no traceback.
            log.info(
                "refused a request from %s: %d %s: %s",
                request.remote,
                error.status,
                error.code,
                error.detail,
                extra={"status": error.status},
            )
            response = from_error(error)
        response.force_close()  # the parser's state is lost: no further request on this connection
        return response


class ProblemServer(web.Server):
    """aiohttp's low-level server, with ProblemRequestHandler for each connection."""

    def __call__(self) -> web.RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """aiohttp's AppRunner, serving with ProblemServer."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # starts the app, as aiohttp's does
        return ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


async def serve(app: web.Application, *, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve `app` until SIGTERM or SIGINT, then stop as web.run_app does: the sockets close, requests
    in flight get `shutdown_timeout` seconds, the app's cleanup runs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    runner = AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    try:
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
