"""The registry of storage servers: SQL, use cases (add, change, remove), and an in-memory copy.

Servers are few and change rarely, while every upload and download chooses among them: the registry
keeps them in memory and reloads after each change. Every change also raises the `servers` counter in its
transaction (changes.py), so that the other daemons on the same database reload theirs within a second.
Code that must react to a change (the replicator fills a newly activated server) registers a
listener; listeners run inside the transaction of the change, so their jobs commit with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from . import history, probe
from .changes import SERVERS, bump
from .clock import SYSTEM_CLOCK, Clock
from .db import Database, Tx, UniqueViolation, tx_fetchone
from .endpoints import check_endpoint
from .errors import Conflict, Invalid, NotFound, StorageError
from .job_queue import OPEN
from .models import (
    UNSET,
    AddressingStyle,
    Capabilities,
    Changes,
    Health,
    S3Target,
    Server,
    Unset,
    VersionStatus,
    given_or,
)
from .probe import Prober
from .records import fast_init
from .sealing import Sealer, UnsealError, sealed
from .storage_port import StoragePort
from .tables import record
from .webhook_queue import emit_fleet

log = logging.getLogger(__name__)

# (transaction, server internal id, before, after); before is None on create, after on delete.
Listener = Callable[[Tx, int, Server | None, Server | None], Awaitable[None]]

S3_FIELDS = ("endpoint_url", "bucket", "region", "access_key", "secret_key", "addressing_style")  # S3Target order
COLUMNS = (
    "uuid",
    "name",
    "endpoint_url",
    "bucket",
    "region",
    "access_key",
    "secret_key",
    "location",
    "zone",
    "latitude",
    "longitude",
    "is_on",
    "is_active",
    "events_token_hash",
    "public_url",
    "addressing_style",
    "capabilities",
)


def server_from_row(row: Any, secret_key: str) -> Server:
    """The Server of a `servers` row (every column, each read by its name), with its secret key unsealed."""
    return record(
        Server,
        row,
        id=row["uuid"],  # the public id; the integer key is `pk`
        pk=row["id"],
        secret_key=secret_key,
        is_on=bool(row["is_on"]),
        is_active=bool(row["is_active"]),
        health=Health(row["health"]),
        capabilities=probe.load(row["capabilities"]),
    )


@dataclass(frozen=True, slots=True)
class ServerChanges(Changes):
    """PATCH /servers/{id}: what is given changes (`UNSET`: as it is). `events_token` null: the server takes
    events.token again; `public_url` null: presigned URLs go to endpoint_url again."""

    name: str | Unset = UNSET
    endpoint_url: str | Unset = UNSET
    bucket: str | Unset = UNSET
    access_key: str | Unset = UNSET
    secret_key: str | Unset = UNSET
    region: str | Unset = UNSET
    location: str | Unset = UNSET
    zone: str | Unset = UNSET
    latitude: float | Unset = UNSET
    longitude: float | Unset = UNSET
    is_on: bool | Unset = UNSET
    is_active: bool | Unset = UNSET
    events_token: str | Unset | None = UNSET
    public_url: str | Unset | None = UNSET
    addressing_style: str | Unset = UNSET

    def target(self, before: Server) -> S3Target:
        """The bucket the server names after the change (its address, keys and addressing style)."""
        return S3Target(
            given_or(self.endpoint_url, before.endpoint_url),
            given_or(self.bucket, before.bucket),
            given_or(self.region, before.region),
            given_or(self.access_key, before.access_key),
            given_or(self.secret_key, before.secret_key),
            given_or(self.addressing_style, before.addressing_style),
        )


def events_token_hash(token: str) -> str:
    """What is kept of a server's own events token. A long random bearer token cannot be guessed from a
    fast hash, so SHA-256 suffices (a slow password hash would only slow every webhook down)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _hash_events_token(fields: dict[str, object]) -> dict[str, object]:
    """The fields with `events_token` (if given; None clears it) replaced by `events_token_hash`."""
    if "events_token" not in fields:
        return fields
    fields = dict(fields)
    token = fields.pop("events_token")
    fields["events_token_hash"] = None if token is None else events_token_hash(str(token))
    return fields


