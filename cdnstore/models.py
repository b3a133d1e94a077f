"""Plain frozen records passed between layers. No behaviour beyond small derived properties."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class S3Target:
    """Everything needed to talk to one bucket on one S3 server."""

    endpoint_url: str
    bucket: str
    region: str
    access_key: str
    secret_key: str


# Each status once, with the values of its column's CHECK constraint in schema.sql and schema_postgres.sql
# (tests/test_db.py holds them equal). SQL text spells them as literals; Python compares and writes these.
class Health(StrEnum):
    """servers.health"""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class VersionStatus(StrEnum):
    """versions.status"""

    UPLOADING = "uploading"
    STORED = "stored"
    SUPERSEDED = "superseded"
    DELETED = "deleted"


class JobStatus(StrEnum):
    """jobs.status"""

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"


class JobKind(StrEnum):
    """jobs.kind"""

    COPY = "copy"
    REMOVE = "remove"


class ReplicaStatus(StrEnum):
    """replicas.status"""

    PRESENT = "present"
    CORRUPT = "corrupt"


class DeliveryStatus(StrEnum):
    """webhook_deliveries.status"""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Server:
    id: str
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

    @property
    def s3(self) -> S3Target:
        return S3Target(self.endpoint_url, self.bucket, self.region, self.access_key, self.secret_key)

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


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    is_admin: bool
    permissions: tuple[str, ...]
    is_disabled: bool = False
    quota_bytes: int | None = None  # None: no quota
    zones: tuple[str, ...] | None = None  # None: any zone; else the only zones the user's uploads go to

    def can(self, permission: str) -> bool:
        return self.is_admin or permission in self.permissions

    @property
    def effective_permissions(self) -> list[str]:
        return list(PERMISSIONS) if self.is_admin else [p for p in PERMISSIONS if p in self.permissions]
