"""An S3 fleet in memory: `MemoryStorage` implements cdnstore's storage port (cdnstore/storage_port.py), so the
use cases run on it in the fast tier as they run on real servers, and tests tell it to fail on purpose.

It is a test harness, kept beside cdnstore rather than in it (issue 25: harnesses out of the product): the
daemon never builds one; a test hands one to `create_app(config, store=...)`.

What it keeps, per target (endpoint URL and bucket; a bucket exists once `check_bucket` made it): objects
with their bytes, Content-Type, metadata and ETag (the MD5, or for a multipart upload or a copy past
`part_size` the S3 multipart form `<md5 of the parts' MD5s>-<parts>`), every version where versioning was
turned on (`set_versioning`), multipart uploads, CORS rules. Where real vendors differ
(tests/test_storage_contract.py), it does the strictest: a signed `x-amz-checksum-sha256` and a part's
`Content-MD5` are enforced (400 BadDigest), `If-None-Match: *` is honoured (412), parts but the last are at
least 5 MiB (EntityTooSmall), a CORS preflight passes only by a rule of the bucket.

Presigned URLs are the real ones (signed as `Storage` signs them); `send` serves them as the server would,
after checking the signature, so a test PUTs "as a client would" through the port's own `send`.

Faults, each for one server (its endpoint URL), one key, or both (None: any):
- `lose(server, key)`: the object is gone (a disk lost it; no delete marker, no event);
- `corrupt(server, key)`: its bytes change, its ETag stays (bit rot: only a read finds it);
- `overwrite(target, key, data)`: someone else's PutObject (new bytes and ETag, no event);
- `stall(server=, key=)`: each operation on them waits until the returned event is set (a slow or silent
  server: a call with a `timeout` fails `storage_unreachable` when it runs out first);
- `refuse(server=, key=, times=, code=)`: each operation on them raises the StorageError a failing server
  gives (`storage_error`, or `storage_unreachable` as for a dead one), `times` times (None: until `heal`).
- `down(server)` ... `up(server)`: the server's process is gone (killed, crashed) and later started again:
  meanwhile every operation on it, a presigned URL's request included, is refused as a connection to a port
  nothing listens on is (`Storage` raises StorageError `storage_unreachable`, its health probe answers False);
  its objects stay, and `heal` does not bring it up (tests/s3bed.py's `MemoryFleet.kill` / `restart`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cdnstore.errors import StorageError
from cdnstore.models import S3Target
from cdnstore.parts import part_size_for
from cdnstore.presign import Presigner, base_url
from cdnstore.storage import Storage
from cdnstore.storage_port import ChecksumMismatch, ObjectInfo, PartInfo, RawAnswer, StoragePort

MIN_PART = 5 << 20  # S3's smallest part but the last
_CHUNK = 1 << 20  # read() gives pieces of at most this much, as Storage does
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of an object assembled from parts: the MD5 of the parts' MD5 digests, `-` their count."""
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f"{md5_hex(digests)}-{len(parts)}"


@dataclass(slots=True)
class _Object:
    data: bytes
    etag: str
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Upload:
    key: str
    content_type: str
    initiated: datetime
    parts: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class _Bucket:
    objects: dict[str, _Object] = field(default_factory=dict)
    versions: dict[str, list[_Object | None]] = field(default_factory=dict)  # None: a delete marker
    uploads: dict[str, _Upload] = field(default_factory=dict)
    cors: list[dict[str, Any]] | None = None
    versioning: str = "off"


@dataclass(slots=True)
class _Rule:
    server: str | None
    key: str | None
    gate: asyncio.Event | None = None  # stall: wait for it
    code: str | None = None  # refuse: with this StorageError code
    times: int | None = None  # refusals left (None: until healed)

    def matches(self, server: str, key: str | None) -> bool:
        return (self.server is None or self.server == server) and (self.key is None or self.key == key)


