"""Plain frozen records passed between layers. No behaviour beyond small derived properties."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Final, TypeVar

from .records import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class S3Target:
    """Everything needed to talk to one bucket on one S3 server (or to sign URLs others send there)."""

    endpoint_url: str
    bucket: str
    region: str
    access_key: str
    secret_key: str
    addressing_style: str = "path"  # AddressingStyle: endpoint/bucket/key, or bucket.endpoint/key


# Each status once, with the values of its column's CHECK constraint in schema.sql and schema_postgres.sql
# (tests/test_db.py holds them equal). Python compares and writes these; SQL text takes them too, as bound
# parameters or put into the statement at import (tests/test_layers.py finds any quoted status in SQL).
class Health(StrEnum):
    """A storage server's health as the last check found it (servers.health)."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class VersionStatus(StrEnum):
    """A version's status (versions.status)."""

    UPLOADING = "uploading"
    STORED = "stored"
    SUPERSEDED = "superseded"
    DELETED = "deleted"


class JobStatus(StrEnum):
    """A job's status (jobs.status)."""

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"


class JobKind(StrEnum):
    """What a job does: copy a version to a server, or remove it from one (jobs.kind)."""

    COPY = "copy"
    REMOVE = "remove"


class ReplicaStatus(StrEnum):
    """A replica's status (replicas.status)."""

    PRESENT = "present"
    CORRUPT = "corrupt"


class ReplicaState(StrEnum):
    """Where a server stands with a file's current content, as the answers show it (no column): a replica's
    status, or pending while a copy to it is queued."""

    PRESENT = ReplicaStatus.PRESENT
    PENDING = "pending"
    CORRUPT = ReplicaStatus.CORRUPT


class LinkState(StrEnum):
    """A share link's state as its owner sees it (computed by links.STATE, no column): what it answers."""

    ACTIVE = "active"
    EXPIRED = "expired"
    USED_UP = "used_up"
    FILES_GONE = "files_gone"  # none of its files is served any more (deleted)


class AddressingStyle(StrEnum):
    """How a server's bucket is addressed: endpoint/bucket/key, or bucket.endpoint/key (servers.addressing_style)."""

    PATH = "path"
    VIRTUAL = "virtual"


class ImportState(StrEnum):
    """An import's state (imports.state)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BucketVersioning(StrEnum):
    """A bucket's versioning as its server reports it (the probe's `versioning`, no column)."""

    OFF = "off"  # never enabled
    ENABLED = "enabled"
    SUSPENDED = "suspended"


class EventsState(StrEnum):
    """Whether a server's object events reach cdnstore (probe.events_state, no column)."""

    SEEN = "seen"  # one came within two days
    NONE = "none"  # a probe wrote an object over a minute ago and none came since
    UNKNOWN = "unknown"  # neither can be said yet


class Readiness(StrEnum):
    """What /healthz and /readyz answer (no column)."""

    OK = "ok"
    UNAVAILABLE = "unavailable"  # a check of /readyz failed


@fast_init
@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the last probe proved a storage server does (probe.py); None: it could not tell."""

    checked_at: str
    checksum_enforced: bool | None = None  # refuses a presigned PUT whose bytes differ from its signed SHA-256
    content_md5_enforced: bool | None = None  # refuses a part whose bytes differ from its signed Content-MD5
    conditional_write: bool | None = None  # refuses a PUT with `If-None-Match: *` on an existing key (412)
    cors: bool | None = None  # a browser on http.public_url's origin may PUT and GET there
    cors_rule: str | None = None  # JSON of the bucket CORS rule to add, when cdnstore could not set it
    versioning: str | None = None  # the bucket's versioning: "off", "enabled" or "suspended"
    bucket_region: str | None = None  # the bucket's location as the server reports it
    signing_region: str | None = None  # "any" (the server accepts any), else the region it expects
    events_probe_at: str | None = None  # when a probe of the registered server wrote an object (its event due)


class DeliveryStatus(StrEnum):
    """A webhook delivery's status (webhook_deliveries.status)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@fast_init
