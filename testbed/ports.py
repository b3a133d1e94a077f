"""Loopback ports for the beds and the daemons they run beside, and the wait for a server started on one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp


def unused_port() -> int:
    """A loopback port that nothing listens on (right now: the kernel's pick, for one listener)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1 and on all interfaces. Go's servers (weed) probe `:port`
    before binding 127.0.0.1, hence both; SO_REUSEADDR mirrors Go's listeners: a port in TIME_WAIT is usable."""
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


async def until_ok(url: str, running: Callable[[], None], within: float) -> None:
    """Until a GET of `url` (a server just started) answers 200; `running()` before each try raises when the
    process that should answer has exited. TimeoutError after `within` seconds."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(within):
        while True:
            running()
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
