"""Files and their versions: announce an upload, confirm it stored, download, rename, delete, list.

A file is a user's name for a sequence of versions. Each upload is a new version with its own opaque
object key, so a new version never overwrites the old object: downloads keep serving the current
version until the new one is stored, and then the old objects are removed everywhere (jobs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import history, quotas
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .content import Content, retire_if_empty
from .db import Database, Tx, UniqueViolation, iso, tx_fetchall, tx_fetchone
from .errors import Conflict, Invalid, NotFound, StorageError, TooLarge, Unavailable
from .geo import NearestCache, Point
from .history import HistoryWriter
from .job_queue import COPY, JobQueue
from .metrics import Metrics
from .models import UNSET, Changes, ReplicaState, S3Target, Server, Unset, VersionStatus
from .names import MAX_NAME
from .parts import part_count, part_size_for
from .previews import inline_type
from .records import fast_init
from .servers import ServerRegistry
from .stats import DownloadStats
from .storage_port import StoragePort
from .tables import files as files_table
from .tables import record, replicas, versions
from .tables.files import NewFile
from .tables.replicas import PRESENT
from .throttle import Throttle, count_or_refuse

log = logging.getLogger(__name__)

FILE_COLUMNS = """f.id, f.uuid, f.owner_id, f.name, f.created_at, f.updated_at, f.current_version_id,
    f.latest_version_id, f.expires_at, r.uuid AS received_via, v.size, v.content_type, v.zone, v.sha256"""
# The content a file shows: its stored version, or while it has none, its announced upload; and the upload
# request it came through, if any.
FILE_FROM = """FROM files f JOIN versions v ON v.id = coalesce(f.current_version_id, f.latest_version_id)
    LEFT JOIN upload_requests r ON r.id = f.received_via"""
# A file is live while deleted_at is NULL. A deleted file with a purge_at is in its owner's trash: its stored
# version and its replicas are kept (and counted in the quota), but nothing lists or serves it, and its links
# answer 410, exactly as for a file deleted for good, until it is restored (trash.py) or purged.
IN_TRASH = "f.deleted_at IS NOT NULL AND f.purge_at IS NOT NULL"
# A live file of that owner and name, with its stored content if it has one (announce: the new upload's answer).
_EXISTING = """SELECT f.id, f.uuid, f.name, f.created_at, f.current_version_id, f.expires_at,
    (SELECT uuid FROM upload_requests WHERE id = f.received_via) AS received_via,
    c.size, c.content_type, c.zone, c.sha256
    FROM files f LEFT JOIN versions c ON c.id = f.current_version_id
    WHERE f.owner_id = ? AND f.name = ? AND f.deleted_at IS NULL"""
# The owner's and a link's download: the file, its content and the servers holding it, in one indexed read.
_LOCATE = (
    "SELECT f.owner_id, f.name, f.current_version_id, v.object_key, v.size, v.sha256, v.content_type, "
    f"(SELECT group_concat(server_id) FROM replicas WHERE version_id = v.id AND status = '{PRESENT}') "
    "AS holders "
    "FROM files f LEFT JOIN versions v ON v.id = f.current_version_id "
    "WHERE f.uuid = ? AND f.deleted_at IS NULL"
)
PENDING = ReplicaState.PENDING.value  # a server a copy is queued to, in `replicas_of`
# A version as the arrival of its object reads it (Arriving), by id or by object key.
_ARRIVING = "SELECT id, file_id, object_key, size, status, upload_server_id, upload_id, sha256_declared FROM versions"
_AWAITED = f"SELECT 1 FROM versions WHERE object_key = ? AND status = '{versions.UPLOADING}' AND upload_server_id = ?"
# A sender's file named like one of the owner's gets the first free of "x (2).pdf" ... "x (50).pdf".
SENDER_NAME_TRIES = 50


@fast_init
@dataclass(frozen=True, slots=True)
class FileRow:
    """A live file as its answers show it (FILE_COLUMNS): its content's figures are those of its stored version,
    or while it has none, of its announced upload (whose zone is not known yet)."""

    id: int
    uuid: str
    owner_id: int
    name: str
    created_at: str
    updated_at: str
    current_version_id: int | None
    latest_version_id: int | None
    expires_at: str | None
    received_via: str | None  # the upload request's uuid, for a sender's file
    size: int
    content_type: str
    zone: str | None
    sha256: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class OwnedFile:
    """One of the caller's live files, found by its uuid inside a transaction (owned_file, owned_files)."""

    id: int
    uuid: str
    name: str