@dataclass(frozen=True, slots=True)
class Server:
    id: str  # the public UUID
    pk: int  # the table's integer key: what the data keys servers by (replicas, jobs), never shown outside
    name: str
    endpoint_url: str
    bucket: str
    region: str
    access_key: str
    secret_key: str
    location: str
    zone: str
    latitude: float
    longitude: float
    is_on: bool
    is_active: bool
    health: Health
    created_at: str
    updated_at: str
    # SHA-256 hex of the server's own events token (never the token); None: it takes events.token
    events_token_hash: str | None = None
    public_url: str | None = None  # where clients reach it (presigned URLs); None: endpoint_url
    addressing_style: str = AddressingStyle.PATH
    capabilities: Capabilities | None = None  # None: never probed
    events_seen_at: str | None = None  # when its last object event arrived

    @property
    def s3(self) -> S3Target:
        """cdnstore's own requests (checks, copies, probes, scrub): endpoint_url."""
        return S3Target(
            self.endpoint_url, self.bucket, self.region, self.access_key, self.secret_key, self.addressing_style
        )

    @property
    def public(self) -> S3Target:
        """What presigned URLs (uploads, parts, downloads) are signed for: public_url, else endpoint_url."""
        return S3Target(
            self.public_url or self.endpoint_url,
            self.bucket,
            self.region,
            self.access_key,
            self.secret_key,
            self.addressing_style,
        )

    @property
    def enforces_checksums(self) -> bool:
        """Proved to refuse bytes that differ from a signed x-amz-checksum-sha256 (unknown counts as no)."""
        return self.capabilities is not None and self.capabilities.checksum_enforced is True

    @property
    def honours_conditional_write(self) -> bool:
        """Proved to refuse a PUT with `If-None-Match: *` on an existing key."""
        return self.capabilities is not None and self.capabilities.conditional_write is True

    @property
    def is_available(self) -> bool:
        """On, and not found down by the health check: copies on it can be read, written and deleted."""
        return self.is_on and self.health is not Health.DOWN

    @property
    def takes_uploads(self) -> bool:
        return self.is_available and self.is_active


PERMISSIONS: tuple[str, ...] = (
    "can_view_file",
    "can_upload_file",
    "can_rename_file",
    "can_delete_file",
    "can_view_filesharelink",
    "can_add_filesharelink",
    "can_delete_filesharelink",
    "can_view_cdnserver",
    "can_add_cdnserver",
    "can_update_cdnserver",
    "can_delete_cdnserver",
)
DEFAULT_PERMISSIONS: tuple[str, ...] = PERMISSIONS[:7]

# What an API key may be allowed to do (keys.py). A route needs the scope of the permission it declares
# (api/endpoint.py): reading needs `read`, writing `upload`, deleting `delete`, making or revoking share links
# `share`, and the storage servers, users and jobs (admins' work) `admin`.
SCOPES: tuple[str, ...] = ("read", "upload", "delete", "share", "admin")
PERMISSION_SCOPES: dict[str, str] = {
    "can_view_file": "read",
    "can_upload_file": "upload",
    "can_rename_file": "upload",
    "can_delete_file": "delete",
    "can_view_filesharelink": "read",
    "can_add_filesharelink": "share",
    "can_delete_filesharelink": "share",
    "can_view_cdnserver": "admin",
    "can_add_cdnserver": "admin",
    "can_update_cdnserver": "admin",
    "can_delete_cdnserver": "admin",
}


@fast_init
@dataclass(frozen=True, slots=True)
class User:
    id: str  # the public UUID
    pk: int  # the table's integer key: what the data keys owners and actors by, never shown outside
    username: str
    is_admin: bool
    permissions: tuple[str, ...]
    is_disabled: bool = False
    quota_bytes: int | None = None  # None: no quota
    zones: tuple[str, ...] | None = None  # None: any zone; else the only zones the user's uploads go to
    max_file_lifetime: int | None = None  # seconds a file may live at most (its expires_at is bounded); None: any
    default_file_lifetime: int | None = None  # seconds a file lives when its upload names no expiry; None: for ever

    def can(self, permission: str) -> bool:
        return self.is_admin or permission in self.permissions

    @property
    def effective_permissions(self) -> list[str]:
        return list(PERMISSIONS) if self.is_admin else [p for p in PERMISSIONS if p in self.permissions]


# --- a PATCH's changes ------------------------------------------------------------------------------


class Unset(Enum):
    """The type of `UNSET`: a field a PATCH did not give (absent from its body), which is not an explicit null
    (where the API takes null, it clears the value: an expiry, a password, a limit). One member, so that mypy
    narrows `x is not UNSET` to the field's own type."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:  # (`if changes.is_open:` would take "not given" for true)
        raise TypeError("UNSET has no truth value: compare with `is UNSET`")


UNSET: Final = Unset.UNSET


@fast_init
@dataclass(frozen=True, slots=True)
class Changes:
    """The base of a PATCH's typed change record (`ServerChanges`, `UserChanges`, `RequestChanges`,
    `LinkChanges`, `FileChanges`, each with its use case): frozen, slotted, one typed field per field of the
    PATCH, `UNSET` unless given. `api/schemas.changes_of` builds one from the validated body."""

    def given(self) -> dict[str, object]:
        """The fields given, in the record's order, with their values (None: an explicit null): what a
        history row tells as "changed"."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not UNSET}


T = TypeVar("T")


def given_or(value: T | Unset, default: T) -> T:
    """A change's field if given, else `default` (what it is now)."""
    return default if value is UNSET else value
