"""`cdnstore serve` in a process of its own, for tests that kill, stop and restart it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from apihelp import PASSWORD, Api, Session
from clihelp import cdnstore, clean_env
from conftest import make_config


def write_config(tmp_path: Path, port: int, **sections: dict[str, Any]) -> Path:
    """The tests' configuration as a config.toml (JSON scalars and lists are valid TOML)."""
    cfg = make_config(tmp_path, port, **sections)
    path = tmp_path / "config.toml"
    path.write_text("".join(f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
                            for section, keys in cfg.model_dump(mode="json").items()))
    return path


class Daemon:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _log_file(self) -> BinaryIO:
        return open(self.log, "ab")

    async def start(self) -> None:
        with self._log_file() as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cdnstore", "serve", cwd=self.config.parent, stdout=log, stderr=log,
                env={**clean_env(), "CDNSTORE_CONFIG": str(self.config)})
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                assert self.proc.returncode is None, self.log.read_text()
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

    async def stop(self, within: float) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), within)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


class RemoteApi(Api):
    """The test API client, talking to a daemon in another process."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.client = http  # type: ignore[assignment]  # same request() signature as the TestClient


async def admin_session(daemon: Daemon, http: aiohttp.ClientSession) -> Session:
    env = {"CDNSTORE_CONFIG": str(daemon.config)}
    made = cdnstore("user", "add", "root", "--admin", "--password-stdin", cwd=daemon.config.parent,
                    stdin=PASSWORD + "\n", env=env)
    assert made.returncode == 0, made.stderr
    return await RemoteApi(http).login("root")
