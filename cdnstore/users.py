"""Users, their permissions, and their sessions (login, refresh rotation, logout)."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from .auth import Passwords, Tokens, token_hash
from .changes import SESSIONS, USERS, bump
from .config import AuthConfig
from .db import Database, Row, Tx, UniqueViolation, iso_in, now_iso, tx_fetchall, tx_fetchone
from .errors import Conflict, InvalidCredentials, NotFound, Unauthorized
from .models import DEFAULT_PERMISSIONS, PERMISSIONS, User
from .throttle import address_key, attempt, throttle

USER_COLUMNS = "id, uuid, username, is_admin, permissions"


def user_from_row(row: Row) -> User:
    return User(row["uuid"], row["username"], bool(row["is_admin"]), tuple(json.loads(row["permissions"])))


def render_user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "is_admin": user.is_admin,
            "permissions": user.effective_permissions}


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


def normalize_permissions(permissions: list[str] | None) -> tuple[str, ...]:
    chosen = DEFAULT_PERMISSIONS if permissions is None else set(permissions)
    return tuple(p for p in PERMISSIONS if p in chosen)


class Accounts:
    """Users and sessions. Users are cached by uuid, so that authenticated requests skip the database;
    the entry is dropped when the user changes here, and the whole cache when the `users` counter moves
    (a change made by another daemon or a tool: changes.py, `reload_users`).

    Sessions live in the database (sessions table); whether one has ended is cached per process, so
    checking a bearer token is dict lookups: the database is read at most once per session and process
    (on a cache miss). Ending a session writes the database (and raises the `sessions` counter in the same
    transaction), then marks it ended here. Another daemon, seeing the counter move, forgets which sessions
    it knew to be live (`reload_sessions`): each is read again on its next use."""

    def __init__(self, db: Database, cfg: AuthConfig, passwords: Passwords, tokens: Tokens) -> None:
        self.db = db
        self.passwords = passwords
        self.tokens = tokens
        # Failures count per (username, address) and per address, never per username alone: that
        # would let anyone lock anyone out (the admin included) from anywhere.
        self._by_account = throttle(db, "login-account", cfg.login_max_failures, cfg.login_lockout)
        self._by_address = throttle(db, "login-address", cfg.login_max_failures_per_ip, cfg.login_lockout)
        self._cache: dict[str, tuple[int, User]] = {}
        self._ended: dict[str, bool] = {}  # session id -> has it ended
        # Raised by each reload: a read that began before a reload does not fill the cache after it (its
        # answer may predate the change that caused the reload).
        self._generation = 0

    # --- users -------------------------------------------------------------------------------

    async def create(self, username: str, password: str, *, is_admin: bool = False,
                     permissions: list[str] | None = None) -> User:
        password_hash = await self.passwords.hash(password)
        now = now_iso()
        taken = Conflict(f"the username {username!r} is taken", code="username_taken")
        try:
            async with self.db.transaction() as tx:
                if await tx_fetchone(tx, "SELECT 1 FROM users WHERE username = ?", (username,)):
                    raise taken
                row = await tx_fetchone(
                    tx, f"INSERT INTO users (uuid, username, password_hash, is_admin, permissions, created_at,"
                    f" updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {USER_COLUMNS}",
                    (str(uuid.uuid4()), username, password_hash, int(is_admin),
                     json.dumps(normalize_permissions(permissions)), now, now))
        except UniqueViolation:  # the same name added meanwhile by a transaction beside this one
            raise taken from None
        assert row is not None
        return user_from_row(row)

    async def get(self, user_uuid: str) -> tuple[int, User] | None:
        """(internal id, User) for a uuid, from the cache when possible."""
        hit = self._cache.get(user_uuid)
        if hit is None:
            generation = self._generation
            row = await self.db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE uuid = ?", (user_uuid,))
            if row is None:
                return None
            hit = (row["id"], user_from_row(row))
            if generation == self._generation:
                self._cache[user_uuid] = hit
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
            await bump(self.db, tx, USERS)
        self._cache.pop(user_uuid, None)
        if password is not None:  # a new password ends every session of the old one
            await self.end_sessions(row["id"])
        return user_from_row(row)

    # --- sessions ----------------------------------------------------------------------------

    async def authenticate(self, access_token: str) -> User:
        """The user of a live session's access token (the hot path: no database read when cached)."""
        claims = self.tokens.read_access(access_token)
        ended = self._ended.get(claims.session)
        if ended is None:
            ended = await self._read_ended(claims.session)
        if ended:
            raise Unauthorized("this session has ended; log in again")
        hit = await self.get(claims.user_uuid)
        if hit is None:
            raise Unauthorized("the user of this token no longer exists")
        return hit[1]

    async def _read_ended(self, session: str) -> bool:
        generation = self._generation
        row = await self.db.fetchone("SELECT ended_at FROM sessions WHERE id = ?", (session,))
        ended = row is None or row["ended_at"] is not None
        if generation != self._generation:
            return ended
        if len(self._ended) >= 100_000:
            self._ended.clear()
        # setdefault: a session ended while this read ran is already marked, and stays so.
        return self._ended.setdefault(session, ended)

    def forget_session(self, session: str) -> None:
        """Mark a session ended in this process (after the database says so)."""
        self._ended[session] = True

    async def reload_sessions(self) -> None:
        """Some session ended elsewhere (another daemon): forget which ones were live (ended ones stay ended)."""
        self._generation += 1
        self._ended = {session: True for session, ended in self._ended.items() if ended}

    async def reload_users(self) -> None:
        """Some user changed elsewhere (another daemon, a tool): read users again as they are used."""
        self._generation += 1
        self._cache.clear()

    async def end_sessions(self, user_id: int, *, keep: str | None = None) -> None:
        """End every session of a user (but `keep`): a new password, a disabled user."""
        now = now_iso()
        async with self.db.transaction() as tx:
            ended = await self._end_where(tx, "user_id = ? AND id <> COALESCE(?, '')", (user_id, keep), now)
        for session in ended:
            self.forget_session(session)

    async def _end_where(self, tx: Tx, where: str, params: tuple[Any, ...], now: str) -> list[str]:
        rows = await tx_fetchall(tx, f"UPDATE sessions SET ended_at = ? WHERE {where} AND ended_at IS NULL "
                                 "RETURNING id", (now, *params))
        ended = [row["id"] for row in rows]
        if ended:
            await bump(self.db, tx, SESSIONS)
        await tx.executemany("UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL",
                             [(now, session) for session in ended])
        return ended

    async def login(self, username: str, password: str, client_ip: str) -> tuple[User, str, str]:
        address = address_key(client_ip)
        checks = ((self._by_account, f"{username.lower()}|{address}"), (self._by_address, address))
        async with attempt(checks, "too many failed logins") as trying:
            row = await self.db.fetchone(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?",
                                         (username,))
            if not await self.passwords.verify(row["password_hash"] if row else None, password):
                await trying.failed()
                raise InvalidCredentials("wrong username or password")
        assert row is not None
        await self._by_account.reset(checks[0][1])  # the address's count stays: it may be guessing others
        user = user_from_row(row)
        session = new_session_id()
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)",
                             (session, row["id"], now_iso()))
            refresh = await self._new_refresh(tx, row["id"], user.id, session)
        self._ended[session] = False
        return user, self.tokens.access(user.id, session), refresh

    async def refresh(self, refresh_token: str) -> tuple[User, str, str]:
        claims = self.tokens.read_refresh(refresh_token)
        now = now_iso()
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, "SELECT user_id, family, used_at, revoked_at, expires_at FROM "
                                    "refresh_tokens WHERE token_hash = ?", (token_hash(refresh_token),))
            if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
                raise Unauthorized("the refresh token is not valid; log in again")
            if row["used_at"] is not None:
                # A rotated token came back: someone holds a copy. End the whole session.
                await self._end_where(tx, "id = ?", (row["family"],), now)
                reuse = True
            else:
                reuse = False
                await tx.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                                 (now, token_hash(refresh_token)))
                new_refresh = await self._new_refresh(tx, row["user_id"], claims.user_uuid, row["family"])
        if reuse:
            self.forget_session(row["family"])
            raise Unauthorized("the refresh token was already used; every session of it is ended")
        hit = await self.get(claims.user_uuid)
        if hit is None:
            raise Unauthorized("the user no longer exists")
        return hit[1], self.tokens.access(claims.user_uuid, row["family"]), new_refresh

    async def logout(self, refresh_token: str) -> None:
        """End the session of a refresh token (any token of it, used or not: it proves the session)."""
        self.tokens.read_refresh(refresh_token)
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, "SELECT family FROM refresh_tokens WHERE token_hash = ?",
                                    (token_hash(refresh_token),))
            if row is not None:
                await self._end_where(tx, "id = ?", (row["family"],), now_iso())
        if row is not None:
            self.forget_session(row["family"])

    async def _new_refresh(self, tx: Tx, user_id: int, user_uuid: str, session: str) -> str:
        token, claims = self.tokens.refresh(user_uuid, session)
        expires = iso_in(self.tokens.refresh_ttl)
        await tx.execute("INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, created_at)"
                         " VALUES (?, ?, ?, ?, ?)", (token_hash(token), claims.family, user_id, expires,
                                                     now_iso()))
        return token
