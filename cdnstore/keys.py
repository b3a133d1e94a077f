"""Personal API keys: credentials for scripts, CI jobs and tools that are not a password and do not expire in
minutes. A key acts as its user, within its scopes (`models.SCOPES`; each route's scope comes from the
permission it declares, api/endpoint.py), and never manages passwords, sessions or keys.

- The secret is `cdn_` + 256 random bits (URL-safe), shown once when the key is made and stored only as its
  SHA-256. A fast hash is right here, argon2 is not: the secret is as strong as a random key, so there is
  nothing to stretch, and it is checked on every request of a script.
- Checking a key is the hot path of every scripted call: a key seen before is one dict lookup in this
  process's cache (keyed by the secret, as `auth.Tokens` keeps the access tokens it verified; the database,
  by its hash, is read once per key and process) and a clock read for its expiry and last use: about the
  cost of an access token (docs/security.md has the figures).
- Revoking deletes the row and raises the `keys` counter in the same transaction (changes.py): every daemon
  drops its cache within milliseconds (2 seconds at worst); this daemon at once. Disabling or deleting a user
  deletes their keys the same way (`end_keys`), and this daemon's cache is dropped at once too (`reload`,
  which users.Accounts calls after that commit: app.py wires it).
- `last_used_at` is kept in memory per use and written in batches (`flush`: every few seconds, app.py, before
  this daemon lists keys, and at a clean stop), never one write per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from .changes import KEYS, bump
from .db import Database, Tx, iso, tx_fetchall, tx_fetchone
from .errors import DatabaseUnavailable, NotFound, Unauthorized
from .models import SCOPES
from .records import fast_init
from .tables import record

SECRET_PREFIX = "cdn_"
SHOWN_PREFIX = len(SECRET_PREFIX) + 8  # what lists show of a secret: enough to tell a user's keys apart
KEY_COLUMNS = "id, uuid, name, prefix, scopes, expires_at, last_used_at, created_at"


@fast_init
@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as its owner's list shows it (KEY_COLUMNS): never its secret, nor its hash."""

    id: int
    uuid: str
    name: str
    prefix: str  # the secret's first characters: enough to tell a user's keys apart
    scopes: str  # JSON: the scope names, in models.SCOPES's order
    expires_at: str | None
    last_used_at: str | None
    created_at: str

    @property
    def scope_names(self) -> list[str]:
        return list(json.loads(self.scopes))


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_key(token: str) -> bool:
    """Whether a bearer token is an API key's secret (else it is an access token)."""
    return token.startswith(SECRET_PREFIX)


@fast_init
@dataclass(frozen=True, slots=True)
class Grant:
    """What a key allows, as checked on each request."""

    key_id: int
    user_uuid: str
    scopes: frozenset[str]
    expires_at: str | None
    expires: float  # expires_at in unix seconds (inf: never), compared on every request
    secret_hash: str


async def end_keys(db: Database, tx: Tx, user_id: int) -> None:
    """Delete every key of a user, in the transaction that disables or deletes them (every daemon forgets them)."""
    if await tx_fetchall(tx, "DELETE FROM api_keys WHERE user_id = ? RETURNING id", (user_id,)):
        await bump(db, tx, KEYS)


