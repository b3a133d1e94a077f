"""`cdnstore serve` in processes of their own, set up as the tests set up their daemons: the test
configuration as a config file, an administrator's session, several daemons on one PostgreSQL database.
(The process itself is testbed/daemon.py's `Daemon`.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from apihelp import PASSWORD, Api, Session
from clihelp import cdnstore
from conftest import make_config

from testbed.daemon import Daemon
from testbed.daemon import write_config as write_toml
from testbed.memory_storage import MemoryStorage
from testbed.ports import unused_port


def write_config(tmp_path: Path, port: int, **sections: dict[str, Any]) -> Path:
    """The tests' configuration as a config.toml (JSON scalars and lists are valid TOML)."""
    return write_toml(tmp_path / "config.toml", make_config(tmp_path, port, **sections).model_dump(mode="json"))


class RemoteApi(Api):
    """The test API client, talking to a daemon in another process."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.client = http  # type: ignore[assignment]  # same request() signature as the TestClient

    def memory(self) -> MemoryStorage | None:
        return None  # (a daemon of its own process runs on real S3 servers)


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
