"""Users, their permissions, and their sessions (login, refresh rotation, logout)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from .auth import Passwords, Tokens, token_hash
from .config import AuthConfig
from .db import Database, Row, Tx, iso_in, now_iso, tx_fetchone
from .errors import Conflict, InvalidCredentials, NotFound, TooManyAttempts, Unauthorized
from .models import DEFAULT_PERMISSIONS, PERMISSIONS, User
from .throttle import Throttle

USER_COLUMNS = "id, uuid, username, is_admin, permissions"


def user_from_row(row: Row) -> User:
    return User(row["uuid"], row["username"], bool(row["is_admin"]), tuple(json.loads(row["permissions"])))


def render_user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "is_admin": user.is_admin,
            "permissions": user.effective_permissions}


def normalize_permissions(permissions: list[str] | None) -> tuple[str, ...]:
    chosen = DEFAULT_PERMISSIONS if permissions is None else set(permissions)
    return tuple(p for p in PERMISSIONS if p in chosen)


class Accounts:
    """Users and sessions. Users are cached by uuid: this process is the only writer, so the cache
    is dropped exactly when a user changes, and authenticated requests skip the database."""

    def __init__(self, db: Database, cfg: AuthConfig, passwords: Passwords, tokens: Tokens) -> None:
        self.db = db
        self.passwords = passwords
        self.tokens = tokens
        self._by_user = Throttle(cfg.login_max_failures, cfg.login_lockout)
        self._by_ip = Throttle(cfg.login_max_failures_per_ip, cfg.login_lockout)
        self._cache: dict[str, tuple[int, User]] = {}

    # --- users -------------------------------------------------------------------------------

    async def create(self, username: str, password: str, *, is_admin: bool = False,
                     permissions: list[str] | None = None) -> User:
        password_hash = await self.passwords.hash(password)
        now = now_iso()
        async with self.db.transaction() as tx:
            if await tx_fetchone(tx, "SELECT 1 FROM users WHERE username = ?", (username,)):
                raise Conflict(f"the username {username!r} is taken", code="username_taken")
            row = await tx_fetchone(
                tx, f"INSERT INTO users (uuid, username, password_hash, is_admin, permissions, created_at,"
                f" updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {USER_COLUMNS}",
                (str(uuid.uuid4()), username, password_hash, int(is_admin),
                 json.dumps(normalize_permissions(permissions)), now, now))
        assert row is not None
        return user_from_row(row)

    async def get(self, user_uuid: str) -> tuple[int, User] | None:
        """(internal id, User) for a uuid, from the cache when possible."""
        hit = self._cache.get(user_uuid)
        if hit is None:
            row = await self.db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE uuid = ?", (user_uuid,))
            if row is None:
                return None
            hit = self._cache[user_uuid] = (row["id"], user_from_row(row))
        return hit

    async def internal_id(self, user: User) -> int:
        hit = await self.get(user.id)
        if hit is None:
            raise Unauthorized("the user no longer exists")
        return hit[0]

    async def page(self, limit: int, after: int | None) -> list[Row]:
        return await self.db.fetchall(
            f"SELECT {USER_COLUMNS} FROM users WHERE id > ? ORDER BY id LIMIT ?", (after or 0, limit + 1))

    async def update(self, user_uuid: str, *, password: str | None = None, is_admin: bool | None = None,
                     permissions: list[str] | None = None) -> User:
        changes: dict[str, Any] = {}
        if password is not None:
            changes["password_hash"] = await self.passwords.hash(password)
        if is_admin is not None:
            changes["is_admin"] = int(is_admin)
        if permissions is not None:
            changes["permissions"] = json.dumps(normalize_permissions(permissions))
        changes["updated_at"] = now_iso()
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, f"UPDATE users SET {assignments} WHERE uuid = :uuid "
                                    f"RETURNING {USER_COLUMNS}", {**changes, "uuid": user_uuid})
            if row is None:
                raise NotFound("no such user", code="user_not_found")
            if password is not None:  # a new password ends every session of the old one
                await tx.execute("UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND "
                                 "revoked_at IS NULL", (changes["updated_at"], row["id"]))
        self._cache.pop(user_uuid, None)
        return user_from_row(row)

    # --- sessions ----------------------------------------------------------------------------

    async def login(self, username: str, password: str, client_ip: str) -> tuple[User, str, str]:
        wait = max(self._by_user.retry_after(username.lower()), self._by_ip.retry_after(client_ip))
        if wait > 0:
            raise TooManyAttempts("too many failed logins; try again later", retry_after=int(wait) + 1)
        row = await self.db.fetchone(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?",
                                     (username,))
        if not await self.passwords.verify(row["password_hash"] if row else None, password):
            self._by_user.fail(username.lower())
            self._by_ip.fail(client_ip)
            raise InvalidCredentials("wrong username or password")
        assert row is not None
        self._by_user.reset(username.lower())
        user = user_from_row(row)
        async with self.db.transaction() as tx:
            refresh = await self._new_refresh(tx, row["id"], user.id, None)
        return user, self.tokens.access(user.id), refresh

    async def refresh(self, refresh_token: str) -> tuple[User, str, str]:
        claims = self.tokens.read_refresh(refresh_token)
        now = now_iso()
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, "SELECT user_id, family, used_at, revoked_at, expires_at FROM "
                                    "refresh_tokens WHERE token_hash = ?", (token_hash(refresh_token),))
            if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
                raise Unauthorized("the refresh token is not valid; log in again")
            if row["used_at"] is not None:
                # A rotated token came back: someone holds a copy. End the whole family.
                await tx.execute("UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND "
                                 "revoked_at IS NULL", (now, row["family"]))
                reuse = True
            else:
                reuse = False
                await tx.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                                 (now, token_hash(refresh_token)))
                new_refresh = await self._new_refresh(tx, row["user_id"], claims.user_uuid, row["family"])
        if reuse:
            raise Unauthorized("the refresh token was already used; every session of it is ended")
        hit = await self.get(claims.user_uuid)
        if hit is None:
            raise Unauthorized("the user no longer exists")
        return hit[1], self.tokens.access(claims.user_uuid), new_refresh

    async def logout(self, refresh_token: str) -> None:
        self.tokens.read_refresh(refresh_token)
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ? AND "
                             "revoked_at IS NULL", (now_iso(), token_hash(refresh_token)))

    async def _new_refresh(self, tx: Tx, user_id: int, user_uuid: str, family: str | None) -> str:
        token, claims = self.tokens.refresh(user_uuid, family)
        expires = iso_in(self.tokens.refresh_ttl)
        await tx.execute("INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, created_at)"
                         " VALUES (?, ?, ?, ?, ?)", (token_hash(token), claims.family, user_id, expires,
                                                     now_iso()))
        return token