class ApiKeys:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock  # unix seconds: a key's expiry and last use (tests move it)
        self._grants: dict[str, Grant] = {}  # secret -> grant (of keys checked here, not revoked since)
        self._used: dict[int, float] = {}  # key id -> when it was last used (unix seconds), not yet written
        # Raised by each reload: a read that began before a reload does not fill the cache after it.
        self._generation = 0
        self._lock = asyncio.Lock()

    # --- the owner's side ---------------------------------------------------------------------

    async def create(
        self, user_id: int, name: str, scopes: Collection[str], expires_in: int | None
    ) -> tuple[ApiKey, str]:
        """A new key of the user and its secret, which nothing shows again."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        ordered, now = [s for s in SCOPES if s in set(scopes)], self.clock()  # (its expiry is checked by it)
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx,
                "INSERT INTO api_keys (uuid, user_id, name, prefix, secret_hash, scopes, expires_at, created_at) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {KEY_COLUMNS}",
                (
                    str(uuid.uuid4()),
                    user_id,
                    name,
                    secret[:SHOWN_PREFIX],
                    secret_hash(secret),
                    json.dumps(ordered),
                    None if expires_in is None else iso(now + expires_in, timespec="seconds"),
                    iso(now),
                ),
            )
        assert row is not None
        return record(ApiKey, row), secret

    async def page(self, user_id: int, limit: int, before: int | None) -> list[ApiKey]:
        """The user's keys, newest first, with their last use (this daemon's uses written first)."""
        with contextlib.suppress(DatabaseUnavailable):  # (the list is read all the same)
            await self.flush()
        rows = await self.db.fetchall(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (user_id, before or 2**62, limit + 1),
        )
        return [record(ApiKey, r) for r in rows]

    async def revoke(self, user_id: int, key_uuid: str) -> None:
        """Delete the key: from the commit on it answers 401, here at once, on other daemons within 2 s."""
        async with self.db.transaction() as tx:
            gone = await tx_fetchone(
                tx, "DELETE FROM api_keys WHERE uuid = ? AND user_id = ? RETURNING secret_hash", (key_uuid, user_id)
            )
            if gone is None:
                raise NotFound("no such key", code="key_not_found")
            await bump(self.db, tx, KEYS)
        for secret in [s for s, grant in self._grants.items() if grant.secret_hash == gone["secret_hash"]]:
            del self._grants[secret]

    # --- each request ---------------------------------------------------------------------------

    async def grant(self, secret: str) -> Grant:
        """What the key of `secret` allows (401 when there is no such key, or it expired); its use is noted."""
        grant = self._grants.get(secret)
        if grant is None:
            grant = await self._read(secret)
        now = self.clock()
        if now >= grant.expires:
            raise Unauthorized(f"this API key expired at {grant.expires_at}")
        self._used[grant.key_id] = now
        return grant

    async def _read(self, secret: str) -> Grant:
        generation = self._generation
        hashed = secret_hash(secret)
        row = await self.db.fetchone(
            "SELECT k.id AS key_id, u.uuid AS user_uuid, k.scopes, k.expires_at FROM api_keys k "
            "JOIN users u ON u.id = k.user_id WHERE k.secret_hash = ?",
            (hashed,),
        )
        if row is None:
            raise Unauthorized("this API key is not valid: it was revoked, or never issued")
        expires_at = row["expires_at"]
        expires = float("inf") if expires_at is None else datetime.fromisoformat(expires_at).timestamp()
        scopes = frozenset(json.loads(row["scopes"]))
        grant = record(Grant, row, scopes=scopes, expires=expires, secret_hash=hashed)
        if generation == self._generation:
            if len(self._grants) >= 100_000:
                self._grants.clear()
            self._grants[secret] = grant
        return grant

    async def reload(self) -> None:
        """Some key was revoked elsewhere (another daemon, a user disabled): read keys again as they are used."""
        self._generation += 1
        self._grants.clear()

    # --- last use, in batches -------------------------------------------------------------------

    async def flush(self) -> None:
        """Write the last uses noted since the previous flush (kept for the next one if the database refuses)."""
        async with self._lock:
            if not self._used:
                return
            used, self._used = self._used, {}
            try:
                async with self.db.transaction() as tx:
                    await tx.executemany(
                        "UPDATE api_keys SET last_used_at = ? WHERE id = ? "
                        "AND (last_used_at IS NULL OR last_used_at < ?)",
                        [(iso(at), key_id, iso(at)) for key_id, at in used.items()],
                    )
            except BaseException:
                for key_id, at in used.items():
                    self._used.setdefault(key_id, at)  # (a later use, noted meanwhile, wins)
                raise
