"""A throwaway PostgreSQL cluster on this machine, for the tests, the benchmarks and `cdnstore demo
--daemons N`: Debian's server binaries (/usr/lib/postgresql/*/bin), a data folder of its own, stopped and
removed at the end. As root, the server runs as the `postgres` user (initdb refuses root).

By default it starts in under a second with fsync off (nothing in it is meant to outlive it; commits still
reach the WAL, so `crash` + `resume` loses none). `durable=True` keeps the server's default settings
(fsync and synchronous_commit on: a commit waits for its WAL flush), for the benchmarks that compare the
engines. `schema_template=True` also makes a database holding cdnstore's empty schema, which `fresh()`
copies for each test (CREATE DATABASE ... TEMPLATE: 0.15-0.5 s here, most of a PostgreSQL test's set-up);
`ahead=N` has a thread keep N such copies made in advance and drop the used ones, so a test waits for
neither while the server works on the other core; that thread keeps one connection to the server for them (a
psql process per statement cost ~10 ms of CPU, twice per test) and copies the files of the template (FILE_COPY:
with fsync off its checkpoints are cheap; WAL_LOG, PostgreSQL 15's default, writes every page to the WAL and
took twice as long)."""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import asyncpg

from cdnstore.db.postgres import initialize

from .ports import unused_port

INSTALL_HINT = "apt-get install postgresql"
TEMPLATE = "cdnstore_template"  # cdnstore's empty schema, with schema_template=True


def bindir() -> Path | None:
    """Where the newest installed PostgreSQL server's binaries are, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PgCluster:
    def __init__(
        self,
        root: Path | None = None,
        *,
        durable: bool = False,
        max_connections: int = 300,
        schema_template: bool = False,
        ahead: int = 0,
    ) -> None:
        """`root`: the (new or empty) folder it keeps everything in; by default a new one under the system's
        temporary folder (not under a root-only folder such as pytest's tmp_path: the server runs as
        postgres; a `root` of the caller's gets its parent opened to others for that). `ahead`: how many
        copies of the schema template `fresh()` keeps made in advance (0: each made when asked for)."""
        found = bindir()
        if found is None:
            raise RuntimeError(f"no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): {INSTALL_HINT}")
        self.bin = found
        self._own_parent = root is not None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cdnstore-pg-"))
        self.port = unused_port()
        self.durable = durable
        self.max_connections = max_connections
        self.schema_template = schema_template
        self._names = itertools.count()
        self._ahead = ahead
        # One thread, so that the copies and the drops reach the server one at a time, in order.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="pg-ahead") if ahead else None
        self._made: deque[Future[str]] = deque()
        # The ahead thread's own event loop and connection to the maintenance database (made there when first used).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: asyncpg.Connection | None = None
        # CREATE DATABASE ... STRATEGY exists from PostgreSQL 15 (/usr/lib/postgresql/<major>/bin).
        self._copy = " STRATEGY FILE_COPY" if self.bin.parent.name.isdigit() and int(self.bin.parent.name) >= 15 else ""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        """The server's log (pg_ctl -l)."""
        return self.root / "log"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def url(self, database: str) -> str:
        return f"postgresql://cdnstore@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb (user cdnstore, trusted on loopback only) and start; then the schema template, if asked."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            if self._own_parent:  # the server must reach its folder through the caller's
                parent = self.root.resolve().parent
                parent.chmod(parent.stat().st_mode | 0o011)
        sync = () if self.durable else ("--no-sync",)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "cdnstore", *sync, "-E", "UTF8")
        self.resume()
        if self.schema_template:
            self.admin(f"CREATE DATABASE {TEMPLATE}")
            asyncio.run(initialize(self.url(TEMPLATE)))

    def resume(self) -> None:
        """Start the server (again, after `crash`: it recovers from its WAL first), on the same port."""
        settings = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections={self.max_connections}"
        )
        if not self.durable:
            settings += " -c fsync=off -c full_page_writes=off"  # commits reach the WAL: a crash loses none
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start", "-o", settings)

    def crash(self) -> None:
        """Stop the server the way a crash does (`-m immediate`: no checkpoint, connections cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and remove everything it kept."""
        if self._worker is not None:
            self._worker.shutdown(cancel_futures=True)
            self._close_thread_connection()
        try:
            self.crash()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str, template: str = "template1") -> str:
        """A new, empty database (or a copy of `template`); its URL."""
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def fresh(self, template: str = TEMPLATE) -> str:
        """The URL of a new database, named for the count: a copy of `template` (by default cdnstore's empty
        schema; template1 for an empty database)."""
        if self._worker is None or template != TEMPLATE:
            return self.create_database(self._name(), template)
        while len(self._made) <= self._ahead:  # the one handed out now, and `ahead` more in the making
            self._made.append(self._worker.submit(self._make_ahead, self._name()))
        try:
            return self._made.popleft().result()
        except subprocess.CalledProcessError:  # made while the server was down (a test crashed it): again
            return self.create_database(self._name(), TEMPLATE)

    def drop(self, url: str) -> None:
        """Drop the database (connections to it cut); with `ahead`, in the thread, without waiting."""
        if self._worker is None:
            self._drop(url)
        else:
            # A drop that fails (the server crashed by a test) leaves a database behind: harmless here.
            self._worker.submit(self._on_thread, self._drop_sql(url))

    def _drop(self, url: str) -> None:
        self.admin(self._drop_sql(url))

    @staticmethod
    def _drop_sql(url: str) -> str:
        return f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"

    # --- the ahead thread's statements: through its one connection, else (the server was down) through psql ---

    def _make_ahead(self, name: str) -> str:
        self._on_thread(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}{self._copy}")
        return self.url(name)

    def _on_thread(self, sql: str) -> None:
        """Run `sql` through the thread's connection; if that fails to connect or is cut (a test crashed the
        server), through psql, whose error (CalledProcessError) is what `fresh()` expects of a server down."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._execute(sql))
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError):  # (psql says what it was, if it fails too)
            self._close_thread_connection(keep_loop=True)
            self.admin(sql)

    async def _execute(self, sql: str) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.url("postgres"))
        await self._conn.execute(sql)

    def _close_thread_connection(self, *, keep_loop: bool = False) -> None:
        """(Once the thread is done: its loop runs nowhere else.)"""
        if self._loop is None:
            return
        if self._conn is not None:
            try:
                self._loop.run_until_complete(asyncio.wait_for(self._conn.close(), 5))
            except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError):
                self._conn.terminate()
            self._conn = None
        if not keep_loop:
            self._loop.close()
            self._loop = None

    def _name(self) -> str:
        return f"fresh_{next(self._names)}"

    def admin(self, sql: str) -> None:
        """One statement on the maintenance database (psql: callers may run outside any event loop)."""
        self.query(sql)

    def query(self, sql: str) -> str:
        """One statement on the maintenance database; what it printed, unaligned and without headers."""
        psql = [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        return subprocess.run(
            [*psql, "-d", self.url("postgres"), "-c", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
