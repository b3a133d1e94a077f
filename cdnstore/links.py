"""Share links: files reachable by anyone holding an unguessable token, with an optional password, expiry
and download limit; created, edited, listed and revoked by the files' owner.

- A link shares one file (made through /files/{id}/links: `file_id` is that file) or several (POST /links:
  `file_id` null, `files` in the order given). Every link's files are its `link_files` rows.
- Which files a link still serves is ONE condition, `SERVED`, in every statement that asks (the public
  view, downloads, the archive, the owner's state of a link): a file deleted later disappears from the
  link, and a link none of whose files is served any more is 410 (`files_gone` for its owner).
- The token is the capability: `secrets.token_urlsafe(32)` (256 random bits), stored as is because the
  owner's list shows it in every Link (the contract). Revoking deletes the row, so a revoked token is
  404 `link_not_found`, exactly like one that never existed.
- A link that expired, whose downloads are used up, whose files are all gone or whose owner is disabled
  is 410 `link_expired`. Its state (`STATE`) is computed in SQL, the same expression for the owner's lists
  and for the public side's refusals.
- Passwords are argon2id hashes (`Passwords`, in a thread). A password is verified before a download is
  counted, and never inside a transaction. Wrong passwords are throttled per (link, client address), with
  IPv6 addresses by their /64 as for logins, so guesses from one place lock out that place only; a much
  higher ceiling per link stops guessing spread over many addresses, and a limit per address over all
  links stops one address trying many links. The window ends, so the right password works again after it.
- A download (of one file, or the whole archive) counts with one conditional UPDATE in the writer
  transaction: a limit of N grants exactly N downloads, however many requests race for them.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import history
from .archives import Archive, ArchiveEntry, Archives
from .auth import Passwords
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .content import Stored
from .db import Database, Tx, tx_fetchone
from .errors import Conflict, Gone, Invalid, NotFound, Unauthorized, Unavailable
from .files import Download, Files, owned_files
from .geo import Point, rank
from .models import UNSET, Changes, LinkState, ReplicaStatus, Unset, given_or
from .records import fast_init
from .tables import record, versions
from .throttle import Throttle, address_key, attempt, count_or_refuse

# THE condition for "this file (alias f) is still served by the links that name it". Every statement that
# asks which files a link serves uses it, so a new reason not to serve a file (a trash) is added here once.
SERVED = "f.deleted_at IS NULL"

# A link's state for its owner, and the public side's reason to refuse it: 'files_gone' when it serves no
# file any more, then 'used_up', 'expired', else 'active'. Its one parameter is the time now.
STATE = f"""CASE
    WHEN NOT EXISTS (SELECT 1 FROM link_files lf JOIN files f ON f.id = lf.file_id
                     WHERE lf.link_id = l.id AND {SERVED}) THEN '{LinkState.FILES_GONE}'
    WHEN l.max_downloads IS NOT NULL AND l.downloads >= l.max_downloads THEN '{LinkState.USED_UP}'
    WHEN l.expires_at IS NOT NULL AND l.expires_at <= ? THEN '{LinkState.EXPIRED}'
    ELSE '{LinkState.ACTIVE}' END"""

# A link (alias l), whether its owner (alias u) is disabled, and its state (parameter: now); `file_uuid` is a
# one-file link's file, else NULL.
LINK_COLUMNS = f"""l.id, l.uuid, l.token, l.password_hash, l.expires_at, l.max_downloads, l.downloads,
    l.created_at, l.owner_id, u.is_disabled AS owner_disabled, one.uuid AS file_uuid, {STATE} AS state"""
LINK_JOINS = "JOIN users u ON u.id = l.owner_id LEFT JOIN files one ON one.id = l.file_id"
LINK_FROM = f"FROM links l {LINK_JOINS}"

# The files these links serve, in each link's order, with what a listing, a download or an archive needs.
_FILES_OF = f"""SELECT lf.link_id, f.id, f.uuid, f.name, f.updated_at, f.current_version_id AS version_id,
    v.size, v.content_type, v.object_key
    FROM link_files lf JOIN files f ON f.id = lf.file_id
    JOIN versions v ON v.id = coalesce(f.current_version_id, f.latest_version_id)
    WHERE lf.link_id IN ({{marks}}) AND {SERVED} ORDER BY lf.link_id, lf.position"""

# Why the public side refuses a link in each state but active.
_REFUSED = {
    LinkState.FILES_GONE: "the files of this link were deleted",
    LinkState.USED_UP: "this link's downloads are used up",
    LinkState.EXPIRED: "this link expired",
}
MAX_FILES = 1000  # files one link may name


@fast_init
@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file a link serves (_FILES_OF): `stored` once it has content (a file still uploading is listed, not
    served)."""

    id: int
    uuid: str
    name: str
    size: int
    content_type: str
    object_key: str  # its content's: the stored version's, else the announced upload's
    version_id: int | None  # its stored version (None: still uploading)
    updated_at: str

    @property
    def stored(self) -> bool:
        return self.version_id is not None


