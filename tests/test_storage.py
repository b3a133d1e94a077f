"""The storage contract: cdnstore.storage against both tested vendors, real SeaweedFS (`weed mini`) and
real Ceph RGW (testbed/rgw.py), with the same tests. Where the vendors differ, the test says how each
behaves (and what cdnstore relies on instead).

SeaweedFS: two instances ("a", "b") started once for the module. RGW: the session's bed; its "a" and "b"
are two buckets of the one server. Every test gets fresh buckets; copies run between every pair of vendors.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from botocore.exceptions import ClientError
from weedbed import ACCESS_KEY, SECRET_KEY, md5_of_get, new_bucket

from cdnstore.errors import CdnError, StorageError
from cdnstore.events import Delivery, ObjectEvent, parse
from cdnstore.models import S3Target
from cdnstore.presign import Presigner
from cdnstore.storage import Storage, content_disposition, sha256_base64
from testbed.ports import unused_port
from testbed.rgw import RgwBed
from testbed.seaweed import WeedCluster
from testbed.webhooks import Hook, WebhookSink

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

MiB = 1 << 20
SEAWEEDFS, RGW = "seaweedfs", "rgw"
VENDORS = (SEAWEEDFS, RGW)
# source -> destination of the copies: each vendor to itself and to the other
PAIRS = [(a, b) for a in VENDORS for b in VENDORS]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WeedCluster]:
    async with WeedCluster(
        tmp_path_factory.mktemp("weed"), ["a", "b"], access_key=ACCESS_KEY, secret_key=SECRET_KEY
    ) as weed:
        yield weed


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def storage() -> AsyncIterator[Storage]:
    async with Storage(connect_timeout=2, read_timeout=10) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Servers = Callable[[str, str], S3Target]  # (server "a" or "b", bucket) -> a target of one vendor


def servers_of(request: pytest.FixtureRequest, vendor: str) -> Servers:
    """The vendor's servers "a" and "b" (its bed started the first time a test asks for it)."""
    if vendor == SEAWEEDFS:
        weed: WeedCluster = request.getfixturevalue("cluster")
        return weed.target
    bed: RgwBed = request.getfixturevalue("rgw")
    return lambda _server, bucket: bed.target(bucket)


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers(request: pytest.FixtureRequest, vendor: str) -> Servers:
    return servers_of(request, vendor)


async def new_target(storage: Storage, servers: Servers, server: str = "a") -> S3Target:
    target = servers(server, new_bucket())
    await storage.check_bucket(target)
    return target


@pytest_asyncio.fixture(loop_scope="session")
async def target_a(servers: Servers, storage: Storage) -> S3Target:
    return await new_target(storage, servers, "a")


@pytest_asyncio.fixture(loop_scope="session")
async def target_b(servers: Servers, storage: Storage) -> S3Target:
    return await new_target(storage, servers, "b")


