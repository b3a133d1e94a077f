"""The data layer: one interface (`Database`, `Tx`), two engines.

- `base.py`: the interface use cases see, stored times, the numbered migrations;
- `sqlite.py`: SQLite, the zero-setup default (one writer on the event loop, big work on threads);
- `postgres.py`: PostgreSQL through asyncpg (a pool; transactions side by side);
- `dialect.py`: SQL is written once in SQLite's spelling (plus PostgreSQL's row locks) and translated for each
  engine there;
- `copy.py`: `cdnstore copy-database`, everything of one database into an empty PostgreSQL one;
- `leases.py`: named leases (work that runs on one daemon at a time);
- `throttles.py`: where throttles count failures (`Database.failures`: memory for one daemon, a table for several);
- `schema.py`: the schema files generated from the migrations (`python3 dev.py schema`).

Nothing outside this package asks which engine it runs on: what differs in meaning is said by `Database`
(`one_daemon`, `write_ahead`, `failures`), what differs in spelling by the dialect.

Stored times (`iso`, `now_iso`, `iso_in`) are cdnstore/times.py's; they are passed on here for the modules
that import them from `db`.

`connect(cfg)` picks the engine from `database.url` (empty: SQLite at `database.path`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import DatabaseConfig
from ..times import iso, iso_in, now_iso
from .base import (
    RESYNC,
    Database,
    Listener,
    Params,
    Row,
    UniqueViolation,
    latest_version,
    migrations,
    schema_sql,
)
from .sqlite import PRAGMAS, InlineTx, SqliteDatabase, SqliteTx, disk_error, initialize, private_file

if TYPE_CHECKING:
    from .postgres import PgTx

    Tx = SqliteTx | PgTx
else:
    Tx = object  # a name to import; only type checkers look at it

__all__ = [
    "PRAGMAS",
    "RESYNC",
    "Database",
    "InlineTx",
    "Listener",
    "Params",
    "Row",
    "SqliteDatabase",
    "Tx",
    "UniqueViolation",
    "connect",
    "disk_error",
    "initialize",
    "iso",
    "iso_in",
    "latest_version",
    "migrations",
    "now_iso",
    "private_file",
    "schema_sql",
    "tx_fetchall",
    "tx_fetchone",
]


def connect(cfg: DatabaseConfig) -> Database:
    """The database `cfg` names (not opened yet: `await db.open()`)."""
    if cfg.url:
        from .postgres import PostgresDatabase

        return PostgresDatabase(cfg.url, pool_size=cfg.pool_size)
    return SqliteDatabase(cfg.path)


async def tx_fetchone(tx: Tx, sql: str, params: Params = ()) -> Row | None:
    async with tx.execute(sql, params) as cur:
        return await cur.fetchone()


async def tx_fetchall(tx: Tx, sql: str, params: Params = ()) -> list[Row]:
    return list(await tx.execute_fetchall(sql, params))
