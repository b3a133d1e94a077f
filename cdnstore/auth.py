"""Passwords (argon2id, hashed and verified in a thread) and tokens (itsdangerous, signed).

Access tokens are signed and short-lived, and each names the session (login) it belongs to: a request
is served only while that session lives (users.py keeps which sessions ended). Refresh tokens are
signed too, but each is also kept server-side by hash (see users.py), so that refresh rotates them and
logout revokes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from .config import AuthConfig
from .errors import TooManyAttempts, Unauthorized


class Passwords:
    """argon2id; each hash or verify costs ~0.1 s of CPU, so it always runs off the event loop.

    At most `argon2_max_running` run at once, and at most `argon2_max_waiting` more wait for a turn:
    a flood of anonymous checks (logins, link passwords) beyond that answers 429 at once instead of
    filling the default thread pool, which also serves the page's files and the database."""

    def __init__(self, cfg: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=cfg.argon2_time_cost, memory_cost=cfg.argon2_memory_kib, parallelism=cfg.argon2_parallelism
        )
        # Verified against when the username is unknown, so that both cases cost the same time.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self._turns = asyncio.Semaphore(cfg.argon2_max_running)
        self._room = cfg.argon2_max_running + cfg.argon2_max_waiting
        self._queued = 0  # verifications running or waiting now

    async def hash(self, password: str) -> str:
        # Hashing follows an authenticated request (a user or link is created): it waits its turn.
        async with self._turns:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        if self._queued >= self._room:
            raise TooManyAttempts("too many password checks are waiting; try again in a moment", retry_after=1)
        self._queued += 1
        try:
            async with self._turns:
                right = await asyncio.to_thread(self._verify, stored_hash or self._dummy, password)
        finally:
            self._queued -= 1
        return right and bool(stored_hash)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_uuid: str
    session: str


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_uuid: str
    family: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, cfg: AuthConfig) -> None:
        self.access_ttl = cfg.access_token_ttl
        self.refresh_ttl = cfg.refresh_token_ttl
        self._access = URLSafeTimedSerializer(cfg.secret_key, salt="cdnstore.access")
        self._refresh = URLSafeTimedSerializer(cfg.secret_key, salt="cdnstore.refresh")
        # Access tokens already verified: token -> (claims, unix time it expires). A client sends the
        # same token with every call until it expires; its HMAC is checked once, not every time.
        self._verified: dict[str, tuple[AccessClaims, float]] = {}

    def access(self, user_uuid: str, session: str) -> str:
        return self._access.dumps([user_uuid, session])

    def read_access(self, token: str) -> AccessClaims:
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            value, signed = self._access.loads(token, max_age=self.access_ttl, return_timestamp=True)
        except SignatureExpired:
            raise Unauthorized("the access token has expired; refresh it") from None
        except BadData:
            raise Unauthorized("the access token is not valid") from None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise Unauthorized("the access token is not valid")  # e.g. one from before sessions
        claims = AccessClaims(value[0], value[1])
        if len(self._verified) >= 100_000:
            self._verified.clear()
        self._verified[token] = (claims, signed.timestamp() + self.access_ttl)
        return claims

    def refresh(self, user_uuid: str, family: str | None = None) -> tuple[str, RefreshClaims]:
        claims = RefreshClaims(user_uuid, family or secrets.token_urlsafe(12))
        # The random nonce makes every token distinct even within one second.
        token = self._refresh.dumps([claims.user_uuid, claims.family, secrets.token_urlsafe(16)])
        return token, claims

    def read_refresh(self, token: str) -> RefreshClaims:
        try:
            value = self._refresh.loads(token, max_age=self.refresh_ttl)
        except BadData:
            raise Unauthorized("the refresh token is not valid or has expired") from None
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
            raise Unauthorized("the refresh token is not valid")
        return RefreshClaims(value[0], value[1])
