"""Request and response models. Requests are validated with these; the OpenAPI document is built from
them (api/openapi.py). Request bodies are strict (no type coercion) and reject unknown fields."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from ..config import MIN_TOKEN_LENGTH
from ..history import EVENTS
from ..models import PERMISSIONS
from ..pagination import PageQuery
from ..webhook_queue import EVENTS as WEBHOOK_EVENTS


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Patch(Body):
    @model_validator(mode="after")
    def _not_empty(self) -> Any:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def unset(description: str | None = None) -> Any:
    """An optional PATCH field whose type has no null: an explicit null is an error naming the field. (Also
    an answer's field that only some calls give.)"""
    return Field(None, description=description, json_schema_extra=_drop_default)


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


def _no_control_chars(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_control_chars)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
Permission = Literal[PERMISSIONS]  # type: ignore[valid-type]
Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Problem(Out):
    type: str
    title: str
    status: int
    detail: str
    code: str


# --- auth and users ---------------------------------------------------------------------------


class LoginIn(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RefreshIn(Body):
    """The refresh token, required except in the page's cookie session (X-Cdnstore-Session: cookie)."""

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


class UserOut(Out):
    id: Uuid
    username: str
    is_admin: bool
    permissions: list[str]
    is_disabled: bool = Field(description="a disabled user cannot log in; their sessions and share links stop")
    quota_bytes: int | None = Field(description="the most bytes of stored files the user may have; null: no quota")
    used_bytes: int = Field(description="the size of the user's stored files (their current versions)")
    zones: list[str] | None = Field(
        description="the only zones the user's uploads go to (data residency); null: any zone"
    )
    files: int = unset(
        "in the users answers (admins) only: how many files the user has (stored or uploading), "
        "all deleted with the user"
    )
    files_outside_zones: int = unset(
        "in the users answers (admins) only: the user's stored files in zones "
        "outside `zones` (stored before the zones were set; nothing is moved)"
    )


class TokensOut(Out):
    access_token: str
    refresh_token: str = Field(description="empty for a cookie session: the refresh token is in the cookie")
    token_type: Literal["Bearer"]
    expires_in: int
    user: UserOut


QuotaBytes = Annotated[int, Field(ge=0, le=2**62)]
Zones = Annotated[
    list[Text], Field(min_length=1, max_length=100, description="zones of registered servers (422 naming any other)")
]


class UserCreate(Body):
    """`quota_bytes` absent: users.default_quota_bytes; null: no quota. `zones` absent or null: any zone."""

    username: Username
    password: Password
    is_admin: bool = False
    permissions: list[Permission] | None = None
    quota_bytes: QuotaBytes | None = unset("absent: users.default_quota_bytes; null: no quota")
    zones: Zones | None = None


class UserPatch(Patch):
    """`quota_bytes` null: no quota. `zones` null: any zone; changing zones moves no file already stored."""

    password: Password = unset()
    is_admin: bool = unset()
    permissions: list[Permission] = unset()
    is_disabled: bool = unset()
    quota_bytes: QuotaBytes | None = None
    zones: Zones | None = None


class MePatch(Body):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    password: Password


class UserList(Out):
    items: list[UserOut]
    next_cursor: str | None


# --- storage servers ----------------------------------------------------------------------------

ServerName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
EndpointUrl = Annotated[str, StringConstraints(max_length=512, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")]
Bucket = Annotated[str, StringConstraints(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Region = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
Latitude = Annotated[float, Field(ge=-90, le=90)]
# A server's own webhook token: sent in a header, so printable ASCII without spaces; long enough not to guess.
EventsToken = Annotated[str, StringConstraints(min_length=MIN_TOKEN_LENGTH, max_length=256, pattern=r"^[!-~]+$")]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class ServerCreate(Body):
    name: ServerName
    endpoint_url: EndpointUrl
    bucket: Bucket
    access_key: Secret
    secret_key: Secret
    region: Region = "us-east-1"
    location: Text
    zone: Text
    latitude: Latitude
    longitude: Longitude
    is_on: bool
    is_active: bool
    events_token: EventsToken | None = None  # None: the server takes events.token


class ServerPatch(Patch):
    name: ServerName = unset()
    endpoint_url: EndpointUrl = unset()
    bucket: Bucket = unset()
    access_key: Secret = unset()
    secret_key: Secret = unset()
    region: Region = unset()
    location: Text = unset()
    zone: Text = unset()
    latitude: Latitude = unset()
    longitude: Longitude = unset()
    is_on: bool = unset()
    is_active: bool = unset()
    events_token: EventsToken | None = None  # null clears it: the server takes events.token again


class ServerOut(Out):
    id: Uuid
    name: str
    endpoint_url: str
    bucket: str
    region: str
    location: str
    zone: str
    latitude: float
    longitude: float
    is_on: bool
    is_active: bool
    health: Literal["up", "down", "unknown"]
    has_events_token: bool  # (the token itself is never shown)
    files: int
    bytes: int
    pending_jobs: int
    # What the deep scrub found there (read at most every 30 s).
    verified_at: Annotated[
        Time | None,
        Field(
            description="every replica the server holds was read back by the deep "
            "scrub and matched at or after this time; null while one never was "
            "(or it holds none)"
        ),
    ]
    corrupt: Annotated[
        int,
        Field(description="replicas there found differing from their SHA-256, waiting for their repair (never served)"),
    ]
    unrecoverable: Annotated[
        int,
        Field(
            description="of the corrupt ones, those with no good copy left on any "
            "server: not served, nothing to repair from"
        ),
    ]
    # Where the verification of its uploads stands (integrity.py).
    awaiting_verification: Annotated[
        int,
        Field(
            description="versions uploaded to it still waiting for the verification read of their bytes (a "
            "multipart upload with a declared SHA-256 becomes its file's content only after it); a count "
            "that keeps growing says the verifier is held up: see the log"
        ),
    ]
    rejected_uploads: Annotated[
        int,
        Field(
            description="uploads to it rejected in the last 7 days, never served: their bytes were not their "
            "declared SHA-256, or repeated reads of them never settled; see the log"
        ),
    ]
    created_at: Time
    updated_at: Time


class ServerList(Out):
    items: list[ServerOut]
    next_cursor: str | None


class ServerRef(Out):
    name: str
    location: str
    zone: str


# --- files ---------------------------------------------------------------------------------------

MAX_NAME = 255  # characters of a file name, after NFC normalisation
# Invisible characters a name keeps where they do something: joiners within a word of another script or
# an emoji sequence (family emoji, Indic conjuncts, Persian words), and the tag letters of subdivision
# flags (black flag, tags, cancel tag). Anywhere else (e.g. beside ASCII) they could only disguise a name.
_JOINER = re.compile(r"(?<=[^\x00-\x7f\s])[\u200c\u200d](?=[^\x00-\x7f\s])")
_FLAG_TAGS = re.compile("(?<=\U0001f3f4)[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f")


def _file_name(value: str) -> str:
    ascii_only = value.isascii()  # (most names: NFC changes no ASCII text, whose only such characters are Cc)
    if len(value) <= 4 * MAX_NAME and not ascii_only:  # NFC composes at most 4 code points into one
        value = unicodedata.normalize("NFC", value)
    if not 1 <= len(value) <= MAX_NAME:
        raise ValueError(f"must be 1 to {MAX_NAME} characters (after Unicode NFC normalisation)")
    if (not value.isprintable()) if ascii_only else _invisible(value):
        raise ValueError("must not contain control or invisible formatting characters")
    if "/" in value or "\\" in value:
        raise ValueError("must not contain / or \\ (a name, not a path)")
    if value in (".", "..") or value != value.strip():
        raise ValueError("must not be . or .. or start or end with white space")
    return value


def _invisible(value: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in _FLAG_TAGS.sub("", _JOINER.sub("", value)))


FileName = Annotated[
    str,
    AfterValidator(_file_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME,
            "description": f"1 to {MAX_NAME} characters after Unicode NFC normalisation (the form it is stored in); "
            "no control or invisible formatting characters, no / or \\, not . or .., no white space at "
            "either end",
        }
    ),
]


_MIME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.+-]*/[A-Za-z0-9][A-Za-z0-9_.+-]*"
    r'(\s*;\s*[A-Za-z0-9_.+-]+=("[ !#-~]*"|[A-Za-z0-9_.+-]+))*'
)


def _mime(value: str) -> str:
    if len(value) > 255 or not _MIME.fullmatch(value):
        raise ValueError("must be a media type like text/plain or image/png; charset=... (ASCII)")
    return value


ContentType = Annotated[str, AfterValidator(_mime)]


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _sha256(value: str) -> str:
    if not _HEX64.fullmatch(value):
        raise ValueError("must be a SHA-256 digest: 64 hexadecimal characters")
    return value.lower()


Sha256 = Annotated[
    str,
    AfterValidator(_sha256),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9a-fA-F]{64}$",
            "description": "the SHA-256 of the whole content, 64 hexadecimal characters (kept in lowercase)",
        }
    ),
]
Sha256Out = Annotated[str | None, Field(description="lowercase hex SHA-256 of the content; null until known")]


