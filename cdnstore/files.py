"""Files and their versions: announce an upload, confirm it stored, download, rename, delete, list.

A file is a user's name for a sequence of versions. Each upload is a new version with its own opaque
object key, so a new version never overwrites the old object: downloads keep serving the current
version until the new one is stored, and then the old objects are removed everywhere (jobs).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from . import history, quotas
from .config import Config
from .db import Database, Row, Tx, UniqueViolation, iso, iso_in, now_iso, tx_fetchall, tx_fetchone
from .errors import Conflict, NotFound, StorageError, TooLarge, TooManyAttempts, Unavailable
from .geo import NearestCache, Point
from .history import HistoryWriter
from .job_queue import JobQueue
from .metrics import Metrics
from .models import S3Target, Server, VersionStatus
from .parts import part_count, part_size_for
from .servers import ServerRegistry
from .stats import DownloadStats
from .storage import Storage
from .throttle import throttle

log = logging.getLogger(__name__)

FILE_COLUMNS = """f.id, f.uuid, f.owner_id, f.name, f.created_at, f.updated_at, f.current_version_id,
    f.latest_version_id, v.size, v.content_type, v.zone, v.sha256"""
# The content a file shows: its stored version, or while it has none, its announced upload.
FILE_FROM = "FROM files f JOIN versions v ON v.id = coalesce(f.current_version_id, f.latest_version_id)"
# A live file of that owner and name, with its stored content if it has one (announce: the new upload's answer).
_EXISTING = """SELECT f.id, f.uuid, f.created_at, f.current_version_id, c.size, c.content_type, c.zone, c.sha256
    FROM files f LEFT JOIN versions c ON c.id = f.current_version_id
    WHERE f.owner_id = ? AND f.name = ? AND f.deleted_at IS NULL"""


async def owned_file(tx: Tx, owner_id: int, file_uuid: str) -> Row:
    """The id and name of the caller's live file, inside a transaction; another user's is 404 too."""
    row = await tx_fetchone(
        tx, "SELECT id, name FROM files WHERE uuid = ? AND owner_id = ? AND deleted_at IS NULL", (file_uuid, owner_id)
    )
    if row is None:
        raise NotFound("no such file", code="file_not_found")
    return row


@dataclass(frozen=True)
class PresignedPut:
    """Where a single-PUT upload sends its bytes: PUT to `url` with exactly `headers`."""

    url: str
    headers: dict[str, str]
    expires_at: str
    server: Server


@dataclass(frozen=True)
class Multipart:
    """Where a multipart upload sends its bytes: `parts` parts of `part_size` (but the last) to `server`,
    their URLs asked for later (uploads.py); given up at `expires_at` if not continued."""

    part_size: int
    parts: int
    expires_at: str
    server: Server


@dataclass(frozen=True)
class Upload:
    created: bool  # whether the file is new (else this is a new version of it)
    file: Row  # the file's row (FILE_COLUMNS)
    send: PresignedPut | Multipart


@dataclass(frozen=True)
class Download:
    url: str
    expires_at: str
    server: Server
    name: str
    sha256: str | None  # of the content served, when known
    size: int = 0  # bytes of the content handed out (download statistics)


class Files:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        servers: ServerRegistry,
        jobs: JobQueue,
        cfg: Config,
        metrics: Metrics | None = None,
        stats: DownloadStats | None = None,
        history: HistoryWriter | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.servers = servers
        self.jobs = jobs
        self.metrics = metrics or Metrics()
        self.stats = stats  # (None: downloads go uncounted, as in the benchmark's bare Files)
        self.history = history
        self.uploads = cfg.uploads
        self.downloads = cfg.downloads
        self._announced = throttle(db, "uploads", max(1, cfg.uploads.max_per_minute), 60.0)
        # (server's S3 target, key, name, ttl) -> (url, expires_at, reuse until): see _signed_get. By target, not
        # by server id: a server moved or given new keys (here or on another daemon) is never handed old URLs.
        self._signed: dict[tuple[S3Target, str, str, int], tuple[str, str, float]] = {}
        self._nearest = NearestCache()  # (the ranking of the same holders for the same clients, remembered)

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, owner_id: int, file_uuid: str) -> Row:
        row = await self.db.fetchone(
            f"SELECT {FILE_COLUMNS} {FILE_FROM} WHERE f.uuid = ? AND f.owner_id = ? AND f.deleted_at IS NULL",
            (file_uuid, owner_id),
        )
        if row is None:
            raise NotFound("no such file", code="file_not_found")
        return row

    async def page(self, owner_id: int, limit: int, before: int | None, q: str | None) -> list[Row]:
        sql = f"SELECT {FILE_COLUMNS} {FILE_FROM} WHERE f.owner_id = ? AND f.deleted_at IS NULL AND f.id < ?"
        params: list[Any] = [owner_id, before or 2**62]
        if q:
            sql += r" AND f.name LIKE ? ESCAPE '\'"
            params.append("%" + q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%")
        return await self.db.fetchall(sql + " ORDER BY f.id DESC LIMIT ?", (*params, limit + 1))

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

    async def replicas_of_files(self, rows: list[Row]) -> dict[int, list[tuple[Server, str]]]:
        """`replicas` of these file rows (a page of files), read in one query: current version id -> its servers."""
        return await self.replicas_of([r["current_version_id"] for r in rows if r["current_version_id"] is not None])

    async def replicas_of(self, version_ids: list[int]) -> dict[int, list[tuple[Server, str]]]:
        """`replicas` for many versions in one query (a page of files): version id -> its servers."""
        if not version_ids:
            return {}
        marks = ", ".join("?" * len(version_ids))
        rows = await self.db.fetchall(
            f"SELECT version_id, server_id, status FROM replicas WHERE version_id IN ({marks}) UNION "
            f"SELECT j.version_id, j.server_id, 'pending' FROM jobs j WHERE j.version_id IN ({marks}) "
            "AND j.kind = 'copy' AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.version_id = j.version_id "
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
    ) -> Upload:
        """A new upload to the nearest server that takes uploads, among `zones` when given (the owner's data
        residency: every copy stays in the zone of the server that stores it first)."""
        if size > self.uploads.max_file_size:
            raise TooLarge(f"size: files may be at most {self.uploads.max_file_size} bytes", code="file_too_large")
        if self.uploads.max_per_minute:
            wait = (await self._announced.state(str(owner_id))).retry_after
            if wait > 0:
                raise TooManyAttempts(
                    f"at most {self.uploads.max_per_minute} uploads a minute; try again later",
                    retry_after=int(wait) + 1,
                    code="too_many_uploads",
                )
            await self._announced.fail(str(owner_id))  # counted, failed or not
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
            upload_id = await self.storage.create_upload(server.s3, key, content_type=content_type)
        try:
            created, row = await self._new_version(
                owner_id, name, size, content_type, server, key, upload_id, part_size, sha256
            )
        except BaseException:
            if upload_id is not None:  # nothing refers to it: leave no upload behind (scrub would, later)
                with contextlib.suppress(StorageError):
                    await self.storage.abort_upload(server.s3, key, upload_id)
            raise
        self.metrics.uploaded(server.name)
        expires_at = iso_in(self.uploads.url_ttl, timespec="seconds")
        if part_size is not None:
            abandon_at = iso_in(self.uploads.abandon_after, timespec="seconds")
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
    ) -> tuple[bool, Row]:
        """The file (made if new) and its new version, uploading; (whether the file is new, the file)."""
        now = now_iso()
        async with self.db.transaction() as tx:
            await quotas.reserve(tx, self.db.for_update, owner_id, name, size)  # (first: it locks the user)
            existing = await tx_fetchone(tx, _EXISTING, (owner_id, name))
            created = False
            if existing is None:
                # ON CONFLICT: where transactions run side by side, another may have created it meanwhile.
                existing = await tx_fetchone(
                    tx,
                    "INSERT INTO files (uuid, owner_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (owner_id, name) WHERE deleted_at IS NULL DO NOTHING"
                    " RETURNING id, uuid, created_at, current_version_id",
                    (str(uuid.uuid4()), owner_id, name, now, now),
                )
                created = existing is not None
                existing = existing or await tx_fetchone(tx, _EXISTING, (owner_id, name))
            assert existing is not None
            version = await tx_fetchone(
                tx,
                "INSERT INTO versions (file_id, object_key, size, content_type, upload_server_id, created_at,"
                " upload_id, part_size, sha256, sha256_declared) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    existing["id"],
                    key,
                    size,
                    content_type,
                    self.servers.internal_id(server),
                    now,
                    upload_id,
                    part_size,
                    sha256,
                    int(sha256 is not None),
                ),
            )
            assert version is not None
            await tx.execute(
                "UPDATE files SET latest_version_id = ?, updated_at = ? WHERE id = ?",
                (version["id"], now, existing["id"]),
            )
            await history.record(
                tx,
                owner_id,
                "file.uploaded",
                existing["uuid"],
                {"name": name, "size": size, "server": server.name, "zone": server.zone},
            )
        # The file as FILE_COLUMNS would read it now (no statement more): its stored content, else this upload.
        stored = existing["current_version_id"] is not None
        content = existing if stored else {"size": size, "content_type": content_type, "zone": None, "sha256": sha256}
        row = {
            "id": existing["id"],
            "uuid": existing["uuid"],
            "owner_id": owner_id,
            "name": name,
            "created_at": existing["created_at"],
            "updated_at": now,
            "current_version_id": existing["current_version_id"],
            "latest_version_id": version["id"],
            **{column: content[column] for column in ("size", "content_type", "zone", "sha256")},
        }
        return created, row

    async def complete(self, owner_id: int, file_uuid: str) -> Row:
        """The client says its PUT finished: look at the upload server and store the version if there."""
        row = await self.get(owner_id, file_uuid)
        version = await self.db.fetchone(
            "SELECT id, object_key, size, status, upload_server_id FROM versions WHERE id = ?",
            (row["latest_version_id"],),
        )
        assert version is not None
        if version["status"] in (VersionStatus.STORED, VersionStatus.SUPERSEDED):
            return row
        server = self.servers.by_internal_id(version["upload_server_id"])
        if version["status"] != VersionStatus.UPLOADING or server is None:
            raise Conflict("this upload was abandoned; announce it again", code="upload_incomplete")
        try:
            found = await self.storage.head(server.s3, version["object_key"])
        except StorageError as exc:
            raise Conflict(f"the upload server cannot be asked now ({exc.detail})", code="upload_incomplete") from None
        if found is None or found.size != version["size"]:
            what = "nothing" if found is None else f"{found.size} bytes"
            raise Conflict(
                f"the upload server holds {what}; {version['size']} bytes were announced", code="upload_incomplete"
            )
        await self.object_created(server, version["object_key"], found.size, found.etag)
        return await self.get(owner_id, file_uuid)

    async def event_created(self, server: Server, key: str, size: int | None, etag: str | None) -> bool:
        """A storage event says an object appeared on `server`. One without a size (a MinIO record may
        have none) is not believed by itself: the object is HEADed on the server first, and only what is
        there, of the announced size, is stored. True if it stored an upload."""
        if size is None and await self._awaited_on(server, key):  # (no HEAD for keys nobody waits for)
            try:
                found = await self.storage.head(server.s3, key)
            except StorageError as exc:  # the sweep asks again later
                log.info("event for %s on %s not confirmed: %s", key, server.name, exc.code)
                return False
            if found is None:
                log.warning("event for %s on %s: no such object there; not stored", key, server.name)
                return False
            size, etag = found.size, found.etag
        return await self.object_created(server, key, size, etag)

    async def _awaited_on(self, server: Server, key: str) -> bool:
        row = await self.db.fetchone(
            "SELECT 1 FROM versions WHERE object_key = ? AND status = 'uploading' AND upload_server_id = ?",
            (key, self.servers.internal_id(server)),
        )
        return row is not None

    async def object_created(self, server: Server, key: str, size: int | None, etag: str | None) -> bool:
        """An object appeared on `server` (a webhook, /complete, the sweep). True if it stored an upload.

        Idempotent and order-independent: unknown keys, copies made by the replicator, duplicates and
        events for versions already stored change nothing.
        """
        async with self.db.transaction() as tx:
            # FOR UPDATE (PostgreSQL): a storage event and /complete for the same object, side by side, must
            # not both see it uploading and store it twice (the second would supersede the first's version).
            version = await tx_fetchone(
                tx,
                "SELECT id, file_id, size, status, upload_server_id, upload_id, "
                f"sha256_declared FROM versions WHERE object_key = ?{self.db.for_update}",
                (key,),
            )
            if version is None or version["upload_server_id"] != self.servers.internal_id(server):
                return False
            if version["status"] in (VersionStatus.DELETED, VersionStatus.SUPERSEDED):
                # Uploaded after its file was deleted or replaced: clean it up.
                await self.jobs.enqueue_removals(tx, [version["id"]])
                return False
            if version["status"] != VersionStatus.UPLOADING:
                return False
            if size != version["size"]:  # (None: a size nobody checked is never believed)
                log.warning(
                    "object %s on %s has %s bytes, %s announced; not stored", key, server.name, size, version["size"]
                )
                return False
            await self._store(tx, version, server, etag)
            return True

    async def _store(self, tx: Tx, version: Row, server: Server, etag: str | None) -> None:
        # A declared SHA-256 bound a single PUT on a server proved to enforce it (probe.py): known. Any other
        # waits for cdnstore's first read of the bytes (verify_pending): the first copy, else a verification
        # read (integrity.py), which a declared one must pass before the version becomes the file's content.
        enforced = bool(version["sha256_declared"]) and version["upload_id"] is None and server.enforces_checksums
        server_id = self.servers.internal_id(server)
        await tx.execute(
            "UPDATE versions SET status = 'stored', stored_at = ?, etag = ?, zone = ?, verify_pending = ? WHERE id = ?",
            (now_iso(), etag, server.zone, int(not enforced), version["id"]),
        )
        await tx.execute(
            "INSERT INTO replicas (server_id, version_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (server_id, version["id"]),
        )
        await self.jobs.enqueue_copies(tx, version["id"], server.zone)
        if version["sha256_declared"] and not enforced:
            # A declared SHA-256 the server did not enforce (a multipart upload's; a single PUT's on a server
            # that ignores x-amz-checksum-sha256) is checked by that first read: until it matches, the file
            # keeps its previous content (integrity.py makes this one current then, or rejects it).
            return
        await self.make_current(tx, version["id"], server)

    async def make_current(self, tx: Tx, version_id: int, server: Server) -> None:
        """A stored version becomes its file's content (unless a newer one already is: then it is out of
        date); the previous content is superseded."""
        row = await tx_fetchone(
            tx,
            "SELECT f.id, f.uuid, f.owner_id, f.name, f.current_version_id, v.size "
            "FROM versions v JOIN files f ON f.id = v.file_id WHERE v.id = ?",
            (version_id,),
        )
        assert row is not None
        current = row["current_version_id"]
        if current is not None and current >= version_id:
            if current > version_id:  # a newer upload of this file landed first: this one is out of date
                await self.supersede(tx, [version_id])
            return
        await tx.execute(
            "UPDATE files SET current_version_id = ?, updated_at = ? WHERE id = ?", (version_id, now_iso(), row["id"])
        )
        if current is not None:
            await self.supersede(tx, [current])
        await history.record(
            tx,
            row["owner_id"],
            "file.stored",
            row["uuid"],
            {"name": row["name"], "size": row["size"], "server": server.name, "zone": server.zone},
        )

    async def supersede(self, tx: Tx, version_ids: list[int], status: VersionStatus = VersionStatus.SUPERSEDED) -> None:
        marks = ", ".join("?" * len(version_ids))
        await tx.execute(f"UPDATE versions SET status = ? WHERE id IN ({marks})", (status, *version_ids))
        await self.jobs.enqueue_removals(tx, version_ids)

    async def sweep_uploads(self, quiet: list[int] | None = None) -> int:
        """Find uploads whose storage event was lost (HEAD on the upload server); give up on old ones. With
        `quiet` (internal ids of servers whose events are not seen), only theirs, sooner (the fast sweep).

        Returns how many uploads it stored."""
        if quiet is not None and not quiet:
            return 0
        after = self.uploads.sweep_after if quiet is None else self.uploads.fast_sweep_interval
        only = "" if quiet is None else f" AND upload_server_id IN ({', '.join(map(str, quiet))})"
        rows = await self.db.fetchall(
            "SELECT object_key, size, upload_server_id, created_at, id, file_id FROM versions "
            f"WHERE status = 'uploading' AND upload_id IS NULL AND created_at < ?{only} ORDER BY created_at LIMIT 500",
            (iso_in(-after),),
        )  # (multipart uploads: uploads.py)
        abandon_before = iso_in(-self.uploads.abandon_after)
        stored = 0
        for row in rows:
            server = self.servers.by_internal_id(row["upload_server_id"])
            if server is not None and server.is_available:
                try:
                    found = await self.storage.head(server.s3, row["object_key"])
                except StorageError as exc:
                    log.info("sweep: %s cannot be asked about %s: %s", server.name, row["object_key"], exc)
                    continue
                if found is not None:
                    stored += await self.object_created(server, row["object_key"], found.size, found.etag)
                    continue
            if row["created_at"] < abandon_before:
                await self.abandon(row["id"], row["file_id"])
        return stored

    async def abandon(self, version_id: int, file_id: int, reason: str = "upload_never_arrived") -> None:
        """Give up an upload; its file goes too when it has no stored content and no other upload."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE versions SET status = 'deleted' WHERE id = ? AND status = 'uploading'", (version_id,)
            )
            file = await tx_fetchone(
                tx,
                "SELECT uuid, owner_id, name, current_version_id FROM files WHERE id = ? AND deleted_at IS NULL",
                (file_id,),
            )
            # (a stored version that is not current yet awaits the check of its declared SHA-256)
            others = await tx_fetchall(
                tx, "SELECT 1 FROM versions WHERE file_id = ? AND status IN ('uploading', 'stored')", (file_id,)
            )
            if file is not None and file["current_version_id"] is None and not others:
                now = now_iso()
                await tx.execute("UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, file_id))
                await history.record(
                    tx, file["owner_id"], "file.deleted", file["uuid"], {"name": file["name"], "reason": reason}
                )

    # --- downloads, rename, delete ----------------------------------------------------------

    async def download(self, owner_id: int, file_uuid: str, client: Point | None) -> Download:
        """The owner's download: a presigned GET on the nearest holder, recorded (record_download)."""
        got = await self.locate(owner_id, file_uuid, client)
        self.record_download(got, (owner_id, file_uuid))
        return got

    def record_download(self, got: Download, owners: tuple[int, str] | None = None) -> None:
        """The bookkeeping of every download handed out, the owner's or through a link: the metric, the
        download statistics and the history. Nothing here awaits (the hot path): the statistics and the
        owner's `file.downloaded` row are batched (stats.py, history.py). `owners` is (owner id, file uuid)
        for an owner's download; a link's download writes its `link.downloaded` row in the transaction that
        counts it (links.py), so that the row and the count agree."""
        self.metrics.downloaded(got.server.name)
        if self.stats is not None:
            with contextlib.suppress(KeyError):  # (a server deleted this very moment: its statistics go with it)
                self.stats.add(self.servers.internal_id(got.server), got.size)
        if owners is not None and self.history is not None:
            self.history.add(owners[0], "file.downloaded", owners[1], {"name": got.name, "server": got.server.name})

    async def locate(
        self, owner_id: int | None, file_uuid: str, client: Point | None, ttl: int | None = None
    ) -> Download:
        """A presigned GET on the nearest holder, valid `ttl` seconds (default `downloads.url_ttl`), not
        recorded yet (record_download does, once the download is granted)."""
        row = await self.db.fetchone(
            "SELECT f.owner_id, f.name, f.current_version_id, v.object_key, v.size, v.sha256, "
            "(SELECT group_concat(server_id) FROM replicas WHERE version_id = v.id AND status = 'present') "
            "AS holders "
            "FROM files f LEFT JOIN versions v ON v.id = f.current_version_id "
            "WHERE f.uuid = ? AND f.deleted_at IS NULL",
            (file_uuid,),
        )
        if row is None or (owner_id is not None and row["owner_id"] != owner_id):
            raise NotFound("no such file", code="file_not_found")
        if row["current_version_id"] is None:
            raise Conflict("the file is still uploading", code="file_not_ready")
        holders = [self.servers.by_internal_id(int(i)) for i in (row["holders"] or "").split(",") if i]
        server = self._nearest.nearest([s for s in holders if s is not None and s.is_available], client)
        if server is None:
            raise Unavailable("no server that holds this file is on and up", code="no_replica_available")
        url, expires_at = self._signed_get(server, row["object_key"], row["name"], ttl or self.downloads.url_ttl)
        return Download(url, expires_at, server, row["name"], row["sha256"], row["size"])

    def _signed_get(self, server: Server, key: str, name: str, ttl: int) -> tuple[str, str]:
        """A presigned GET and when it expires. A URL signed in the last minute is handed out again
        (it stays valid for nearly its whole life): signing is the costliest step of a download."""
        now = time.time()
        target = server.public  # (what clients reach: public_url, else endpoint_url)
        hit = self._signed.get((target, key, name, ttl))
        if hit is not None and hit[2] > now:
            return hit[0], hit[1]
        url = self.storage.presign_get(target, key, filename=name, expires_in=ttl)
        expires_at = iso(now + ttl, timespec="seconds")
        if len(self._signed) >= 100_000:
            self._signed.clear()
        self._signed[(target, key, name, ttl)] = (url, expires_at, now + min(60, ttl / 10))
        return url, expires_at

    async def rename(self, owner_id: int, file_uuid: str, name: str) -> Row:
        try:
            await self._rename(owner_id, file_uuid, name)
        except UniqueViolation:  # a file of that name was created meanwhile (PostgreSQL)
            raise Conflict(f"you already have a file named {name!r}", code="name_taken") from None
        return await self.get(owner_id, file_uuid)

    async def _rename(self, owner_id: int, file_uuid: str, name: str) -> None:
        async with self.db.transaction() as tx:
            row = await owned_file(tx, owner_id, file_uuid)
            if row["name"] != name:
                if await tx_fetchone(
                    tx, "SELECT 1 FROM files WHERE owner_id = ? AND name = ? AND deleted_at IS NULL", (owner_id, name)
                ):
                    raise Conflict(f"you already have a file named {name!r}", code="name_taken")
                await tx.execute("UPDATE files SET name = ?, updated_at = ? WHERE id = ?", (name, now_iso(), row["id"]))
                await history.record(
                    tx, owner_id, "file.renamed", file_uuid, {"old_name": row["name"], "new_name": name}
                )

    async def delete(self, owner_id: int, file_uuid: str) -> None:
        async with self.db.transaction() as tx:
            row = await owned_file(tx, owner_id, file_uuid)
            now = now_iso()
            await tx.execute("UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, row["id"]))
            live = await tx_fetchall(
                tx, "SELECT id FROM versions WHERE file_id = ? AND status IN ('uploading', 'stored')", (row["id"],)
            )
            if live:
                await self.supersede(tx, [v["id"] for v in live], status=VersionStatus.DELETED)
            await history.record(tx, owner_id, "file.deleted", file_uuid, {"name": row["name"]})
