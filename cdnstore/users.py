"""Users, their permissions, and their sessions (login, refresh rotation, logout)."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .auth import Passwords, Priority, RecentSuccesses, Tokens, token_hash
from .changes import SESSIONS, USERS, bump
from .clock import SYSTEM_CLOCK, Clock
from .config import AuthConfig
from .db import Database, Tx, UniqueViolation, tx_fetchall, tx_fetchone
from .errors import Conflict, Forbidden, Invalid, InvalidCredentials, NotFound, OidcFailed, Unauthorized
from .files import remove_versions
from .keys import end_keys
from .models import DEFAULT_PERMISSIONS, PERMISSIONS, UNSET, Changes, Unset, User
from .records import fast_init
from .tables import files as files_table
from .tables import record, versions
from .throttle import Throttle, address_key, attempt

if TYPE_CHECKING:
    from .job_queue import JobQueue

log = logging.getLogger(__name__)

USER_COLUMNS = """id, uuid, username, is_admin, permissions, is_disabled, quota_bytes, zones, used_bytes,
    max_file_lifetime, default_file_lifetime"""


def user_from_row(row: Any) -> User:
    """The User of a `users` row (USER_COLUMNS), each column read by its name."""
    return record(
        User,
        row,
        id=row["uuid"],  # the public id; the integer key is `pk`
        pk=row["id"],
        is_admin=bool(row["is_admin"]),
        permissions=tuple(json.loads(row["permissions"])),
        is_disabled=bool(row["is_disabled"]),
        zones=None if row["zones"] is None else tuple(json.loads(row["zones"])),
    )


# A refresh token presented to POST /auth/refresh, by its hash (RefreshToken).
_PRESENTED = "SELECT user_id, family, used_at, revoked_at, expires_at FROM refresh_tokens WHERE token_hash = ?"


@fast_init
@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token as a refresh reads it (_PRESENTED): whose, of which session, and whether it may rotate."""

    user_id: int
    family: str  # its session's id
    used_at: str | None  # rotated already (a copy presented again ends the session)
    revoked_at: str | None
    expires_at: str


@fast_init
@dataclass(frozen=True, slots=True)
class Account:
    """A user as the administrators see them: the User, and the bytes they store as the row was read (kept
    beside the User, never in it: the cached User would carry a figure that uploads change)."""

    user: User
    used_bytes: int

    @classmethod
    def of(cls, row: Any) -> Account:
        """The Account of a `users` row (USER_COLUMNS)."""
        return cls(user_from_row(row), int(row["used_bytes"]))


@fast_init
@dataclass(frozen=True, slots=True)
class Identity:
    """Who the OpenID provider says signed in: its subject, the username it gives, and whether its groups make
    an admin (None: no admin group configured, the provider decides nothing about it)."""

    subject: str
    username: str
    is_admin: bool | None


# A user's versions a deletion gives up (those uploading or stored).
_LIVE_VERSIONS = (
    f"SELECT v.id FROM versions v JOIN files f ON f.id = v.file_id WHERE f.owner_id = ? AND v.status IN {versions.LIVE}"
)


def check_zones(zones: Collection[str] | None, known: Collection[str]) -> None:
    """A user's zones must be zones of registered servers (422 naming the others)."""
    unknown = sorted(set(zones or ()) - set(known))
    if unknown:
        raise Invalid(
            "zones",
            f"no registered server is in the zone(s) {', '.join(map(repr, unknown))}; "
            f"known zones: {', '.join(map(repr, sorted(set(known)))) or 'none'}",
        )


# A user row that is not deleted (deleted users stay while their files are removed; no call sees them).
LIVE = "deleted_at IS NULL"
# The user a name names, ignoring the case of its letters (params: the name's key, the name itself): the
# account holding the name's key, or one spelled exactly so (an account that clashed in case with an older
# one before migration 0010 holds no key: it logs in by its exact spelling, and wins when spelled so).
BY_NAME = "(username_key = ? OR username = ?)"
BY_NAME_FIRST = "ORDER BY username = ? DESC LIMIT 1"


