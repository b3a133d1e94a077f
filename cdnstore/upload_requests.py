"""Upload requests: a link through which people without an account send files to a user ("reverse shares").

- The request's token is the capability (`/u/<token>`), 256 random bits stored as is because the owner's
  list shows it (like a share link's). An optional password (argon2id) guards sending; wrong passwords are
  throttled per request and per address like a link's. Deleting a request makes its token 404; closing it
  (or its expiry, or its owner being disabled) makes it 410 `request_closed`.
- A sender announces each file (POST .../files): it goes to the storage server nearest to the SENDER among
  the owner's zones, is a file of the owner (their quota, their list with `received_via`, their history),
  and is always a new file: a name the owner already has becomes "name (2).ext" (files.Received), so a
  sender can never replace the owner's content. Announcements are throttled per sender address.
- `max_files` and `max_bytes` are checked in the announcing transaction with the request's row locked (on
  PostgreSQL; SQLite has one writer), after the owner's quota has locked the owner's row: two senders side
  by side cannot pass a limit together. What a request received is counted from the files themselves
  (`files.received_via`): every file announced through it counts, unless its upload was given up before
  any content arrived (so a failed or cancelled upload gives its place back).
- The sender continues the upload (the resume view, part URLs, /complete, cancel) with an `upload_token`:
  signed (itsdangerous, auth.secret_key) over the file and that one upload (version), so it reaches
  nothing else, and works only while that upload is in progress (then /complete only answers the file).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace

from itsdangerous import BadData, URLSafeSerializer

from . import history
from .auth import Passwords
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .db import Database, Tx, tx_fetchone
from .errors import Forbidden, Gone, Invalid, NotFound, TooLarge, Unauthorized
from .files import Files, Lifetime, Received, Upload
from .geo import Point
from .links import new_token
from .models import UNSET, Changes, Unset
from .records import fast_init
from .tables import record
from .throttle import Throttle, address_key, attempt, count_or_refuse

# A file counts as received through its request once announced, unless its upload was given up before any
# content arrived (deleted without ever having a current version).
COUNTED = "(f.deleted_at IS NULL OR f.current_version_id IS NOT NULL)"
RECEIVED = f"f.received_via = q.id AND {COUNTED}"
REQUEST_COLUMNS = f"""q.id, q.uuid, q.owner_id, q.token, q.message, q.password_hash, q.expires_at, q.max_files,
    q.max_bytes, q.closed_at, q.created_at, q.updated_at, u.username AS owner,
    (SELECT count(*) FROM files f WHERE {RECEIVED}) AS files,
    (SELECT CAST(coalesce(sum(v.size), 0) AS BIGINT) FROM files f JOIN versions v
        ON v.id = coalesce(f.current_version_id, f.latest_version_id) WHERE {RECEIVED}) AS bytes"""
REQUEST_FROM = "FROM upload_requests q JOIN users u ON u.id = q.owner_id"
# The public side also needs what it takes to upload as the owner: their zones, lifetimes and state.
PUBLIC_QUERY = f"""SELECT {REQUEST_COLUMNS}, u.zones AS owner_zones, u.is_disabled AS owner_disabled,
    u.is_admin AS owner_is_admin, u.permissions AS owner_permissions, u.max_file_lifetime, u.default_file_lifetime
    {REQUEST_FROM}
    WHERE q.token = ? AND q.deleted_at IS NULL AND u.deleted_at IS NULL"""
# What a request received (the BIGINT: PostgreSQL's sum of bigints is a numeric).
_RECEIVED_SO_FAR = f"""SELECT count(*) AS files, CAST(coalesce(sum(v.size), 0) AS BIGINT) AS bytes
    FROM files f JOIN versions v ON v.id = coalesce(f.current_version_id, f.latest_version_id)
    WHERE f.received_via = ? AND {COUNTED}"""


@fast_init
@dataclass(frozen=True, slots=True)
class UploadRequest:
    """An upload request as its owner (or an admin) sees it (REQUEST_COLUMNS), with what it received."""

    id: int
    uuid: str
    owner_id: int
    token: str
    message: str | None
    password_hash: str | None
    expires_at: str | None  # None: open until closed
    max_files: int | None  # None: no limit
    max_bytes: int | None  # None: no limit
    closed_at: str | None
    created_at: str
    updated_at: str
    owner: str  # the owner's username
    files: int  # files received (COUNTED)
    bytes: int  # their size


@dataclass(frozen=True, slots=True)
class PublicRequest(UploadRequest):
    """A request as its public side reads it (PUBLIC_QUERY): with what uploading as its owner takes."""

    owner_zones: str | None  # JSON: the zones the owner's uploads go to (None: any)
    owner_disabled: bool  # (SQLite: 0 or 1)
    owner_is_admin: bool  # (SQLite: 0 or 1)
    owner_permissions: str  # JSON
    max_file_lifetime: int | None
    default_file_lifetime: int | None


@dataclass(frozen=True, slots=True)
class RequestChanges(Changes):
    """PATCH /upload-requests/{id}: what is given changes (`UNSET`: as it is). Null removes the message, the
    password, the expiry (`expires_in`: seconds from now, already checked against the ceiling) or a limit;
    `is_open` false closes the request, true opens it again."""

    message: str | Unset | None = UNSET
    password: str | Unset | None = UNSET
    expires_in: int | Unset | None = UNSET
    max_files: int | Unset | None = UNSET
    max_bytes: int | Unset | None = UNSET
    is_open: bool | Unset = UNSET


# All an administrator may change in another user's request.
CLOSE = RequestChanges(is_open=False)


def is_open(request: UploadRequest, now: str) -> bool:
    """Whether senders may use the request at `now` (a stored time): not closed, not expired."""
    return request.closed_at is None and (request.expires_at is None or request.expires_at > now)


def left(limit: int | None, used: int) -> int | None:
    """What a limit leaves (None: no limit)."""
    return None if limit is None else max(0, limit - int(used))


@dataclass(frozen=True)
class Caller:
    """Who manages requests: owners manage their own; admins also see everyone's and may close them."""

    id: int
    is_admin: bool


