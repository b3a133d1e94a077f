"""Request and response models. Requests are validated with these; the OpenAPI document is built from
them (api/openapi.py). Request bodies are strict (no type coercion) and reject unknown fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from ..config import MIN_TOKEN_LENGTH
from ..history import EVENTS
from ..models import (
    PERMISSIONS,
    SCOPES,
    AddressingStyle,
    BucketVersioning,
    Changes,
    DeliveryStatus,
    EventsState,
    Health,
    ImportState,
    JobKind,
    JobStatus,
    LinkState,
    Readiness,
    ReplicaState,
    VersionStatus,
)
from ..names import MAX_NAME, file_name
from ..pagination import PageQuery
from ..times import iso
from ..webhook_queue import EVENTS as WEBHOOK_EVENTS


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Patch(Body):
    @model_validator(mode="after")
    def _not_empty(self) -> Any:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


C = TypeVar("C", bound=Changes)


def changes_of(body: Patch, record: type[C], **convert: Callable[[Any], object]) -> C:
    """A PATCH body as its use case's typed change record: only the fields the body gave
    (`model_fields_set`), so an absent field stays `UNSET` and an explicit null stays None; `convert` turns a
    given field's value into what the record holds (a time into an `Expiry`, seconds checked against the
    ceiling). A field the record lacks is a TypeError, never dropped."""
    if unknown := set(convert) - set(type(body).model_fields):
        raise TypeError(f"{type(body).__name__} has no field {sorted(unknown)}")
    given = {name: getattr(body, name) for name in type(body).model_fields if name in body.model_fields_set}
    return record(**{name: convert[name](value) if name in convert else value for name, value in given.items()})


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


def _rfc3339(value: str) -> str:
    """An RFC 3339 time with its offset, kept as cdnstore stores times (UTC, milliseconds: they compare as text)."""
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 64 and "T" in value.upper() else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError("must be an RFC 3339 time with its offset, like 2030-01-31T12:00:00Z")
    return iso(moment.astimezone(UTC).timestamp())


TimeIn = Annotated[
    str,
    AfterValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "an RFC 3339 time with its offset"}),
]
# Seconds a user's files may live (admins set them), up to a hundred years.
LifetimeSeconds = Annotated[int, Field(ge=1, le=100 * 365 * 86400)]


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
    max_file_lifetime: int | None = Field(
        description="seconds the user's files may live at most (their expires_at is bounded by it); null: any"
    )
    default_file_lifetime: int | None = Field(
        description="seconds a file of the user lives when its upload names no expiry (cut to "
        "max_file_lifetime); null: for ever"
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
    max_file_lifetime: LifetimeSeconds | None = None
    default_file_lifetime: LifetimeSeconds | None = None


class UserPatch(Patch):
    """`quota_bytes` null: no quota. `zones` null: any zone; changing zones moves no file already stored."""

    password: Password = unset()
    is_admin: bool = unset()
    permissions: list[Permission] = unset()
    is_disabled: bool = unset()
    quota_bytes: QuotaBytes | None = None
    zones: Zones | None = None
    max_file_lifetime: LifetimeSeconds | None = None
    default_file_lifetime: LifetimeSeconds | None = None


class MePatch(Body):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    password: Password


class UserList(Out):
    items: list[UserOut]
    next_cursor: str | None


# --- identity: API keys, single sign-on ------------------------------------------------------------

Scope = Literal[SCOPES]  # type: ignore[valid-type]
# Ten years: keys for a machine that runs for long; beyond that, no expiry (null) says what is meant.
MAX_KEY_SECONDS = 10 * 365 * 86400


class KeyCreate(Body):
    """`scopes`: what the key may do (`admin` for administrators only). `expires_in` absent or null: never."""

    name: Text
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES))]
    expires_in: Annotated[int, Field(ge=60, le=MAX_KEY_SECONDS)] | None = None


class KeyOut(Out):
    id: Uuid
    name: str
    scopes: list[Scope]
    prefix: str = Field(description="the secret's first characters, to tell keys apart")
    expires_at: Time | None
    last_used_at: Time | None = Field(description="written in batches: up to a few seconds late")
    created_at: Time


class KeyCreatedOut(KeyOut):
    secret: str = Field(description="`cdn_...`: send it as `Authorization: Bearer <secret>`; shown only here")


class KeyList(Out):
    items: list[KeyOut]
    next_cursor: str | None


class AuthMethodsOidc(Out):
    name: str = Field(description="the page's button says Sign in with <name>")


class AuthMethodsOut(Out):
    password: bool = Field(description="whether POST /auth/login takes passwords")
    oidc: AuthMethodsOidc | None = Field(description="single sign-on, null when not configured")


ReturnTo = Annotated[
    str,
    # "/" and then anything but a second "/" ("//host" is another site to a browser), no backslash (browsers
    # read "/\host" as "//host" too), no control character.
    StringConstraints(max_length=2048, pattern=r"^/([^/\\\x00-\x1f\x7f][^\\\x00-\x1f\x7f]*)?$"),
    Field(description="a path of this site to land on once signed in (never another site)"),
]


class OidcLoginQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    return_to: ReturnTo = "/"


class OidcCallbackQuery(BaseModel):
    """What the provider sends back: `code` and `state`, or `error` (never shown: the answer says why in
    cdnstore's words)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    code: Annotated[str, StringConstraints(max_length=4096)] | None = None
    state: Annotated[str, StringConstraints(max_length=1024)] | None = None
    error: Annotated[str, StringConstraints(max_length=1024)] | None = None
    iss: Annotated[str, StringConstraints(max_length=2048)] | None = None


# --- storage servers ----------------------------------------------------------------------------

ServerName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
EndpointUrl = Annotated[str, StringConstraints(max_length=512, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")]
# Lax, in strict bodies: a strict enum field takes only a member, and JSON gives its value (lax takes no other
# JSON value for it).
AddressingStyleIn = Annotated[AddressingStyle, Strict(False)]
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
    public_url: Annotated[
        EndpointUrl | None,
        Field(description="where clients reach the server: presigned URLs are signed for it (null: endpoint_url)"),
    ] = None
    addressing_style: AddressingStyleIn = AddressingStyle.PATH


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
    public_url: EndpointUrl | None = None  # null: presigned URLs go to endpoint_url again
    addressing_style: AddressingStyleIn = unset()


class CapabilitiesOut(Out):
    """What cdnstore last proved about the server by trying it (the capability probe); null: not proved."""

    checked_at: Time
    checksum_enforced: Annotated[
        bool | None,
        Field(description="a presigned PUT whose bytes differ from its signed x-amz-checksum-sha256 is refused"),
    ]
    content_md5_enforced: Annotated[
        bool | None, Field(description="a part whose bytes differ from its signed Content-MD5 is refused")
    ]
    conditional_write: Annotated[
        bool | None,
        Field(description="a PUT with If-None-Match: * on an existing key is refused (uploads are then written once)"),
    ]
    cors: Annotated[bool | None, Field(description="the page's origin (http.public_url) may upload and download")]
    cors_rule: Annotated[
        dict[str, Any] | None,
        Field(description="the bucket CORS rule to add, when cors is false and cdnstore could not add it"),
    ]
    versioning: Annotated[
        BucketVersioning | None,
        Field(description="the bucket's versioning: in a versioned bucket deletes leave delete markers"),
    ]
    bucket_region: Annotated[str | None, Field(description="the bucket's location as the server reports it")]
    signing_region: Annotated[
        str | None,
        Field(description='"any" when the server accepts any region in a signature, else the one it expects'),
    ]
    events: Annotated[
        EventsState,
        Field(description="whether the server's object events reach cdnstore (else a faster upload sweep serves it)"),
    ]


class ImportSummaryOut(Out):
    import_id: Uuid
    state: ImportState
    owner: str
    prefix: str
    strip_prefix: bool
    objects_seen: int
    files_adopted: int
    bytes: int
    errors: Annotated[int, Field(description="keys not adopted (not a valid file name, a name the owner uses)")]
    last_error: Annotated[str | None, Field(description="why it waits (the server is off, could not be listed)")]
    started_at: Time
    updated_at: Time
    finished_at: Time | None


class ReportedKeyOut(Out):
    key: str
    reason: str


class ImportOut(ImportSummaryOut):
    error_keys: Annotated[list[ReportedKeyOut], Field(description="the first 100 keys not adopted, with why")]


class ImportStartedOut(Out):
    import_id: Uuid


class ImportCreate(Body):
    owner: Username
    prefix: Annotated[str, StringConstraints(max_length=1024), AfterValidator(_no_control_chars)] = ""
    strip_prefix: Annotated[
        bool, Field(description="name each file by its key without the prefix (names contain no /)")
    ] = False


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
    public_url: str | None
    addressing_style: AddressingStyle
    health: Health
    has_events_token: bool  # (the token itself is never shown)
    capabilities: CapabilitiesOut | None
    import_progress: Annotated[ImportSummaryOut | None, Field(description="its latest import (GET .../import)")]
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

FileName = Annotated[
    str,
    AfterValidator(file_name),
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


class NewFile(Body):
    name: FileName
    size: Annotated[int, Field(ge=0)]
    content_type: ContentType = "application/octet-stream"
    sha256: Sha256 | None = None


class FileCreate(NewFile):
    """With `sha256`, a single PUT is bound to it (the storage server refuses other bytes); a multipart
    upload's is checked when cdnstore first reads the assembled bytes. `expires_at` absent: a new file
    lives your default_file_lifetime (if an admin set one), a new version keeps its file's expiry; null:
    never (422 when an admin set you a max_file_lifetime). With `link`, a share link is made once the file
    is stored (as `POST /files/{id}/links` would make it; `expires_in` counts from then)."""

    expires_at: TimeIn | None = unset("when the file is deleted (into the trash); null: never")
    link: LinkCreate | None = None


class FilePatch(Patch):
    """A new name and/or a new `expires_at` (null: never, 422 beyond your max_file_lifetime)."""

    name: FileName = unset()
    expires_at: TimeIn | None = None


# A file as the answers show it: its current version's status, uploading or stored (a deleted file is not
# listed; a superseded version is never current).
FileStatus = Literal[VersionStatus.UPLOADING, VersionStatus.STORED]


class FileOut(Out):
    id: Uuid
    name: str
    size: int
    content_type: str
    status: FileStatus
    zone: str | None
    sha256: Sha256Out
    created_at: Time
    updated_at: Time
    expires_at: Time | None = Field(description="when the file is deleted (into the trash); null: never")
    received_via: Uuid | None = Field(description="the upload request the file came through; null: uploaded by you")
    # Only in `GET /files?include=servers`: where the file is, as `GET /files/{id}/servers` says.
    servers: list[ReplicaOut] = unset("with include=servers only: where the file is")


class FileList(Out):
    items: list[FileOut]
    next_cursor: str | None


class FilesQuery(PageQuery):
    q: Annotated[str, StringConstraints(max_length=255)] | None = None
    include: Literal["servers"] | None = None
    received_via: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="only the files that came through this upload request"
    )


class TrashedFileOut(FileOut):
    deleted_at: Time
    purge_at: Time = Field(description="when it is removed for good, unless restored before")


class TrashList(Out):
    items: list[TrashedFileOut]
    next_cursor: str | None
    trash_days: int = Field(description="how many days deleted files are kept (files.trash_days; 0: none)")


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


class AnnouncedLinkOut(Out):
    """The link asked for with `"link"`: it works once the file is stored (404 `link_not_found` until then),
    and then shows in `GET /files/{id}/links`."""

    id: Uuid
    token: str
    url: str


class FileUploadOut(Out):
    file: FileOut
    upload: UploadOut | MultipartOut
    link: AnnouncedLinkOut = unset("with `link` asked for only: the share link made once the file is stored")


class SenderUploadOut(FileUploadOut):
    """A file sent through an upload request: `upload_token` continues its upload (its `/upload`,
    `/upload/parts` and `/complete` under /api/v1/public/uploads/{upload_token}/)."""

    upload_token: str


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
    """`redirect`: a 302 to the URL instead of the JSON answer. `inline`: a preview, a URL the browser shows
    rather than saves, for images, audio, video, PDF and plain text (any other type stays an attachment)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    redirect: bool = False
    inline: bool = False


class DownloadOut(Out):
    url: str
    expires_at: Time
    server: ServerRef
    sha256: Sha256Out


class ReplicaOut(Out):
    server: ServerRef
    status: ReplicaState


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
    status: JobStatus | None = None


class JobOut(Out):
    id: Uuid
    kind: JobKind
    status: JobStatus
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


class LivenessOut(Out):
    status: Literal[Readiness.OK]


class ReadyCheck(Out):
    ok: bool
    detail: str
    built_at: str | None = None  # the `geoip` check's: when the GeoIP database was built (RFC 3339)


class Ready(Out):
    """`status` is "ok" when every check passed (200), else "unavailable" (503)."""

    status: Readiness
    checks: dict[str, ReadyCheck]


# --- share links ----------------------------------------------------------------------------------

LinkPassword = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# Ten years: enough for any link, and far from the limits of dates and of SQLite's integers.
MAX_LINK_SECONDS = 10 * 365 * 86400


LinkExpiresIn = Annotated[int, Field(ge=1, le=MAX_LINK_SECONDS)]
LinkMaxDownloads = Annotated[int, Field(ge=1, le=1_000_000_000)]
MAX_LINK_FILES = 1000


class LinkCreate(Body):
    """`expires_in` absent: links.default_expires_in; null: no expiry (422 when links.max_expires_in is set).
    `max_downloads` absent or null: unlimited. `password` absent or null: none."""

    password: LinkPassword | None = None
    expires_in: LinkExpiresIn | None = None
    max_downloads: LinkMaxDownloads | None = None


class LinksCreate(LinkCreate):
    """A link to several of your files (1 to 1000, in the order the public page lists them; a file named
    twice counts once); the other fields as for a link to one file."""

    file_ids: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=MAX_LINK_FILES),
    ]


class LinkPatch(Patch):
    """Only what is given changes. `password`: a new one, or null to remove it. `expires_in`: seconds from
    now, or null for never (422 when links.max_expires_in is set). `max_downloads`: a new limit, or null for
    none (422 below the downloads already made, unless `reset_downloads`). `reset_downloads`: the count
    starts again from 0."""

    password: LinkPassword | None = unset("a new password, or null to remove it")
    expires_in: LinkExpiresIn | None = unset("seconds from now, or null for no expiry")
    max_downloads: LinkMaxDownloads | None = unset("a new limit, or null for none")
    reset_downloads: bool = False


class LinkFileOut(Out):
    id: Uuid
    name: str
    size: int


class LinkOut(Out):
    """`file_id`: the file of a link made for one file, null for a link to several. `files`: the files it
    still serves, in order (a file deleted later is no longer listed). `state`: `active`, `expired`,
    `used_up`, or `files_gone` (none of its files is served any more)."""

    id: Uuid
    file_id: Uuid | None
    token: str
    url: str
    has_password: bool
    expires_at: Time | None
    max_downloads: int | None
    downloads: int
    created_at: Time
    files: list[LinkFileOut]
    state: LinkState


class LinkList(Out):
    items: list[LinkOut]
    next_cursor: str | None


class LinksQuery(PageQuery):
    state: LinkState | None = None


class PublicFileOut(Out):
    id: Uuid
    name: str
    size: int
    content_type: str


class PublicLinkOut(Out):
    """`name` and `size`: the file's, or for a link to several, how many files and their total size.
    `downloads_left`: how many more downloads the link grants (null: no limit). `files`: what the link
    shares, in order (one for a link to one file)."""

    name: str
    size: int
    has_password: bool
    expires_at: Time | None
    downloads_left: int | None
    files: list[PublicFileOut]


class LinkDownloadIn(Body):
    """`file_id`: which file of a link to several (needed there; for a link to one file it may be left out)."""

    password: Annotated[str, StringConstraints(max_length=1024)] | None = None
    file_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class LinkArchiveIn(Body):
    """As JSON, or as an HTML form's fields (application/x-www-form-urlencoded: the share page's)."""

    password: Annotated[str, StringConstraints(max_length=1024)] | None = None


# --- upload requests ------------------------------------------------------------------------------

Message = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
MaxFiles = Annotated[int, Field(ge=1, le=1_000_000)]
MaxBytes = Annotated[int, Field(ge=1, le=2**62)]


class UploadRequestCreate(Body):
    """`expires_in` absent: requests.default_expires_in; null: open until closed (422 when
    requests.max_expires_in is set). `max_files`, `max_bytes` absent or null: no limit."""

    message: Message | None = None
    password: LinkPassword | None = None
    expires_in: Annotated[int, Field(ge=1, le=MAX_LINK_SECONDS)] | None = None
    max_files: MaxFiles | None = None
    max_bytes: MaxBytes | None = None


class UploadRequestPatch(Patch):
    """Null removes the message, the password, the expiry (`expires_in` counts from now) or a limit;
    `is_open` false closes the request (senders get 410), true opens it again."""

    message: Message | None = None
    password: LinkPassword | None = None
    expires_in: Annotated[int, Field(ge=1, le=MAX_LINK_SECONDS)] | None = None
    max_files: MaxFiles | None = None
    max_bytes: MaxBytes | None = None
    is_open: bool = unset()


class UploadRequestOut(Out):
    id: Uuid
    token: str
    url: str = Field(description="the public upload page: http.public_url + /u/<token>")
    owner: str = Field(description="the username of the request's owner")
    message: str | None
    has_password: bool
    expires_at: Time | None
    max_files: int | None
    max_bytes: int | None
    files: int = Field(description="files received (or on their way): what counts against max_files")
    bytes: int = Field(description="their bytes: what counts against max_bytes")
    is_open: bool = Field(description="senders may use it: not closed, not expired")
    closed_at: Time | None
    created_at: Time


class UploadRequestList(Out):
    items: list[UploadRequestOut]
    next_cursor: str | None


class UploadRequestsQuery(PageQuery):
    all: bool = Field(False, description="administrators: every user's requests")


class PublicRequestOut(Out):
    owner: str = Field(description="who the files go to (a username)")
    message: str | None
    has_password: bool
    expires_at: Time | None
    files_left: int | None = Field(description="how many more files it takes; null: no limit")
    bytes_left: int | None = Field(description="how many more bytes it takes; null: no limit")


class SenderFileCreate(NewFile):
    """A file for an upload request (the request's `password` if it has one)."""

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
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    delivered_at: Time | None
    created_at: Time
    next_attempt_at: Annotated[Time | None, Field(description="pending: when it is (next) sent; else null")]


class DeliveryList(Out):
    items: list[DeliveryOut]
    next_cursor: str | None
