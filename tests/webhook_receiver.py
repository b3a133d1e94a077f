"""A real HTTP receiver of webhooks for the tests: an aiohttp server in a child process of its own, which
the tests start, kill and start again (on the same port and log) while deliveries go on.

Every request it gets is appended to its log (a JSON line, written before it answers: the log survives a
kill) with its headers and body, and answered as its mode says:

- `ok`: 204;
- `fail`: 500 with a body of 64 KiB (what cdnstore keeps of it is its status and first characters);
- `slow`: 204 after `--delay` seconds (past cdnstore's webhooks.timeout: a timed-out attempt);
- `hold`: never (until it is killed);
- `redirect`: 302 to /moved on the same receiver (which logs a request there, should one be followed).

Run as a script by `Receiver` below; it exits by itself when the process that started it is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

MODES = ("ok", "fail", "slow", "hold", "redirect")


def serve(port: int, log: Path, mode: str, delay: float) -> None:
    parent = os.getppid()

    async def receive(request: web.Request) -> web.StreamResponse:
        record = {
            "path": request.path,
            "mode": mode,
            "pid": os.getpid(),
            "at": time.time(),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
        }
        with log.open("a") as out:
            out.write(json.dumps(record) + "\n")
        if mode == "fail":
            return web.Response(status=500, text="internal trouble " + "x" * (64 << 10))
        if mode == "slow":
            await asyncio.sleep(delay)
        if mode == "hold":
            await asyncio.Event().wait()
        if mode == "redirect" and request.path != "/moved":
            raise web.HTTPFound("/moved")
        return web.Response(status=204)

    async def orphaned(app: web.Application) -> Any:
        async def watch() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(0.5)
            os._exit(0)  # the tests that started it are gone

        task = asyncio.create_task(watch())
        yield
        task.cancel()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receive)
    app.cleanup_ctx.append(orphaned)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


class Receiver:
    """The receiver as the tests see it: `url` to register, `start(mode)`, `kill()`, what it `received()`."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        self.log = folder / "received.jsonl"
        self.out = folder / "receiver.out"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, mode: str = "ok", *, delay: float = 0.0) -> None:
        """Start it (on its port, appending to its log), and return once it takes connections."""
        assert mode in MODES and (self.proc is None or self.proc.returncode is not None)
        with self.out.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--port",
                str(self.port),
                "--log",
                str(self.log),
                "--mode",
                mode,
                "--delay",
                str(delay),
                stdout=out,
                stderr=out,
            )
        async with asyncio.timeout(30):
            while True:
                assert self.proc.returncode is None, self.out.read_text()
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)  # polling, not synchronisation: the connection decides
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        """SIGKILL, and wait until it is gone (its port is free again)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def restart(self, mode: str = "ok", *, delay: float = 0.0) -> None:
        await self.kill()
        await self.start(mode, delay=delay)

    def received(self, path: str = "/hook") -> list[dict[str, Any]]:
        """Every request it got at `path`, in order, with the mode it was answered in."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().split("\n")[:-1]  # (the last: empty, or a line being written)
        return [r for r in map(json.loads, lines) if r["path"] == path]

    def taken(self) -> list[dict[str, Any]]:
        """The requests it answered 204 at once (mode ok)."""
        return [r for r in self.received() if r["mode"] == "ok"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    serve(args.port, args.log, args.mode, args.delay)
