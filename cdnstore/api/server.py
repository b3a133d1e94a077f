"""How the app is served: aiohttp's server, with the requests it cannot parse answered as problem+json.

aiohttp answers a request it cannot parse (a header field or request line over its limit, too many
header fields, broken syntax) itself, before any middleware runs, in plain text. `ProblemRequestHandler`
answers them like every other error: 431 `headers_too_large`, 414 `uri_too_long`, 400 `bad_request`.
`serve()` runs the daemon with it (`cdnstore serve`). The parser's limits come from the app
(`handler_args`, set by create_app from `http.max_header_bytes`), so they hold under any runner; header
fields that are each within the limit but too large together are refused by the problems middleware
(`problems.check_header_size`), so under any runner too.

Connections are bounded too, so that idle ones cannot take the daemon down (1000 connections that never
sent a request once used up systemd's 1024 open files: accepts failed, logins timed out):

- a connection has `http.head_timeout` seconds to send a whole request head, from its opening or from the
  first byte after an idle wait (aiohttp has no such timeout: a connection sending nothing, or a head a byte
  at a time, was kept for its keep-alive time, an hour);
- a kept-alive connection waits `http.idle_timeout` seconds for its next request (aiohttp's keep-alive
  timeout);
- at most `http.max_connections` are open, fewer when the open-file limit allows fewer (the soft limit is
  raised towards the hard one first; `FILE_RESERVE` files stay for the database, the S3 clients and the
  rest). A connection beyond the cap closes the connection that has waited longest for a request head (idle:
  no request being handled), or is itself closed when every connection is busy; a WARNING says so once, and
  one INFO line when the connections are back under the cap, with how many were closed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from .. import appkeys
from ..config import Config
from ..errors import BadRequest, CdnError, HeadersTooLarge, UriTooLong
from .problems import from_error, problem

log = logging.getLogger("cdnstore.requests")

MAX_REQUEST_LINE = 8190  # bytes of the request target (aiohttp's default; RFC 9112 asks for 8000 at least)
MAX_HEADER_FIELDS = 128  # header fields in one request (aiohttp's default)


BACKLOG = 128  # connections the kernel holds for the daemon to accept (aiohttp's default)
# Open files kept for all but the client connections under the cap: the daemon's own (database, S3 clients,
# GeoIP, logs ...), and what the accept loop takes before the cap can act. asyncio accepts up to BACKLOG
# connections a loop turn, and one over the cap is closed three turns later (its transport is made, then its
# connection_made runs and closes the idle one it displaces, then that one's socket closes): meanwhile four
# turns' worth may be open beyond the cap. Less than that, and a flood of connections made accept fail with
# "Too many open files" (seen at 256).
FILE_RESERVE = 256 + 4 * BACKLOG
UNDER_CAP = 0.9  # back "under the cap" (the warning may come again) below this share of it
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message when accept finds no file left


def handler_args(max_header_bytes: int, idle_timeout: float) -> dict[str, Any]:
    """aiohttp's connection handler settings (web.Application's handler_args): the parser's limits for
    `http.max_header_bytes`, and the keep-alive time `http.idle_timeout`. The request line's limit is kept
    apart from the field limit, by a byte if need be, so a LineTooLong says which."""
    line = MAX_REQUEST_LINE if max_header_bytes != MAX_REQUEST_LINE else MAX_REQUEST_LINE - 1
    return {
        "max_line_size": line,
        "max_field_size": max_header_bytes,
        "max_headers": MAX_HEADER_FIELDS,
        "keepalive_timeout": idle_timeout,
    }


def connection_budget(cfg: Config) -> int:
    """How many client connections may be open: `http.max_connections`, or fewer when the open-file limit
    leaves fewer after the reserve (the database pool's connections, on PostgreSQL, added to it). The soft
    limit is raised towards the hard one first, as far as needed; a lower budget is logged (once, here)."""
    reserve = FILE_RESERVE + (cfg.database.pool_size if cfg.database.url else 0)
    wanted = cfg.http.max_connections + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
            except (ValueError, OSError):  # (not allowed here: the limit stays what it was)
                pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return cfg.http.max_connections
    budget = max(1, soft - reserve)
    log.warning(
        "the open-file limit (%d) allows %d client connections, fewer than http.max_connections (%d): "
        "raise it (systemd: LimitNOFILE) to serve more",
        soft,
        budget,
        cfg.http.max_connections,
    )
    return budget


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
    """aiohttp's connection handler, answering errors outside the app (unparsable requests) as problem+json,
    and closing a connection that does not send a whole request head within `head_timeout` seconds."""

    __slots__ = ("_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def waiting_for_a_request(self) -> bool:
        """The connection is idle: it waits for a request head (new, kept alive between requests, or sending a
        head that has not ended), not handling one or reading its body."""
        waiter = self._waiter  # (aiohttp's: set while its loop waits for the next whole request head)
        return waiter is not None and not waiter.done() and not self._force_close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_timer()  # a new connection owes a request head (the idle time is for after one)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:  # a whole head arrived
            self._stop_head_timer()
        elif data and self._head_timer is None and self.waiting_for_a_request():
            # A head begins after an idle wait: it has head_timeout from here, and the idle timer stops.
            self.keep_alive(True)
            self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.waiting_for_a_request():  # (not a request being handled, or its body arriving)
            self.force_close()

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
    """aiohttp's low-level server, with ProblemRequestHandler for each connection, and at most
    `max_connections` connections open (see the module's docstring)."""

    def __init__(self, *args: Any, max_connections: int, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.capped = False  # over the cap since the warning (until back under it)
        self.closed_idle = self.refused = 0  # connections closed at the cap, since the warning

    def __call__(self) -> web.RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, head_timeout=self.head_timeout, **self._kwargs)

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) > self.max_connections:
            self._make_room(handler)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        if self.capped and len(self._connections) < self.max_connections * UNDER_CAP:
            self.capped = False
            log.info(
                "connections back under the cap (%d open of %d): %d idle connection(s) closed and %d new one(s) "
                "refused meanwhile",
                len(self._connections),
                self.max_connections,
                self.closed_idle,
                self.refused,
            )

    def _make_room(self, new: web.RequestHandler) -> None:
        """One connection over the cap: close the one waiting longest for a request head (connections are
        kept in the order they came), else the new one."""
        if not self.capped:
            self.capped = True
            self.closed_idle = self.refused = 0
            log.warning(
                "%d connections are open, the most this daemon takes (http.max_connections, or the open-file "
                "limit): each new one now closes the longest idle one, or is refused while every one is busy "
                "(said once, until they are back under %d)",
                len(self._connections),
                int(self.max_connections * UNDER_CAP),
            )
        for old in self._connections:
            if old is not new and isinstance(old, ProblemRequestHandler) and old.waiting_for_a_request():
                old.force_close()
                self.closed_idle += 1
                return
        new.force_close()
        self.refused += 1


class AppRunner(web.AppRunner):
    """aiohttp's AppRunner, serving with ProblemServer, its limits from the app's configuration."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # starts the app, as aiohttp's does
        cfg = self._app[appkeys.CONFIG]
        return ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            max_connections=connection_budget(cfg),
            head_timeout=cfg.http.head_timeout,
            **server._kwargs,
        )


class QuietAcceptFailures:
    """The loop's exception handler while serving: an accept that found no file left (the open-file limit
    reached despite the cap: something else holds files) is one WARNING line a minute, not a traceback each
    time (asyncio waits a second and accepts again by itself); anything else goes to asyncio's handler."""

    def __init__(self) -> None:
        self.logged_at: float | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not str(context.get("message", "")).startswith(ACCEPT_FAILED):
            loop.default_exception_handler(context)
            return
        if self.logged_at is None or loop.time() - self.logged_at >= 60:
            self.logged_at = loop.time()
            log.warning("accepting a connection failed: no open file left (%s); trying again", context.get("exception"))


async def serve(app: web.Application, *, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve `app` until SIGTERM or SIGINT, then stop as web.run_app does: the sockets close, requests
    in flight get `shutdown_timeout` seconds, the app's cleanup runs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    loop.set_exception_handler(QuietAcceptFailures())
    runner = AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    try:
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