@fast_init
@dataclass(frozen=True, slots=True)
class ExistingFile:
    """A live file of that owner and name (_EXISTING), with its stored content's figures if it has any: what
    an announcement's answer shows of a file it adds a version to."""

    id: int
    uuid: str
    name: str
    created_at: str
    current_version_id: int | None
    expires_at: str | None
    received_via: str | None
    size: int | None
    content_type: str | None
    zone: str | None
    sha256: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class Located:
    """What a download needs of a live file (_LOCATE): its owner and name, its content (None while it has
    none) and the internal ids of the servers holding it, comma-separated."""

    owner_id: int
    name: str
    current_version_id: int | None
    object_key: str | None
    size: int | None
    sha256: str | None
    content_type: str | None
    holders: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class Arriving:
    """A version as the arrival of its object reads it (_ARRIVING): /complete, a storage event, the sweep."""

    id: int
    file_id: int
    object_key: str
    size: int
    status: str
    upload_server_id: int | None
    upload_id: str | None
    sha256_declared: int


@fast_init
@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """A single PUT's version still uploading past `uploads.sweep_after` (sweep_uploads)."""

    id: int
    file_id: int
    object_key: str
    size: int
    upload_server_id: int | None
    created_at: str


def sender_names(name: str, mark: str | None = None) -> list[str]:
    """`name`, then "stem (2).ext" ... "stem (SENDER_NAME_TRIES).ext" (or only "stem (mark).ext"), each cut in its
    stem to stay within MAX_NAME characters."""
    stem, ext = os.path.splitext(name)
    if len(ext) > MAX_NAME // 2:  # (not an extension: a long name with a dot)
        stem, ext = name, ""

    def numbered(n: str) -> str:
        tail = f" ({n}){ext}"
        return stem[: MAX_NAME - len(tail)] + tail

    marks = [mark] if mark is not None else [str(n) for n in range(2, SENDER_NAME_TRIES + 1)]
    return [name] + [numbered(m) for m in marks]


async def owned_file(tx: Tx, owner_id: int, file_uuid: str) -> OwnedFile:
    """The caller's live file, inside a transaction; another user's is 404 too."""
    row = await tx_fetchone(
        tx,
        "SELECT id, uuid, name FROM files WHERE uuid = ? AND owner_id = ? AND deleted_at IS NULL",
        (file_uuid, owner_id),
    )
    if row is None:
        raise NotFound("no such file", code="file_not_found")
    return record(OwnedFile, row)


async def owned_files(tx: Tx, owner_id: int, file_uuids: Collection[str]) -> list[OwnedFile]:
    """The ids, uuids and names of these live files of the caller (owned_file for many, in one query); 404
    `file_not_found` naming the first that is not one (another user's included)."""
    marks = ", ".join("?" * len(file_uuids))
    rows = await tx_fetchall(
        tx,
        f"SELECT id, uuid, name FROM files WHERE owner_id = ? AND deleted_at IS NULL AND uuid IN ({marks})",
        (owner_id, *file_uuids),
    )
    found = [record(OwnedFile, r) for r in rows]
    uuids = {f.uuid for f in found}
    missing = [u for u in file_uuids if u not in uuids]
    if missing:
        raise NotFound(f"no such file: {missing[0]}", code="file_not_found")
    return found


@fast_init
@dataclass(frozen=True, slots=True)
class Expiry:
    """When an announced file expires: `at` (None: never) is what a new file gets; a new version of a file
    takes it only when the caller `asked` for it (else the file keeps its own)."""

    at: str | None = None
    asked: bool = False


@dataclass(frozen=True, slots=True)
class FileChanges(Changes):
    """PATCH /files/{id}: a new name and/or a new expiry (`Lifetime.expiry` checked it); `UNSET`: as it is."""

    name: str | Unset = UNSET
    expires_at: Expiry | Unset = UNSET


@fast_init
@dataclass(frozen=True, slots=True)
class Lifetime:
    """The bounds an admin set on a user's files' lives, in seconds: `longest` (expires_at may be at most that
    far ahead) and `default` (the life of a file whose upload names no expiry). None: no bound, no default.
    Times are counted on `clock` (the app's: api/files.py `lifetime`)."""

    longest: int | None = None
    default: int | None = None
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)

    def expiry(self, asked: str | None, given: bool) -> Expiry:
        """The expiry of an upload (or PATCH) that named `asked` when `given` (None: never), else the default
        (cut to `longest`). 422 for a time not in the future or beyond `longest`."""
        if not given:
            seconds = self.default if self.longest is None else min(self.default or self.longest, self.longest)
            return Expiry(None if seconds is None else self.clock.iso_in(seconds))
        if asked is not None and asked <= self.clock.now_iso():
            raise Invalid("expires_at", "must be in the future")
        if self.longest is not None and (asked is None or asked > self.clock.iso_in(self.longest)):
            raise Invalid(
                "expires_at",
                f"files may live at most {self.longest} seconds (max_file_lifetime): expires_at must be set, "
                f"at most {self.clock.iso_in(self.longest, timespec='seconds')}",
            )
        return Expiry(asked, asked=True)


