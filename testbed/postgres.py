"""A throwaway PostgreSQL cluster on this machine, for `cdnstore demo --daemons N` and the tests
(tests/pgbed.py builds on it): Debian's server binaries (/usr/lib/postgresql/*/bin), a data folder of its
own, started in under a second with fsync off (nothing in it is meant to outlive it), stopped and removed
at the end. As root, the server runs as the `postgres` user (initdb refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "apt-get install postgresql"


def bindir() -> Path | None:
    """Where the newest installed PostgreSQL server's binaries are, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    """A loopback port that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    def __init__(self, port: int | None = None) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError(f"no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): {INSTALL_HINT}")
        self.bin = found
        # Not under a root-only folder (pytest's tmp_path is 0700): the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="cdnstore-pg-"))
        self.port = port or free_port()

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def url(self, database: str) -> str:
        return f"postgresql://cdnstore@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb (user cdnstore, trusted on loopback only) and start."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "cdnstore", "--no-sync", "-E", "UTF8")
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after `crash`: it recovers from its WAL first), on the same port."""
        self._run(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300",
        )  # commits reach the WAL: a crash loses none

    def crash(self) -> None:
        """Stop the server the way a crash does (`-m immediate`: no checkpoint, connections cut)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and remove everything it kept."""
        try:
            self.crash()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str, template: str = "template1") -> str:
        """A new, empty database (or a copy of `template`); its URL."""
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def admin(self, sql: str) -> None:
        """One statement on the maintenance database (psql: callers may run outside any event loop)."""
        subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url("postgres"), "-c", sql],
            check=True,
            capture_output=True,
            timeout=60,
        )
