"""Passwords (argon2id, hashed and verified in a thread) and tokens (itsdangerous, signed).

Access tokens are stateless and short-lived. Refresh tokens are signed too, but each is also kept
server-side by hash (see users.py), so that refresh rotates them and logout revokes them.
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
from .errors import Unauthorized


class Passwords:
    """argon2id; each hash or verify costs ~0.1 s of CPU, so it always runs off the event loop."""

    def __init__(self, cfg: AuthConfig) -> None:
        self._hasher = PasswordHasher(time_cost=cfg.argon2_time_cost, memory_cost=cfg.argon2_memory_kib,
                                      parallelism=cfg.argon2_parallelism)
        # Verified against when the username is unknown, so that both cases cost the same time.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored_hash or self._dummy, password) and bool(stored_hash)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False


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
        # Access tokens already verified: token -> (user uuid, unix time it expires). A client sends the
        # same token with every call until it expires; its HMAC is checked once, not every time.
        self._verified: dict[str, tuple[str, float]] = {}

    def access(self, user_uuid: str) -> str:
        return self._access.dumps(user_uuid)

    def read_access(self, token: str) -> str:
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            value, signed = self._access.loads(token, max_age=self.access_ttl, return_timestamp=True)
        except SignatureExpired:
            raise Unauthorized("the access token has expired; refresh it") from None
        except BadData:
            raise Unauthorized("the access token is not valid") from None
        if not isinstance(value, str):
            raise Unauthorized("the access token is not valid")
        if len(self._verified) >= 100_000:
            self._verified.clear()
        self._verified[token] = (value, signed.timestamp() + self.access_ttl)
        return value

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
