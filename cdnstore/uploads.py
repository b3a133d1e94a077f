"""The upload in progress of a file: the resume view, part URLs, completion, abort and the sweep of
multipart uploads.

A file over `uploads.multipart_threshold` is sent as a multipart upload straight to its upload server
(files.announce begins it). The server's own list of parts is the truth about what arrived: cdnstore keeps
only the upload id and the part size, so a resume works after a dropped connection, a reload of the page
or a restart of cdnstore alike.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from . import probe
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .db import Database, iso
from .errors import Conflict, Invalid, NotFound, StorageError
from .files import FileRow, Files, PresignedPut
from .models import Server, VersionStatus
from .parts import missing_parts, part_count, part_sizes
from .records import fast_init
from .servers import ServerRegistry
from .storage_port import PartInfo, StoragePort
from .tables import record

_UPLOAD_COLUMNS = """v.id, v.file_id, v.object_key, v.size, v.content_type, v.upload_server_id, v.status,
    v.created_at, v.upload_id, v.part_size, v.sha256"""
# The sweep's multipart uploads announced before a time (the oldest first).
_MULTIPART_DUE = (
    f"SELECT {_UPLOAD_COLUMNS} FROM versions v WHERE v.status = '{VersionStatus.UPLOADING.value}' "
    "AND v.upload_id IS NOT NULL AND v.created_at < ? ORDER BY v.created_at LIMIT 500"
)

log = logging.getLogger(__name__)

_VERSION = f"""SELECT {_UPLOAD_COLUMNS} FROM files f JOIN versions v ON v.id = f.latest_version_id
    WHERE f.uuid = ? AND f.owner_id = ? AND f.deleted_at IS NULL"""


@fast_init
@dataclass(frozen=True, slots=True)
class VersionUpload:
    """A version's upload (_UPLOAD_COLUMNS): a file's latest, or one the sweep looks at. `upload_id` and
    `part_size` are a multipart upload's (None for a single PUT)."""

    id: int
    file_id: int
    object_key: str
    size: int
    content_type: str
    upload_server_id: int | None
    status: str
    created_at: str
    upload_id: str | None
    part_size: int | None
    sha256: str | None


@dataclass(frozen=True)
class InProgress:
    version: VersionUpload
    server: Server

    @property
    def multipart(self) -> bool:
        return self.version.upload_id is not None

    @property
    def parts(self) -> tuple[str, int]:
        """A multipart upload's upload id and part size (`multipart` said it is one)."""
        upload_id, part_size = self.version.upload_id, self.version.part_size
        assert upload_id is not None and part_size is not None
        return upload_id, part_size


@dataclass(frozen=True)
class UploadState:
    """The upload in progress, to resume it (GET /upload). A single PUT is one part of the whole size, none
    held, with a fresh URL (`put`); a multipart upload has the parts its server holds (`uploaded`) and no
    URL. `expires_at`: when it is given up if not continued."""

    server: Server
    part_size: int
    parts: int
    uploaded: list[PartInfo]
    expires_at: str
    put: PresignedPut | None = None


@dataclass(frozen=True)
class PartUrl:
    """A presigned PUT of one part: send it to `url` with exactly `headers`."""

    number: int
    url: str
    headers: dict[str, str]
    expires_at: str