class FileCreate(Body):
    """With `sha256`, a single PUT is bound to it (the storage server refuses other bytes); a multipart
    upload's is checked when cdnstore first reads the assembled bytes."""

    name: FileName
    size: Annotated[int, Field(ge=0)]
    content_type: ContentType = "application/octet-stream"
    sha256: Sha256 | None = None


class FileRename(Body):
    name: FileName


class FileOut(Out):
    id: Uuid
    name: str
    size: int
    content_type: str
    status: Literal["uploading", "stored"]
    zone: str | None
    sha256: Sha256Out
    created_at: Time
    updated_at: Time
    # Only in `GET /files?include=servers`: where the file is, as `GET /files/{id}/servers` says.
    servers: list[ReplicaOut] = unset("with include=servers only: where the file is")


class FileList(Out):
    items: list[FileOut]
    next_cursor: str | None


class FilesQuery(PageQuery):
    q: Annotated[str, StringConstraints(max_length=255)] | None = None
    include: Literal["servers"] | None = None


class UploadOut(Out):
    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: Time
    server: ServerRef


class MultipartOut(Out):
    """A file over `uploads.multipart_threshold`: ask `/upload/parts` for part URLs, PUT the parts (numbered
    1..`parts`, each `part_size` bytes but the last), then `/complete`."""

    method: Literal["multipart"]
    part_size: int
    parts: int
    expires_at: Time
    server: ServerRef


