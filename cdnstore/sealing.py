"""Secrets sealed at rest: the database keeps them encrypted with a key derived from `auth.secret_key`
(Fernet: AES-128-CBC with an HMAC-SHA256 tag), so the database file or a backup alone does not give them
away. cdnstore needs them in clear to sign requests: the server registry unseals the S3 secret keys into
memory when it loads, the webhook worker a webhook's signing secret when it sends a delivery. Each kind of
secret has a key of its own (`purpose`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "sealed:v1:"


class UnsealError(Exception):
    """A sealed value that this key cannot open: `auth.secret_key` is not the one that sealed it."""


class Sealer:
    def __init__(self, secret_key: str, purpose: bytes = b"cdnstore: S3 secret keys, v1") -> None:
        # A key of its own for each purpose, so that it is not the one that signs tokens (nor another use's).
        key = hmac.new(secret_key.encode(), purpose, hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def unseal(self, stored: str) -> str:
        """The secret in clear. A value stored before sealing existed is returned as it is (see sealed)."""
        if not sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise UnsealError("auth.secret_key is not the key this secret was sealed with") from None

    def open(self, stored: str, *, max_age: int) -> str:
        """What `seal` sealed at most `max_age` seconds ago (UnsealError otherwise: forged, foreign, too old)."""
        if not sealed(stored):
            raise UnsealError("not a sealed value")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode(), ttl=max_age).decode()
        except InvalidToken:
            raise UnsealError("not sealed with this key, or sealed too long ago") from None


def sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