@fast_init
@dataclass(frozen=True, slots=True)
class Link:
    """A link (LINK_COLUMNS) and the files it still serves, in order."""

    id: int
    uuid: str
    token: str
    password_hash: str | None
    expires_at: str | None
    max_downloads: int | None  # None: unlimited
    downloads: int
    created_at: str
    owner_id: int
    owner_disabled: bool
    file_uuid: str | None  # a one-file link's file (its Link's `file_id`); None: a link to several
    state: LinkState
    files: tuple[SharedFile, ...]

    @property
    def single(self) -> bool:
        """Made for one file (its Link has `file_id`), not for several."""
        return self.file_uuid is not None

    def summary(self) -> str:
        """What the history calls it: its file's name, or the first one's and how many more."""
        return summary([f.name for f in self.files])


def summary(names: list[str]) -> str:
    """A link's files in a few words: the first name, and how many more."""
    if not names:
        return "no files"
    return names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class LinkChanges(Changes):
    """An edit of a link (PATCH): what is given changes (`UNSET`: as it is). `password` null removes it;
    `expires_in` (seconds from now, already checked against the ceiling) null: never; `max_downloads` null:
    unlimited; `reset_downloads` true sets the count back to 0."""

    password: str | Unset | None = UNSET
    expires_in: int | Unset | None = UNSET
    max_downloads: int | Unset | None = UNSET
    reset_downloads: bool | Unset = UNSET