class UploadSettingsOut(Out):
    """How this cdnstore takes uploads, for a client to prepare one before it announces it."""

    multipart_threshold: Annotated[
        int,
        Field(
            description="files of more bytes are uploaded in parts; smaller ones in one PUT, which a declared "
            "`sha256` binds (the page hashes those before it announces them)"
        ),
    ]
    max_file_size: Annotated[int, Field(description="the largest file an announcement may declare (413 beyond)")]


class FileUploadOut(Out):
    file: FileOut
    upload: UploadOut | MultipartOut


class PartOut(Out):
    number: int
    size: int
    etag: str


class UploadStateOut(Out):
    """`uploaded`: the parts the upload server holds (multipart; empty for a single PUT). `expires_at`: when
    the upload is given up if not continued. A single PUT also gets a fresh `url` and its `headers`."""

    method: Literal["PUT", "multipart"]
    part_size: int
    parts: int
    uploaded: list[PartOut]
    expires_at: Time
    server: ServerRef
    url: str | None = None
    headers: dict[str, str] | None = None


MAX_PARTS_PER_CALL = 100
Md5 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{22}==$")]


class PartsIn(Body):
    numbers: Annotated[list[Annotated[int, Field(ge=1, le=10_000)]], Field(min_length=1, max_length=MAX_PARTS_PER_CALL)]
    md5: dict[Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}$")], Md5] = Field(
        default_factory=dict, description="part number -> base64 MD5 of that part (24 characters)"
    )


class PartUrlOut(Out):
    number: int
    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: Time


class PartUrlList(Out):
    items: list[PartUrlOut]


class DownloadQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    redirect: bool = False


class DownloadOut(Out):
    url: str
    expires_at: Time
    server: ServerRef
    sha256: Sha256Out


