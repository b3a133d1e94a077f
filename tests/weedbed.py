"""Helpers for tests against real SeaweedFS servers: credentials, names, ports, a webhook sink."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

ACCESS_KEY = "cdnkey"
SECRET_KEY = "cdnsecret12345"


def new_bucket() -> str:
    """A fresh, valid S3 bucket name (lowercase, 3..63 chars)."""
    return f"t-{uuid.uuid4().hex[:16]}"


def unused_port() -> int:
    """A loopback port that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def md5_of_get(http: aiohttp.ClientSession, url: str) -> tuple[str, int, Mapping[str, str]]:
    """MD5 hex, byte count and headers of a GET, streamed (the body is never held whole)."""
    digest = hashlib.md5()
    count = 0
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        async for chunk in resp.content.iter_chunked(1 << 20):
            digest.update(chunk)
            count += len(chunk)
        return digest.hexdigest(), count, resp.headers


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