@dataclass(frozen=True)
class SenderUpload:
    """A sender's announced file, the `upload_token` for the rest of its upload."""

    upload: Upload
    upload_token: str


@dataclass(frozen=True)
class UploadRef:
    """What an upload_token names: the owner's file and the one upload (version) of it."""

    owner_id: int
    file_uuid: str
    version_id: int


class UploadRequests:
    def __init__(
        self, db: Database, files: Files, passwords: Passwords, cfg: Config, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.files = files
        self.passwords = passwords
        self.cfg = cfg.requests
        self._tokens = URLSafeSerializer(cfg.auth.secret_key or "-", salt="cdnstore.request-upload")
        self._senders = Throttle(db, "request-uploads", max(1, cfg.requests.max_per_minute), 60.0)
        self.by_request = Throttle(db, "request", cfg.links.max_password_failures, cfg.links.password_lockout)
        self.by_ip = Throttle(db, "request-address", cfg.links.max_password_failures_per_ip, cfg.links.password_lockout)

    # --- the owner's side ---------------------------------------------------------------------

    def expires_in(self, asked: int | None, given: bool) -> int | None:
        """Seconds a request stays open (None: until closed). `given`: the request named expires_in (an
        explicit null asks for no expiry)."""
        ceiling = self.cfg.max_expires_in
        if not given:
            return self.cfg.default_expires_in or ceiling or None
        if ceiling and (asked is None or asked > ceiling):
            raise Invalid("expires_in", f"must be at most {ceiling} seconds (requests.max_expires_in)")
        return asked

    async def create(
        self,
        owner_id: int,
        *,
        message: str | None,
        password: str | None,
        expires_in: int | None,
        max_files: int | None,
        max_bytes: int | None,
    ) -> UploadRequest:
        password_hash = await self.passwords.hash(password) if password is not None else None
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            made = await tx_fetchone(
                tx,
                "INSERT INTO upload_requests (uuid, owner_id, token, message, password_hash, expires_at, max_files, "
                "max_bytes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id, uuid",
                (
                    str(uuid.uuid4()),
                    owner_id,
                    new_token(),
                    message,
                    password_hash,
                    None if expires_in is None else self.clock.iso_in(expires_in),
                    max_files,
                    max_bytes,
                    now,
                    now,
                ),
            )
            assert made is not None
            await history.record(
                tx,
                owner_id,
                "upload_request.created",
                made["uuid"],
                {"message": message, "max_files": max_files, "max_bytes": max_bytes, "has_password": bool(password)},
                at=now,
            )
            return await self._row(tx, made["id"])

    async def _row(self, tx: Tx, request_id: int) -> UploadRequest:
        row = await tx_fetchone(tx, f"SELECT {REQUEST_COLUMNS} {REQUEST_FROM} WHERE q.id = ?", (request_id,))
        assert row is not None
        return record(UploadRequest, row)

    async def page(
        self, caller: Caller, limit: int, before: int | None, *, everyone: bool = False
    ) -> list[UploadRequest]:
        """The caller's requests (an admin's `everyone`: all users'), newest first, closed ones included."""
        if everyone and not caller.is_admin:
            raise Forbidden("only administrators see everyone's upload requests")
        mine = "" if everyone else "q.owner_id = ? AND "
        rows = await self.db.fetchall(
            f"SELECT {REQUEST_COLUMNS} {REQUEST_FROM} WHERE {mine}q.deleted_at IS NULL AND q.id < ? "
            "ORDER BY q.id DESC LIMIT ?",
            (*(() if everyone else (caller.id,)), before or 2**62, limit + 1),
        )
        return [record(UploadRequest, r) for r in rows]

    async def get(self, caller: Caller, request_uuid: str) -> UploadRequest:
        """One request the caller manages (another user's is 404 but for admins)."""
        row = await self.db.fetchone(
            f"SELECT {REQUEST_COLUMNS} {REQUEST_FROM} WHERE q.uuid = ? AND q.deleted_at IS NULL", (request_uuid,)
        )
        found = None if row is None else record(UploadRequest, row)
        if found is None or (found.owner_id != caller.id and not caller.is_admin):
            raise NotFound("no such upload request", code="request_not_found")
        return found

    async def _managed(self, tx: Tx, caller: Caller, request_uuid: str) -> UploadRequest:
        """The request, locked (PostgreSQL), if the caller owns it or is an admin (another user's is 404, as if
        it did not exist)."""
        found = await tx_fetchone(
            tx,
            "SELECT q.id, q.owner_id FROM upload_requests q WHERE q.uuid = ? AND q.deleted_at IS NULL FOR UPDATE",
            (request_uuid,),
        )
        if found is None or (found["owner_id"] != caller.id and not caller.is_admin):
            raise NotFound("no such upload request", code="request_not_found")
        return await self._row(tx, found["id"])

    async def update(self, caller: Caller, request_uuid: str, changes: RequestChanges) -> UploadRequest:
        """PATCH: the owner changes anything (`expires_in` counts from now; null: no expiry, no limit, no
        password, no message) and opens or closes it; an admin may close anyone's (`is_open` false) only."""
        password_hash: str | None = None
        if isinstance(changes.password, str):
            password_hash = await self.passwords.hash(changes.password)
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            row = await self._managed(tx, caller, request_uuid)
            if row.owner_id != caller.id and changes != CLOSE:
                raise Forbidden("administrators may only close another user's upload request")
            values: dict[str, object] = {}
            if changes.message is not UNSET:
                values["message"] = changes.message
            if changes.max_files is not UNSET:
                values["max_files"] = changes.max_files
            if changes.max_bytes is not UNSET:
                values["max_bytes"] = changes.max_bytes
            if changes.expires_in is not UNSET:
                values["expires_at"] = None if changes.expires_in is None else self.clock.iso_in(changes.expires_in)
            if changes.password is not UNSET:
                values["password_hash"] = password_hash
            if changes.is_open is not UNSET and changes.is_open != (row.closed_at is None):
                values["closed_at"] = None if changes.is_open else now
            values["updated_at"] = now
            assignments = ", ".join(f"{column} = :{column}" for column in values)
            await tx.execute(f"UPDATE upload_requests SET {assignments} WHERE id = :id", {**values, "id": row.id})
            if values.get("closed_at"):
                await self._closed(tx, caller, row, "closed", now)
            return await self._row(tx, row.id)

    async def delete(self, caller: Caller, request_uuid: str) -> None:
        """The request is gone (its token answers 404 from now on); what it received stays the owner's."""
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            row = await self._managed(tx, caller, request_uuid)
            await tx.execute(
                "UPDATE upload_requests SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, row.id)
            )
            await self._closed(tx, caller, row, "deleted", now)

    async def _closed(self, tx: Tx, caller: Caller, request: UploadRequest, how: str, now: str) -> None:
        data = {"message": request.message, "how": how, "files": request.files}
        if caller.id != request.owner_id:
            data["by_admin"] = True
        await history.record(tx, request.owner_id, "upload_request.closed", request.uuid, data, at=now)

    # --- the public side ----------------------------------------------------------------------

    async def public(self, token: str) -> PublicRequest:
        """The request of `token` while senders may use it: 404 `request_not_found` (unknown or deleted), 410
        `request_closed` (closed, expired, its owner disabled or no longer allowed to upload)."""
        row = await self.db.fetchone(PUBLIC_QUERY, (token,))
        if row is None:
            raise NotFound("no such upload request (it may have been deleted)", code="request_not_found")
        request = record(PublicRequest, row)
        self._check_open(request)
        return request

    def _check_open(self, request: PublicRequest) -> None:
        if request.owner_disabled:
            raise Gone("the owner of this upload request is disabled", code="request_closed")
        if not request.owner_is_admin and "can_upload_file" not in json.loads(request.owner_permissions):
            raise Gone("the owner of this upload request may no longer upload files", code="request_closed")
        if request.closed_at is not None:
            raise Gone("this upload request was closed by its owner", code="request_closed")
        if not is_open(request, self.clock.now_iso()):
            raise Gone(f"this upload request expired at {request.expires_at}", code="request_closed")

    async def announce(
        self,
        token: str,
        *,
        password: str | None,
        name: str,
        size: int,
        content_type: str,
        sha256: str | None,
        client_ip: str,
        client: Point | None,
    ) -> SenderUpload:
        """A sender's file: 401 `password_required` / `invalid_password`, 413 `request_limit`, 429 for a sender
        announcing too fast, and what POST /files answers (507 `quota_exceeded` of the owner's quota ...)."""
        row = await self.public(token)
        if self.cfg.max_per_minute:
            await count_or_refuse(
                self._senders,
                address_key(client_ip),
                f"at most {self.cfg.max_per_minute} files a minute from one address",
                "too_many_uploads",
            )
        if row.password_hash is not None:
            await self._check_password(row, password, client_ip)
        self._check_room(row, size)  # (before the upload server is asked for a multipart upload)
        zones = None if row.owner_zones is None else json.loads(row.owner_zones)
        lifetime = Lifetime(row.max_file_lifetime, row.default_file_lifetime, self.clock)

        async def admit(tx: Tx, announced: int) -> None:
            locked = await tx_fetchone(
                tx,
                "SELECT q.closed_at, q.expires_at, q.max_files, q.max_bytes FROM upload_requests q "
                "WHERE q.id = ? AND q.deleted_at IS NULL FOR UPDATE",
                (row.id,),
            )
            if locked is None:
                raise NotFound("no such upload request (it was deleted)", code="request_not_found")
            fresh = replace(  # (as it is now, locked)
                row,
                closed_at=locked["closed_at"],
                expires_at=locked["expires_at"],
                max_files=locked["max_files"],
                max_bytes=locked["max_bytes"],
            )
            self._check_open(fresh)
            counted = await tx_fetchone(tx, _RECEIVED_SO_FAR, (row.id,))
            assert counted is not None
            self._check_room(replace(fresh, files=counted["files"], bytes=counted["bytes"]), announced)

        upload = await self.files.announce(
            row.owner_id,
            name,
            size,
            content_type,
            client,
            zones,
            sha256,
            expiry=lifetime.expiry(None, False),
            via=Received(row.id, row.uuid, admit),
        )
        file = upload.file
        return SenderUpload(upload, self._tokens.dumps([file.uuid, file.latest_version_id]))

    @staticmethod
    def _check_room(request: UploadRequest, size: int) -> None:
        """413 `request_limit` when one more file of `size` bytes would pass max_files or max_bytes."""
        files_left, bytes_left = left(request.max_files, request.files), left(request.max_bytes, request.bytes)
        if files_left is not None and files_left < 1:
            raise TooLarge(f"this upload request takes at most {request.max_files} files", code="request_limit")
        if bytes_left is not None and size > bytes_left:
            raise TooLarge(
                f"size: this upload request takes {bytes_left} more bytes at most (of {request.max_bytes})",
                code="request_limit",
                bytes_left=bytes_left,
            )

    async def _check_password(self, request: UploadRequest, password: str | None, client_ip: str) -> None:
        """401 `password_required` / `invalid_password`, 429 `too_many_attempts` (checks still running count,
        as for links: a burst of guesses gets no more tries than the same guesses one by one)."""
        if password is None:
            raise Unauthorized("this upload request needs a password", code="password_required")
        keys = ((self.by_request, f"request:{request.id}"), (self.by_ip, f"ip:{address_key(client_ip)}"))
        async with attempt(keys, "too many wrong passwords") as trying:
            if not await self.passwords.verify(request.password_hash, password):
                await trying.failed()
                raise Unauthorized("wrong password for this upload request", code="invalid_password")
        await self.by_request.reset(f"request:{request.id}")

    async def upload_of(self, upload_token: str) -> UploadRef:
        """The owner's file and upload an upload_token names; 404 `no_upload` for anything else (a file gone
        since: its upload cancelled, given up, deleted by its owner)."""
        try:
            file_uuid, version_id = self._tokens.loads(upload_token)
        except (BadData, ValueError, TypeError):
            raise NotFound("no such upload", code="no_upload") from None
        owner = await self.db.fetchval(
            "SELECT f.owner_id FROM files f JOIN versions v ON v.file_id = f.id "
            "WHERE f.uuid = ? AND v.id = ? AND f.received_via IS NOT NULL AND f.deleted_at IS NULL",
            (str(file_uuid), int(version_id)),
        )
        if owner is None:
            raise NotFound("no such upload", code="no_upload")
        return UploadRef(int(owner), str(file_uuid), int(version_id))
