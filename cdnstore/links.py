"""Share links: a file reachable by anyone holding an unguessable token, with an optional password,
expiry and download limit; created, listed and revoked by the file's owner.

- The token is the capability: `secrets.token_urlsafe(32)` (256 random bits), stored as is because the
  owner's list shows it in every Link (the contract). Revoking deletes the row, so a revoked token is
  404 `link_not_found`, exactly like one that never existed.
- A link that expired, whose downloads are used up, whose file was deleted or whose owner is disabled is
  410 `link_expired`.
- Passwords are argon2id hashes (`Passwords`, in a thread). A password is verified before a download is
  counted, and never inside a transaction. Wrong passwords are throttled per (link, client address), with
  IPv6 addresses by their /64 as for logins, so guesses from one place lock out that place only; a much
  higher ceiling per link stops guessing spread over many addresses, and a limit per address over all
  links stops one address trying many links. The window ends, so the right password works again after it.
- A download counts with one conditional UPDATE in the writer transaction: a limit of N grants exactly N
  downloads, however many requests race for them.
"""

from __future__ import annotations

import secrets
import uuid

from . import history
from .auth import Passwords
from .config import Config
from .db import Database, Row, iso_in, now_iso, tx_fetchone
from .errors import Gone, Invalid, NotFound, Unauthorized
from .files import Download, Files, owned_file
from .geo import Point
from .throttle import address_key, attempt, count_or_refuse, throttle

LINK_COLUMNS = """l.id, l.uuid, l.token, l.password_hash, l.expires_at, l.max_downloads, l.downloads,
    l.created_at, f.uuid AS file_uuid"""
