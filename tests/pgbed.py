"""A throwaway PostgreSQL cluster for the tests (cdnstore/pgcluster.py, as `cdnstore demo --daemons 2`
starts it; see shared notes/postgresql.md): initdb and start once per session (under a second), fsync off;
each test gets a fresh database copied from a migrated template (CREATE DATABASE ... TEMPLATE: milliseconds)."""

from __future__ import annotations

import asyncio
import itertools

from weedbed import unused_port

from cdnstore.db.postgres import initialize
from cdnstore.pgcluster import PgCluster as Cluster
from cdnstore.pgcluster import bindir

__all__ = ["TEMPLATE", "PgCluster", "bindir"]

TEMPLATE = "cdnstore_template"


class PgCluster(Cluster):
    def __init__(self) -> None:
        super().__init__(unused_port())
        self._names = itertools.count()

    def start(self) -> None:
        super().start()
        self._admin(f"CREATE DATABASE {TEMPLATE}")
        asyncio.run(initialize(self.url(TEMPLATE)))

    def fresh(self, template: str = TEMPLATE) -> str:
        """The URL of a new database holding cdnstore's empty schema (template1: an empty database)."""
        return self.create_database(f"test_{next(self._names)}", template)

    def drop(self, url: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def _admin(self, sql: str) -> None:
        self.admin(sql)