class Uploads:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        servers: ServerRegistry,
        files: Files,
        cfg: Config,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.storage = storage
        self.servers = servers
        self.files = files
        self.uploads = cfg.uploads
        self.request_timeout = cfg.storage.request_timeout  # storage calls made for a request: at most this
        self._next_full = 0.0  # time.monotonic() of the next full sweep

    async def _in_progress(self, owner_id: int, file_uuid: str, only: int | None = None) -> InProgress:
        """The caller's file's upload still running, with its server; 404 `no_upload` when none is (or, with
        `only`, when the upload running is not that version: an upload request's sender reaches theirs only)."""
        await self.files.get(owner_id, file_uuid)  # 404 file_not_found for a file that is not the caller's
        version = await self._latest(owner_id, file_uuid, only)
        server = None if version is None else _upload_server(self.servers, version)
        if version is None or version.status != VersionStatus.UPLOADING or server is None:
            raise NotFound("nothing is uploading to this file", code="no_upload")
        return InProgress(version, server)

    async def _latest(self, owner_id: int, file_uuid: str, only: int | None) -> VersionUpload | None:
        """The file's latest upload (None: none, or not the version `only` names)."""
        row = await self.db.fetchone(_VERSION, (file_uuid, owner_id))
        version = None if row is None else record(VersionUpload, row)
        return None if version is None or (only is not None and version.id != only) else version

    # --- the resume view ------------------------------------------------------------------------

    async def view(self, owner_id: int, file_uuid: str, only: int | None = None) -> UploadState:
        """The upload in progress and, for a multipart one, the parts its server already holds."""
        up = await self._in_progress(owner_id, file_uuid, only)
        v = up.version
        if not up.multipart:
            url, headers = self.storage.presign_put(
                up.server.public,
                v.object_key,
                content_type=v.content_type,
                size=v.size,
                expires_in=self.uploads.url_ttl,
                sha256=v.sha256,
                if_none_match=up.server.honours_conditional_write,
            )
            expires_at = self.clock.iso_in(self.uploads.url_ttl, timespec="seconds")
            put = PresignedPut(url, headers, expires_at, up.server)
            return UploadState(up.server, v.size, 1, [], expires_at, put)
        held = await self._parts(up)
        _, part_size = up.parts
        return UploadState(
            up.server,
            part_size,
            part_count(v.size, part_size),
            held,
            iso(self._last_activity(v, held).timestamp() + self.uploads.abandon_after, timespec="seconds"),
        )

    async def _parts(self, up: InProgress) -> list[PartInfo]:
        held = await self.storage.list_parts(
            up.server.s3, up.version.object_key, up.parts[0], timeout=self.request_timeout
        )
        if held is None:
            raise NotFound("the upload is no longer on its server", code="no_upload")
        return held

    @staticmethod
    def _last_activity(version: VersionUpload, held: list[PartInfo]) -> datetime:
        """When the upload was last continued: its newest part, else its announcement."""
        times = [datetime.fromisoformat(version.created_at).astimezone(UTC)]
        times += [p.modified.astimezone(UTC) for p in held if p.modified is not None]
        return max(times)

    # --- part URLs ------------------------------------------------------------------------------

    async def sign_parts(
        self, owner_id: int, file_uuid: str, numbers: list[int], md5: dict[str, str], only: int | None = None
    ) -> list[PartUrl]:
        """Presigned PUTs for these parts; a part given its MD5 must carry it (Content-MD5)."""
        up = await self._in_progress(owner_id, file_uuid, only)
        if not up.multipart:
            raise Conflict("this upload is one PUT, not in parts (GET /upload gives its URL)", code="not_multipart")
        v = up.version
        upload_id, part_size = up.parts
        sizes = part_sizes(v.size, part_size)
        wrong = [n for n in numbers if n not in sizes]
        if wrong:
            raise Invalid("numbers", f"parts are numbered 1..{len(sizes)}; not {wrong[0]}")
        stray = [k for k in md5 if not k.isdigit() or int(k) not in numbers]
        if stray:
            raise Invalid("md5", f"md5 is keyed by part numbers asked for in numbers; not {stray[0]!r}")
        expires_at = self.clock.iso_in(self.uploads.url_ttl, timespec="seconds")
        items = []
        for n in dict.fromkeys(numbers):  # (in the order asked, each once)
            url, headers = self.storage.presign_part(
                up.server.public,
                v.object_key,
                upload_id,
                n,
                size=sizes[n],
                md5=md5.get(str(n)),
                expires_in=self.uploads.url_ttl,
            )
            items.append(PartUrl(n, url, headers, expires_at))
        return items

    # --- completion and abort ---------------------------------------------------------------------

    async def complete(self, owner_id: int, file_uuid: str, only: int | None = None) -> FileRow:
        """Store the upload: a single PUT is looked for; a multipart one is assembled when parts 1..N are
        all on its server with the right sizes (else 409 `upload_incomplete` naming the `missing` ones).
        With `only`, that version's upload (else 404 `no_upload`)."""
        version = await self._latest(owner_id, file_uuid, only)
        if version is None and only is not None:
            raise NotFound("this upload is not the file's latest any more", code="no_upload")
        if version is None or version.upload_id is None or version.status != VersionStatus.UPLOADING:
            return await self.files.complete(owner_id, file_uuid)
        up = await self._in_progress(owner_id, file_uuid, only)
        v = up.version
        upload_id, part_size = up.parts
        # A server that fails to answer, here or below: 503 storage_unavailable, the details logged (the
        # client asks again; an assembly that went on after the timeout is found then: the upload is gone).
        held = await self.storage.list_parts(up.server.s3, v.object_key, upload_id, timeout=self.request_timeout)
        if held is None:  # assembled already (a complete that raced this one) or aborted
            return await self.files.complete(owner_id, file_uuid)
        missing = missing_parts(v.size, part_size, {p.number: p.size for p in held})
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            raise Conflict(f"parts still to send: {shown}", code="upload_incomplete", missing=missing)
        etags = {p.number: p.etag for p in held if p.number <= part_count(v.size, part_size)}
        await self.storage.complete_upload(up.server.s3, v.object_key, upload_id, etags, timeout=self.request_timeout)
        return await self.files.complete(owner_id, file_uuid)

    async def abort(self, owner_id: int, file_uuid: str, only: int | None = None) -> None:
        """Abandon the upload in progress: a multipart one is aborted on its server first (no parts left).
        The file keeps its stored content, or goes when it has none."""
        up = await self._in_progress(owner_id, file_uuid, only)
        v = up.version
        if up.multipart:
            await self.storage.abort_upload(up.server.s3, v.object_key, up.parts[0], timeout=self.request_timeout)
        await self.files.abandon(v.id, v.file_id, reason="upload_cancelled")

    # --- the sweep ------------------------------------------------------------------------------

    async def sweep_due(self) -> int:
        """The periodic task, every `uploads.fast_sweep_interval`: the single PUTs to servers whose events are
        not seen (probe.events_state: their uploads wait for nothing else when the client never calls
        /complete), and the whole sweep every `uploads.sweep_interval`. How many uploads were stored."""
        if time.monotonic() < self._next_full:
            now = self.clock.now_iso()
            quiet = [s.pk for s in self.servers.all() if probe.events_state(s, now) != "seen"]
            return await self.files.sweep_uploads(quiet)
        self._next_full = time.monotonic() + self.uploads.sweep_interval
        return await self.sweep()

    async def sweep(self) -> int:
        """The upload sweep: single PUTs (files.sweep_uploads), then multipart uploads: one assembled whose
        storage event was lost is stored (HEAD); one left alone past `uploads.abandon_after` (no part for that
        long) is aborted on its server and given up. How many uploads were stored."""
        stored = await self.files.sweep_uploads()
        rows = await self.db.fetchall(
            _MULTIPART_DUE,
            (self.clock.iso_in(-self.uploads.sweep_after),),
        )
        abandon_before = self.clock.iso_in(-self.uploads.abandon_after)
        for version in [record(VersionUpload, r) for r in rows]:
            stored += await self._sweep_one(version, version.created_at < abandon_before)
        return stored

    async def _sweep_one(self, version: VersionUpload, old: bool) -> bool:
        server = _upload_server(self.servers, version)
        if server is None or not server.is_available:
            if old:  # its parts stay until the server is back: scrub aborts cdnstore's leftovers there
                await self.files.abandon(version.id, version.file_id)
            return False
        key, upload_id = version.object_key, version.upload_id
        assert upload_id is not None  # (_MULTIPART_DUE: multipart uploads only)
        try:
            found = await self.storage.head(server.s3, key)  # (cheap; the object exists once assembled)
            if found is not None:
                return await self.files.object_created(server, key, found.size, found.etag)
            if not old:
                return False
            held = await self.storage.list_parts(server.s3, key, upload_id)
            if held is not None:
                idle = datetime.fromtimestamp(self.clock.time(), UTC) - self._last_activity(version, held)
                if idle.total_seconds() < self.uploads.abandon_after:
                    return False  # still being continued
                await self.storage.abort_upload(server.s3, key, upload_id)
        except StorageError as exc:
            log.info("sweep: %s cannot be asked about upload %s: %s", server.name, key, exc)
            return False
        log.info("sweep: multipart upload of %s on %s abandoned", key, server.name)
        await self.files.abandon(version.id, version.file_id)
        return False


def _upload_server(servers: ServerRegistry, version: VersionUpload) -> Server | None:
    """The server the upload goes to (None: deleted since)."""
    return None if version.upload_server_id is None else servers.by_internal_id(version.upload_server_id)