@fast_init
@dataclass(frozen=True, slots=True)
class Received:
    """An upload through an upload request (upload_requests.py): always a file of its own, never a new version
    of one of the owner's (a name the owner has is made free: "x (2).pdf"); `admit(tx, size)` checks the
    request's limits in the announcing transaction, after the owner's quota (whose lock comes first)."""

    request_id: int
    request_uuid: str
    admit: Callable[[Tx, int], Awaitable[None]]


@fast_init
@dataclass(frozen=True, slots=True)
class PresignedPut:
    """Where a single-PUT upload sends its bytes: PUT to `url` with exactly `headers`."""

    url: str
    headers: dict[str, str]
    expires_at: str
    server: Server


@fast_init
@dataclass(frozen=True, slots=True)
class Multipart:
    """Where a multipart upload sends its bytes: `parts` parts of `part_size` (but the last) to `server`,
    their URLs asked for later (uploads.py); given up at `expires_at` if not continued."""

    part_size: int
    parts: int
    expires_at: str
    server: Server


@fast_init
@dataclass(frozen=True, slots=True)
class Upload:
    created: bool  # whether the file is new (else this is a new version of it)
    file: FileRow
    send: PresignedPut | Multipart


@fast_init
@dataclass(frozen=True, slots=True)
class Download:
    url: str
    expires_at: str
    server: Server
    name: str
    sha256: str | None  # of the content served, when known
    size: int = 0  # bytes of the content handed out (download statistics)
    inline: bool = False  # a preview (shown in the browser), not a file to save