# A public lookup also needs the file's name, size, owner and whether it is deleted.
PUBLIC_QUERY = f"""SELECT {LINK_COLUMNS}, f.owner_id, f.name, f.deleted_at, coalesce(v.size, 0) AS size,
    (SELECT is_disabled FROM users WHERE id = f.owner_id) AS owner_disabled
    FROM links l JOIN files f ON f.id = l.file_id
    LEFT JOIN versions v ON v.id = coalesce(f.current_version_id, f.latest_version_id)
    WHERE l.token = ?"""


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Links:
    def __init__(self, db: Database, files: Files, passwords: Passwords, cfg: Config) -> None:
        self.db = db
        self.files = files
        self.passwords = passwords
        self.cfg = cfg.links
        lockout = cfg.links.password_lockout
        self.by_client = throttle(db, "link-client", cfg.links.max_password_failures, lockout)
        self.by_link = throttle(db, "link", cfg.links.max_password_failures_per_link, lockout)
        self.by_ip = throttle(db, "link-address", cfg.links.max_password_failures_per_ip, lockout)
        self._made = throttle(db, "links", max(1, cfg.links.max_per_minute), 60.0)  # links each user made

    # --- the owner's side ---------------------------------------------------------------------

    def expires_in(self, asked: int | None, given: bool) -> int | None:
        """Seconds the new link lives (None: forever). `given` says whether the request named expires_in
        (an explicit null asks for no expiry)."""
        ceiling = self.cfg.max_expires_in
        if not given:
            return self.cfg.default_expires_in or ceiling or None
        if ceiling and (asked is None or asked > ceiling):
            raise Invalid("expires_in", f"must be at most {ceiling} seconds (links.max_expires_in)")
        return asked

    async def create(
        self, owner_id: int, file_uuid: str, *, password: str | None, expires_in: int | None, max_downloads: int | None
    ) -> Row:
        await self.files.get(owner_id, file_uuid)  # 404 before paying for a hash
        if self.cfg.max_per_minute:  # (a link's password costs a hash: links.max_per_minute bounds a user's)
            detail = f"at most {self.cfg.max_per_minute} links a minute"
            await count_or_refuse(self._made, str(owner_id), detail, "too_many_links")
        password_hash = await self.passwords.hash(password) if password is not None else None
        expires_at = iso_in(expires_in) if expires_in is not None else None
        async with self.db.transaction() as tx:
            file = await owned_file(tx, owner_id, file_uuid)
            created = await tx_fetchone(
                tx,
                "INSERT INTO links (uuid, file_id, token, password_hash, expires_at, max_downloads, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id, uuid",
                (str(uuid.uuid4()), file["id"], new_token(), password_hash, expires_at, max_downloads, now_iso()),
            )
            assert created is not None
            await history.record(
                tx,
                owner_id,
                "link.created",
                file_uuid,
                {
                    "link_id": created["uuid"],
                    "name": file["name"],
                    "has_password": password_hash is not None,
                    "expires_at": expires_at,
                    "max_downloads": max_downloads,
                },
            )
            row = await tx_fetchone(
                tx,
                f"SELECT {LINK_COLUMNS} FROM links l JOIN files f ON f.id = l.file_id WHERE l.id = ?",
                (created["id"],),
            )
        assert row is not None
        return row

    async def page(self, owner_id: int, file_uuid: str, limit: int, before: int | None) -> list[Row]:
        """The file's links, newest first, expired and used-up ones included (revoked ones are gone)."""
        await self.files.get(owner_id, file_uuid)
        return await self.db.fetchall(
            f"SELECT {LINK_COLUMNS} FROM links l JOIN files f ON f.id = l.file_id "
            "WHERE f.uuid = ? AND f.owner_id = ? AND l.id < ? ORDER BY l.id DESC LIMIT ?",
            (file_uuid, owner_id, before or 2**62, limit + 1),
        )

    async def revoke(self, owner_id: int, file_uuid: str, link_uuid: str) -> None:
        """Deletes the link: from the commit on, its token is 404 `link_not_found`."""
        async with self.db.transaction() as tx:
            file = await owned_file(tx, owner_id, file_uuid)
            gone = await tx_fetchone(
                tx, "DELETE FROM links WHERE uuid = ? AND file_id = ? RETURNING uuid", (link_uuid, file["id"])
            )
            if gone is None:
                raise NotFound("no such link", code="link_not_found")
            await history.record(tx, owner_id, "link.deleted", file_uuid, {"link_id": link_uuid, "name": file["name"]})

    # --- the public side ----------------------------------------------------------------------

    async def public(self, token: str) -> Row:
        """The live link of `token`: 404 `link_not_found` when there is none (or it was revoked), 410
        `link_expired` when it expired, its downloads are used up, or its file was deleted."""
        row = await self.db.fetchone(PUBLIC_QUERY, (token,))
        if row is None:
            raise NotFound("no such link (it may have been revoked)", code="link_not_found")
        if row["deleted_at"] is not None:
            raise Gone("the file of this link was deleted", code="link_expired")
        if row["owner_disabled"]:
            raise Gone("the owner of this link is disabled", code="link_expired")
        if row["expires_at"] is not None and row["expires_at"] <= now_iso():
            raise Gone(f"this link expired at {row['expires_at']}", code="link_expired")
        if row["max_downloads"] is not None and row["downloads"] >= row["max_downloads"]:
            raise Gone("this link's downloads are used up", code="link_expired")
        return row

    async def download(self, token: str, password: str | None, client_ip: str, client: Point | None) -> Download:
        """A presigned GET on the nearest holder, like any download, counted as one download of the link.
        Its URL lives `links.url_ttl` seconds (short: whoever holds the URL gets the file, password or not)."""
        link = await self.public(token)
        if link["password_hash"] is not None:
            await self._check_password(link, password, client_ip)
        try:
            got = await self.files.locate(None, link["file_uuid"], client, self.cfg.url_ttl)
        except NotFound:
            raise Gone("the file of this link was deleted", code="link_expired") from None
        async with self.db.transaction() as tx:
            counted = await tx_fetchone(
                tx,
                "UPDATE links SET downloads = downloads + 1 WHERE id = ? "
                "AND (max_downloads IS NULL OR downloads < max_downloads) "
                "AND (expires_at IS NULL OR expires_at > ?) "
                "AND EXISTS (SELECT 1 FROM files WHERE id = links.file_id AND deleted_at IS NULL) "
                "RETURNING downloads",
                (link["id"], now_iso()),
            )
            if counted is None:  # lost a race: revoked, used up, expired or deleted since the lookup
                if await tx_fetchone(tx, "SELECT 1 FROM links WHERE id = ?", (link["id"],)) is None:
                    raise NotFound("no such link (it may have been revoked)", code="link_not_found")
                raise Gone("this link's downloads are used up or it expired", code="link_expired")
            await history.record(
                tx,
                link["owner_id"],
                "link.downloaded",
                link["file_uuid"],
                {
                    "link_id": link["uuid"],
                    "name": got.name,
                    "server": got.server.name,
                    "downloads": counted["downloads"],
                },
            )
        self.files.record_download(got)  # counted: the metric and the statistics (its history is above)
        return got

    async def _check_password(self, link: Row, password: str | None, client_ip: str) -> None:
        """401 `password_required` / `invalid_password`, or 429 `too_many_attempts`.

        Verifications still running count against the limits too, so that a burst of concurrent guesses
        gets no more tries than the same guesses one after another (those beyond get 429, Retry-After 1).
        """
        if password is None:
            raise Unauthorized("this link needs a password", code="password_required")
        address = address_key(client_ip)
        keys = (
            (self.by_client, f"link:{link['id']}|ip:{address}"),
            (self.by_link, f"link:{link['id']}"),
            (self.by_ip, f"ip:{address}"),
        )
        async with attempt(keys, "too many wrong passwords") as trying:
            if not await self.passwords.verify(link["password_hash"], password):
                await trying.failed()
                raise Unauthorized("wrong password for this link", code="invalid_password")
        # As for logins: this address's count for the link goes; the link's and the address's stay (a guesser
        # elsewhere, or this address trying other links, gains nothing from one right password).
        await self.by_client.reset(keys[0][1])