@fast_init
@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A link asked for with an upload (`"link"` in `POST /files`): made once the file is stored, with the id
    and token chosen now (the announcement's answer shows them). `stored` is what the version keeps."""

    uuid: str
    token: str
    stored: str  # versions.link_request: JSON of the above, the password's hash, expires_in, max_downloads


class Links:
    def __init__(
        self,
        db: Database,
        files: Files,
        passwords: Passwords,
        cfg: Config,
        archives: Archives,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.files = files
        self.passwords = passwords
        self.archives = archives
        self.cfg = cfg.links
        lockout = cfg.links.password_lockout
        self.by_client = Throttle(db, "link-client", cfg.links.max_password_failures, lockout)
        self.by_link = Throttle(db, "link", cfg.links.max_password_failures_per_link, lockout)
        self.by_ip = Throttle(db, "link-address", cfg.links.max_password_failures_per_ip, lockout)
        self._made = Throttle(db, "links", max(1, cfg.links.max_per_minute), 60.0)  # links each user made

    # --- reading links ------------------------------------------------------------------------

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Link]:
        """The links a statement selects (LINK_COLUMNS) with the files each still serves (one query for all)."""
        rows = await self.db.fetchall(sql, params)
        if not rows:
            return []
        found: dict[int, list[SharedFile]] = {r["id"]: [] for r in rows}
        ids = list(found)
        for f in await self.db.fetchall(_FILES_OF.format(marks=", ".join("?" * len(ids))), ids):
            found[f["link_id"]].append(record(SharedFile, f))
        return [
            record(
                Link,
                r,
                owner_disabled=bool(r["owner_disabled"]),
                state=LinkState(r["state"]),
                files=tuple(found[r["id"]]),
            )
            for r in rows
        ]

    async def _one(self, where: str, params: tuple[Any, ...]) -> Link | None:
        found = await self._read(f"SELECT {LINK_COLUMNS} {LINK_FROM} {where}", (self.clock.now_iso(), *params))
        return found[0] if found else None

    async def get(self, owner_id: int, link_uuid: str, file_uuid: str | None = None) -> Link:
        """One of the owner's links (through one of its files when `file_uuid` is given); 404
        `link_not_found` for any other (another user's included)."""
        if file_uuid is not None:
            await self.files.get(owner_id, file_uuid)  # (404 file_not_found first, as for the file's list)
        found = await self._one(
            "WHERE l.uuid = ? AND l.owner_id = ?"
            + (
                ""
                if file_uuid is None
                else " AND EXISTS (SELECT 1 FROM link_files x JOIN files xf "
                "ON xf.id = x.file_id WHERE x.link_id = l.id AND xf.uuid = ?)"
            ),
            (link_uuid, owner_id) if file_uuid is None else (link_uuid, owner_id, file_uuid),
        )
        if found is None:
            raise NotFound("no such link", code="link_not_found")
        return found

    async def page(self, owner_id: int, file_uuid: str, limit: int, before: int | None) -> list[Link]:
        """The links that share the file (alone or with others), newest first, expired and used-up ones
        included (revoked ones are gone)."""
        file = await self.files.get(owner_id, file_uuid)
        return await self._read(
            f"SELECT {LINK_COLUMNS} FROM link_files x JOIN links l ON l.id = x.link_id {LINK_JOINS} "
            "WHERE x.file_id = ? AND l.owner_id = ? AND l.id < ? ORDER BY l.id DESC LIMIT ?",
            (self.clock.now_iso(), file.id, owner_id, before or 2**62, limit + 1),
        )

    async def all(self, owner_id: int, limit: int, before: int | None, state: LinkState | None) -> list[Link]:
        """Every link of the owner, of every kind, newest first; only those in `state` when given."""
        now = self.clock.now_iso()
        sql = f"SELECT {LINK_COLUMNS} {LINK_FROM} WHERE l.owner_id = ? AND l.id < ?"
        params: list[Any] = [now, owner_id, before or 2**62]
        if state is not None:
            sql += f" AND {STATE} = ?"
            params += [now, state]
        return await self._read(sql + " ORDER BY l.id DESC LIMIT ?", (*params, limit + 1))

    # --- the owner's changes ------------------------------------------------------------------

    def expires_in(self, asked: int | None, given: bool) -> int | None:
        """Seconds the link lives from now (None: forever). `given` says whether the request named
        expires_in (an explicit null asks for no expiry)."""
        ceiling = self.cfg.max_expires_in
        if not given:
            return self.cfg.default_expires_in or ceiling or None
        if ceiling and (asked is None or asked > ceiling):
            raise Invalid("expires_in", f"must be at most {ceiling} seconds (links.max_expires_in)")
        return asked

    async def create(
        self,
        owner_id: int,
        file_uuids: list[str],
        *,
        single: bool,
        password: str | None,
        expires_in: int | None,
        max_downloads: int | None,
    ) -> Link:
        """A new link to these files of the owner, in this order (a file named twice counts once). `single`:
        made for one file (its Link has `file_id`). 404 `file_not_found` when one is not the owner's."""
        wanted = list(dict.fromkeys(file_uuids))
        async with self.db.transaction() as tx:  # 404 before paying for a hash
            await owned_files(tx, owner_id, wanted)
        await self._count_made(owner_id)
        password_hash = await self.passwords.hash(password) if password is not None else None
        expires_at = self.clock.iso_in(expires_in) if expires_in is not None else None
        link_uuid = str(uuid.uuid4())
        async with self.db.transaction() as tx:
            files = {f.uuid: f for f in await owned_files(tx, owner_id, wanted)}
            chosen = [(files[u].id, u, files[u].name) for u in wanted]
            await self._insert(
                tx, owner_id, chosen, single, (link_uuid, new_token()), password_hash, expires_at, max_downloads
            )
        return await self.get(owner_id, link_uuid)

    async def _insert(
        self,
        tx: Tx,
        owner_id: int,
        files: list[tuple[int, str, str]],
        single: bool,
        link: tuple[str, str],
        password_hash: str | None,
        expires_at: str | None,
        max_downloads: int | None,
    ) -> None:
        """A new link (uuid, token) to `files` (id, uuid, name), in this order, with its history row. `single`:
        made for one file (its Link has `file_id`)."""
        link_uuid, token = link
        now = self.clock.now_iso()
        created = await tx_fetchone(
            tx,
            "INSERT INTO links (uuid, owner_id, file_id, token, password_hash, expires_at, max_downloads, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                link_uuid,
                owner_id,
                files[0][0] if single else None,
                token,
                password_hash,
                expires_at,
                max_downloads,
                now,
            ),
        )
        assert created is not None
        await tx.executemany(
            "INSERT INTO link_files (link_id, file_id, position) VALUES (?, ?, ?)",
            [(created["id"], file_id, n) for n, (file_id, _, _) in enumerate(files)],
        )
        names = [name for _, _, name in files]
        await history.record(
            tx,
            owner_id,
            "link.created",
            files[0][1] if single else link_uuid,
            {
                "link_id": link_uuid,
                "name": summary(names),
                **({} if single else {"files": len(names)}),
                "has_password": password_hash is not None,
                "expires_at": expires_at,
                "max_downloads": max_downloads,
            },
            at=now,
        )

    async def _count_made(self, owner_id: int) -> None:
        """One more link made by the owner this minute (a link's password costs a hash: links.max_per_minute
        bounds a user's); 429 `too_many_links` beyond."""
        if self.cfg.max_per_minute:
            detail = f"at most {self.cfg.max_per_minute} links a minute"
            await count_or_refuse(self._made, str(owner_id), detail, "too_many_links")

    async def request(
        self, owner_id: int, *, password: str | None, expires_in: int | None, max_downloads: int | None
    ) -> LinkRequest:
        """A link to make once an upload is stored (`"link"` in `POST /files`; `expires_in` as `expires_in`
        resolved it: counted from when the file is stored), counted among the links the owner makes a minute."""
        await self._count_made(owner_id)
        link_uuid, token = str(uuid.uuid4()), new_token()
        password_hash = await self.passwords.hash(password) if password is not None else None
        stored = json.dumps([link_uuid, token, password_hash, expires_in, max_downloads])
        return LinkRequest(link_uuid, token, stored)

    async def version_stored(self, tx: Tx, stored: Stored) -> None:
        """Files' stored listener: the link the upload asked for, made in the transaction that stores the file
        (once: the request is cleared)."""
        if stored.link_request is None:
            return
        link_uuid, token, password_hash, expires_in, max_downloads = json.loads(stored.link_request)
        file = (stored.file_id, stored.file_uuid, stored.name)
        expires_at = self.clock.iso_in(expires_in) if expires_in is not None else None
        await self._insert(
            tx, stored.owner_id, [file], True, (link_uuid, token), password_hash, expires_at, max_downloads
        )
        await versions.link_made(tx, stored.version_id)

    async def update(self, owner_id: int, link_uuid: str, file_uuid: str | None, changes: LinkChanges) -> Link:
        """Changes what is given: a password (None removes it), the expiry (seconds from now; None: never),
        the download limit (None: unlimited), and sets the count back to 0 with `reset_downloads`. A limit
        below the downloads already made is 422 unless the count is reset."""
        link = await self.get(owner_id, link_uuid, file_uuid)  # (404 before paying for a hash)
        columns: dict[str, object] = {}
        if changes.password is not UNSET:
            columns["password_hash"] = None if changes.password is None else await self.passwords.hash(changes.password)
        if changes.expires_in is not UNSET:
            columns["expires_at"] = None if changes.expires_in is None else self.clock.iso_in(changes.expires_in)
        if changes.max_downloads is not UNSET:
            columns["max_downloads"] = changes.max_downloads
        if changes.reset_downloads is True:
            columns["downloads"] = 0
        async with self.db.transaction() as tx:
            current = await tx_fetchone(tx, "SELECT downloads FROM links WHERE id = ? FOR UPDATE", (link.id,))
            if current is None:
                raise NotFound("no such link", code="link_not_found")
            limit = given_or(changes.max_downloads, link.max_downloads)
            if limit is not None and changes.reset_downloads is not True and current["downloads"] > limit:
                raise Invalid(
                    "max_downloads",
                    f"{current['downloads']} downloads were already made: give at least that many "
                    "(that many makes the link used up), or reset_downloads",
                )
            if columns:
                assignments = ", ".join(f"{column} = ?" for column in columns)  # (the names above, never input)
                await tx.execute(f"UPDATE links SET {assignments} WHERE id = ?", (*columns.values(), link.id))
            await history.record(
                tx,
                owner_id,
                "link.updated",
                link.file_uuid or link_uuid,
                {"link_id": link_uuid, "name": link.summary(), **_described(columns)},
                at=self.clock.now_iso(),
            )
        return await self.get(owner_id, link_uuid)

    async def revoke(self, owner_id: int, link_uuid: str, file_uuid: str | None = None) -> None:
        """Deletes the link: from the commit on, its token is 404 `link_not_found`."""
        link = await self.get(owner_id, link_uuid, file_uuid)
        async with self.db.transaction() as tx:
            gone = await tx_fetchone(
                tx, "DELETE FROM links WHERE id = ? AND owner_id = ? RETURNING uuid", (link.id, owner_id)
            )
            if gone is None:
                raise NotFound("no such link", code="link_not_found")
            await history.record(
                tx,
                owner_id,
                "link.deleted",
                link.file_uuid or link_uuid,
                {"link_id": link_uuid, "name": link.summary()},
                at=self.clock.now_iso(),
            )

    # --- the public side ----------------------------------------------------------------------

    async def public(self, token: str) -> Link:
        """The live link of `token`: 404 `link_not_found` when there is none (or it was revoked), 410
        `link_expired` when it expired, its downloads are used up, none of its files is served any more,
        or its owner is disabled."""
        link = await self._one("WHERE l.token = ?", (token,))
        if link is None:
            raise NotFound("no such link (it may have been revoked)", code="link_not_found")
        if link.owner_disabled:
            raise Gone("the owner of this link is disabled", code="link_expired")
        if link.state != LinkState.ACTIVE:
            raise Gone(_REFUSED[link.state], code="link_expired")
        return link

    async def download(
        self,
        token: str,
        password: str | None,
        client_ip: str,
        client: Point | None,
        file_uuid: str | None = None,
        *,
        inline: bool = False,
    ) -> Download:
        """A presigned GET of the link's file (`file_uuid`: which one of a link to several) on the nearest
        holder, like any download, counted as one download of the link. Its URL lives `links.url_ttl`
        seconds (short: whoever holds the URL gets the file, password or not). `inline`: a preview."""
        link = await self.public(token)
        file = _chosen(link, file_uuid)
        if link.password_hash is not None:
            await self._check_password(link, password, client_ip)
        try:
            got = await self.files.locate(None, file.uuid, client, self.cfg.url_ttl, inline=inline)
        except NotFound:
            raise Gone("the file of this link was deleted", code="link_expired") from None
        data = {"name": got.name, "server": got.server.name, **({"preview": True} if got.inline else {})}
        await self._count(link, [file.id], file.uuid if link.single else link.uuid, data)
        self.files.record_download(got)  # counted: the metric and the statistics (its history is above)
        return got

    async def archive(self, token: str, password: str | None, client_ip: str, client: Point | None) -> Archive:
        """Every stored file of the link as one ZIP archive streamed by the daemon (archives.py), counted as
        one download. 409 `file_not_ready` when none is stored yet; 503 `no_replica_available` when a file
        has no holder that is on and up; 503 `archive_busy` (Retry-After) while `links.max_archives` stream.
        Nothing is counted before all of that is settled."""
        link = await self.public(token)
        if link.password_hash is not None:
            await self._check_password(link, password, client_ip)
        stored = [f for f in link.files if f.stored]
        if not stored:
            raise Conflict("the files of this link are still uploading", code="file_not_ready")
        entries = await self._entries(stored, client)
        archive = self.archives.reserve(_archive_name(link), entries)
        try:
            await self._count(
                link,
                [f.id for f in stored],
                stored[0].uuid if link.single else link.uuid,
                {"name": link.summary(), "archive": True, "files": len(stored)},
            )
        except BaseException:
            archive.release()
            raise
        return archive

    async def _entries(self, stored: list[SharedFile], client: Point | None) -> list[ArchiveEntry]:
        """Each file's name, size and holders that are on and up, nearest first."""
        replicas = await self.files.replicas_of([f.version_id for f in stored if f.version_id is not None])
        entries = []
        for f in stored:
            holders = [
                s
                for s, status in replicas.get(f.version_id or 0, [])
                if status == ReplicaStatus.PRESENT and s.is_available
            ]
            if not holders:
                raise Unavailable(f"no server that holds {f.name!r} is on and up", code="no_replica_available")
            modified = datetime.fromisoformat(f.updated_at.replace("Z", "+00:00")).astimezone(UTC)
            entries.append(ArchiveEntry(f.name, f.size, modified, f.object_key, rank(holders, client)))
        return entries

    async def _count(self, link: Link, file_ids: Collection[int], object_id: str, data: dict[str, Any]) -> None:
        """One download of the link, if it is still active and still serves one of `file_ids` (a race lost
        since the lookup: revoked is 404, anything else 410), with its history row, in one transaction."""
        marks, now = ", ".join("?" * len(file_ids)), self.clock.now_iso()
        async with self.db.transaction() as tx:
            counted = await tx_fetchone(
                tx,
                f"UPDATE links AS l SET downloads = downloads + 1 WHERE l.id = ? AND {STATE} = '{LinkState.ACTIVE}' "
                f"AND EXISTS (SELECT 1 FROM link_files lf JOIN files f ON f.id = lf.file_id "
                f"WHERE lf.link_id = l.id AND f.id IN ({marks}) AND {SERVED}) RETURNING downloads",
                (link.id, now, *file_ids),
            )
            if counted is None:  # lost a race: revoked, used up, expired or deleted since the lookup
                if await tx_fetchone(tx, "SELECT 1 FROM links WHERE id = ?", (link.id,)) is None:
                    raise NotFound("no such link (it may have been revoked)", code="link_not_found")
                raise Gone("this link's downloads are used up or it expired", code="link_expired")
            await history.record(
                tx,
                link.owner_id,
                "link.downloaded",
                object_id,
                {"link_id": link.uuid, **data, "downloads": counted["downloads"]},
                at=now,
            )

    async def _check_password(self, link: Link, password: str | None, client_ip: str) -> None:
        """401 `password_required` / `invalid_password`, or 429 `too_many_attempts`.

        Verifications still running count against the limits too, so that a burst of concurrent guesses
        gets no more tries than the same guesses one after another (those beyond get 429, Retry-After 1).
        """
        if password is None:
            raise Unauthorized("this link needs a password", code="password_required")
        address = address_key(client_ip)
        keys = (
            (self.by_client, f"link:{link.id}|ip:{address}"),
            (self.by_link, f"link:{link.id}"),
            (self.by_ip, f"ip:{address}"),
        )
        async with attempt(keys, "too many wrong passwords") as trying:
            if not await self.passwords.verify(link.password_hash, password):
                await trying.failed()
                raise Unauthorized("wrong password for this link", code="invalid_password")
        # As for logins: this address's count for the link goes; the link's and the address's stay (a guesser
        # elsewhere, or this address trying other links, gains nothing from one right password).
        await self.by_client.reset(keys[0][1])


def _chosen(link: Link, file_uuid: str | None) -> SharedFile:
    """The file a download of the link asks for: its only one, or the one named (422 when a link to several
    files names none, 404 when it names one the link does not serve)."""
    if file_uuid is None:
        if len(link.files) == 1 and link.single:
            return link.files[0]
        raise Invalid("file_id", "this link shares several files: name one (or ask for the archive)")
    for file in link.files:
        if file.uuid == file_uuid:
            return file
    raise NotFound("this link shares no such file (it may have been deleted)", code="file_not_found")


def _archive_name(link: Link) -> str:
    return f"{link.files[0].name}.zip" if link.single else "shared files.zip"


def _described(columns: dict[str, object]) -> dict[str, object]:
    """An edit (the columns it writes) as its history row tells it (never the password's hash)."""
    told = {k: v for k, v in columns.items() if k in ("expires_at", "max_downloads")}
    if "password_hash" in columns:
        told["has_password"] = columns["password_hash"] is not None
    if "downloads" in columns:
        told["downloads_reset"] = True
    return told
