"""A webhook sink: a tiny HTTP server on 127.0.0.1 that records what storage servers (or cdnstore) send it,
for tests of what is sent where."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]  # ({} when there was none)
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class WebhookSink:
    """A tiny HTTP server on 127.0.0.1 that records every request it gets (a webhook's POSTs, the GET of an
    SNS subscription's confirmation) and answers 204."""

    received: list[Hook] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)  # port 0: the kernel picks, no race
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        hook = Hook(request.path, dict(request.headers), json.loads(raw) if raw else {}, request.method)
        hook.query = dict(request.query)
        self.received.append(hook)
        self._arrived.set()
        return web.Response(status=204)

    async def wait_for(self, match: Callable[[Hook], bool], timeout: float = 10) -> Hook:  # noqa: ASYNC109
        """The first received hook that `match`es, waiting for it up to `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                for hook in self.received:
                    if match(hook):
                        return hook
                self._arrived.clear()
                await self._arrived.wait()
