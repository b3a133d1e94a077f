"""`cdnstore serve` in a process of its own, for tests that kill, stop and restart it."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from apihelp import PASSWORD, Api, Session
from clihelp import cdnstore, clean_env
from conftest import make_config
from weedbed import unused_port


def write_config(tmp_path: Path, port: int, **sections: dict[str, Any]) -> Path:
    """The tests' configuration as a config.toml (JSON scalars and lists are valid TOML)."""
    cfg = make_config(tmp_path, port, **sections)
    path = tmp_path / "config.toml"
    path.write_text(
        "".join(
            f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
            for section, keys in cfg.model_dump(mode="json").items()
        )
    )
    return path


class Daemon:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: asyncio.subprocess.Process | None = None
        self.open_files: int | None = None  # RLIMIT_NOFILE (soft and hard) of the next start; None: as ours

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _log_file(self) -> BinaryIO:
        return open(self.log, "ab")

    async def start(self) -> None:
        with self._log_file() as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cdnstore",
                "serve",
                cwd=self.config.parent,
                stdout=log,
                stderr=log,
                env={**clean_env(), "CDNSTORE_CONFIG": str(self.config)},
                preexec_fn=None if self.open_files is None else self._limit_open_files,
            )
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

    def _limit_open_files(self) -> None:
        """(In the child, before it runs cdnstore: as systemd's LimitNOFILE would.)"""
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

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
    made = cdnstore(
        "user", "add", "root", "--admin", "--password-stdin", cwd=daemon.config.parent, stdin=PASSWORD + "\n", env=env
    )
    assert made.returncode == 0, made.stderr
    return await RemoteApi(http).login("root")


# --- several daemons on one PostgreSQL database ---------------------------------------------------


class Cluster:
    """`count` real `cdnstore serve` processes sharing one PostgreSQL database (and one secret key), each on
    its own port and in its own folder (tmp_path/daemon<i>: config.toml, daemon.log). Daemon 0 listens on
    `first_port` (the tests' daemon_port, where the SeaweedFS webhooks go). `apis[i]` talks to daemon i,
    `admins[i]` is the administrator's session there (user root), `servers` the SeaweedFS test bed as
    registered once, through daemon 0, when `weed` and `bucket` are given. Leaving the block kills them all.

        async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, weed=weed, bucket=bucket) as c:
            a, b = c.admins  # one login per daemon
    """

    def __init__(
        self,
        tmp_path: Path,
        database_url: str,
        count: int,
        *,
        first_port: int,
        weed: Any = None,
        bucket: str | None = None,
        **sections: dict[str, Any],
    ) -> None:
        assert database_url.startswith("postgresql://"), "several daemons need PostgreSQL"
        self.daemons: list[Daemon] = []
        for i in range(count):
            folder = tmp_path / f"daemon{i}"
            folder.mkdir(exist_ok=True)
            port = first_port if i == 0 else unused_port()
            database = {**sections.get("database", {}), "url": database_url}
            config = write_config(folder, port, **{**sections, "database": database})
            self.daemons.append(Daemon(config, port, folder / "daemon.log"))
        self.weed, self.bucket = weed, bucket
        self.http: list[aiohttp.ClientSession] = []
        self.apis: list[RemoteApi] = []
        self.admins: list[Session] = []
        self.servers: dict[str, dict[str, Any]] = {}

    def __getitem__(self, i: int) -> Daemon:
        return self.daemons[i]

    async def __aenter__(self) -> Cluster:
        try:
            # Daemon 0 first, the servers registered through it, then the others: they start knowing the
            # servers, whether or not they would learn of them later (a test of that registers its own).
            await self.daemons[0].start()
            self.http = [aiohttp.ClientSession(base_url=d.url) for d in self.daemons]
            self.apis = [RemoteApi(http) for http in self.http]
            first = await admin_session(self.daemons[0], self.http[0])
            if self.weed is not None and self.bucket is not None:
                self.servers = await first.add_layout(self.weed, self.bucket)
            await asyncio.gather(*(d.start() for d in self.daemons[1:]))
            self.admins = [first, *[await api.login("root") for api in self.apis[1:]]]
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for http in self.http:
            await http.close()
        for daemon in self.daemons:
            daemon.kill()
            if daemon.proc is not None:
                await daemon.proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- daemon {i}\n{d.log.read_text() if d.log.exists() else ''}" for i, d in enumerate(self.daemons)
        )