class ReplicaOut(Out):
    server: ServerRef
    status: Literal["present", "pending", "corrupt"]


class ReplicaList(Out):
    items: list[ReplicaOut]


# --- history and jobs -----------------------------------------------------------------------------


class HistoryQuery(PageQuery):
    event: Literal[EVENTS] | None = None  # type: ignore[valid-type]


class HistoryOut(Out):
    id: Uuid
    event: str
    object_id: str | None
    data: dict[str, Any]
    created_at: Time


class HistoryList(Out):
    items: list[HistoryOut]
    next_cursor: str | None


class JobsQuery(PageQuery):
    status: Literal["queued", "running", "failed"] | None = None


class JobOut(Out):
    id: Uuid
    kind: Literal["copy", "remove"]
    status: Literal["queued", "running", "failed"]
    attempts: int
    last_error: str | None
    file_id: Uuid
    file_name: str
    server: ServerRef | None
    run_after: Time
    created_at: Time
    updated_at: Time


class JobList(Out):
    items: list[JobOut]
    next_cursor: str | None


# --- statistics ---------------------------------------------------------------------------------


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    days: int = Field(30, ge=1, le=366, description="how many UTC days back, today included")


class DownloadStatsOut(Out):
    day: Annotated[str, Field(json_schema_extra={"format": "date"})]
    server: str
    downloads: int
    bytes: int


class DownloadStatsList(Out):
    items: list[DownloadStatsOut]


# --- operations ---------------------------------------------------------------------------------


class Health(Out):
    status: Literal["ok"]


class ReadyCheck(Out):
    ok: bool
    detail: str


class Ready(Out):
    """`status` is "ok" when every check passed (200), else "unavailable" (503)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, ReadyCheck]


# --- share links ----------------------------------------------------------------------------------

LinkPassword = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# Ten years: enough for any link, and far from the limits of dates and of SQLite's integers.
MAX_LINK_SECONDS = 10 * 365 * 86400


class LinkCreate(Body):
    """`expires_in` absent: links.default_expires_in; null: no expiry (422 when links.max_expires_in is set).
    `max_downloads` absent or null: unlimited. `password` absent or null: none."""

    password: LinkPassword | None = None
    expires_in: Annotated[int, Field(ge=1, le=MAX_LINK_SECONDS)] | None = None
    max_downloads: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None


class LinkOut(Out):
    id: Uuid
    file_id: Uuid
    token: str
    url: str
    has_password: bool
    expires_at: Time | None
    max_downloads: int | None
    downloads: int
    created_at: Time


class LinkList(Out):
    items: list[LinkOut]
    next_cursor: str | None


class PublicLinkOut(Out):
    name: str
    size: int
    has_password: bool
    expires_at: Time | None


class LinkDownloadIn(Body):
    password: Annotated[str, StringConstraints(max_length=1024)] | None = None


# --- webhooks -------------------------------------------------------------------------------------

# http(s), a host, any path and query; no fragment (it is never sent), no whitespace.
WebhookUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/?#]+(/[^\s#]*)?(\?[^\s#]*)?$")]
WebhookEvent = Literal[WEBHOOK_EVENTS]  # type: ignore[valid-type]


class WebhookCreate(Body):
    """`events`: the caller's own (`file.stored`, `file.deleted`, `link.downloaded`, `upload_request.received`);
    administrators may add the fleet's (`replica.corrupt`, `server.down`, `server.up`, `job.failed`)."""

    url: WebhookUrl
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WEBHOOK_EVENTS))]


class WebhookOut(Out):
    id: Uuid
    url: str
    events: list[WebhookEvent]
    created_at: Time


class WebhookCreatedOut(WebhookOut):
    secret: Annotated[str, Field(description="whsec_...: signs every delivery; shown only in this answer")]


class WebhookList(Out):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(Out):
    id: Annotated[str, Field(description="the deliveries' webhook-id header (msg_...), the same on every attempt")]
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    delivered_at: Time | None
    created_at: Time
    next_attempt_at: Annotated[Time | None, Field(description="pending: when it is (next) sent; else null")]


class DeliveryList(Out):
    items: list[DeliveryOut]
    next_cursor: str | None