# An object event is written down at most this often per server (its time tells "seen" from "none").
EVENT_SEEN_EVERY = 60.0
# Files and bytes each server holds (the triggers' counters) and its open jobs.
_STATS = (
    "SELECT uuid, files_present AS files, bytes_present AS bytes, (SELECT count(*) FROM jobs j "
    f"WHERE j.server_id = s.id AND j.status IN {OPEN}) AS pending_jobs FROM servers s"
)


@fast_init
@dataclass(frozen=True, slots=True)
class Holding:
    """What a server holds (the files and bytes of its present replicas) and its open jobs (_STATS)."""

    uuid: str
    files: int
    bytes: int
    pending_jobs: int


def health_events(servers: list[Server], changes: dict[str, Health]) -> list[tuple[str, dict[str, Any]]]:
    """The webhook events of health changes (server uuid -> health): `server.down` when a server is seen
    down that was not, `server.up` when one that was down answers again (a first check is no event)."""
    found = []
    for server in servers:
        new, was_down = changes.get(server.id), server.health is Health.DOWN
        if (new is Health.DOWN and not was_down) or (new is Health.UP and was_down):
            data = {"server_id": server.id, "name": server.name, "location": server.location, "zone": server.zone}
            found.append((f"server.{new.value}", data))
    return found