def username_key(username: str) -> str:
    """What usernames are compared by: the name with its ASCII letters lowercased (usernames are ASCII; the
    same as SQL's lower() on both engines, whatever the locale)."""
    return username.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class UserChanges(Changes):
    """PATCH /users/{id} (and the CLI's disable, enable, passwd; single sign-on's admin group): what is given
    changes (`UNSET`: as it is). `quota_bytes` null: no quota; `zones` null: any zone; a lifetime null: none."""

    password: str | Unset = UNSET
    is_admin: bool | Unset = UNSET
    permissions: list[str] | Unset = UNSET
    is_disabled: bool | Unset = UNSET
    quota_bytes: int | Unset | None = UNSET
    zones: list[str] | Unset | None = UNSET
    max_file_lifetime: int | Unset | None = UNSET
    default_file_lifetime: int | Unset | None = UNSET

    @property
    def unadmins(self) -> bool:
        """It takes the user away from the enabled administrators (if they were one)."""
        return self.is_admin is False or self.is_disabled is True


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

    def __init__(
        self,
        db: Database,
        cfg: AuthConfig,
        passwords: Passwords,
        tokens: Tokens,
        *,
        default_quota: int = 0,
        default_zones: Collection[str] = (),
        keys_ended: Callable[[], Awaitable[None]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        # Called once a user's keys were deleted (disabled or deleted): this daemon's cache of checked keys
        # forgets them at once, not when the `keys` counter comes round (a re-enabled user's old key: 401).
        self._keys_ended = keys_ended
        self.default_quota = default_quota  # users.default_quota_bytes: new users' quota (0: none)
        self.default_zones = sorted(set(default_zones)) or None  # users.default_zones: new users' zones (None: any)
        self.passwords = passwords
        self.tokens = tokens
        # Failures count per (username, address) and per address, never per username alone: that
        # would let anyone lock anyone out (the admin included) from anywhere.
        self._by_account = Throttle(db, "login-account", cfg.login_max_failures, cfg.login_lockout)
        self._by_address = Throttle(db, "login-address", cfg.login_max_failures_per_ip, cfg.login_lockout)
        # Addresses (IPv6: /64) a login succeeded from within auth.known_for, on this daemon: their password
        # checks get the first turns (auth.Priority). Accounts used lately are known by last_login_at.
        self._known_addresses = RecentSuccesses(cfg.known_for)
        self._known_for = cfg.known_for
        self._cache: dict[str, User] = {}
        self._ended: dict[str, bool] = {}  # session id -> has it ended
        # Raised by each reload: a read that began before a reload does not fill the cache after it (its
        # answer may predate the change that caused the reload).
        self._generation = 0

    # --- users -------------------------------------------------------------------------------

    async def create(
        self,
        username: str,
        password: str,
        *,
        is_admin: bool = False,
        permissions: list[str] | None = None,
        quota_bytes: int | Unset | None = UNSET,
        zones: list[str] | Unset | None = UNSET,
        max_file_lifetime: int | None = None,
        default_file_lifetime: int | None = None,
        oidc_subject: str | None = None,
    ) -> Account:
        """The new user. `quota_bytes` not given:
        users.default_quota_bytes (0: none); `zones` not given: users.default_zones (empty: any zone). A
        user of single sign-on (`oidc_subject`) gets an empty password (`password` ""), which matches none."""
        password_hash = await self.passwords.hash(password) if password else ""
        now = self.clock.now_iso()
        if isinstance(quota_bytes, Unset):
            quota_bytes = self.default_quota or None
        if isinstance(zones, Unset):
            zones = self.default_zones
        taken = Conflict(f"the username {username!r} is taken", code="username_taken")
        key = username_key(username)
        try:
            async with self.db.transaction() as tx:
                # Taken in any spelling: the account holding its key (unique: also where transactions run
                # side by side), or a live account holding none (from before migration 0010) spelled alike.
                holders = await tx_fetchall(
                    tx,
                    f"SELECT username FROM users WHERE username_key = ? OR (username_key IS NULL AND {LIVE})",
                    (key,),
                )
                if any(username_key(h["username"]) == key for h in holders):
                    raise taken
                row = await tx_fetchone(
                    tx,
                    f"INSERT INTO users (uuid, username, username_key, password_hash, is_admin, permissions, "
                    f"quota_bytes, zones, max_file_lifetime, default_file_lifetime, oidc_subject, created_at, "
                    f"updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {USER_COLUMNS}",
                    (
                        str(uuid.uuid4()),
                        username,
                        key,
                        password_hash,
                        int(is_admin),
                        json.dumps(normalize_permissions(permissions)),
                        quota_bytes,
                        None if zones is None else json.dumps(sorted(set(zones))),
                        max_file_lifetime,
                        default_file_lifetime,
                        oidc_subject,
                        now,
                        now,
                    ),
                )
        except UniqueViolation:  # the same name added meanwhile by a transaction beside this one
            raise taken from None
        assert row is not None
        return Account.of(row)

    async def get(self, user_uuid: str) -> User | None:
        """The User of a uuid, from the cache when possible."""
        hit = self._cache.get(user_uuid)
        if hit is None:
            generation = self._generation
            row = await self.db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE uuid = ? AND {LIVE}", (user_uuid,))
            if row is None:
                return None
            hit = user_from_row(row)
            if generation == self._generation:
                self._cache[user_uuid] = hit
        return hit

    async def used_bytes(self, user: User) -> int:
        """The bytes `user` stores as stored now (never cached: uploads change it), for their User answer."""
        used = await self.db.fetchval("SELECT used_bytes FROM users WHERE uuid = ?", (user.id,))
        return int(used or 0)

    async def page(self, limit: int, after: int | None) -> list[Account]:
        rows = await self.db.fetchall(
            f"SELECT {USER_COLUMNS} FROM users WHERE id > ? AND {LIVE} ORDER BY id LIMIT ?", (after or 0, limit + 1)
        )
        return [Account.of(r) for r in rows]

    async def account(self, user_uuid: str) -> Account:
        row = await self.db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE uuid = ? AND {LIVE}", (user_uuid,))
        if row is None:
            raise NotFound("no such user", code="user_not_found")
        return Account.of(row)

    async def uuid_of(self, username: str) -> str:
        """The uuid of the user named `username` (the command line names users)."""
        found = await self.db.fetchval(
            f"SELECT uuid FROM users WHERE {BY_NAME} AND {LIVE} {BY_NAME_FIRST}",
            (username_key(username), username, username),
        )
        if found is None:
            raise NotFound(f"no user is named {username!r}", code="user_not_found")
        return str(found)

    async def file_counts(self, users: list[User]) -> dict[int, int]:
        """How many files (stored or uploading, not deleted, or in the trash) each of `users` has: what
        deleting them removes, said before an admin confirms. Internal id -> count."""
        ids = tuple(u.pk for u in users)
        if not ids:
            return {}
        counts = await self.db.fetchall(
            f"SELECT owner_id, count(*) AS n FROM files WHERE owner_id IN ({', '.join('?' * len(ids))}) "
            "AND (deleted_at IS NULL OR purge_at IS NOT NULL) GROUP BY owner_id",
            ids,
        )
        found = {c["owner_id"]: c["n"] for c in counts}
        return {i: int(found.get(i, 0)) for i in ids}

    async def files_outside_zones(self, users: list[User]) -> dict[int, int]:
        """For those of `users` limited to zones: how many of their stored files are in other zones
        (uploaded before the zones were set: changing zones moves nothing). Internal id -> count."""
        limited = {u.pk: set(u.zones) for u in users if u.zones is not None}
        if not limited:
            return {}
        marks = ", ".join("?" * len(limited))
        counts = await self.db.fetchall(
            "SELECT f.owner_id, v.zone, count(*) AS n FROM files f JOIN versions v ON v.id = f.current_version_id "
            f"WHERE f.owner_id IN ({marks}) AND f.deleted_at IS NULL GROUP BY f.owner_id, v.zone",
            tuple(limited),
        )
        out = dict.fromkeys(limited, 0)
        for c in counts:
            if c["zone"] not in limited[c["owner_id"]]:
                out[c["owner_id"]] += c["n"]
        return out

    async def update(self, user_uuid: str, changes: UserChanges) -> Account:
        """Change a user (any of password, is_admin, permissions, is_disabled, quota_bytes, zones, and the lifetimes);
        the user as changed.
        409 `last_admin` when no enabled administrator would be left. A new password or disabling ends every
        session of the user."""
        values: dict[str, object] = {}
        if changes.password is not UNSET:
            values["password_hash"] = await self.passwords.hash(changes.password)
        if changes.is_admin is not UNSET:
            values["is_admin"] = int(changes.is_admin)
        if changes.is_disabled is not UNSET:
            values["is_disabled"] = int(changes.is_disabled)
        if changes.permissions is not UNSET:
            values["permissions"] = json.dumps(normalize_permissions(changes.permissions))
        if changes.quota_bytes is not UNSET:
            values["quota_bytes"] = changes.quota_bytes
        if changes.zones is not UNSET:
            values["zones"] = None if changes.zones is None else json.dumps(sorted(set(changes.zones)))
        if changes.max_file_lifetime is not UNSET:
            values["max_file_lifetime"] = changes.max_file_lifetime
        if changes.default_file_lifetime is not UNSET:
            values["default_file_lifetime"] = changes.default_file_lifetime
        values["updated_at"] = self.clock.now_iso()
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        async with self.db.transaction() as tx:
            if changes.unadmins:
                await self._keep_an_admin(tx, user_uuid)
            row = await tx_fetchone(
                tx,
                f"UPDATE users SET {assignments} WHERE uuid = :uuid AND {LIVE} RETURNING {USER_COLUMNS}",
                {**values, "uuid": user_uuid},
            )
            if row is None:
                raise NotFound("no such user", code="user_not_found")
            changed = Account.of(row)
            await bump(self.db, tx, USERS)
            if changes.is_disabled is True:
                await end_keys(self.db, tx, changed.user.pk)
        self._cache.pop(user_uuid, None)
        if changes.is_disabled is True:
            await self._forget_keys()
        if changes.password is not UNSET or changes.is_disabled is True:  # their sessions end, at once
            await self.end_sessions(changed.user.pk)
        return changed

    async def _keep_an_admin(self, tx: Tx, leaving_uuid: str) -> None:
        """409 `last_admin` when the user `leaving_uuid` is the only enabled administrator. On PostgreSQL the
        administrators' rows are locked (in id order) until the transaction ends, so that two admins demoting
        each other at once are serialised: the second sees the first's change and is refused."""
        admins = await tx_fetchall(
            tx,
            f"SELECT uuid FROM users WHERE is_admin = 1 AND is_disabled = 0 AND {LIVE} ORDER BY id FOR UPDATE",
        )
        uuids = {a["uuid"] for a in admins}
        if leaving_uuid in uuids and len(uuids) == 1:
            raise Conflict("this is the last enabled administrator: make another one first", code="last_admin")

    async def change_own_password(self, user: User, session: str, current: str, new: str, client_ip: str) -> None:
        """PATCH /me: the caller's new password, given the current one (403 `invalid_credentials` else, throttled
        like logins). Every other session of the user ends; the caller's own stays."""
        address = address_key(client_ip)
        checks = ((self._by_account, f"{username_key(user.username)}|{address}"), (self._by_address, address))
        async with attempt(checks, "too many wrong passwords") as trying:
            stored = await self.db.fetchval(f"SELECT password_hash FROM users WHERE uuid = ? AND {LIVE}", (user.id,))
            # (a signed-in caller's account is one used lately)
            priority = min(self._priority(address, None), Priority.KNOWN_ACCOUNT)
            if not await self.passwords.verify(stored, current, priority):
                await trying.failed()
                raise Forbidden("the current password is wrong", code="invalid_credentials")
        await self._by_account.reset(checks[0][1])
        password_hash = await self.passwords.hash(new)
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx,
                f"UPDATE users SET password_hash = ?, updated_at = ? WHERE uuid = ? AND {LIVE} RETURNING id",
                (password_hash, self.clock.now_iso(), user.id),
            )
        if row is None:
            raise Unauthorized("the user no longer exists")
        await self.end_sessions(row["id"], keep=session)

    async def delete(self, user_uuid: str, jobs: JobQueue) -> None:
        """Delete a user: their files (those in their trash too) are removed from every server in the
        background, by jobs enqueued here, at once (no trash); their links, upload requests, webhooks and history
        go, their sessions end. The row stays, renamed and without a password, while the files' removal jobs
        refer to it. 409 `last_admin`."""
        now = self.clock.now_iso()
        async with self.db.transaction(offload=True) as tx:
            target = await tx_fetchone(tx, f"SELECT id FROM users WHERE uuid = ? AND {LIVE}", (user_uuid,))
            if target is None:
                raise NotFound("no such user", code="user_not_found")
            await self._keep_an_admin(tx, user_uuid)
            owner = target["id"]
            live = await tx_fetchall(tx, _LIVE_VERSIONS, (owner,))
            # Their files go as an owner's deletion without trash removes them (their trash too).
            await files_table.delete_all_of(tx, owner, now)
            await remove_versions(tx, jobs, [v["id"] for v in live])
            await tx.execute("DELETE FROM links WHERE owner_id = ?", (owner,))  # (their link_files go with them)
            await tx.execute(
                "UPDATE upload_requests SET deleted_at = ?, updated_at = ? WHERE owner_id = ? AND deleted_at IS NULL",
                (now, now, owner),
            )
            await tx.execute("DELETE FROM history WHERE user_id = ?", (owner,))
            await tx.execute("DELETE FROM webhooks WHERE owner_id = ?", (owner,))  # (their deliveries go with them)
            # The name is free again ("deleted:" cannot be part of a username), the password matches nothing.
            await tx.execute(
                "UPDATE users SET username = ?, username_key = NULL, password_hash = '', is_admin = 0, "
                "is_disabled = 1, deleted_at = ?, updated_at = ? WHERE id = ?",
                (f"deleted:{user_uuid}", now, now, owner),
            )
            await bump(self.db, tx, USERS)
            await end_keys(self.db, tx, owner)
        self._cache.pop(user_uuid, None)  # (from here on their tokens find no user: 401)
        await self._forget_keys()
        await self.end_sessions(owner)  # the one way sessions end for a user (other daemons learn it there)

    async def _forget_keys(self) -> None:
        if self._keys_ended is not None:
            await self._keys_ended()

    # --- sessions ----------------------------------------------------------------------------

    async def authenticate(self, access_token: str) -> User:
        """The user of a live session's access token (the hot path: no database read when cached)."""
        claims = self.tokens.read_access(access_token)
        ended = self._ended.get(claims.session)
        if ended is None:
            ended = await self._read_ended(claims.session)
        if ended:
            raise Unauthorized("this session has ended; log in again")
        return await self.live_user(claims.user_uuid)

    async def live_user(self, user_uuid: str) -> User:
        """The user a credential (an access token, an API key) acts as: 401 once deleted or disabled."""
        hit = await self.get(user_uuid)
        if hit is None:
            raise Unauthorized("the user of this token no longer exists")
        if hit.is_disabled:
            raise Unauthorized("this user is disabled")
        return hit

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
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            ended = await self._end_where(tx, "user_id = ? AND id <> COALESCE(?, '')", (user_id, keep), now)
        for session in ended:
            self.forget_session(session)

    async def _end_where(self, tx: Tx, where: str, params: tuple[Any, ...], now: str) -> list[str]:
        rows = await tx_fetchall(
            tx, f"UPDATE sessions SET ended_at = ? WHERE {where} AND ended_at IS NULL RETURNING id", (now, *params)
        )
        ended = [row["id"] for row in rows]
        if ended:
            await bump(self.db, tx, SESSIONS)
        await tx.executemany(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL",
            [(now, session) for session in ended],
        )
        return ended

    async def login(self, username: str, password: str, client_ip: str) -> tuple[User, str, str]:
        address = address_key(client_ip)
        checks = ((self._by_account, f"{username_key(username)}|{address}"), (self._by_address, address))
        async with attempt(checks, "too many failed logins") as trying:
            row = await self.db.fetchone(
                f"SELECT {USER_COLUMNS}, password_hash, last_login_at FROM users WHERE {BY_NAME} {BY_NAME_FIRST}",
                (username_key(username), username, username),
            )
            priority = self._priority(address, None if row is None else row["last_login_at"])
            if not await self.passwords.verify(row["password_hash"] if row else None, password, priority):
                self._known_addresses.failed(address)  # an address that guesses loses its first turns
                await trying.failed()
                raise InvalidCredentials("wrong username or password")
        assert row is not None
        await self._by_account.reset(checks[0][1])  # the address's count stays: it may be guessing others
        user = user_from_row(row)
        if user.is_disabled:  # (said only to whoever knows the password)
            raise InvalidCredentials("this user is disabled; an administrator can enable it again")
        started = await self.start_session(user)
        self._known_addresses.succeeded(address)
        return started

    async def sign_in_oidc(self, identity: Identity, *, create: bool) -> tuple[User, str, str]:
        """A single sign-on (oidc.py checked the provider's answer): the user of `identity`, found by its subject,
        else by its username (the subject is then recorded), else created when `create`; a session of theirs.
        A user disabled or deleted in cdnstore stays out whatever the provider says. With an admin group
        configured, the user's admin flag follows it (but never leaves no enabled administrator)."""
        row = await self.db.fetchone(
            f"SELECT {USER_COLUMNS}, deleted_at FROM users WHERE oidc_subject = ?", (identity.subject,)
        )
        if row is not None and row["deleted_at"] is not None:
            raise OidcFailed("this account was deleted in cdnstore; an administrator can create it again")
        user = user_from_row(row) if row is not None else await self._link_oidc(identity, create)
        if user.is_disabled:
            raise OidcFailed("this user is disabled in cdnstore; an administrator can enable it again")
        if identity.is_admin is not None and identity.is_admin != user.is_admin:
            try:
                user = (await self.update(user.id, UserChanges(is_admin=identity.is_admin))).user
            except Conflict:  # last_admin: the provider's group is not obeyed where it would leave no admin
                log.warning("single sign-on: %s left the admin group but is the last enabled admin", user.username)
        return await self.start_session(user)

    async def _link_oidc(self, identity: Identity, create: bool) -> User:
        """The user of a subject seen for the first time: the user of that name, when not linked to another
        subject (linked to this one from now on), else a new user when `create`."""
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx,
                f"UPDATE users SET oidc_subject = ?, updated_at = ? WHERE id = (SELECT id FROM users WHERE {BY_NAME} "
                f"AND oidc_subject IS NULL AND {LIVE} {BY_NAME_FIRST}) RETURNING {USER_COLUMNS}",
                (
                    identity.subject,
                    self.clock.now_iso(),
                    username_key(identity.username),
                    identity.username,
                    identity.username,
                ),
            )
        if row is not None:
            return user_from_row(row)
        if await self.db.fetchval(
            f"SELECT 1 FROM users WHERE {BY_NAME} AND {LIVE}", (username_key(identity.username), identity.username)
        ):
            raise OidcFailed(f"the cdnstore user {identity.username!r} signs in with another identity of the provider")
        if not create:
            raise OidcFailed(f"there is no cdnstore user named {identity.username!r}; an administrator can add one")
        try:
            made = await self.create(
                identity.username, "", is_admin=bool(identity.is_admin), oidc_subject=identity.subject
            )
            return made.user
        except (Conflict, UniqueViolation):  # the same identity signing in twice at once: the other one won
            raise OidcFailed("this account was being created by another sign-in; sign in again") from None

    async def start_session(self, user: User) -> tuple[User, str, str]:
        """A new session (a login, a single sign-on) of a user allowed in: (user, access token, refresh token)."""
        session, now, user_id = new_session_id(), self.clock.now_iso(), user.pk
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)", (session, user_id, now))
            await tx.execute("UPDATE users SET last_login_at = ? WHERE id = ?", (now, user_id))
            refresh = await self._new_refresh(tx, user_id, user.id, session)
        self._ended[session] = False
        return user, self.tokens.access(user.id, session), refresh

    def _priority(self, address: str, last_login_at: str | None) -> Priority:
        """Whose check this is (auth.Priority): from an address a login succeeded from lately, for an account
        used lately (its last login `last_login_at`), or anyone else (an unknown username included)."""
        if address in self._known_addresses:
            return Priority.KNOWN_ADDRESS
        if last_login_at is not None and last_login_at > self.clock.iso_in(-self._known_for):
            return Priority.KNOWN_ACCOUNT
        return Priority.OTHER

    async def refresh(self, refresh_token: str) -> tuple[User, str, str]:
        claims = self.tokens.read_refresh(refresh_token)
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            row = await tx_fetchone(tx, _PRESENTED, (token_hash(refresh_token),))
            presented = None if row is None else record(RefreshToken, row)
            if presented is None or presented.revoked_at is not None or presented.expires_at <= now:
                raise Unauthorized("the refresh token is not valid; log in again")
            if presented.used_at is not None:
                # A rotated token came back: someone holds a copy. End the whole session.
                await self._end_where(tx, "id = ?", (presented.family,), now)
                reuse = True
            else:
                reuse = False
                await tx.execute(
                    "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, token_hash(refresh_token))
                )
                new_refresh = await self._new_refresh(tx, presented.user_id, claims.user_uuid, presented.family)
        if reuse:
            self.forget_session(presented.family)
            raise Unauthorized("the refresh token was already used; every session of it is ended")
        hit = await self.get(claims.user_uuid)
        if hit is None or hit.is_disabled:
            raise Unauthorized("the user no longer exists or is disabled")
        return hit, self.tokens.access(claims.user_uuid, presented.family), new_refresh

    async def logout(self, refresh_token: str) -> None:
        """End the session of a refresh token (any token of it, used or not: it proves the session)."""
        self.tokens.read_refresh(refresh_token)
        async with self.db.transaction() as tx:
            row = await tx_fetchone(
                tx, "SELECT family FROM refresh_tokens WHERE token_hash = ?", (token_hash(refresh_token),)
            )
            if row is not None:
                await self._end_where(tx, "id = ?", (row["family"],), self.clock.now_iso())
        if row is not None:
            self.forget_session(row["family"])

    async def _new_refresh(self, tx: Tx, user_id: int, user_uuid: str, session: str) -> str:
        token, claims = self.tokens.refresh(user_uuid, session)
        expires = self.clock.iso_in(self.tokens.refresh_ttl)
        await tx.execute(
            "INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash(token), claims.family, user_id, expires, self.clock.now_iso()),
        )
        return token