class Files:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        jobs: JobQueue,
        content: Content,
        cfg: Config,
        metrics: Metrics | None = None,
        stats: DownloadStats | None = None,
        history: HistoryWriter | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.storage = storage
        self.servers = servers
        self.jobs = jobs
        self.content = content  # (a stored upload becomes its file's content there)
        self.metrics = metrics or Metrics()
        self.stats = stats  # (None: downloads go uncounted, as in the benchmark's bare Files)
        self.history = history
        self.uploads = cfg.uploads
        self.downloads = cfg.downloads
        self.trash_days = cfg.files.trash_days
        self.request_timeout = cfg.storage.request_timeout  # storage calls made for a request: at most this
        self._announced = Throttle(db, "uploads", max(1, cfg.uploads.max_per_minute), 60.0)
        # (server's S3 target, key, name, ttl, preview type) -> (url, expires_at, reuse until): see _signed_get. By
        # target, not by server id: a server moved or given new keys (here or on another daemon) is never handed
        # old URLs.
        self._signed: dict[tuple[S3Target, str, str, int, str | None], tuple[str, str, float]] = {}
        self._nearest = NearestCache()  # (the ranking of the same holders for the same clients, remembered)
        # Told of a storage event for the key of a version already stored (app.py: Integrity.stored_again,
        # which re-checks that replica): its object may have been written again.
        self.stored_again: Callable[[Server, str], None] | None = None

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, owner_id: int, file_uuid: str) -> FileRow:
        row = await self.db.fetchone(
            f"SELECT {FILE_COLUMNS} {FILE_FROM} WHERE f.uuid = ? AND f.owner_id = ? AND f.deleted_at IS NULL",
            (file_uuid, owner_id),
        )
        if row is None:
            raise NotFound("no such file", code="file_not_found")
        return record(FileRow, row)

    async def page(
        self, owner_id: int, limit: int, before: int | None, q: str | None, received_via: str | None = None
    ) -> list[FileRow]:
        """The owner's live files, newest first; `q` a name substring, `received_via` an upload request's id."""
        sql = f"SELECT {FILE_COLUMNS} {FILE_FROM} WHERE f.owner_id = ? AND f.deleted_at IS NULL AND f.id < ?"
        params: list[Any] = [owner_id, before or 2**62]
        if received_via is not None:
            sql += " AND r.uuid = ?"
            params.append(received_via)
        if q:
            sql += r" AND f.name LIKE ? ESCAPE '\'"
            params.append("%" + q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%")
        rows = await self.db.fetchall(sql + " ORDER BY f.id DESC LIMIT ?", (*params, limit + 1))
        return [record(FileRow, r) for r in rows]

    async def replicas(self, file_uuid: str) -> list[tuple[Server, str]]:
        """Where the current content of any user's live file is: servers holding it (present), holding bytes
        found to differ from its SHA-256 (corrupt, being replaced) or about to hold it (pending). Not scoped
        by owner: it is the server admins' view (can_view_cdnserver), by contract."""
        row = await self.db.fetchone(
            "SELECT current_version_id FROM files WHERE uuid = ? AND deleted_at IS NULL", (file_uuid,)
        )
        if row is None:
            raise NotFound("no such file", code="file_not_found")
        version = row["current_version_id"]
        return [] if version is None else (await self.replicas_of([version])).get(version, [])

    async def replicas_of_files(self, files: list[FileRow]) -> dict[int, list[tuple[Server, str]]]:
        """`replicas` of these files (a page of files), read in one query: current version id -> its servers."""
        return await self.replicas_of([f.current_version_id for f in files if f.current_version_id is not None])

    async def replicas_of(self, version_ids: list[int]) -> dict[int, list[tuple[Server, str]]]:
        """`replicas` for many versions in one query (a page of files): version id -> its servers."""
        if not version_ids:
            return {}
        marks = ", ".join("?" * len(version_ids))
        rows = await self.db.fetchall(
            f"SELECT version_id, server_id, status FROM replicas WHERE version_id IN ({marks}) UNION "
            f"SELECT j.version_id, j.server_id, '{PENDING}' FROM jobs j WHERE j.version_id IN ({marks}) "
            f"AND j.kind = '{COPY}' AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.version_id = j.version_id "
            "AND r.server_id = j.server_id)",
            (*version_ids, *version_ids),
        )
        found: dict[int, list[tuple[Server, str]]] = {}
        for r in rows:
            server = self.servers.by_internal_id(r["server_id"])
            if server is not None:
                found.setdefault(r["version_id"], []).append((server, r["status"]))
        return {v: sorted(holders, key=lambda x: x[0].name) for v, holders in found.items()}

    # --- uploads --------------------------------------------------------------------------------

    async def announce(
        self,
        owner_id: int,
        name: str,
        size: int,
        content_type: str,
        client: Point | None,
        zones: Collection[str] | None = None,
        sha256: str | None = None,
        *,
        expiry: Expiry = Expiry(),
        via: Received | None = None,
        link_request: str | None = None,
    ) -> Upload:
        """A new upload to the nearest server that takes uploads, among `zones` when given (the owner's data
        residency: every copy stays in the zone of the server that stores it first). `via`: a sender's upload
        through an upload request (throttled per sender by upload_requests.py, not here per owner).
        `link_request`: the share link to make once the upload is the file's content (links.py's
        `Links.request`)."""
        if size > self.uploads.max_file_size:
            raise TooLarge(f"size: files may be at most {self.uploads.max_file_size} bytes", code="file_too_large")
        if self.uploads.max_per_minute and via is None:  # (counted, failed or not)
            limit = f"at most {self.uploads.max_per_minute} uploads a minute"
            await count_or_refuse(self._announced, str(owner_id), limit, "too_many_uploads")
        server = self._nearest.nearest(
            [s for s in self.servers.all() if s.takes_uploads and (zones is None or s.zone in zones)], client
        )
        if server is None:
            where = f" in your zones ({', '.join(sorted(zones))})" if zones is not None else ""
            raise Unavailable(f"no storage server is on, active and up{where}", code="no_server_available")
        key = uuid.uuid4().hex
        part_size = part_size_for(size) if size > self.uploads.multipart_threshold else None
        upload_id = None
        if part_size is not None:  # (an S3 call: before the transaction, never inside)
            upload_id = await self.storage.create_upload(
                server.s3, key, content_type=content_type, timeout=self.request_timeout
            )
        try:
            created, row = await self._new_version(
                owner_id, name, size, content_type, server, key, upload_id, part_size, sha256, expiry, via, link_request
            )
        except BaseException:
            if upload_id is not None:  # nothing refers to it: leave no upload behind (scrub would, later)
                with contextlib.suppress(StorageError):
                    await self.storage.abort_upload(server.s3, key, upload_id, timeout=self.request_timeout)
            raise
        self.metrics.uploaded(server.name)
        expires_at = self.clock.iso_in(self.uploads.url_ttl, timespec="seconds")
        if part_size is not None:
            abandon_at = self.clock.iso_in(self.uploads.abandon_after, timespec="seconds")
            return Upload(created, row, Multipart(part_size, part_count(size, part_size), abandon_at, server))
        url, headers = self.storage.presign_put(
            server.public,
            key,
            content_type=content_type,
            size=size,
            expires_in=self.uploads.url_ttl,
            sha256=sha256,
            if_none_match=server.honours_conditional_write,  # written once: no second PUT swaps the bytes
        )
        return Upload(created, row, PresignedPut(url, headers, expires_at, server))

    async def _new_version(
        self,
        owner_id: int,
        name: str,
        size: int,
        content_type: str,
        server: Server,
        key: str,
        upload_id: str | None,
        part_size: int | None,
        sha256: str | None,
        expiry: Expiry,
        via: Received | None,
        link_request: str | None,
    ) -> tuple[bool, FileRow]:
        """The file (made if new) and its new version, uploading; (whether the file is new, the file)."""
        now = self.clock.now_iso()
        async with self.db.transaction() as tx:
            await quotas.reserve(tx, owner_id, name, size)  # (first: it locks the user)
            existing: ExistingFile | None
            if via is not None:
                await via.admit(tx, size)
                existing = made = await self._sender_file(tx, owner_id, name, expiry.at, via, now)
                created, name = True, made.name
            else:
                existing = await _existing_file(tx, owner_id, name)
                created = False
            if existing is None:
                new = await files_table.create(tx, str(uuid.uuid4()), owner_id, name, expiry.at, now, None)
                created = new is not None
                existing = _existing(new, None) if new else await _existing_file(tx, owner_id, name)
            assert existing is not None
            expires_at = expiry.at if expiry.asked else existing.expires_at
            server_id = server.pk
            version_id = await versions.announce(
                tx, existing.id, key, size, content_type, server_id, now, upload_id, part_size, sha256, link_request
            )
            await files_table.announced(tx, existing.id, version_id, expires_at, now)
            uploaded = {"name": name, "size": size, "server": server.name, "zone": server.zone}
            if via is not None:
                uploaded["request_id"] = via.request_uuid
            await history.record(tx, owner_id, "file.uploaded", existing.uuid, uploaded, at=now)
        # The file as FILE_COLUMNS would read it now (no statement more): its stored content, else this upload.
        stored = existing.current_version_id is not None
        file = FileRow(
            id=existing.id,
            uuid=existing.uuid,
            owner_id=owner_id,
            name=name,
            created_at=existing.created_at,
            updated_at=now,
            current_version_id=existing.current_version_id,
            latest_version_id=version_id,
            expires_at=expires_at,
            received_via=existing.received_via,
            size=existing.size if stored and existing.size is not None else size,
            content_type=existing.content_type if stored and existing.content_type is not None else content_type,
            zone=existing.zone if stored else None,
            sha256=existing.sha256 if stored else sha256,
        )
        return created, file

    async def _sender_file(
        self, tx: Tx, owner_id: int, name: str, expires_at: str | None, via: Received, now: str
    ) -> ExistingFile:
        """A new file for a sender's upload, under `name` or, when the owner has a file of that name (a sender
        must never replace the owner's content), the first free "name (2).ext" ... ; its row as _EXISTING."""
        tries = sender_names(name)
        marks = ", ".join("?" * len(tries))
        taken = {
            r["name"]
            for r in await tx_fetchall(
                tx,
                f"SELECT name FROM files WHERE owner_id = ? AND deleted_at IS NULL AND name IN ({marks})",
                (owner_id, *tries),
            )
        }
        for candidate in [t for t in tries if t not in taken] + [sender_names(name, uuid.uuid4().hex[:12])[1]]:
            # None: a file of that name created meanwhile by a transaction beside this one: the next name.
            made = await files_table.create(tx, str(uuid.uuid4()), owner_id, candidate, expires_at, now, via.request_id)
            if made is not None:
                return _existing(made, via.request_uuid)
        raise Conflict(f"no free name for {name!r}", code="name_taken")  # (the last try is random: never here)

    async def complete(self, owner_id: int, file_uuid: str) -> FileRow:
        """The client says its PUT finished: look at the upload server and store the version if there."""
        file = await self.get(owner_id, file_uuid)
        row = await self.db.fetchone(_ARRIVING + " WHERE id = ?", (file.latest_version_id,))
        assert row is not None
        version = record(Arriving, row)
        if version.status in (VersionStatus.STORED, VersionStatus.SUPERSEDED):
            # (read again: a storage event may have stored it since `file` was read, which then says uploading)
            return file if file.current_version_id == version.id else await self.get(owner_id, file_uuid)
        server = None if version.upload_server_id is None else self.servers.by_internal_id(version.upload_server_id)
        if version.status != VersionStatus.UPLOADING or server is None:
            raise Conflict("this upload was abandoned; announce it again", code="upload_incomplete")
        # (A server that fails to answer: 503 storage_unavailable, its details in the log: api/problems.py.)
        found = await self.storage.head(server.s3, version.object_key, timeout=self.request_timeout)
        if found is None or found.size != version.size:
            what = "nothing" if found is None else f"{found.size} bytes"
            raise Conflict(
                f"the upload server holds {what}; {version.size} bytes were announced", code="upload_incomplete"
            )
        await self.object_created(server, version.object_key, found.size, found.etag)
        return await self.get(owner_id, file_uuid)

    async def event_created(self, server: Server, key: str, size: int | None, etag: str | None) -> bool:
        """A storage event says an object appeared on `server`. One without a size (a MinIO record may
        have none) is not believed by itself: the object is HEADed on the server first, and only what is
        there, of the announced size, is stored. True if it stored an upload."""
        if size is None and await self._awaited_on(server, key):  # (no HEAD for keys nobody waits for)
            try:
                found = await self.storage.head(server.s3, key, timeout=self.request_timeout)
            except StorageError as exc:  # the sweep asks again later
                log.info("event for %s on %s not confirmed: %s", key, server.name, exc.code)
                return False
            if found is None:
                log.warning("event for %s on %s: no such object there; not stored", key, server.name)
                return False
            size, etag = found.size, found.etag
        return await self.object_created(server, key, size, etag, event=True)

    async def _awaited_on(self, server: Server, key: str) -> bool:
        row = await self.db.fetchone(
            _AWAITED,
            (key, server.pk),
        )
        return row is not None

    async def object_created(
        self, server: Server, key: str, size: int | None, etag: str | None, *, event: bool = False
    ) -> bool:
        """An object appeared on `server` (a webhook, /complete, the sweep). True if it stored an upload.

        Idempotent and order-independent: unknown keys, copies made by the replicator, duplicates and
        events for versions already stored change nothing here. A storage `event` for a version already
        stored may also say that its object was written again (a second PUT to its presigned URL): that
        replica is re-checked (`stored_again`), outside this transaction and this request.
        """
        async with self.db.transaction() as tx:
            # FOR UPDATE (PostgreSQL): a storage event and /complete for the same object, side by side, must
            # not both see it uploading and store it twice (the second would supersede the first's version).
            row = await tx_fetchone(tx, _ARRIVING + " WHERE object_key = ? FOR UPDATE", (key,))
            version = None if row is None else record(Arriving, row)
            stored_before = version is not None and version.status == VersionStatus.STORED
            if not stored_before:
                return await self._created(tx, version, server, key, size, etag)
        if event and self.stored_again is not None:
            self.stored_again(server, key)
        return False

    async def _created(
        self, tx: Tx, version: Arriving | None, server: Server, key: str, size: int | None, etag: str | None
    ) -> bool:
        """object_created for a version not stored yet (or gone): store it if this is its upload."""
        if version is None or version.upload_server_id != server.pk:
            return False
        if version.status in (VersionStatus.DELETED, VersionStatus.SUPERSEDED):
            # Uploaded after its file was deleted or replaced: clean it up.
            await self.jobs.enqueue_removals(tx, [version.id])
            return False
        if version.status != VersionStatus.UPLOADING:
            return False
        if size != version.size:  # (None: a size nobody checked is never believed)
            log.warning("object %s on %s has %s bytes, %s announced; not stored", key, server.name, size, version.size)
            return False
        await self._store(tx, version, server, etag)
        return True

    async def _store(self, tx: Tx, version: Arriving, server: Server, etag: str | None) -> None:
        # A declared SHA-256 bound a single PUT on a server proved to enforce it (probe.py): known. Any other
        # waits for cdnstore's first read of the bytes (verify_pending): the first copy, else a verification
        # read (integrity.py), which a declared one must pass before the version becomes the file's content.
        enforced = bool(version.sha256_declared) and version.upload_id is None and server.enforces_checksums
        await versions.store(tx, version.id, self.clock.now_iso(), etag, server.zone, verify_pending=not enforced)
        await replicas.uploaded(tx, server.pk, version.id, etag)
        await self.jobs.enqueue_copies(tx, version.id, server.zone)
        if version.sha256_declared and not enforced:
            # A declared SHA-256 the server did not enforce (a multipart upload's; a single PUT's on a server
            # that ignores x-amz-checksum-sha256) is checked by that first read: until it matches, the file
            # keeps its previous content (that read, the replicator's or integrity.py's, makes this one current
            # then through content.py's `confirmed`, or rejects it).
            return
        await self.content.make_current(tx, version.id, server)

    async def sweep_uploads(self, quiet: list[int] | None = None) -> int:
        """Find uploads whose storage event was lost (HEAD on the upload server); give up on old ones. With
        `quiet` (internal ids of servers whose events are not seen), only theirs, sooner (the fast sweep).

        Returns how many uploads it stored."""
        if quiet is not None and not quiet:
            return 0
        after = self.uploads.sweep_after if quiet is None else self.uploads.fast_sweep_interval
        only = "" if quiet is None else f" AND upload_server_id IN ({', '.join(map(str, quiet))})"
        rows = await self.db.fetchall(
            "SELECT id, file_id, object_key, size, upload_server_id, created_at FROM versions "
            f"WHERE status = '{versions.UPLOADING}' AND upload_id IS NULL AND created_at < ?{only} "
            "ORDER BY created_at LIMIT 500",
            (self.clock.iso_in(-after),),
        )  # (multipart uploads: uploads.py)
        abandon_before = self.clock.iso_in(-self.uploads.abandon_after)
        stored = 0
        for version in [record(Unconfirmed, r) for r in rows]:
            server = None if version.upload_server_id is None else self.servers.by_internal_id(version.upload_server_id)
            if server is not None and server.is_available:
                try:
                    found = await self.storage.head(server.s3, version.object_key)
                except StorageError as exc:
                    log.info("sweep: %s cannot be asked about %s: %s", server.name, version.object_key, exc)
                    continue
                if found is not None:
                    stored += await self.object_created(server, version.object_key, found.size, found.etag)
                    continue
            if version.created_at < abandon_before:
                await self.abandon(version.id, version.file_id)
        return stored

    async def abandon(self, version_id: int, file_id: int, reason: str = "upload_never_arrived") -> None:
        """Give up an upload; its file goes too when it has no stored content and no other upload."""
        async with self.db.transaction() as tx:
            await versions.give_up(tx, version_id)
            await retire_if_empty(tx, file_id, reason, self.clock.now_iso())

    # --- downloads, rename, delete ----------------------------------------------------------

    async def download(self, owner_id: int, file_uuid: str, client: Point | None, inline: bool = False) -> Download:
        """The owner's download: a presigned GET on the nearest holder, recorded (record_download)."""
        got = await self.locate(owner_id, file_uuid, client, inline=inline)
        self.record_download(got, (owner_id, file_uuid))
        return got

    def record_download(self, got: Download, owners: tuple[int, str] | None = None) -> None:
        """The bookkeeping of every download handed out, the owner's or through a link: the metric, the
        download statistics and the history. Nothing here awaits (the hot path): the statistics and the
        owner's `file.downloaded` row are batched (stats.py, history.py). `owners` is (owner id, file uuid)
        for an owner's download; a link's download writes its `link.downloaded` row in the transaction that
        counts it (links.py), so that the row and the count agree."""
        self.record_read(got.server, got.size)
        if owners is not None and self.history is not None:
            data: dict[str, Any] = {"name": got.name, "server": got.server.name}
            if got.inline:
                data["preview"] = True
            self.history.add(owners[0], "file.downloaded", owners[1], data, at=self.clock.now_iso())

    def record_read(self, server: Server, size: int) -> None:
        """`size` bytes of a file served from `server` (a presigned GET, or an archive's entry read through
        cdnstore): counted as one of its downloads in the metric and the statistics."""
        self.metrics.downloaded(server.name)
        if self.stats is not None:
            with contextlib.suppress(KeyError):  # (a server deleted this very moment: its statistics go with it)
                self.stats.add(server.pk, size)

    async def locate(
        self,
        owner_id: int | None,
        file_uuid: str,
        client: Point | None,
        ttl: int | None = None,
        *,
        inline: bool = False,
    ) -> Download:
        """A presigned GET on the nearest holder, valid `ttl` seconds (default `downloads.url_ttl`), not
        recorded yet (record_download does, once the download is granted). `inline` asks for a preview: the
        browser shows the file rather than saving it, for the types previews.py allows (others stay
        attachments)."""
        row = await self.db.fetchone(_LOCATE, (file_uuid,))
        file = None if row is None else record(Located, row)
        if file is None or (owner_id is not None and file.owner_id != owner_id):
            raise NotFound("no such file", code="file_not_found")
        if file.object_key is None or file.size is None:  # (no current version: no content yet)
            raise Conflict("the file is still uploading", code="file_not_ready")
        holders = [self.servers.by_internal_id(int(i)) for i in (file.holders or "").split(",") if i]
        server = self._nearest.nearest([s for s in holders if s is not None and s.is_available], client)
        if server is None:
            raise Unavailable("no server that holds this file is on and up", code="no_replica_available")
        shown = inline_type(file.content_type or "") if inline else None
        ttl = ttl or self.downloads.url_ttl
        url, expires_at = self._signed_get(server, file.object_key, file.name, ttl, shown)
        return Download(url, expires_at, server, file.name, file.sha256, file.size, shown is not None)

    def _signed_get(self, server: Server, key: str, name: str, ttl: int, shown: str | None) -> tuple[str, str]:
        """A presigned GET and when it expires (`shown`: the Content-Type of a preview, None to save). A URL
        signed in the last minute is handed out again (it stays valid for nearly its whole life): signing is
        the costliest step of a download."""
        now = time.time()  # (the presigning's clock: the URL is valid by the real one, not the port's)
        target = server.public  # (what clients reach: public_url, else endpoint_url)
        hit = self._signed.get((target, key, name, ttl, shown))
        if hit is not None and hit[2] > now:
            return hit[0], hit[1]
        url = self.storage.presign_get(target, key, filename=name, expires_in=ttl, inline_type=shown)
        expires_at = iso(now + ttl, timespec="seconds")
        if len(self._signed) >= 100_000:
            self._signed.clear()
        self._signed[(target, key, name, ttl, shown)] = (url, expires_at, now + min(60, ttl / 10))
        return url, expires_at

    async def update(self, owner_id: int, file_uuid: str, changes: FileChanges) -> FileRow:
        """PATCH /files/{id}: a new name (409 `name_taken`) and/or a new expiry (`Lifetime.expiry` checked it)."""
        try:
            await self._update(owner_id, file_uuid, changes)
        except UniqueViolation:  # a file of that name was created meanwhile (PostgreSQL)
            raise Conflict(f"you already have a file named {changes.name!r}", code="name_taken") from None
        return await self.get(owner_id, file_uuid)

    async def _update(self, owner_id: int, file_uuid: str, changes: FileChanges) -> None:
        name, now = changes.name, self.clock.now_iso()
        async with self.db.transaction() as tx:
            file = await owned_file(tx, owner_id, file_uuid)
            if changes.expires_at is not UNSET:
                await files_table.set_expiry(tx, file.id, changes.expires_at.at, now)
            if name is not UNSET and file.name != name:
                if await tx_fetchone(
                    tx, "SELECT 1 FROM files WHERE owner_id = ? AND name = ? AND deleted_at IS NULL", (owner_id, name)
                ):
                    raise Conflict(f"you already have a file named {name!r}", code="name_taken")
                await files_table.rename(tx, file.id, name, now)
                renamed = {"old_name": file.name, "new_name": name}
                await history.record(tx, owner_id, "file.renamed", file_uuid, renamed, at=now)

    async def delete(self, owner_id: int, file_uuid: str) -> None:
        """The owner deletes a file: into the trash, or removed everywhere (`discard`)."""
        async with self.db.transaction() as tx:
            file = await owned_file(tx, owner_id, file_uuid)
            await self.discard(tx, [file.id])

    async def discard(self, tx: Tx, file_ids: Sequence[int], reason: str | None = None) -> list[int]:
        """Delete these live files as their owner does (DELETE /files/{id}, and expiry with `reason`): with
        `files.trash_days` > 0 a file with stored content goes to the trash (that content and its replicas kept,
        its other uploads given up), anything else is removed everywhere at once (`_remove_versions`). The ids
        of the files it deleted (those still live)."""
        now = self.clock.now_iso()
        trashed = (
            await files_table.trash(tx, file_ids, now, self.clock.iso_in(self.trash_days * 86400))
            if self.trash_days
            else []
        )
        deleted = trashed + await files_table.delete(tx, file_ids, now)
        await self._remove_versions(tx, [r.id for r in deleted])
        await history.record_many(
            tx, [(r.owner_id, "file.deleted", r.uuid, deletion(r.name, reason, r.purge_at)) for r in deleted], at=now
        )
        return [r.id for r in deleted]

    async def purge(self, tx: Tx, file_ids: Sequence[int], reason: str) -> list[int]:
        """Files in the trash removed everywhere now (their time ran out, or their owner purged them): as a
        deletion with `files.trash_days` = 0 removes them. The ids of those it purged (those still in the trash)."""
        now = self.clock.now_iso()
        purged = await files_table.purge(tx, file_ids, now)
        await self._remove_versions(tx, [r.id for r in purged])
        await history.record_many(
            tx, [(r.owner_id, "file.purged", r.uuid, {"name": r.name, "reason": reason}) for r in purged], at=now
        )
        return [r.id for r in purged]

    async def _remove_versions(self, tx: Tx, file_ids: Sequence[int]) -> None:
        """The one removal path of deleted files: their uploads in progress and stored versions are given up
        and removed from every server holding them (jobs), except the stored content of a file in the trash."""
        if not file_ids:
            return
        marks = ", ".join("?" * len(file_ids))
        live = await tx_fetchall(
            tx,
            f"SELECT v.id FROM versions v JOIN files f ON f.id = v.file_id WHERE v.file_id IN ({marks}) "
            f"AND v.status IN {versions.LIVE} AND (f.purge_at IS NULL OR v.id <> f.current_version_id)",
            tuple(file_ids),
        )
        await remove_versions(tx, self.jobs, [v["id"] for v in live])


async def remove_versions(tx: Tx, jobs: JobQueue, version_ids: Sequence[int]) -> None:
    """Versions of deleted files (uploading or stored) given up and removed from every server holding them
    (jobs): the owner's deletion, a purge, a user's deletion. In batches: the queue takes ids in one IN list."""
    for start in range(0, len(version_ids), 10_000):
        deleted = await versions.delete(tx, version_ids[start : start + 10_000])
        if deleted:
            await jobs.enqueue_removals(tx, deleted)


async def _existing_file(tx: Tx, owner_id: int, name: str) -> ExistingFile | None:
    row = await tx_fetchone(tx, _EXISTING, (owner_id, name))
    return None if row is None else record(ExistingFile, row)


def _existing(made: NewFile, received_via: str | None) -> ExistingFile:
    """A file just made, as _EXISTING reads one (no content yet)."""
    return ExistingFile(
        id=made.id,
        uuid=made.uuid,
        name=made.name,
        created_at=made.created_at,
        current_version_id=None,
        expires_at=made.expires_at,
        received_via=received_via,
        size=None,
        content_type=None,
        zone=None,
        sha256=None,
    )


def deletion(name: str, reason: str | None, purge_at: str | None) -> dict[str, Any]:
    """The data of a `file.deleted` history row: the name, why when it was not its owner (`expired`), and until
    when it stays in the trash (absent: removed at once)."""
    data: dict[str, Any] = {"name": name}
    if reason is not None:
        data["reason"] = reason
    if purge_at is not None:
        data["purge_at"] = purge_at
    return data