class ServerRegistry:
    def __init__(
        self,
        db: Database,
        storage: StoragePort,
        check_timeout: float,
        sealer: Sealer,
        prober: Prober | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.clock = clock  # (every time it stores or compares: clock.py)
        self.storage = storage
        self.check_timeout = check_timeout
        self.sealer = sealer  # S3 secret keys are sealed in the table, in clear in memory only
        self.prober = prober  # (None: servers are registered unprobed, as tools that never serve do)
        self.listeners: list[Listener] = []
        self._servers: list[Server] = []
        self._by_internal: dict[int, Server] = {}
        self._unsaved_health: dict[str, Health] = {}
        self._unsaved_events: list[tuple[str, dict[str, Any]]] = []  # their webhook events, saved with them
        # One load at a time, so they finish in the order they read: a load that read before a change
        # committed never overwrites the one its change made (read-your-writes on this daemon).
        self._loading = asyncio.Lock()

    async def load(self) -> None:
        async with self._loading:
            await self._load()

    async def _load(self) -> None:
        rows = await self.db.fetchall("SELECT * FROM servers ORDER BY id")
        gone = {t for s in self._servers for t in (s.s3, s.public)}
        self._servers = [server_from_row(r, self._unseal(r["name"], r["secret_key"])) for r in rows]
        gone -= {t for s in self._servers for t in (s.s3, s.public)}
        self._by_internal = {s.pk: s for s in self._servers}
        in_clear = [(self.sealer.seal(r["secret_key"]), r["id"]) for r in rows if not sealed(r["secret_key"])]
        if in_clear:  # stored by a version from before sealing
            async with self.db.transaction() as tx:
                await tx.executemany("UPDATE servers SET secret_key = ? WHERE id = ?", in_clear)
            log.warning("sealed the S3 secret keys of %d server(s) that were stored in clear", len(in_clear))
        for target in gone:  # moved or removed (by another daemon, or by this one: then already forgotten)
            await self.storage.forget(target)

    def _unseal(self, name: str, secret_key: str) -> str:
        """A server's S3 secret key as stored (`secret_key`, sealed), in clear."""
        try:
            return self.sealer.unseal(secret_key)
        except UnsealError as exc:
            # Not fatal: the server fails its health checks (no credentials) and so takes no work
            # until an administrator gives it its secret again (PATCH secret_key).
            log.error(
                "server %s: cannot unseal its S3 secret key (%s); it stays down until it is given its secret_key again",
                name,
                exc,
            )
            return ""

    # --- reads (memory) -------------------------------------------------------------------------

    def all(self) -> list[Server]:
        return list(self._servers)

    def get(self, server_uuid: str) -> Server:
        for server in self._servers:
            if server.id == server_uuid:
                return server
        raise NotFound("no such server", code="server_not_found")

    def by_name(self, name: str) -> Server:
        for server in self._servers:
            if server.name == name:
                return server
        raise NotFound(f"no server is named {name!r}", code="server_not_found")

    def available_ids(self) -> list[int]:
        """The internal ids of the servers that are on and not known to be down (whose jobs may run)."""
        return [s.pk for s in self.all() if s.is_available]

    def by_internal_id(self, internal: int) -> Server | None:
        return self._by_internal.get(internal)

    async def stats(self) -> dict[str, Holding]:
        """Files and bytes each server holds and its open jobs, by server uuid."""
        rows = await self.db.fetchall(_STATS, offload=True)
        return {held.uuid: held for held in (record(Holding, r) for r in rows)}

    # --- changes --------------------------------------------------------------------------------

    async def create(self, actor_id: int, fields: dict[str, Any]) -> Server:
        fields = {"public_url": None, "addressing_style": AddressingStyle.PATH, **fields}  # (their defaults)
        if any(s.name == fields["name"] for s in self._servers):
            raise Conflict(f"a server is already named {fields['name']!r}", code="name_taken")
        await check_endpoint(fields["endpoint_url"])
        target = S3Target(*(fields[f] for f in S3_FIELDS))
        await self._check(target)
        found = await self._probe(target, registered=False)  # (its name receives no event yet)
        now = self.clock.now_iso()
        values = {
            "events_token_hash": None,
            **_hash_events_token(fields),
            "uuid": str(uuid.uuid4()),
            "is_on": int(fields["is_on"]),
            "is_active": int(fields["is_active"]),
            "secret_key": self.sealer.seal(fields["secret_key"]),
            "capabilities": None if found is None else probe.dump(found),
        }
        try:
            server = await self._insert(actor_id, fields, values, now)
        except UniqueViolation:  # the same name added meanwhile by a transaction beside this one
            raise Conflict(f"a server is already named {fields['name']!r}", code="name_taken") from None
        await self.load()
        return server

    async def _insert(self, actor_id: int, fields: dict[str, Any], values: dict[str, Any], now: str) -> Server:
        async with self.db.transaction(offload=True) as tx:
            if await tx_fetchone(tx, "SELECT 1 FROM servers WHERE name = ?", (fields["name"],)):
                raise Conflict(f"a server is already named {fields['name']!r}", code="name_taken")
            row = await tx_fetchone(
                tx,
                f"INSERT INTO servers ({', '.join(COLUMNS)}, health, created_at, updated_at) "
                f"VALUES ({', '.join(':' + c for c in COLUMNS)}, '{Health.UP}', :now, :now) RETURNING *",
                {**values, "now": now},
            )
            assert row is not None
            server = server_from_row(row, fields["secret_key"])
            await bump(self.db, tx, SERVERS)
            await history.record(
                tx,
                actor_id,
                "server.created",
                server.id,
                {"name": server.name, "zone": server.zone, "location": server.location},
                at=now,
            )
            for listener in self.listeners:
                await listener(tx, server.pk, None, server)
        return server

    async def update(self, actor_id: int, server_uuid: str, changes: ServerChanges) -> Server:
        before = self.get(server_uuid)
        if (
            changes.name is not UNSET
            and changes.name != before.name
            and any(s.name == changes.name for s in self._servers)
        ):
            raise Conflict(f"a server is already named {changes.name!r}", code="name_taken")
        if changes.endpoint_url is not UNSET and changes.endpoint_url != before.endpoint_url:
            await _check_move(changes)
        target = changes.target(before)
        if target != before.s3:
            await self.storage.forget(before.s3)
            await self.storage.forget(before.public)
            await self._check(target)
        found = None  # (a change of the server's addresses or keys is probed again)
        if target != before.s3 or given_or(changes.public_url, before.public_url) != before.public_url:
            found = await self._probe(target, registered=True)
        given = _hash_events_token(changes.given())
        values = {k: int(v) if isinstance(v, bool) else v for k, v in given.items()}
        if found is not None:
            values["capabilities"] = probe.dump(found)
        if changes.secret_key is not UNSET:
            values["secret_key"] = self.sealer.seal(changes.secret_key)
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        try:
            after = await self._update(actor_id, server_uuid, before, given, values, assignments, target.secret_key)
        except UniqueViolation:  # the same name taken meanwhile by a transaction beside this one
            name = None if changes.name is UNSET else changes.name
            raise Conflict(f"a server is already named {name!r}", code="name_taken") from None
        await self.load()
        return after

    async def _update(
        self,
        actor_id: int,
        server_uuid: str,
        before: Server,
        given: dict[str, object],
        values: dict[str, object],
        assignments: str,
        secret_key: str,
    ) -> Server:
        now = self.clock.now_iso()
        async with self.db.transaction(offload=True) as tx:
            # The listeners compare before with after: take "before" as stored, the row locked (where
            # transactions run side by side, another change of this server may have committed meanwhile).
            stored = await tx_fetchone(
                tx, "SELECT is_on, is_active, zone FROM servers WHERE uuid = ? FOR UPDATE", (server_uuid,)
            )
            if stored is not None:
                before = replace(
                    before, is_on=bool(stored["is_on"]), is_active=bool(stored["is_active"]), zone=stored["zone"]
                )
            row = await tx_fetchone(
                tx,
                f"UPDATE servers SET {assignments}, updated_at = :now WHERE uuid = :uuid RETURNING *",
                {**values, "now": now, "uuid": server_uuid},
            )
            if row is None:
                raise NotFound("no such server", code="server_not_found")
            after = server_from_row(row, secret_key)
            changed = {
                k: v
                for k, v in given.items()
                if k not in ("secret_key", "events_token_hash") and getattr(before, k) != v
            }
            if "events_token_hash" in given:  # (the history says that it was given, never what)
                changed["has_events_token"] = after.events_token_hash is not None
            await bump(self.db, tx, SERVERS)
            data = {"name": after.name, "zone": after.zone, "changes": changed}
            await history.record(tx, actor_id, "server.updated", after.id, data, at=now)
            for listener in self.listeners:
                await listener(tx, after.pk, before, after)
        return after

    async def delete(self, actor_id: int, server_uuid: str) -> None:
        server = self.get(server_uuid)
        internal = server.pk

        # Retried when it loses a deadlock (it deletes the server's replicas and jobs, which other
        # transactions lock too): all it does is in the transaction; storage and memory follow the commit.
        async def delete(tx: Tx) -> None:
            sole = await tx_fetchone(tx, SOLE_COPY_SQL, (internal, internal))
            if sole is not None:
                raise Conflict(
                    "some files have no other copy on a server that is on; move them first",
                    code="server_holds_sole_copies",
                )
            for listener in self.listeners:
                await listener(tx, internal, server, None)
            await tx.execute("DELETE FROM servers WHERE id = ?", (internal,))
            await bump(self.db, tx, SERVERS)
            data = {"name": server.name, "zone": server.zone}
            await history.record(tx, actor_id, "server.deleted", server.id, data, at=self.clock.now_iso())

        await self.db.retried(delete, offload=True)
        await self.storage.forget(server.s3)
        await self.storage.forget(server.public)
        await self.load()

    # --- capabilities (probe.py) -------------------------------------------------------------------

    async def _probe(self, target: S3Target, *, registered: bool) -> Capabilities | None:
        return None if self.prober is None else await self.prober.probe(target, registered=registered)

    async def probe(self, server_uuid: str) -> Server:
        """Probe a registered server now and keep what it proved (POST /servers/{id}/probe, the daily round)."""
        server = self.get(server_uuid)
        found = await self._probe(server.s3, registered=True)
        if found is not None:
            async with self.db.transaction() as tx:
                await tx.execute("UPDATE servers SET capabilities = ? WHERE uuid = ?", (probe.dump(found), server_uuid))
                await bump(self.db, tx, SERVERS)
            await self.load()
        return self.get(server_uuid)

    async def probe_due(self, interval: float) -> int:
        """Probe the servers that are on and up whose capabilities are older than `interval` seconds, or
        were never proved (a periodic task: daily); how many it probed."""
        due = self.clock.iso_in(-interval)
        servers = [
            s for s in self.all() if s.is_available and (s.capabilities is None or s.capabilities.checked_at < due)
        ]
        for server in servers:
            try:
                await self.probe(server.id)
            except NotFound:  # removed meanwhile
                continue
        return len(servers)

    async def event_seen(self, server: Server) -> None:
        """An object event of `server` arrived: written down (at most once a minute, unless a probe is
        waiting for one), so that its capabilities say its events are seen, on every daemon."""
        probed = server.capabilities.events_probe_at if server.capabilities else None
        seen = server.events_seen_at
        if seen is not None and seen > self.clock.iso_in(-EVENT_SEEN_EVERY) and (probed is None or seen >= probed):
            return
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE servers SET events_seen_at = ? WHERE uuid = ?", (self.clock.now_iso(), server.id))
            await bump(self.db, tx, SERVERS)
        await self.load()

    async def lock_row(self, tx: Tx, server_id: int) -> None:
        """Lock a server's row first in a transaction that changes its replicas. Deleting a server locks
        its row, then its replicas (ON DELETE CASCADE); changing a replica locks that replica, then the
        server's row (the counters' trigger, a job's foreign key). Taken in those two orders, a removal job
        finishing while its server is deleted deadlocked on PostgreSQL (one of them answered 503); in one
        order, the later waits for the earlier. (SQLite has one writer: nothing to lock there.)"""
        await tx.execute("SELECT 1 FROM servers WHERE id = ? FOR UPDATE", (server_id,))

    async def set_health(self, changes: dict[str, Health]) -> None:
        """Record health seen by the checker (server uuid -> health); not a user's change, no history.

        Uploads, downloads and jobs follow it at once (memory); the table gets it with this change, or,
        while the database refuses writes, with a later call (`health_unsaved`)."""
        self._unsaved_health.update(changes)
        self._unsaved_events.extend(health_events(self._servers, changes))
        self._servers = [replace(s, health=changes[s.id]) if s.id in changes else s for s in self._servers]
        self._by_internal = {s.pk: s for s in self._servers}
        async with self.db.transaction() as tx:
            await tx.executemany(
                "UPDATE servers SET health = ? WHERE uuid = ?",
                [(health.value, uuid_) for uuid_, health in self._unsaved_health.items()],
            )
            await bump(self.db, tx, SERVERS)
            now = self.clock.now_iso()
            for event, data in self._unsaved_events:  # the webhooks' server.down and server.up, with the change
                await emit_fleet(self.db, tx, event, data, at=now)
        self._unsaved_health.clear()
        self._unsaved_events.clear()
        await self.load()

    @property
    def health_unsaved(self) -> bool:
        """Some health seen by the checker is not in the table yet (the database refused it)."""
        return bool(self._unsaved_health)

    async def _check(self, target: S3Target) -> None:
        try:
            await self.storage.check_bucket(target, create=True, timeout=self.check_timeout)
        except StorageError as exc:
            # One answer for every failure: which step failed (no answer, refused credentials, an error
            # status) would make registration a port scanner of the networks cdnstore reaches, and the
            # remote server's own words would let a caller read any host's answer through cdnstore. The
            # operator finds the step and the details in the log.
            log.warning("storage server check of %s failed (%s): %s", target.endpoint_url, exc.code, exc.detail)
            await self.storage.forget(target)  # no client kept for a server that was not registered
            raise Invalid("endpoint_url", CHECK_FAILED, code="storage_check_failed") from None


# What a failed check says, whatever failed (the log says which step).
CHECK_FAILED = (
    "the bucket could not be reached or used with these settings (endpoint_url, bucket, region, access_key, "
    "secret_key); the daemon's log says which step failed"
)


async def _check_move(changes: ServerChanges) -> None:
    """A server given a new address: that address must be allowed, and it gets fresh credentials, never
    the stored ones (which would hand them to whoever answers there)."""
    assert changes.endpoint_url is not UNSET
    await check_endpoint(changes.endpoint_url)
    for field, value in (("access_key", changes.access_key), ("secret_key", changes.secret_key)):
        if value is UNSET:
            raise Invalid(
                field, "required with a new endpoint_url (the stored credentials are never sent to a new address)"
            )


# A version (still wanted) held present by this server and by no other server that is on.
SOLE_COPY_SQL = f"""
SELECT 1 FROM replicas r JOIN versions v ON v.id = r.version_id
WHERE r.server_id = ? AND v.status = '{VersionStatus.STORED.value}'
  AND NOT EXISTS (SELECT 1 FROM replicas o JOIN servers s ON s.id = o.server_id
                  WHERE o.version_id = r.version_id AND o.server_id != ? AND s.is_on = 1)
LIMIT 1
"""
