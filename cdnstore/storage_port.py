"""The storage port: what the use cases call on the S3 servers, as a `typing.Protocol`, and the plain
records its answers carry.

`storage.Storage` (aiobotocore, real servers) implements it; `testbed.memory_storage.MemoryStorage` does
too, in memory, for the fast tier (tests/test_storage_contract.py holds both to the same promises). The
use cases are typed against this protocol only, so nothing in them depends on which one the app was given.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cdnstore.errors import StorageError
from cdnstore.models import S3Target

from .records import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # without quotes; a multipart ETag ("<md5>-<parts>") is not the MD5 of the bytes
    sha256: str | None = None  # lowercase hex SHA-256 of the bytes, when they were read through cdnstore


@fast_init
@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    size: int
    etag: str  # without quotes
    modified: datetime | None


@fast_init
@dataclass(frozen=True, slots=True)
class RawAnswer:
    """The answer to a request cdnstore sent itself to a presigned URL (probes): status, headers (names in
    lower case), the S3 error code of an error body ("" when none) and the start of the body."""

    status: int
    headers: dict[str, str]
    code: str
    text: str


class ChecksumMismatch(StorageError):
    """The bytes read from a server were not the ones expected (a copy's source, a verification read):
    nothing was written. `sha256` is the SHA-256 of the bytes that were read."""

    def __init__(self, detail: str, sha256: str) -> None:
        super().__init__(detail, code="checksum_mismatch")
        self.sha256 = sha256


class StoragePort(Protocol):
    """S3 operations on any number of targets (a bucket on a server). Failures are `StorageError`: code
    `storage_unreachable` (no answer: callers wait and retry), `storage_auth_failed`, `object_missing` (a
    read of a key that is not there), `checksum_mismatch` (`ChecksumMismatch`), else `storage_error`.
    Storage.py's docstrings say each method's promises in full; the contract test checks them."""

    async def close(self) -> None: ...

    async def forget(self, target: S3Target) -> None: ...

    # buckets
    async def check_bucket(self, target: S3Target, *, create: bool = True, timeout: float = 10) -> None: ...  # noqa: ASYNC109

    async def head_bucket(self, target: S3Target, *, timeout: float) -> bool: ...  # noqa: ASYNC109

    async def bucket_cors(self, target: S3Target) -> list[dict[str, Any]] | None: ...

    async def set_bucket_cors(self, target: S3Target, rules: list[dict[str, Any]]) -> None: ...

    async def bucket_versioning(self, target: S3Target) -> str: ...

    async def bucket_location(self, target: S3Target) -> str | None: ...

    # presigning (no I/O)
    def presign_put(
        self,
        target: S3Target,
        key: str,
        *,
        content_type: str,
        size: int,
        expires_in: int,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
        if_none_match: bool = False,
    ) -> tuple[str, dict[str, str]]: ...

    def presign_part(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        number: int,
        *,
        size: int,
        expires_in: int,
        md5: str | None = None,
    ) -> tuple[str, dict[str, str]]: ...

    def presign_get(
        self, target: S3Target, key: str, *, filename: str, expires_in: int, inline_type: str | None = None
    ) -> str: ...

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeout: float,  # noqa: ASYNC109
    ) -> RawAnswer: ...

    # objects
    async def head(self, target: S3Target, key: str, *, timeout: float | None = None) -> ObjectInfo | None: ...  # noqa: ASYNC109

    def read(self, target: S3Target, key: str, *, start: int = 0) -> AsyncGenerator[bytes, None]: ...

    async def delete(self, target: S3Target, key: str) -> None: ...

    async def delete_every_version(self, target: S3Target, key: str) -> None: ...

    def list_objects(self, target: S3Target, prefix: str = "") -> AsyncIterator[ObjectInfo]: ...

    async def list_page(
        self, target: S3Target, prefix: str, after: str | None, limit: int
    ) -> tuple[list[ObjectInfo], bool]: ...

    async def checksum(
        self, target: S3Target, key: str, *, size: int, rate: float | None = None, md5: bool = False
    ) -> tuple[str, str | None]: ...

    async def copy(
        self, src: S3Target, dst: S3Target, key: str, *, size: int, sha256: str | None = None, md5: str | None = None
    ) -> ObjectInfo: ...

    # multipart uploads
    async def stale_uploads(self, target: S3Target, started_before: datetime) -> list[tuple[str, str]]: ...

    async def create_upload(
        self,
        target: S3Target,
        key: str,
        *,
        content_type: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str: ...

    async def list_parts(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[PartInfo] | None: ...

    async def complete_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        etags: Mapping[int, str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None: ...

    async def abort_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None: ...
