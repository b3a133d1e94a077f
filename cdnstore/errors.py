"""The domain exception tree.

Every error a client can see is a `CdnError` with an HTTP status, a stable snake_case `code` and a
human `title`; one middleware (`api/problems.py`) turns them into problem+json answers.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CdnError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may narrow its class's code
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(CdnError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(CdnError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "Invalid credentials"


class OidcFailed(Unauthorized):
    """Single sign-on did not sign the user in: `detail` says why in cdnstore's words (never the provider's)."""

    code, title = "oidc_failed", "Single sign-on failed"


class Forbidden(CdnError):
    status, code, title = 403, "forbidden", "Forbidden"


class InsufficientScope(Forbidden):
    """An API key used for what its scopes do not allow (or for what no key may do)."""

    code, title = "insufficient_scope", "Insufficient scope"


class NotFound(CdnError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(CdnError):
    status, code, title = 409, "conflict", "Conflict"


class Gone(CdnError):
    status, code, title = 410, "gone", "Gone"


class TooLarge(CdnError):
    status, code, title = 413, "too_large", "Too large"


class UriTooLong(CdnError):
    status, code, title = 414, "uri_too_long", "URI too long"


class HeadersTooLarge(CdnError):
    """RFC 6585: the request's header fields, one or all together, are larger than this server takes."""

    status, code, title = 431, "headers_too_large", "Request header fields too large"


class Invalid(CdnError):
    """Valid JSON whose fields are wrong (422); `detail` names the field."""

    status, code, title = 422, "invalid_field", "Invalid field"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code, field=field)
        self.field = field


class TooManyAttempts(CdnError):
    status, code, title = 429, "too_many_attempts", "Too many attempts"

    def __init__(self, detail: str | None = None, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, retry_after=retry_after)
        self.headers["Retry-After"] = str(max(1, retry_after))


class QuotaExceeded(CdnError):
    """RFC 4918's 507: the user's quota has no room for this; the problem says how much is left."""

    status, code, title = 507, "quota_exceeded", "Quota exceeded"


class Unavailable(CdnError):
    status, code, title = 503, "unavailable", "Service unavailable"


class Busy(Unavailable):
    """This daemon already does as much of something at once as it may (ZIP archives streaming): the same
    request works once one ends. `Retry-After` says when to try again."""

    code, title = "busy", "Too busy"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, retry_after=retry_after)
        self.headers["Retry-After"] = str(max(1, retry_after))


class DatabaseUnavailable(Unavailable):
    """The database refused a write because of its disk (full, failing, read-only), or cannot be reached
    (PostgreSQL stopped, restarting, or cut off): nothing was changed, and the same request may succeed
    later. `reason` is `disk_full`, `disk_error`, `read_only` or `unreachable`."""

    code, title = "database_unavailable", "Database unavailable"
    retry_after = 30  # seconds a client is told to wait: an operator has to free space

    def __init__(self, cause: str, *, reason: str) -> None:
        super().__init__(f"{cause}: nothing was changed; try again later", reason=reason)
        self.cause = cause
        self.reason = reason
        self.headers["Retry-After"] = str(self.retry_after)


class StorageError(CdnError):
    """An S3 server did not do what was asked; `code` says why (unreachable, auth, ...). The detail names
    the server's address, the bucket, the key and the upload id: for the log only. A request that meets
    one answers `StorageUnavailable` (api/problems.py)."""

    status, code, title = 503, "storage_error", "Storage server error"


class StorageUnavailable(Unavailable):
    """What a caller is told when a storage server failed a call made for their request: a fixed sentence
    (the StorageError's details are logged), and when to try again."""

    code, title = "storage_unavailable", "Storage unavailable"
    retry_after = 5  # seconds: a storage server that timed out may answer again soon, or be marked down

    def __init__(self) -> None:
        super().__init__("a storage server did not answer as expected; try again in a moment")
        self.headers["Retry-After"] = str(self.retry_after)


class UpstreamFailed(CdnError):
    """A service cdnstore had to call to do what was asked did not answer as needed (an SNS subscription's
    confirmation URL, for one); `code` says which."""

    status, code, title = 502, "upstream_failed", "Upstream service failed"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the value."""
