"""A throwaway PostgreSQL cluster for the tests (Debian's postgresql-15 binaries; see
shared notes/postgresql.md): initdb and start once per session (under a second), fsync off; each test
gets a fresh database copied from a migrated template (CREATE DATABASE ... TEMPLATE: milliseconds)."""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from weedbed import unused_port

from cdnstore.db.postgres import initialize

TEMPLATE = "cdnstore_template"


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PgCluster:
    def __init__(self) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): "
                               "`python3 dev.py test` installs them (apt-get install postgresql)")
        self.bin = found
        # Not under pytest's tmp_path: its folders are root's own (0700), and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="cdnstore-pg-"))
        self.port = unused_port()
        self._names = itertools.count()

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def url(self, database: str) -> str:
        return f"postgresql://cdnstore@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "cdnstore", "--no-sync", "-E", "UTF8")
        self.resume()
        self._admin(f"CREATE DATABASE {TEMPLATE}")
        asyncio.run(initialize(self.url(TEMPLATE)))

    def resume(self) -> None:
        """Start the server (again, after `crash`: it recovers from its WAL first), on the same port."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w", "start", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c full_page_writes=off -c max_connections=300")  # commits reach the WAL: a crash loses none

    def crash(self) -> None:
        """Stop the server the way a crash does (`-m immediate`: no checkpoint, connections cut)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self.crash()
        shutil.rmtree(self.root, ignore_errors=True)

    def fresh(self, template: str = TEMPLATE) -> str:
        """The URL of a new database holding cdnstore's empty schema (template1: an empty database)."""
        name = f"test_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def drop(self, url: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def _admin(self, sql: str) -> None:
        """One statement on the maintenance database (psql: these fixtures run outside any event loop)."""
        subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url("postgres"),
                        "-c", sql], check=True, capture_output=True, timeout=60)