@pytest.fixture(params=PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def vendor_pair(request: pytest.FixtureRequest) -> tuple[Servers, Servers]:
    src, dst = request.param
    return servers_of(request, src), servers_of(request, dst)


@pytest_asyncio.fixture(loop_scope="session")
async def pair(vendor_pair: tuple[Servers, Servers], storage: Storage) -> tuple[S3Target, S3Target]:
    """A bucket on a server of one vendor and one on a server of the same or the other vendor."""
    src, dst = vendor_pair
    return await new_target(storage, src, "a"), await new_target(storage, dst, "b")


async def put(
    http: aiohttp.ClientSession, storage: Storage, target: S3Target, key: str, data: bytes, **kw: str
) -> None:
    url, headers = storage.presign_put(
        target,
        key,
        content_type=kw.pop("content_type", "application/octet-stream"),
        size=len(data),
        expires_in=300,
        metadata=kw or None,
    )
    # aiohttp warns about (and pytest fails on) raw bytes bodies over 1 MiB; a BytesIO is streamed.
    async with http.put(url, data=io.BytesIO(data), headers=headers) as resp:
        assert resp.status == 200, await resp.text()


# --- buckets and errors ----------------------------------------------------------------------


async def test_check_bucket_creates_missing_bucket(servers: Servers, storage: Storage) -> None:
    target = servers("a", new_bucket())
    assert await storage.head_bucket(target, timeout=5) is False
    with pytest.raises(StorageError) as err:
        await storage.check_bucket(target, create=False)
    assert err.value.code == "storage_error"
    await storage.check_bucket(target)
    assert await storage.head_bucket(target, timeout=5) is True
    await storage.check_bucket(target)  # idempotent


async def test_wrong_secret_is_auth_failure(servers: Servers, storage: Storage) -> None:
    good = servers("a", new_bucket())
    wrong_secret, unknown_key = (
        dataclasses.replace(good, secret_key="wrong-secret"),
        dataclasses.replace(good, access_key="nobody"),
    )
    for bad in (wrong_secret, unknown_key):
        with pytest.raises(StorageError) as err:
            await storage.check_bucket(bad)
        assert err.value.code == "storage_auth_failed"
        assert err.value.status == 503  # (never shown as such: a caller gets storage_unavailable)
        assert "wrong-secret" not in err.value.detail
        assert await storage.head_bucket(bad, timeout=5) is False


async def test_unreachable_server(storage: Storage) -> None:
    target = S3Target(f"http://127.0.0.1:{unused_port()}", "files", "us-east-1", ACCESS_KEY, SECRET_KEY)
    started = time.monotonic()
    with pytest.raises(StorageError) as err:
        await storage.check_bucket(target, timeout=5)
    assert err.value.code == "storage_unreachable"
    assert await storage.head_bucket(target, timeout=2) is False
    with pytest.raises(StorageError) as err:
        await storage.head(target, "k")
    assert err.value.code == "storage_unreachable"
    assert time.monotonic() - started < 10


async def test_clients_are_shared_and_forgettable(target_a: S3Target) -> None:
    async with Storage() as fresh:
        await asyncio.gather(*(fresh.head(target_a, f"k{i}") for i in range(10)))
        assert len(fresh._clients) == 1  # the lock kept ten coroutines from making ten clients
        await fresh.forget(target_a)
        assert not fresh._clients
        assert await fresh.head(target_a, "k") is None  # a new client comes up on demand


# --- presigned PUT and GET -------------------------------------------------------------------


async def test_presigned_put_with_returned_headers(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    data = b"hello, seaweed" * 100
    url, headers = storage.presign_put(
        target_a,
        "u/42/photo.jpg",
        content_type="image/jpeg",
        size=len(data),
        expires_in=300,
        metadata={"fileid": "f-42"},
    )
    assert headers == {
        "Content-Type": "image/jpeg",
        "Content-Length": str(len(data)),
        "x-amz-meta-fileid": "f-42",
    }
    async with http.put(url, data=data, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        etag = resp.headers["ETag"].strip('"')
    info = await storage.head(target_a, "u/42/photo.jpg")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("u/42/photo.jpg", len(data), etag)


async def test_presigned_put_rejects_other_size_type_or_missing_meta(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    url, headers = storage.presign_put(
        target_a, "k.bin", content_type="application/pdf", size=5, expires_in=300, metadata={"fileid": "f1"}
    )
    without_length = {k: v for k, v in headers.items() if k != "Content-Length"}
    attempts = [
        (b"0123456789", without_length),  # a browser sends the real length of a bigger body
        (b"01234", {**without_length, "Content-Type": "text/plain"}),
        (b"01234", {k: v for k, v in without_length.items() if k != "x-amz-meta-fileid"}),
    ]
    for body, sent in attempts:
        async with http.put(url, data=body, headers=sent) as resp:
            assert resp.status == 403, (sent, await resp.text())
    assert await storage.head(target_a, "k.bin") is None


async def test_presigned_get_bytes_and_filename(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    key = "dir a/ünï cödé+%20.txt"  # spaces, unicode, '+' and a literal '%' all need encoding
    data = os.urandom(70_000)
    await put(http, storage, target_a, key, data, content_type="text/plain")
    name = 'Grüße "report".txt'
    url = storage.presign_get(target_a, key, filename=name, expires_in=300)
    digest, size, headers = await md5_of_get(http, url)
    assert (digest, size) == (hashlib.md5(data).hexdigest(), len(data))
    assert (
        headers["Content-Disposition"]
        == content_disposition(name)
        == ("attachment; filename=\"Gru_e _report_.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22report%22.txt")
    )


async def test_expired_url_is_refused(http: aiohttp.ClientSession, storage: Storage, target_a: S3Target) -> None:
    await put(http, storage, target_a, "old", b"x")
    signed_earlier = datetime.now(UTC) - timedelta(seconds=5)
    url = Presigner(target_a).presign("GET", "old", expires_in=1, now=signed_earlier)
    async with http.get(url) as resp:
        assert resp.status == 403


# --- checksums and parts ---------------------------------------------------------------------


async def test_a_signed_sha256_refuses_other_bytes_on_seaweedfs_while_rgw_stores_them(
    vendor: str, http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    data = b"the bytes that were announced"
    other = data.upper()  # the same size: Content-Length is signed too
    sha256 = hashlib.sha256(data).hexdigest()
    url, headers = storage.presign_put(
        target_a, "sum.txt", content_type="text/plain", size=len(data), expires_in=300, sha256=sha256
    )
    assert headers["x-amz-checksum-sha256"] == sha256_base64(sha256)
    unsigned = {k: v for k, v in headers.items() if k != "x-amz-checksum-sha256"}
    async with http.put(url, data=data, headers=unsigned) as resp:
        assert resp.status == 403, await resp.text()  # the header is signed: both refuse a PUT without it
    async with http.put(url, data=other, headers=headers) as resp:
        status, text = resp.status, await resp.text()
    found = await storage.head(target_a, "sum.txt")
    if vendor == SEAWEEDFS:
        assert status == 400 and "BadDigest" in text, text
        assert found is None
    else:
        # Ceph RGW 16.2 ignores x-amz-checksum-sha256, signed or not: the other bytes are stored (200). A
        # declared SHA-256 proves nothing there by itself (docs/operations.md, "Storage vendors").
        assert status == 200, text
        assert found is not None and found.etag == hashlib.md5(other).hexdigest()
    async with http.put(url, data=data, headers=headers) as resp:
        assert resp.status == 200, await resp.text()  # the right bytes: both
    found = await storage.head(target_a, "sum.txt")
    assert found is not None and found.etag == hashlib.md5(data).hexdigest()


def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


async def put_part(
    http: aiohttp.ClientSession, storage: Storage, target: S3Target, key: str, upload_id: str, n: int, data: bytes
) -> tuple[int, str, str]:
    """PUT part `n` with a presigned URL that binds its Content-MD5; (status, ETag, body)."""
    url, headers = storage.presign_part(
        target, key, upload_id, n, size=len(data), expires_in=300, md5=content_md5(data)
    )
    return await put_part_to(http, url, headers, data)


async def put_part_to(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], data: bytes
) -> tuple[int, str, str]:
    async with http.put(url, data=io.BytesIO(data), headers=headers) as resp:
        return resp.status, resp.headers.get("ETag", "").strip('"'), await resp.text()


async def test_parts_bound_to_their_md5_are_listed_assembled_and_read_back(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    key, parts = "mp/parts ü.bin", [os.urandom(5 * MiB), os.urandom(1000)]
    upload_id = await storage.create_upload(target_a, key, content_type="application/pdf")
    for n, data in enumerate(parts, 1):
        url, headers = storage.presign_part(
            target_a, key, upload_id, n, size=len(data), expires_in=300, md5=content_md5(data)
        )
        status, _, text = await put_part_to(http, url, headers, bytes(reversed(data)))
        assert status == 400 and "BadDigest" in text, text  # Content-MD5 is enforced by both vendors
        status, etag, text = await put_part_to(http, url, headers, data)
        assert (status, etag) == (200, hashlib.md5(data).hexdigest()), text
    held = await storage.list_parts(target_a, key, upload_id)
    assert held is not None
    assert [(p.number, p.size, p.etag) for p in held] == [
        (n, len(d), hashlib.md5(d).hexdigest()) for n, d in enumerate(parts, 1)
    ]
    await storage.complete_upload(target_a, key, upload_id, {p.number: p.etag for p in held})
    info = await storage.head(target_a, key)
    md5s = b"".join(hashlib.md5(d).digest() for d in parts)
    assert info is not None and (info.size, info.etag) == (5 * MiB + 1000, f"{hashlib.md5(md5s).hexdigest()}-2")
    assert await storage.list_parts(target_a, key, upload_id) is None  # completed: no upload left
    digest, size, sent = await md5_of_get(http, storage.presign_get(target_a, key, filename="p.pdf", expires_in=60))
    assert (digest, size) == (hashlib.md5(b"".join(parts)).hexdigest(), 5 * MiB + 1000)
    assert sent["Content-Type"] == "application/pdf"


async def test_the_completion_answer_has_the_etag_on_seaweedfs_but_not_on_rgw(
    vendor: str, http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    parts = [os.urandom(5 * MiB), b"tail"]
    upload_id = await storage.create_upload(target_a, "done.bin", content_type="")
    etags = {
        n: (await put_part(http, storage, target_a, "done.bin", upload_id, n, d))[1] for n, d in enumerate(parts, 1)
    }
    client = await storage._client(target_a)
    answer = await client.complete_multipart_upload(
        Bucket=target_a.bucket,
        Key="done.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{e}"'} for n, e in etags.items()]},
    )
    info = await storage.head(target_a, "done.bin")
    assert info is not None and info.etag.endswith("-2")
    # Ceph RGW 16.2 answers <ETag></ETag>: cdnstore never takes the ETag from the completion, it HEADs the
    # object (files.complete, storage.copy).
    assert answer.get("ETag", "").strip('"') == ("" if vendor == RGW else info.etag)


async def test_an_aborted_upload_has_no_parts_to_list_and_aborts_again_quietly(
    vendor: str, http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    upload_id = await storage.create_upload(target_a, "gone.bin", content_type="text/plain")
    assert (await put_part(http, storage, target_a, "gone.bin", upload_id, 1, b"part one"))[0] == 200
    await storage.abort_upload(target_a, "gone.bin", upload_id)
    assert await storage.list_parts(target_a, "gone.bin", upload_id) is None
    await storage.abort_upload(target_a, "gone.bin", upload_id)  # again: no error
    assert await storage.head(target_a, "gone.bin") is None
    client = await storage._client(target_a)
    with pytest.raises(ClientError) as err:
        await client.list_parts(Bucket=target_a.bucket, Key="gone.bin", UploadId=upload_id)
    # Both mean "no such upload" to storage.list_parts; RGW 16.2 says it as NoSuchKey.
    assert err.value.response["Error"]["Code"] == {SEAWEEDFS: "NoSuchUpload", RGW: "NoSuchKey"}[vendor]


# --- head, delete, list ----------------------------------------------------------------------


async def test_head_missing_and_idempotent_delete(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target
) -> None:
    assert await storage.head(target_a, "nope") is None
    await storage.delete(target_a, "nope")
    await put(http, storage, target_a, "gone", b"abc")
    assert await storage.head(target_a, "gone") is not None
    await storage.delete(target_a, "gone")
    await storage.delete(target_a, "gone")
    assert await storage.head(target_a, "gone") is None


async def test_list_objects(http: aiohttp.ClientSession, storage: Storage, target_a: S3Target) -> None:
    objects = {"u/1/a.txt": b"a", "u/1/b.txt": b"bb", "u/2/c.txt": b"ccc", "top.txt": b"dddd"}
    for key, data in objects.items():
        await put(http, storage, target_a, key, data)
    everything = {o.key: o.size async for o in storage.list_objects(target_a)}
    assert everything == {k: len(v) for k, v in objects.items()}
    under = sorted([o.key async for o in storage.list_objects(target_a, "u/1/")])
    assert under == ["u/1/a.txt", "u/1/b.txt"]
    assert [o async for o in storage.list_objects(target_a, "none/")] == []


# --- copy ------------------------------------------------------------------------------------


async def test_copy_40_mib_multipart_between_servers(
    http: aiohttp.ClientSession, storage: Storage, pair: tuple[S3Target, S3Target]
) -> None:
    target_a, target_b = pair
    data = os.urandom(40 * MiB)
    want = hashlib.md5(data).hexdigest()
    await put(http, storage, target_a, "big/blob.bin", data, content_type="video/mp4", fileid="f-big")
    del data
    async with Storage(part_size=5 * MiB, parts_in_flight=2) as copier:
        info = await copier.copy(target_a, target_b, "big/blob.bin", size=40 * MiB)
    assert info.size == 40 * MiB
    assert info.etag.endswith("-8")  # 8 parts of 5 MiB
    url = Presigner(target_b).presign("GET", "big/blob.bin", expires_in=60)
    digest, size, headers = await md5_of_get(http, url)
    assert (digest, size) == (want, 40 * MiB)
    assert headers["Content-Type"] == "video/mp4"
    assert headers["x-amz-meta-fileid"] == "f-big"


async def test_copy_small_object_is_single_put(
    http: aiohttp.ClientSession, storage: Storage, pair: tuple[S3Target, S3Target]
) -> None:
    target_a, target_b = pair
    data = os.urandom(1000)
    await put(http, storage, target_a, "small ü.bin", data)
    info = await storage.copy(target_a, target_b, "small ü.bin", size=1000)
    assert info.etag == hashlib.md5(data).hexdigest()
    digest, _, _ = await md5_of_get(http, Presigner(target_b).presign("GET", "small ü.bin", expires_in=60))
    assert digest == info.etag


async def test_copy_refuses_wrong_size_and_missing_source(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target, target_b: S3Target
) -> None:
    await put(http, storage, target_a, "k", b"12345")
    with pytest.raises(StorageError, match="expected 6"):
        await storage.copy(target_a, target_b, "k", size=6)
    with pytest.raises(StorageError):
        await storage.copy(target_a, target_b, "missing", size=5)
    assert await storage.head(target_b, "k") is None


async def test_failed_multipart_copy_is_aborted(
    http: aiohttp.ClientSession,
    storage: Storage,
    target_a: S3Target,
    target_b: S3Target,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await put(http, storage, target_a, "mp.bin", os.urandom(12 * MiB))
    async with Storage(part_size=5 * MiB, parts_in_flight=2) as copier:
        real = copier._upload_part

        async def flaky(*args: object) -> None:
            if args[4] == 2:  # part number
                raise StorageError("injected failure", code="storage_unreachable")
            await real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(copier, "_upload_part", flaky)
        with pytest.raises(StorageError, match="injected failure"):
            await copier.copy(target_a, target_b, "mp.bin", size=12 * MiB)
    assert await storage.head(target_b, "mp.bin") is None
    uploads_url = Presigner(target_b).presign("GET", "", expires_in=60, query={"uploads": ""})
    async with http.get(uploads_url) as resp:
        listing = await resp.text()
    assert resp.status == 200, listing
    assert "<Upload>" not in listing, listing


async def test_a_multipart_copy_first_aborts_what_an_earlier_copy_of_the_key_left(
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target, target_b: S3Target
) -> None:
    await put(http, storage, target_a, "again.bin", os.urandom(12 * MiB))
    client = await storage._client(target_b)
    for key in ("again.bin", "again.bin", "again.bin.other"):  # two left by crashed copies, one not ours to touch
        await client.create_multipart_upload(Bucket=target_b.bucket, Key=key)
    async with Storage(part_size=5 * MiB, parts_in_flight=2) as copier:
        await copier.copy(target_a, target_b, "again.bin", size=12 * MiB)
    left = await client.list_multipart_uploads(Bucket=target_b.bucket)
    assert [u["Key"] for u in left.get("Uploads", ())] == ["again.bin.other"]


# --- outages ---------------------------------------------------------------------------------


async def test_kill_and_restart_keeps_data(
    request: pytest.FixtureRequest, vendor: str, http: aiohttp.ClientSession, storage: Storage, target_b: S3Target
) -> None:
    data = os.urandom(300_000)
    await put(http, storage, target_b, "survivor.bin", data)
    kill: Callable[[], Awaitable[None]]
    restart: Callable[[], Awaitable[None]]
    if vendor == SEAWEEDFS:
        weed: WeedCluster = request.getfixturevalue("cluster")
        kill, restart = functools.partial(weed.kill, "b"), functools.partial(weed.restart, "b")
    else:  # radosgw alone: the objects are in the OSD, as they would be on a cluster's disks
        bed: RgwBed = request.getfixturevalue("rgw")
        kill, restart = bed.kill_rgw, bed.restart_rgw
    await kill()
    assert await storage.head_bucket(target_b, timeout=3) is False
    await restart()
    info = await storage.head(target_b, "survivor.bin")  # the cached client reconnects
    assert info is not None and info.size == len(data)
    url = storage.presign_get(target_b, "survivor.bin", filename="s.bin", expires_in=60)
    digest, _, _ = await md5_of_get(http, url)
    assert digest == hashlib.md5(data).hexdigest()


# --- webhooks --------------------------------------------------------------------------------


HOOK_TOKEN = "s3cr3t-token-0123"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sink() -> AsyncIterator[WebhookSink]:
    """Where the hooked servers' webhooks go."""
    received = WebhookSink()
    await received.start()
    yield received
    await received.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hooked_weed(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> AsyncIterator[WeedCluster]:
    """A SeaweedFS server whose filer webhook goes to the sink (a webhook is set when weed starts)."""
    async with WeedCluster(
        tmp_path_factory.mktemp("hooked"),
        ["w0"],
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        webhook_url=lambda name: sink.url(f"/hook/{name}"),
        webhook_token=HOOK_TOKEN,
    ) as weed:
        yield weed


@pytest.fixture
def hooked_servers(request: pytest.FixtureRequest, vendor: str) -> tuple[Servers, RgwBed | None]:
    """The vendor's server whose events go to the sink, and the RGW bed when a topic must be set up."""
    if vendor == SEAWEEDFS:  # (async fixtures are resolved here, in a plain one: not inside the running loop)
        weed: WeedCluster = request.getfixturevalue("hooked_weed")
        return weed.target, None
    bed: RgwBed = request.getfixturevalue("rgw")
    return servers_of(request, RGW), bed


@pytest_asyncio.fixture(loop_scope="session")
async def hooked(hooked_servers: tuple[Servers, RgwBed | None], storage: Storage, sink: WebhookSink) -> S3Target:
    """A fresh bucket whose object events go to the sink, as each vendor sends them: SeaweedFS's filer
    webhook with a bearer token, RGW's bucket notification (an HTTP push topic) with the token as OpaqueData."""
    servers, bed = hooked_servers
    target = await new_target(storage, servers, "w0")
    if bed is not None:
        await bed.notify(target.bucket, sink.url("/hook/rgw"), opaque_data=HOOK_TOKEN)
    return target


async def created_event(sink: WebhookSink, target: S3Target, key: str) -> tuple[Hook, Delivery]:
    """The webhook telling that `key` was created in the target's bucket, and what events.parse reads in it."""

    def about(hook: Hook) -> bool:
        try:
            events = parse(hook.body).events
        except CdnError:
            return False
        return any(e.bucket == target.bucket and e.key == key and e.created for e in events)

    hook = await sink.wait_for(about)
    return hook, parse(hook.body)


async def test_an_uploads_webhook_as_the_vendor_sends_it_reads_as_that_object(
    vendor: str, http: aiohttp.ClientSession, storage: Storage, sink: WebhookSink, hooked: S3Target
) -> None:
    key, data = "u/42/photo ü+%.jpg", b"x" * 1000  # a key AWS would send URL-encoded, RGW as it is
    await put(http, storage, hooked, key, data, content_type="image/jpeg", fileid="f-42")
    hook, delivery = await created_event(sink, hooked, key)
    assert delivery.events == (ObjectEvent(hooked.bucket, key, True, 1000, hashlib.md5(data).hexdigest()),)
    if vendor == SEAWEEDFS:
        assert (hook.path, hook.headers["Authorization"]) == ("/hook/w0", f"Bearer {HOOK_TOKEN}")
        entry = hook.body["message"]["new_entry"]
        assert entry["attributes"]["mime"] == "image/jpeg"
        assert "X-Amz-Meta-Fileid" in entry["extended"]
    else:  # one record per POST, no Authorization header: the token comes as the topic's OpaqueData
        assert "Authorization" not in hook.headers and len(hook.body["Records"]) == 1
        assert hook.body["Records"][0]["eventName"] == "ObjectCreated:Put"  # (no s3: prefix)
        assert delivery.token == HOOK_TOKEN


async def test_an_assembled_multipart_uploads_webhook_has_its_whole_size_and_etag(
    vendor: str, http: aiohttp.ClientSession, storage: Storage, sink: WebhookSink, hooked: S3Target
) -> None:
    parts = [os.urandom(5 * MiB), b"tail"]
    upload_id = await storage.create_upload(hooked, "mp.bin", content_type="application/octet-stream")
    etags = {n: (await put_part(http, storage, hooked, "mp.bin", upload_id, n, d))[1] for n, d in enumerate(parts, 1)}
    await storage.complete_upload(hooked, "mp.bin", upload_id, etags)
    info = await storage.head(hooked, "mp.bin")
    assert info is not None
    _, delivery = await created_event(sink, hooked, "mp.bin")
    assert delivery.events == (ObjectEvent(hooked.bucket, "mp.bin", True, 5 * MiB + 4, info.etag),)


async def test_weed_instances_have_own_dirs_and_ports(cluster: WeedCluster) -> None:
    a, b = cluster.instance("a"), cluster.instance("b")
    assert a.dir != b.dir and not set(a.ports) & set(b.ports)
    assert len(a.ports) == 11
    assert a.dir.name == "a" and b.dir.parent == a.dir.parent
    assert a.endpoint_url == f"http://127.0.0.1:{a.s3_port}"
