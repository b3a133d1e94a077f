"""Talking to the S3 servers: one cached aiobotocore client per target, presigning, HEAD, delete,
listing and server-to-server streaming copy.

This is the only module that imports botocore/aiobotocore. Their exceptions never leave it: they
become `StorageError` with code `storage_unreachable`, `storage_auth_failed` or `storage_error`. The calls
made for a request take a `timeout` (`storage.request_timeout`): a silent server fails it within that
bound, retries included, instead of after botocore's read timeouts and retries (a minute and more).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import itertools
import logging
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cdnstore.endpoints import GuardedResolver
from cdnstore.errors import StorageError
from cdnstore.models import S3Target
from cdnstore.parts import part_size_for
from cdnstore.presign import DEFAULT_REGION, Presigner

# (The records live with the port; importable from here as before.)
from cdnstore.storage_port import ChecksumMismatch as ChecksumMismatch
from cdnstore.storage_port import ObjectInfo as ObjectInfo
from cdnstore.storage_port import PartInfo as PartInfo
from cdnstore.storage_port import RawAnswer as RawAnswer

log = logging.getLogger(__name__)

_AUTH_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"})
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_CHUNK = 1 << 20  # read size from the source stream during a copy
_NOT_SAFE_ASCII = re.compile(r'[^\x20-\x7e]+|["\\%]')
_ABORT_TIMEOUT = 30.0
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")

# An S3 client is an aiobotocore `AioBaseClient` whose methods are generated at run time; no types.
S3Client = Any


class StreamHash:
    """SHA-256 (and, when asked, MD5) of a stream fed chunk by chunk, computed in a worker thread beside
    the I/O: hashlib lets go of the GIL for large buffers, so the event loop keeps moving bytes while a
    chunk is hashed. Chunks are hashed in order: each waits for the one before."""

    def __init__(self, md5: bool = False) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._pending: asyncio.Future[None] | None = None

    def _update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        if self._md5 is not None:
            self._md5.update(chunk)

    async def update(self, chunk: bytes) -> None:
        if self._pending is not None:
            await self._pending
        self._pending = asyncio.get_running_loop().run_in_executor(None, self._update, chunk)

    async def digests(self) -> tuple[str, str | None]:
        """(SHA-256 hex, MD5 hex or None) of everything fed so far."""
        if self._pending is not None:
            await self._pending
            self._pending = None
        return self._sha256.hexdigest(), None if self._md5 is None else self._md5.hexdigest()


def sha256_base64(hex_digest: str) -> str:
    """The form S3's x-amz-checksum-sha256 header takes: base64 of the 32-byte digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """`attachment` (or `inline`, for a preview) with an ASCII `filename=` fallback and the exact name as
    RFC 5987 `filename*`."""
    encoded = quote(filename, safe="!#$&+-.^_`|~")  # RFC 5987 attr-char
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{_ascii_fallback(filename)}\"; filename*=UTF-8''{encoded}"


def _ascii_fallback(filename: str) -> str:
    """The name for clients that ignore `filename*`: accents dropped (ü -> u), any other run of non-ASCII
    as one `_`, no `"`, `\\` or `%` (RFC 6266 4.3: some clients decode it); `download` for a stem with
    no letter or digit left, so 写真.jpg saves as download.jpg, not as `_.jpg` or the dot file `.jpg`."""
    text = "".join(c for c in unicodedata.normalize("NFKD", filename) if not unicodedata.combining(c))
    text = _NOT_SAFE_ASCII.sub("_", text).strip()
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    if stem and not any(c.isalnum() for c in stem):  # (an empty stem is a dot file's: kept)
        stem = "download"
    return (f"{stem}.{ext}" if dot else stem) or "download"


def _check_header_value(name: str, value: str) -> None:
    # Presigned headers are sent by a browser; only printable ASCII survives intact.
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} must be printable ASCII, got {value!r}")


def _error_code(exc: ClientError) -> tuple[str, int | None]:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _is_missing(exc: ClientError) -> bool:
    code, status = _error_code(exc)
    return code in _MISSING_CODES or (status == 404 and code != "NoSuchBucket")


def _translate(exc: BaseException, target: S3Target, action: str) -> StorageError:
    where = f"{target.endpoint_url}/{target.bucket}"
    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code in _AUTH_CODES or status == 403:
            return StorageError(f"{action} on {where}: access denied ({message})", code="storage_auth_failed")
        return StorageError(f"{action} on {where}: {code or status} {message}", code="storage_error")
    # A body cut short (the server died or the connection broke mid-transfer) is the network failing too:
    # aiohttp raises ClientPayloadError for it, which aiobotocore does not wrap.
    if isinstance(
        exc, BotoConnectionError | HTTPClientError | IncompleteReadError | aiohttp.ClientError | TimeoutError | OSError
    ):
        why = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__)
        return StorageError(f"{action} on {where}: server unreachable ({why})", code="storage_unreachable")
    return StorageError(f"{action} on {where}: {exc}", code="storage_error")


@contextlib.contextmanager
def _errors(target: S3Target, action: str) -> Iterator[None]:
    """Turn botocore and network exceptions raised inside the block into StorageError."""
    try:
        yield
    except (BotoCoreError, ClientError, aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise _translate(exc, target, action) from exc


@contextlib.asynccontextmanager
async def _call(target: S3Target, action: str, timeout: float | None) -> AsyncIterator[None]:  # noqa: ASYNC109
    """`_errors`, the block bounded by `timeout` seconds in all (None: by botocore's timeouts alone); a
    timeout becomes `storage_unreachable` too."""
    with _errors(target, action):
        async with asyncio.timeout(timeout):
            yield


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error that made a TaskGroup fail (not the cancellations it caused)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


class _NoRedirects:
    """An aiohttp session whose requests never follow a redirect (aiobotocore's would: aiohttp's
    default). A storage server answering 3xx gets its answer treated as an error, and the signed request
    and its body go nowhere else. (botocore's S3 region redirector may still sign a request again for
    another region, but only to the endpoint the client was made for: it never reads `Location`.)"""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.request(*args, allow_redirects=False, **kwargs)


def _no_region_redirect(request_dict: dict[str, Any], **_: Any) -> None:
    request_dict.setdefault("context", {}).setdefault("s3_redirect", {})["redirected"] = True


class _NoRedirectsHttpSession(AIOHTTPSession):  # type: ignore[misc]
    async def _get_session(self, proxy_url: str | None) -> _NoRedirects:
        return _NoRedirects(await super()._get_session(proxy_url))


class Storage:
    """S3 operations on any number of targets; clients are created lazily and reused."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        part_size: int = 8 << 20,
        parts_in_flight: int = 2,
    ) -> None:
        if part_size < 5 << 20:
            raise ValueError("part_size must be at least 5 MiB (S3's minimum for non-last parts)")
        if parts_in_flight < 1:
            raise ValueError("parts_in_flight must be at least 1")
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self._config = AioConfig(
            # No redirects followed, and no connection to a link-local or metadata address, whatever a
            # name resolves to when the connection is made (see endpoints.py).
            http_session_cls=_NoRedirectsHttpSession,
            connector_args={"resolver": GuardedResolver()},
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=max(10, 2 * parts_in_flight + 2),
            # SeaweedFS needs no flexible checksums, and CRC32 per part costs CPU on copies.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._virtual_config = self._config.merge(AioConfig(s3={"addressing_style": "virtual"}))
        # Made with the first client: a session registers botocore's hundred-odd handlers, a cost a daemon (or
        # a command-line tool) with no server to reach yet need not pay at start.
        self._session: AioSession | None = None
        self._clients: dict[S3Target, tuple[S3Client, AsyncExitStack]] = {}
        self._http: aiohttp.ClientSession | None = None  # presigned requests cdnstore sends itself (probes)
        self._presigners: dict[S3Target, Presigner] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- clients -----------------------------------------------------------------------------

    async def _client(self, target: S3Target) -> S3Client:
        entry = self._clients.get(target)
        if entry is not None:
            return entry[0]
        async with self._lock:  # two coroutines must not build two clients for one target
            entry = self._clients.get(target)
            if entry is not None:
                return entry[0]
            if self._session is None:
                self._session = get_session()
            stack = AsyncExitStack()
            client = await stack.enter_async_context(
                self._session.create_client(
                    "s3",
                    endpoint_url=target.endpoint_url,
                    region_name=target.region or DEFAULT_REGION,
                    aws_access_key_id=target.access_key,
                    aws_secret_access_key=target.secret_key,
                    config=self._virtual_config if target.addressing_style == "virtual" else self._config,
                )
            )
            # Runs before botocore's S3 region redirector and tells it this request was redirected
            # already, so it never re-sends: a storage server answering 301 without end would otherwise
            # make it HEAD the bucket inside its own handler, recursively, until Python's stack runs out.
            client.meta.events.register_first("needs-retry.s3", _no_region_redirect)
            self._clients[target] = (client, stack)
            log.debug("S3 client created", extra={"endpoint": target.endpoint_url, "bucket": target.bucket})
            return client

    async def forget(self, target: S3Target) -> None:
        """Close the cached client and presigner of a target whose settings changed or was removed.

        Requests still running on that client fail (as a network error); callers retry.
        """
        self._presigners.pop(target, None)
        entry = self._clients.pop(target, None)
        if entry is not None:
            await entry[1].aclose()

    async def close(self) -> None:
        """Close every cached client."""
        entries = list(self._clients.values())
        self._clients.clear()
        self._presigners.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        for _, stack in entries:
            try:
                await stack.aclose()
            except Exception:  # closing must go on for the other clients
                log.warning("closing an S3 client failed", exc_info=True)

    def _presigner(self, target: S3Target) -> Presigner:
        presigner = self._presigners.get(target)
        if presigner is None:
            presigner = self._presigners[target] = Presigner(target)
        return presigner

    # --- buckets -----------------------------------------------------------------------------

    # The timeout is part of the call (a server check in a request handler) rather than left to
    # the caller's asyncio.timeout, so that a timeout becomes storage_unreachable here.
    async def check_bucket(
        self,
        target: S3Target,
        *,
        create: bool = True,
        timeout: float = 10,  # noqa: ASYNC109
    ) -> None:
        """Make sure the bucket answers (creating it when missing and `create`), else StorageError."""
        async with _call(target, "check bucket", timeout):
            client = await self._client(target)
            try:
                await client.head_bucket(Bucket=target.bucket)
                return
            except ClientError as exc:
                if _error_code(exc)[1] != 404 or not create:
                    raise
            await self._create_bucket(client, target)

    async def _create_bucket(self, client: S3Client, target: S3Target) -> None:
        kwargs: dict[str, Any] = {"Bucket": target.bucket}
        if target.region and target.region != DEFAULT_REGION:  # AWS refuses a redundant us-east-1
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
        try:
            await client.create_bucket(**kwargs)
            log.info("bucket created", extra={"endpoint": target.endpoint_url, "bucket": target.bucket})
        except ClientError as exc:
            if _error_code(exc)[0] != "BucketAlreadyOwnedByYou":  # lost a race with ourselves: fine
                raise

    async def head_bucket(self, target: S3Target, *, timeout: float) -> bool:  # noqa: ASYNC109
        """Health probe: True when the bucket answers; never raises."""
        try:
            async with asyncio.timeout(timeout):
                client = await self._client(target)
                await client.head_bucket(Bucket=target.bucket)
            return True
        except Exception as exc:  # a probe reports, it does not fail
            log.debug("head_bucket failed: %r", exc, extra={"endpoint": target.endpoint_url})
            return False

    # --- presigning (no network) -------------------------------------------------------------

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
    ) -> tuple[str, dict[str, str]]:
        """A presigned PUT URL and the exact headers the client must send with it.

        Content-Length is signed, so the server refuses a body of any other size; with `sha256` (hex) so is
        x-amz-checksum-sha256, so the server refuses any other bytes (400 BadDigest); with `if_none_match`
        so is `If-None-Match: *`, so a server that honours it writes the key once (412 for a second PUT).
        """
        if size < 0:
            raise ValueError("size must not be negative")
        content_type = content_type or "application/octet-stream"
        _check_header_value("content_type", content_type)
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        for name, value in (metadata or {}).items():
            name = name.lower()
            if not _META_KEY.match(name):
                raise ValueError(f"metadata key must match [a-z0-9-]+, got {name!r}")
            _check_header_value(f"metadata {name}", value)
            headers[f"x-amz-meta-{name}"] = value
        if sha256 is not None:
            headers["x-amz-checksum-sha256"] = sha256_base64(sha256)
        if if_none_match:
            headers["If-None-Match"] = "*"
        url = self._presigner(target).presign("PUT", key, expires_in=expires_in, headers=headers)
        return url, headers

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
    ) -> tuple[str, dict[str, str]]:
        """A presigned UploadPart of a multipart upload and the exact headers the client must send: the
        part's size, and with `md5` (base64) its Content-MD5, so the server refuses any other bytes."""
        headers = {"Content-Length": str(size)}
        if md5 is not None:
            _check_header_value("md5", md5)
            headers["Content-MD5"] = md5
        query = {"uploadId": upload_id, "partNumber": str(number)}  # (botocore's order: the same URL text)
        url = self._presigner(target).presign("PUT", key, expires_in=expires_in, query=query, headers=headers)
        return url, headers

    def presign_get(
        self, target: S3Target, key: str, *, filename: str, expires_in: int, inline_type: str | None = None
    ) -> str:
        """A presigned GET URL whose response saves as `filename` (Content-Disposition override); with
        `inline_type`, one a browser shows in the page instead, served as that Content-Type (previews.py
        decides which types may be)."""
        query = {"response-content-disposition": content_disposition(filename, inline=inline_type is not None)}
        if inline_type is not None:
            query["response-content-type"] = inline_type
        return self._presigner(target).presign("GET", key, expires_in=expires_in, query=query)

    # --- objects -----------------------------------------------------------------------------

    async def head(self, target: S3Target, key: str, *, timeout: float | None = None) -> ObjectInfo | None:  # noqa: ASYNC109
        """Size and ETag of an object, or None when it does not exist."""
        async with _call(target, f"HEAD {key!r}", timeout):
            client = await self._client(target)
            try:
                resp = await client.head_object(Bucket=target.bucket, Key=key)
            except ClientError as exc:
                if _is_missing(exc):
                    return None
                raise
        return ObjectInfo(key, int(resp["ContentLength"]), str(resp.get("ETag", "")).strip('"'))

    async def read(self, target: S3Target, key: str, *, start: int = 0) -> AsyncGenerator[bytes, None]:
        """The object's bytes from offset `start` on, in pieces of at most 1 MiB as they arrive (never the
        whole object in memory). An object that does not exist is a StorageError with code `object_missing`."""
        ranged = {"Range": f"bytes={start}-"} if start else {}
        with _errors(target, f"GET {key!r}"):
            client = await self._client(target)
            try:
                resp = await client.get_object(Bucket=target.bucket, Key=key, **ranged)
            except ClientError as exc:
                if _is_missing(exc):
                    raise StorageError(
                        f"GET {key!r} on {target.endpoint_url}/{target.bucket}: no such object", code="object_missing"
                    ) from None
                raise
        body = resp["Body"]
        try:
            while True:
                with _errors(target, f"GET {key!r}"):
                    chunk = await body.read(_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, target: S3Target, key: str) -> None:
        """Delete an object; one that is already gone counts as deleted. One DELETE per object, never a
        multi-object delete (DeleteObjects): Ceph RGW 16.2's beast frontend aborts on one in a bucket whose
        notification covers removals (tests/test_storage_events.py)."""
        with _errors(target, f"DELETE {key!r}"):
            client = await self._client(target)
            try:
                await client.delete_object(Bucket=target.bucket, Key=key)
            except ClientError as exc:
                if not _is_missing(exc):
                    raise

    async def list_objects(self, target: S3Target, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under `prefix`, page by page (ListObjectsV2)."""
        with _errors(target, f"LIST {prefix!r}"):
            client = await self._client(target)
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=prefix)
            async for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"'))

    async def list_page(
        self, target: S3Target, prefix: str, after: str | None, limit: int
    ) -> tuple[list[ObjectInfo], bool]:
        """Up to `limit` objects under `prefix` whose keys sort after `after` (ListObjectsV2 StartAfter: a
        position that is a key, so it outlives a restart), and whether more follow."""
        kwargs: dict[str, Any] = {"Bucket": target.bucket, "Prefix": prefix, "MaxKeys": limit}
        if after:
            kwargs["StartAfter"] = after
        with _errors(target, f"LIST {prefix!r} after {after!r}"):
            resp = await (await self._client(target)).list_objects_v2(**kwargs)
        found = [
            ObjectInfo(item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"'))
            for item in resp.get("Contents", ())
        ]
        return found, bool(resp.get("IsTruncated")) and bool(found)

    async def stale_uploads(self, target: S3Target, started_before: datetime) -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads begun before `started_before` and never completed:
        a copy interrupted by a crash leaves one behind, holding its parts' space."""
        found = []
        with _errors(target, "LIST multipart uploads"):
            client = await self._client(target)
            async for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=target.bucket):
                for upload in page.get("Uploads", ()):
                    if upload["Initiated"] < started_before:
                        found.append((upload["Key"], upload["UploadId"]))
        return found

    # --- multipart uploads sent by clients (parts presigned above) ----------------------------

    async def create_upload(
        self,
        target: S3Target,
        key: str,
        *,
        content_type: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        """Begin a multipart upload of `key`; its upload id."""
        async with _call(target, f"start multipart upload of {key!r}", timeout):
            client = await self._client(target)
            created = await client.create_multipart_upload(
                Bucket=target.bucket, Key=key, ContentType=content_type or "application/octet-stream"
            )
        return str(created["UploadId"])

    async def list_parts(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[PartInfo] | None:
        """The parts the server holds of a multipart upload, by number; None when the upload is gone
        (completed or aborted)."""
        found = []
        async with _call(target, f"LIST parts of {key!r} (upload {upload_id})", timeout):
            client = await self._client(target)
            try:
                pages = client.get_paginator("list_parts").paginate(Bucket=target.bucket, Key=key, UploadId=upload_id)
                async for page in pages:
                    for part in page.get("Parts", ()):
                        found.append(
                            PartInfo(
                                int(part["PartNumber"]),
                                int(part["Size"]),
                                str(part.get("ETag", "")).strip('"'),
                                part.get("LastModified"),
                            )
                        )
            except ClientError as exc:
                if _error_code(exc)[0] == "NoSuchUpload" or _is_missing(exc):
                    return None
                raise
        return sorted(found, key=lambda p: p.number)

    async def complete_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        etags: Mapping[int, str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Assemble the object from parts 1..N (CompleteMultipartUpload). Timed out, the server may still
        assemble it: the object then appears, and the upload is gone from ListParts."""
        parts = [{"PartNumber": n, "ETag": f'"{etags[n]}"'} for n in sorted(etags)]
        async with _call(target, f"complete multipart upload of {key!r} (upload {upload_id})", timeout):
            client = await self._client(target)
            await client.complete_multipart_upload(
                Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )

    async def abort_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        async with _call(target, f"ABORT upload {upload_id} of {key!r}", timeout):
            client = await self._client(target)
            try:
                await client.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if not _is_missing(exc) and _error_code(exc)[0] != "NoSuchUpload":
                    raise

    async def checksum(
        self, target: S3Target, key: str, *, size: int, rate: float | None = None, md5: bool = False
    ) -> tuple[str, str | None]:
        """(SHA-256 hex, MD5 hex when asked) of the object's bytes, read at most `rate` bytes a second."""
        with _errors(target, f"GET {key!r} for a checksum"):
            resp = await (await self._client(target)).get_object(Bucket=target.bucket, Key=key)
        body = resp["Body"]
        hashed = StreamHash(md5=md5)
        start, read = asyncio.get_running_loop().time(), 0
        try:
            while True:
                with _errors(target, f"GET {key!r} for a checksum"):
                    chunk = await body.read(_CHUNK)
                if not chunk:
                    break
                await hashed.update(chunk)
                read += len(chunk)
                if rate:  # paced: the bytes read so far may not have taken less than read / rate seconds
                    ahead = read / rate - (asyncio.get_running_loop().time() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        finally:
            body.close()
        if read != size:
            raise StorageError(f"{target.endpoint_url}/{target.bucket} has {read} bytes of {key!r}, expected {size}")
        return await hashed.digests()

    # --- what the capability probe tries (probe.py) --------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeout: float,  # noqa: ASYNC109
    ) -> RawAnswer:
        """Send a request of cdnstore's own to a presigned URL (or a CORS preflight) as a client would, through
        the same guarded resolver as the S3 clients, never following a redirect. A network failure or a
        timeout is StorageError (`storage_unreachable`)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver()))
        where = url.split("?", 1)[0]
        try:
            async with asyncio.timeout(timeout):
                # (A BytesIO: aiohttp sends it without holding the loop, however large; a part is 5 MiB and more.)
                data = io.BytesIO(body) if body else None
                async with self._http.request(
                    method, url, headers=dict(headers or {}), data=data, allow_redirects=False
                ) as resp:
                    text = (await resp.content.read(1 << 16)).decode(errors="replace")
                    found = _XML_CODE.search(text)
                    return RawAnswer(
                        resp.status, {k.lower(): v for k, v in resp.headers.items()}, found[1] if found else "", text
                    )
        except (aiohttp.ClientError, OSError) as exc:  # (TimeoutError is an OSError)
            raise StorageError(f"{method} {where}: server unreachable ({exc!r})", code="storage_unreachable") from exc

    async def bucket_cors(self, target: S3Target) -> list[dict[str, Any]] | None:
        """The bucket's CORS rules; None when it has no CORS configuration."""
        with _errors(target, "GET bucket CORS"):
            client = await self._client(target)
            try:
                resp = await client.get_bucket_cors(Bucket=target.bucket)
            except ClientError as exc:
                if _error_code(exc)[0] == "NoSuchCORSConfiguration":
                    return None
                raise
        return list(resp.get("CORSRules") or [])

    async def set_bucket_cors(self, target: S3Target, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's CORS rules (PutBucketCors)."""
        with _errors(target, "PUT bucket CORS"):
            client = await self._client(target)
            await client.put_bucket_cors(Bucket=target.bucket, CORSConfiguration={"CORSRules": rules})

    async def bucket_versioning(self, target: S3Target) -> str:
        """The bucket's versioning: "off" (never enabled), "enabled" or "suspended"."""
        with _errors(target, "GET bucket versioning"):
            resp = await (await self._client(target)).get_bucket_versioning(Bucket=target.bucket)
        return str(resp.get("Status") or "off").lower()

    async def bucket_location(self, target: S3Target) -> str | None:
        """The bucket's location as the server reports it (None: it names none, AWS's us-east-1)."""
        with _errors(target, "GET bucket location"):
            resp = await (await self._client(target)).get_bucket_location(Bucket=target.bucket)
        return resp.get("LocationConstraint") or None

    async def delete_every_version(self, target: S3Target, key: str) -> None:
        """Delete every version of `key` and its delete markers: in a versioned bucket a plain delete only
        hides the bytes behind a marker."""
        with _errors(target, f"DELETE versions of {key!r}"):
            client = await self._client(target)
            listed = await client.list_object_versions(Bucket=target.bucket, Prefix=key)
            for item in (*listed.get("Versions", ()), *listed.get("DeleteMarkers", ())):
                if item.get("Key") == key and item.get("VersionId"):
                    await client.delete_object(Bucket=target.bucket, Key=key, VersionId=item["VersionId"])

    # --- copy --------------------------------------------------------------------------------

    async def copy(
        self, src: S3Target, dst: S3Target, key: str, *, size: int, sha256: str | None = None, md5: str | None = None
    ) -> ObjectInfo:
        """Stream `key` from src to dst without holding the whole object or touching the disk.

        One PUT up to `part_size`, else a multipart upload with at most `parts_in_flight` parts in
        memory, aborted on any failure. Content-Type and x-amz-meta-* are carried over. The
        destination is verified by size (ETags differ between single and multipart uploads).

        The bytes are hashed as they stream (SHA-256, and MD5 when `md5` is expected); the answer carries
        the SHA-256. Bytes that differ from the expected `sha256` or `md5` (hex) are found after the last
        one is read and before the object is written (the single PUT) or assembled (the multipart upload):
        ChecksumMismatch, and the destination is left without it.
        """
        # Parts grow for files past part_size * 10,000 bytes (S3's most parts), as a client's upload's do.
        part_size = max(self.part_size, part_size_for(size))
        with _errors(src, f"GET {key!r} for copy"):
            resp = await (await self._client(src)).get_object(Bucket=src.bucket, Key=key)
        body = resp["Body"]
        try:
            if int(resp["ContentLength"]) != size:
                raise StorageError(
                    f"copy {key!r}: {src.endpoint_url}/{src.bucket} has {resp['ContentLength']} bytes, expected {size}",
                    code="storage_error",
                )
            extra: dict[str, Any] = {"Metadata": resp.get("Metadata") or {}}
            if resp.get("ContentType"):
                extra["ContentType"] = resp["ContentType"]
            hashed = StreamHash(md5=md5 is not None)
            parts = self._read_parts(body, src, key, part_size, hashed, sha256, md5)
            if size <= part_size:
                await self._put_single(dst, key, parts, size, extra)
            else:
                await self._put_multipart(dst, key, parts, size, extra)
        finally:
            body.close()
        info = await self.head(dst, key)
        if info is None or info.size != size:
            got = "nothing" if info is None else f"{info.size} bytes"
            raise StorageError(f"copy {key!r} to {dst.endpoint_url}: found {got}, expected {size}")
        return ObjectInfo(info.key, info.size, info.etag, (await hashed.digests())[0])

    async def _read_parts(
        self,
        body: Any,
        src: S3Target,
        key: str,
        part_size: int,
        hashed: StreamHash,
        sha256: str | None,
        md5: str | None,
    ) -> AsyncGenerator[bytes, None]:
        """The source stream cut into `part_size` pieces (the last one shorter), hashed on the way; after
        the last piece, ChecksumMismatch when the bytes were not the expected ones."""
        pending: list[bytes] = []
        have = 0
        while True:
            with _errors(src, f"GET {key!r} for copy"):
                # Never read past a part boundary, so a full part needs no slicing (no extra copy).
                chunk = await body.read(min(_CHUNK, part_size - have))
            if not chunk:
                break
            await hashed.update(chunk)
            pending.append(chunk)
            have += len(chunk)
            if have == part_size:
                yield b"".join(pending)
                pending, have = [], 0
        if pending:
            yield b"".join(pending)
        got_sha256, got_md5 = await hashed.digests()
        if (sha256 is not None and got_sha256 != sha256) or (md5 is not None and got_md5 != md5):
            want = f"SHA-256 {sha256}" if sha256 is not None and got_sha256 != sha256 else f"MD5 {md5}"
            raise ChecksumMismatch(
                f"{src.endpoint_url}/{src.bucket} gave bytes of {key!r} with SHA-256 {got_sha256}, expected {want}",
                got_sha256,
            )

    async def _put_single(
        self, dst: S3Target, key: str, parts: AsyncGenerator[bytes, None], size: int, extra: dict[str, Any]
    ) -> None:
        data = b"".join([part async for part in parts])
        if len(data) != size:
            raise StorageError(f"copy {key!r}: read {len(data)} bytes from the source, expected {size}")
        with _errors(dst, f"PUT {key!r}"):
            await (await self._client(dst)).put_object(Bucket=dst.bucket, Key=key, Body=data, **extra)

    async def _put_multipart(
        self, dst: S3Target, key: str, parts: AsyncGenerator[bytes, None], size: int, extra: dict[str, Any]
    ) -> None:
        client = await self._client(dst)
        await self._abort_leftovers(client, dst, key)
        with _errors(dst, f"start multipart upload of {key!r}"):
            created = await client.create_multipart_upload(Bucket=dst.bucket, Key=key, **extra)
        upload_id = created["UploadId"]
        try:
            etags = await self._upload_parts(client, dst, key, upload_id, parts, size)
            with _errors(dst, f"complete multipart upload of {key!r}"):
                await client.complete_multipart_upload(
                    Bucket=dst.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
                )
        except BaseException:
            await self._abort(client, dst, key, upload_id)
            raise

    async def _upload_parts(
        self,
        client: S3Client,
        dst: S3Target,
        key: str,
        upload_id: str,
        parts: AsyncGenerator[bytes, None],
        size: int,
    ) -> dict[int, str]:
        # The slot is taken before a part is read, so reading + uploading hold at most
        # parts_in_flight parts in memory; an upload frees its slot when it finishes.
        slots = asyncio.Semaphore(self.parts_in_flight)
        etags: dict[int, str] = {}
        total = 0
        try:
            async with asyncio.TaskGroup() as tasks:
                async with contextlib.aclosing(parts):
                    for number in itertools.count(1):
                        await slots.acquire()
                        part = await anext(parts, None)
                        if part is None:
                            slots.release()
                            break
                        total += len(part)
                        tasks.create_task(
                            self._upload_part(client, dst, key, upload_id, number, part, slots, etags),
                            name=f"upload part {number} of {key}",
                        )
                        del part  # the task owns the bytes now
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        if total != size:
            raise StorageError(f"copy {key!r}: read {total} bytes from the source, expected {size}")
        return etags

    async def _upload_part(
        self,
        client: S3Client,
        dst: S3Target,
        key: str,
        upload_id: str,
        number: int,
        data: bytes,
        slots: asyncio.Semaphore,
        etags: dict[int, str],
    ) -> None:
        try:
            with _errors(dst, f"upload part {number} of {key!r}"):
                resp = await client.upload_part(
                    Bucket=dst.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
            etags[number] = resp["ETag"]
        finally:
            slots.release()

    async def _abort_leftovers(self, client: S3Client, dst: S3Target, key: str) -> None:
        """Abort the unfinished uploads of `key` that an earlier copy left (cut short by a crash, or by a
        target that died before the abort reached it): they hold their parts' space. A key is copied to a
        server by one job at a time, so none of them is still in use."""
        with _errors(dst, f"LIST multipart uploads of {key!r}"):
            listed = await client.list_multipart_uploads(Bucket=dst.bucket, Prefix=key)
        for upload in listed.get("Uploads", ()):
            if upload["Key"] == key:
                await self._abort(client, dst, key, upload["UploadId"])

    async def _abort(self, client: S3Client, dst: S3Target, key: str, upload_id: str) -> None:
        # Best effort: an upload left behind only costs disk until a lifecycle rule or scrub.
        try:
            async with asyncio.timeout(_ABORT_TIMEOUT):
                await client.abort_multipart_upload(Bucket=dst.bucket, Key=key, UploadId=upload_id)
        except Exception:
            log.warning(
                "could not abort multipart upload %s of %r",
                upload_id,
                key,
                extra={"endpoint": dst.endpoint_url},
                exc_info=True,
            )