class MemoryStorage:
    """The storage port in memory (see the module's docstring)."""

    def __init__(self, *, part_size: int = 8 << 20) -> None:
        self.part_size = part_size
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._targets: dict[str, S3Target] = {}  # URL prefix of a bucket's presigned URLs -> its target
        self._rules: list[_Rule] = []
        self._signer = Storage(part_size=max(part_size, MIN_PART))  # presigning only: it opens no connection
        self._ids = itertools.count(1)
        self.refused = 0  # operations failed by `refuse` so far
        self._down: set[str] = set()  # endpoint URLs of the servers `down` took down

    # --- faults --------------------------------------------------------------------------------

    def lose(self, server: str, key: str) -> None:
        """The object is gone from that server's buckets (its versions stay)."""
        for (endpoint, _), bucket in self._buckets.items():
            if endpoint == server:
                bucket.objects.pop(key, None)

    def corrupt(self, server: str, key: str) -> None:
        """Flip the first byte of the object on that server; its ETag and size stay."""
        for (endpoint, _), bucket in self._buckets.items():
            found = bucket.objects.get(key) if endpoint == server else None
            if found is not None and found.data:
                found.data = bytes([found.data[0] ^ 0xFF]) + found.data[1:]

    def overwrite(self, target: S3Target, key: str, data: bytes) -> None:
        """Someone's S3 PutObject of `data` under `key`, behind cdnstore's back: new bytes and ETag, no event."""
        self._put(self._bucket(target), key, _Object(data, md5_hex(data), "application/octet-stream", {}))

    def stall(self, *, server: str | None = None, key: str | None = None) -> asyncio.Event:
        """Operations on the server (and key) wait until the event is set."""
        gate = asyncio.Event()
        self._rules.append(_Rule(server, key, gate=gate))
        return gate

    def refuse(
        self,
        *,
        server: str | None = None,
        key: str | None = None,
        times: int | None = None,
        code: str = "storage_error",
    ) -> None:
        """Operations on the server (and key) fail as a failing server's do (`times` of them; None: all)."""
        self._rules.append(_Rule(server, key, code=code, times=times))

    def down(self, server: str) -> None:
        """The server (its endpoint URL) is down as a killed process is: every operation on it is refused, until
        `up`; its objects stay."""
        self._down.add(server)

    def up(self, server: str) -> None:
        """The server runs again (as it was: its buckets and objects)."""
        self._down.discard(server)

    def heal(self) -> None:
        """No more faults: stalled operations go on, refusals end (a server `down` stays down until `up`)."""
        for rule in self._rules:
            if rule.gate is not None:
                rule.gate.set()
        self._rules.clear()

    def set_versioning(self, target: S3Target, status: str = "enabled") -> None:
        self._bucket(target).versioning = status

    def objects(self, target: S3Target) -> dict[str, bytes]:
        """Key -> bytes of what the target holds now (for assertions)."""
        return {key: obj.data for key, obj in self._bucket(target).objects.items()}

    async def _enter(self, target: S3Target, key: str | None, action: str, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Apply the faults told for this server and key: refuse it when down, wait for a stall (within `timeout`),
        raise a refusal."""
        where = f"{action} on {target.endpoint_url}/{target.bucket}"
        if target.endpoint_url in self._down:  # (as `Storage` says a refused connection)
            raise StorageError(f"{where}: server unreachable (connection refused)", code="storage_unreachable")
        for rule in list(self._rules):
            if not rule.matches(target.endpoint_url, key):
                continue
            if rule.gate is not None and not rule.gate.is_set():
                try:
                    async with asyncio.timeout(timeout):
                        await rule.gate.wait()
                except TimeoutError:
                    raise StorageError(
                        f"{where}: server unreachable (no answer in time)", code="storage_unreachable"
                    ) from None
            if rule.code is not None and rule.times != 0:
                if rule.times is not None:
                    rule.times -= 1
                self.refused += 1
                why = "server unreachable (refused)" if rule.code == "storage_unreachable" else "500 InternalError"
                raise StorageError(f"{where}: {why}", code=rule.code)

    # --- buckets -------------------------------------------------------------------------------

    def _remember(self, target: S3Target) -> None:
        path = urlsplit(target.endpoint_url).path.rstrip("/")
        if target.addressing_style == "virtual":
            prefix = f"{base_url(target)}{path}/"
        else:
            prefix = f"{base_url(target)}{path}/{target.bucket}/"
        self._targets[prefix] = target

    def _bucket(self, target: S3Target) -> _Bucket:
        found = self._buckets.get((target.endpoint_url, target.bucket))
        if found is None:
            raise StorageError(
                f"on {target.endpoint_url}/{target.bucket}: NoSuchBucket The specified bucket does not exist",
                code="storage_error",
            )
        return found

    async def close(self) -> None:
        await self._signer.close()

    async def forget(self, target: S3Target) -> None:
        """Nothing is cached per target but the URL prefix, which stays valid."""

    async def check_bucket(self, target: S3Target, *, create: bool = True, timeout: float = 10) -> None:  # noqa: ASYNC109
        await self._enter(target, None, "check bucket", timeout)
        if (target.endpoint_url, target.bucket) not in self._buckets:
            if not create:
                self._bucket(target)
            self._buckets[(target.endpoint_url, target.bucket)] = _Bucket()
        self._remember(target)

    async def head_bucket(self, target: S3Target, *, timeout: float) -> bool:  # noqa: ASYNC109
        try:
            await self._enter(target, None, "HEAD bucket", timeout)
            self._bucket(target)
        except StorageError:
            return False
        return True

    async def bucket_cors(self, target: S3Target) -> list[dict[str, Any]] | None:
        await self._enter(target, None, "GET bucket CORS")
        rules = self._bucket(target).cors
        return None if rules is None else [dict(rule) for rule in rules]

    async def set_bucket_cors(self, target: S3Target, rules: list[dict[str, Any]]) -> None:
        await self._enter(target, None, "PUT bucket CORS")
        self._bucket(target).cors = [dict(rule) for rule in rules]

    async def bucket_versioning(self, target: S3Target) -> str:
        await self._enter(target, None, "GET bucket versioning")
        return self._bucket(target).versioning

    async def bucket_location(self, target: S3Target) -> str | None:
        await self._enter(target, None, "GET bucket location")
        self._bucket(target)
        return target.region or None

    # --- presigning: the real URLs ---------------------------------------------------------------

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
        self._remember(target)
        return self._signer.presign_put(
            target,
            key,
            content_type=content_type,
            size=size,
            expires_in=expires_in,
            metadata=metadata,
            sha256=sha256,
            if_none_match=if_none_match,
        )

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
        self._remember(target)
        return self._signer.presign_part(target, key, upload_id, number, size=size, expires_in=expires_in, md5=md5)

    def presign_get(
        self, target: S3Target, key: str, *, filename: str, expires_in: int, inline_type: str | None = None
    ) -> str:
        self._remember(target)
        return self._signer.presign_get(target, key, filename=filename, expires_in=expires_in, inline_type=inline_type)

    # --- objects -------------------------------------------------------------------------------

    def _put(self, bucket: _Bucket, key: str, obj: _Object) -> None:
        bucket.objects[key] = obj
        if bucket.versioning == "enabled":
            bucket.versions.setdefault(key, []).append(obj)

    def _object(self, target: S3Target, key: str, action: str) -> _Object:
        found = self._bucket(target).objects.get(key)
        if found is None:
            raise StorageError(
                f"{action} {key!r} on {target.endpoint_url}/{target.bucket}: no such object", code="object_missing"
            )
        return found

    async def head(self, target: S3Target, key: str, *, timeout: float | None = None) -> ObjectInfo | None:  # noqa: ASYNC109
        await self._enter(target, key, f"HEAD {key!r}", timeout)
        found = self._bucket(target).objects.get(key)
        return None if found is None else ObjectInfo(key, len(found.data), found.etag)

    async def read(self, target: S3Target, key: str, *, start: int = 0) -> AsyncGenerator[bytes, None]:
        await self._enter(target, key, f"GET {key!r}")
        data = self._object(target, key, "GET").data
        for offset in range(start, len(data), _CHUNK):
            yield data[offset : offset + _CHUNK]
            await self._enter(target, key, f"GET {key!r}")  # a stall or refusal told meanwhile cuts the read

    async def delete(self, target: S3Target, key: str) -> None:
        await self._enter(target, key, f"DELETE {key!r}")
        bucket = self._bucket(target)
        bucket.objects.pop(key, None)
        if bucket.versioning == "enabled" and key in bucket.versions:
            bucket.versions[key].append(None)

    async def delete_every_version(self, target: S3Target, key: str) -> None:
        await self._enter(target, key, f"DELETE versions of {key!r}")
        bucket = self._bucket(target)
        bucket.versions.pop(key, None)
        bucket.objects.pop(key, None)

    def versions(self, target: S3Target, key: str) -> int:
        """How many versions and delete markers of `key` the bucket keeps (for assertions)."""
        return len(self._bucket(target).versions.get(key, ()))

    async def list_objects(self, target: S3Target, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        await self._enter(target, None, f"LIST {prefix!r}")
        for key, obj in sorted(self._bucket(target).objects.items()):
            if key.startswith(prefix):
                yield ObjectInfo(key, len(obj.data), obj.etag)

    async def list_page(
        self, target: S3Target, prefix: str, after: str | None, limit: int
    ) -> tuple[list[ObjectInfo], bool]:
        await self._enter(target, None, f"LIST {prefix!r} after {after!r}")
        keys = sorted(k for k in self._bucket(target).objects if k.startswith(prefix) and (not after or k > after))
        found = [
            ObjectInfo(k, len(self._bucket(target).objects[k].data), self._bucket(target).objects[k].etag)
            for k in keys[:limit]
        ]
        return found, len(keys) > limit and bool(found)

    async def checksum(
        self, target: S3Target, key: str, *, size: int, rate: float | None = None, md5: bool = False
    ) -> tuple[str, str | None]:
        """(`rate` is not paced: memory reads cost nothing worth sparing.)"""
        await self._enter(target, key, f"GET {key!r} for a checksum")
        data = self._object(target, key, "GET").data
        if len(data) != size:
            raise StorageError(
                f"{target.endpoint_url}/{target.bucket} has {len(data)} bytes of {key!r}, expected {size}"
            )
        return hashlib.sha256(data).hexdigest(), md5_hex(data) if md5 else None

    async def copy(
        self, src: S3Target, dst: S3Target, key: str, *, size: int, sha256: str | None = None, md5: str | None = None
    ) -> ObjectInfo:
        await self._enter(src, key, f"GET {key!r} for copy")
        source = self._object(src, key, "GET")
        if len(source.data) != size:
            raise StorageError(
                f"copy {key!r}: {src.endpoint_url}/{src.bucket} has {len(source.data)} bytes, expected {size}"
            )
        await self._enter(dst, key, f"PUT {key!r}")
        target_bucket = self._bucket(dst)
        data = source.data
        got_sha256 = hashlib.sha256(data).hexdigest()
        if (sha256 is not None and got_sha256 != sha256) or (md5 is not None and md5_hex(data) != md5):
            want = f"SHA-256 {sha256}" if sha256 is not None and got_sha256 != sha256 else f"MD5 {md5}"
            raise ChecksumMismatch(
                f"{src.endpoint_url}/{src.bucket} gave bytes of {key!r} with SHA-256 {got_sha256}, expected {want}",
                got_sha256,
            )
        part_size = max(self.part_size, part_size_for(size))
        if size <= part_size:
            etag = md5_hex(data)
        else:
            etag = multipart_etag([data[i : i + part_size] for i in range(0, size, part_size)])
        self._put(target_bucket, key, _Object(data, etag, source.content_type, dict(source.metadata)))
        return ObjectInfo(key, size, etag, got_sha256)

    # --- multipart uploads -----------------------------------------------------------------------

    async def stale_uploads(self, target: S3Target, started_before: datetime) -> list[tuple[str, str]]:
        await self._enter(target, None, "LIST multipart uploads")
        uploads = self._bucket(target).uploads.items()
        return [(up.key, upload_id) for upload_id, up in uploads if up.initiated < started_before]

    async def create_upload(
        self,
        target: S3Target,
        key: str,
        *,
        content_type: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        await self._enter(target, key, f"start multipart upload of {key!r}", timeout)
        upload_id = f"upload-{next(self._ids)}"
        self._bucket(target).uploads[upload_id] = _Upload(
            key, content_type or "application/octet-stream", datetime.now(UTC)
        )
        return upload_id

    def _upload(self, target: S3Target, key: str, upload_id: str) -> _Upload | None:
        found = self._bucket(target).uploads.get(upload_id)
        return found if found is not None and found.key == key else None

    async def list_parts(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[PartInfo] | None:
        await self._enter(target, key, f"LIST parts of {key!r} (upload {upload_id})", timeout)
        upload = self._upload(target, key, upload_id)
        if upload is None:
            return None
        return [PartInfo(n, len(p), md5_hex(p), upload.initiated) for n, p in sorted(upload.parts.items())]

    async def complete_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        etags: Mapping[int, str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        action = f"complete multipart upload of {key!r} (upload {upload_id})"
        await self._enter(target, key, action, timeout)
        upload = self._upload(target, key, upload_id)
        where = f"{action} on {target.endpoint_url}/{target.bucket}"
        if target.endpoint_url in self._down:  # (as `Storage` says a refused connection)
            raise StorageError(f"{where}: server unreachable (connection refused)", code="storage_unreachable")
        if upload is None:
            raise StorageError(f"{where}: NoSuchUpload", code="storage_error")
        numbers = sorted(etags)
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise StorageError(f"{where}: InvalidPartOrder", code="storage_error")
        parts = []
        for n in numbers:
            part = upload.parts.get(n)
            if part is None or md5_hex(part) != etags[n].strip('"'):
                raise StorageError(f"{where}: InvalidPart {n}", code="storage_error")
            if n != numbers[-1] and len(part) < MIN_PART:
                raise StorageError(f"{where}: EntityTooSmall part {n}", code="storage_error")
            parts.append(part)
        bucket = self._bucket(target)
        self._put(bucket, key, _Object(b"".join(parts), multipart_etag(parts), upload.content_type))
        del bucket.uploads[upload_id]

    async def abort_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        await self._enter(target, key, f"ABORT upload {upload_id} of {key!r}", timeout)
        if self._upload(target, key, upload_id) is not None:
            del self._bucket(target).uploads[upload_id]

    # --- requests sent to presigned URLs, served here ----------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeout: float,  # noqa: ASYNC109
    ) -> RawAnswer:
        """Serve a request to a URL presigned for one of the buckets as the server would: the signature
        checked (the method, key, signed query and headers, the expiry), then the PUT, part, GET or CORS
        preflight done. A request to no known bucket is `storage_unreachable`, as nothing listens there."""
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        target, key, query = self._route(url)
        await self._enter(target, key or None, f"{method} {url.split('?', 1)[0]}", timeout)
        if method == "OPTIONS":
            return self._preflight(target, sent)
        refused = self._check_signature(method, url, target, key, query, sent)
        if refused is not None:
            return refused
        if method == "PUT":
            return self._served_put(target, key, query, sent, body)
        if method == "GET":
            return self._served_get(target, key, query)
        return _error(405, "MethodNotAllowed")

    async def fetch(self, url: str, *, timeout: float = 30) -> tuple[RawAnswer, bytes]:  # noqa: ASYNC109
        """GET a presigned URL as a client downloading it would: `send`'s answer and the whole body (`send`
        keeps only the start of it, as the port's probes need no more)."""
        answer = await self.send("GET", url, timeout=timeout)
        target, key, _ = self._route(url)
        found = self._bucket(target).objects.get(key) if answer.status == 200 and key else None
        return answer, found.data if found is not None else answer.text.encode()

    def _route(self, url: str) -> tuple[S3Target, str, dict[str, str]]:
        base, _, raw_query = url.partition("?")
        for prefix, target in self._targets.items():
            if base.startswith(prefix) or base + "/" == prefix:
                key = unquote(base[len(prefix) :])
                return target, key, dict(parse_qsl(raw_query, keep_blank_values=True))
        raise StorageError(f"{base}: server unreachable (no such server in memory)", code="storage_unreachable")

    def _check_signature(
        self, method: str, url: str, target: S3Target, key: str, query: dict[str, str], sent: dict[str, str]
    ) -> RawAnswer | None:
        try:
            signed_at = datetime.strptime(query["X-Amz-Date"], _AMZ_DATE).replace(tzinfo=UTC)
            expires_in = int(query["X-Amz-Expires"])
            names = query["X-Amz-SignedHeaders"].split(";")
        except (KeyError, ValueError):
            return _error(403, "AccessDenied", "not a presigned URL")
        if (datetime.now(UTC) - signed_at).total_seconds() > expires_in:
            return _error(403, "AccessDenied", "Request has expired")
        missing = [n for n in names if n != "host" and n not in sent]
        if missing:
            return _error(403, "SignatureDoesNotMatch", f"signed headers not sent: {missing}")
        own = {k: v for k, v in query.items() if not k.startswith("X-Amz-")}
        again = Presigner(target).presign(
            method,
            key,
            expires_in=expires_in,
            now=signed_at,
            query=own,
            headers={n: sent[n] for n in names if n != "host"},
        )
        if dict(parse_qsl(urlsplit(again).query))["X-Amz-Signature"] != query.get("X-Amz-Signature"):
            return _error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        return None

    def _served_put(
        self, target: S3Target, key: str, query: dict[str, str], sent: dict[str, str], body: bytes
    ) -> RawAnswer:
        if "content-length" in sent and int(sent["content-length"]) != len(body):
            return _error(400, "IncompleteBody")
        if "uploadId" in query:
            return self._served_part(target, key, query, sent, body)
        declared = sent.get("x-amz-checksum-sha256")
        if declared is not None and declared != _b64(hashlib.sha256(body).digest()):
            return _error(400, "BadDigest", "The sha256 you specified did not match the calculated checksum")
        bucket = self._bucket(target)
        if sent.get("if-none-match") == "*" and key in bucket.objects:
            return _error(412, "PreconditionFailed")
        metadata = {k[len("x-amz-meta-") :]: v for k, v in sent.items() if k.startswith("x-amz-meta-")}
        obj = _Object(body, md5_hex(body), sent.get("content-type", "application/octet-stream"), metadata)
        self._put(bucket, key, obj)
        return RawAnswer(200, {"etag": f'"{obj.etag}"'}, "", "")

    def _served_part(
        self, target: S3Target, key: str, query: dict[str, str], sent: dict[str, str], body: bytes
    ) -> RawAnswer:
        upload = self._upload(target, key, query["uploadId"])
        if upload is None:
            return _error(404, "NoSuchUpload")
        if "content-md5" in sent and sent["content-md5"] != _b64(hashlib.md5(body, usedforsecurity=False).digest()):
            return _error(400, "BadDigest", "The Content-MD5 you specified did not match what we received")
        upload.parts[int(query["partNumber"])] = body
        return RawAnswer(200, {"etag": f'"{md5_hex(body)}"'}, "", "")

    def _served_get(self, target: S3Target, key: str, query: dict[str, str]) -> RawAnswer:
        if not key and "location" in query:
            region = target.region or ""
            return RawAnswer(200, {}, "", f"<LocationConstraint>{region}</LocationConstraint>")
        found = self._bucket(target).objects.get(key)
        if found is None:
            return _error(404, "NoSuchKey")
        headers = {"etag": f'"{found.etag}"', "content-length": str(len(found.data))}
        headers["content-type"] = query.get("response-content-type", found.content_type)
        if "response-content-disposition" in query:
            headers["content-disposition"] = query["response-content-disposition"]
        return RawAnswer(200, headers, "", found.data[: 1 << 16].decode(errors="replace"))

    def _preflight(self, target: S3Target, sent: dict[str, str]) -> RawAnswer:
        origin = sent.get("origin", "")
        method = sent.get("access-control-request-method", "")
        wanted = {h.strip().lower() for h in sent.get("access-control-request-headers", "").split(",") if h.strip()}
        for rule in self._bucket(target).cors or ():
            origins, methods = rule.get("AllowedOrigins", []), rule.get("AllowedMethods", [])
            allowed = {h.lower() for h in rule.get("AllowedHeaders", [])}
            if (origin in origins or "*" in origins) and method in methods and ("*" in allowed or wanted <= allowed):
                return RawAnswer(
                    200,
                    {
                        "access-control-allow-origin": origin,
                        "access-control-allow-methods": ", ".join(methods),
                        "access-control-allow-headers": ", ".join(sorted(wanted)),
                    },
                    "",
                    "",
                )
        return _error(403, "AccessForbidden", "CORSResponse: This CORS request is not allowed")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _error(status: int, code: str, message: str = "") -> RawAnswer:
    text = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return RawAnswer(status, {"content-type": "application/xml"}, code, text)


if TYPE_CHECKING:  # mypy proves the in-memory storage is a StoragePort

    def _is_a_port(storage: MemoryStorage) -> StoragePort:
        return storage
