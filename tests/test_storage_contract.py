"""The storage port's contract (cdnstore/storage_port.py): the same tests against the in-memory storage
(testbed/memory_storage.py), real SeaweedFS (the session's `weed`) and real Ceph RGW (the session's `rgw`).
The memory side is a unit test (`dev.py test --fast` runs it, marked by its parameter); the real ones are
integration tests. Where the vendors differ, the test says what the port promises and the memory storage
does the strictest of them (tests/test_storage.py holds the vendors' differences in full).

Clients reach the servers through the port's own `send` (what the probe uses): a PUT or GET to a presigned
URL "as a client would"."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from weedbed import ACCESS_KEY, SECRET_KEY, new_bucket

from cdnstore.errors import StorageError
from cdnstore.models import S3Target
from cdnstore.presign import Presigner
from cdnstore.storage import Storage
from cdnstore.storage_port import ChecksumMismatch, StoragePort
from testbed.demo import ORIGINAL_LAYOUT
from testbed.memory_storage import MemoryStorage

pytestmark = [pytest.mark.timeout(120)]

MiB = 1 << 20
MEMORY, SEAWEEDFS, RGW = "memory", "seaweedfs", "rgw"
DATA = b"the bytes a client uploads\n" * 100
TTL = 600


@dataclass(frozen=True)
class Port:
    vendor: str
    storage: StoragePort
    a: S3Target  # two buckets (on two servers where the vendor's bed has them)
    b: S3Target


@pytest.fixture(
    params=[
        pytest.param(MEMORY, marks=pytest.mark.unit),
        pytest.param(SEAWEEDFS, marks=pytest.mark.integration),
        pytest.param(RGW, marks=pytest.mark.integration),
    ]
)
def buckets(request: pytest.FixtureRequest) -> tuple[str, S3Target, S3Target]:
    """The vendor and two fresh buckets of it (its bed starts the first time a test asks: from a plain
    fixture, as pytest-asyncio sets an async session fixture up only outside a running loop)."""
    if request.param == MEMORY:
        a = S3Target("http://127.0.0.1:9001", new_bucket(), "us-east-1", ACCESS_KEY, SECRET_KEY)
        b = S3Target("http://127.0.0.1:9002", new_bucket(), "us-east-1", ACCESS_KEY, SECRET_KEY)
    elif request.param == SEAWEEDFS:
        weed = request.getfixturevalue("weed")
        a, b = (weed.target(site.name, new_bucket()) for site in ORIGINAL_LAYOUT[:2])
    else:
        rgw = request.getfixturevalue("rgw")
        a, b = rgw.target(new_bucket()), rgw.target(new_bucket())
    return request.param, a, b


@pytest.fixture
async def port(buckets: tuple[str, S3Target, S3Target]) -> AsyncIterator[Port]:
    """The port on the vendor, its buckets made."""
    vendor, a, b = buckets
    storage: StoragePort
    if vendor == MEMORY:
        storage = MemoryStorage(part_size=5 * MiB)
    else:
        storage = Storage(connect_timeout=2, read_timeout=10, part_size=5 * MiB)
    for target in (a, b):
        await storage.check_bucket(target, create=True)
    yield Port(vendor, storage, a, b)
    await storage.close()


async def put(port: Port, key: str, data: bytes, *, content_type: str = "text/plain", **signed: object) -> int:
    """PUT `data` to a presigned URL for `key` on bucket a, as a client would; the status."""
    url, headers = port.storage.presign_put(
        port.a,
        key,
        content_type=content_type,
        size=len(data),
        expires_in=TTL,
        **signed,  # type: ignore[arg-type]
    )
    return (await port.storage.send("PUT", url, headers=headers, body=data, timeout=30)).status


async def read_all(port: Port, target: S3Target, key: str, start: int = 0) -> bytes:
    return b"".join([chunk async for chunk in port.storage.read(target, key, start=start)])


async def test_a_put_to_a_presigned_url_is_stored_and_head_and_read_give_its_size_md5_etag_and_bytes(
    port: Port,
) -> None:
    assert await put(port, "dir/a.txt", DATA) == 200
    info = await port.storage.head(port.a, "dir/a.txt")
    assert info is not None and (info.key, info.size, info.etag) == (
        "dir/a.txt",
        len(DATA),
        hashlib.md5(DATA).hexdigest(),
    )
    assert await read_all(port, port.a, "dir/a.txt") == DATA
    assert await read_all(port, port.a, "dir/a.txt", start=10) == DATA[10:]


async def test_a_presigned_url_serves_only_the_key_and_method_it_was_signed_for(port: Port) -> None:
    url, headers = port.storage.presign_put(port.a, "mine.txt", content_type="text/plain", size=4, expires_in=TTL)
    other = url.replace("/mine.txt?", "/yours.txt?")
    answer = await port.storage.send("PUT", other, headers=headers, body=b"evil", timeout=30)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    answer = await port.storage.send("GET", url, timeout=30)
    assert answer.status == 403
    assert await port.storage.head(port.a, "yours.txt") is None
    assert await port.storage.head(port.a, "mine.txt") is None


async def test_a_presigned_get_gives_the_bytes_under_the_name_asked(port: Port) -> None:
    assert await put(port, "k", DATA) == 200
    url = port.storage.presign_get(port.a, "k", filename="report.txt", expires_in=TTL)
    answer = await port.storage.send("GET", url, timeout=30)
    assert answer.status == 200 and answer.text == DATA.decode()
    assert 'filename="report.txt"' in answer.headers["content-disposition"]


async def test_a_missing_key_heads_as_none_reads_as_object_missing_and_deletes_without_error(port: Port) -> None:
    assert await port.storage.head(port.a, "nothing-here") is None
    with pytest.raises(StorageError) as missing:
        await read_all(port, port.a, "nothing-here")
    assert missing.value.code == "object_missing"
    await port.storage.delete(port.a, "nothing-here")


async def test_a_deleted_object_is_gone_from_head_and_listing(port: Port) -> None:
    assert await put(port, "gone.txt", DATA) == 200
    await port.storage.delete(port.a, "gone.txt")
    assert await port.storage.head(port.a, "gone.txt") is None
    assert [o.key async for o in port.storage.list_objects(port.a)] == []


async def test_listing_gives_keys_in_order_under_a_prefix_after_a_position_and_says_when_more_follow(
    port: Port,
) -> None:
    for key in ("p/3", "p/1", "p/2", "q/1"):
        assert await put(port, key, key.encode()) == 200
    assert [o.key async for o in port.storage.list_objects(port.a, "p/")] == ["p/1", "p/2", "p/3"]
    page, more = await port.storage.list_page(port.a, "p/", None, 2)
    assert ([o.key for o in page], more) == (["p/1", "p/2"], True)
    page, more = await port.storage.list_page(port.a, "p/", "p/2", 2)
    assert ([(o.key, o.size) for o in page], more) == ([("p/3", 3)], False)


async def test_a_copy_carries_the_bytes_and_type_to_the_other_bucket_and_answers_their_sha256(port: Port) -> None:
    assert await put(port, "c.txt", DATA, content_type="text/csv") == 200
    sha256 = hashlib.sha256(DATA).hexdigest()
    info = await port.storage.copy(port.a, port.b, "c.txt", size=len(DATA), sha256=sha256)
    assert (info.size, info.sha256, info.etag) == (len(DATA), sha256, hashlib.md5(DATA).hexdigest())
    assert await read_all(port, port.b, "c.txt") == DATA
    url = port.storage.presign_get(port.b, "c.txt", filename="c.txt", expires_in=TTL)
    assert (await port.storage.send("GET", url, timeout=30)).headers["content-type"] == "text/csv"


async def test_a_copy_past_the_part_size_is_stored_whole_under_a_multipart_etag(port: Port) -> None:
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB: two parts of 5 MiB copies
    assert await put(port, "big", data) == 200
    info = await port.storage.copy(port.a, port.b, "big", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert info.size == len(data) and info.etag.endswith("-2")
    assert hashlib.sha256(await read_all(port, port.b, "big")).hexdigest() == info.sha256


async def test_a_copy_of_bytes_other_than_the_expected_ones_writes_nothing(port: Port) -> None:
    assert await put(port, "x", DATA) == 200
    with pytest.raises(ChecksumMismatch) as wrong:
        await port.storage.copy(port.a, port.b, "x", size=len(DATA), sha256="0" * 64)
    assert wrong.value.code == "checksum_mismatch" and wrong.value.sha256 == hashlib.sha256(DATA).hexdigest()
    with pytest.raises(ChecksumMismatch):
        await port.storage.copy(port.a, port.b, "x", size=len(DATA), md5="0" * 32)
    assert await port.storage.head(port.b, "x") is None


async def test_a_checksum_read_gives_sha256_and_md5_and_refuses_an_unexpected_size(port: Port) -> None:
    assert await put(port, "s", DATA) == 200
    got = await port.storage.checksum(port.a, "s", size=len(DATA), md5=True)
    assert got == (hashlib.sha256(DATA).hexdigest(), hashlib.md5(DATA).hexdigest())
    assert (await port.storage.checksum(port.a, "s", size=len(DATA)))[1] is None
    with pytest.raises(StorageError):
        await port.storage.checksum(port.a, "s", size=len(DATA) + 1)


async def test_a_put_with_if_none_match_writes_its_key_once(port: Port) -> None:
    assert await put(port, "once", DATA, if_none_match=True) == 200
    assert await put(port, "once", b"x" * len(DATA), if_none_match=True) == 412
    assert await read_all(port, port.a, "once") == DATA


async def test_a_declared_sha256_is_enforced_or_the_bytes_are_stored_as_sent(port: Port) -> None:
    """SeaweedFS enforces a signed x-amz-checksum-sha256; RGW 16.2 ignores it (the probe finds which, and a
    read checks what was not enforced: integrity.py). The port promises one or the other, never half: the
    memory storage enforces it, the strictest."""
    declared = hashlib.sha256(DATA).hexdigest()
    wrong = b"y" * len(DATA)
    status = await put(port, "sum", wrong, sha256=declared)
    if port.vendor == RGW:
        assert status == 200 and await read_all(port, port.a, "sum") == wrong
    else:
        assert status == 400 and await port.storage.head(port.a, "sum") is None
    assert await put(port, "sum2", DATA, sha256=declared) == 200


async def test_a_multipart_upload_of_presigned_parts_is_listed_then_assembled_under_a_multipart_etag(
    port: Port,
) -> None:
    parts = {1: b"a" * (5 * MiB), 2: b"tail"}
    upload_id = await port.storage.create_upload(port.a, "mp", content_type="text/plain")
    for number, data in parts.items():
        url, headers = port.storage.presign_part(port.a, "mp", upload_id, number, size=len(data), expires_in=TTL)
        assert (await port.storage.send("PUT", url, headers=headers, body=data, timeout=60)).status == 200
    listed = await port.storage.list_parts(port.a, "mp", upload_id)
    assert listed is not None
    assert [(p.number, p.size, p.etag) for p in listed] == [
        (n, len(d), hashlib.md5(d).hexdigest()) for n, d in parts.items()
    ]
    assert [key for key, _ in await port.storage.stale_uploads(port.a, datetime.now(UTC) + timedelta(hours=1))] == [
        "mp"
    ]
    await port.storage.complete_upload(port.a, "mp", upload_id, {p.number: p.etag for p in listed})
    info = await port.storage.head(port.a, "mp")
    assert info is not None and info.size == 5 * MiB + 4 and info.etag.endswith("-2")
    assert await port.storage.list_parts(port.a, "mp", upload_id) is None
    assert await port.storage.stale_uploads(port.a, datetime.now(UTC) + timedelta(hours=1)) == []


async def test_a_part_whose_content_md5_differs_is_refused_and_an_aborted_upload_is_gone(port: Port) -> None:
    upload_id = await port.storage.create_upload(port.a, "ab", content_type="text/plain")
    md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # the MD5 of no bytes
    url, headers = port.storage.presign_part(port.a, "ab", upload_id, 1, size=4, expires_in=TTL, md5=md5)
    answer = await port.storage.send("PUT", url, headers=headers, body=b"abcd", timeout=30)
    assert (answer.status, answer.code) == (400, "BadDigest")
    await port.storage.abort_upload(port.a, "ab", upload_id)
    assert await port.storage.list_parts(port.a, "ab", upload_id) is None
    await port.storage.abort_upload(port.a, "ab", upload_id)  # (again: no error)
    assert await port.storage.head(port.a, "ab") is None


async def test_the_bucket_answers_and_its_cors_rules_are_kept(port: Port) -> None:
    assert await port.storage.head_bucket(port.a, timeout=10)
    rule = {"AllowedOrigins": ["https://page.example"], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]}
    await port.storage.set_bucket_cors(port.a, [rule])
    kept = await port.storage.bucket_cors(port.a)
    assert kept is not None and [(r["AllowedOrigins"], r["AllowedMethods"]) for r in kept] == [
        (["https://page.example"], ["PUT"])
    ]
    assert await port.storage.bucket_versioning(port.a) == "off"


async def test_a_bucket_that_was_never_made_is_an_error_and_does_not_answer(port: Port) -> None:
    missing = S3Target(port.a.endpoint_url, new_bucket(), "us-east-1", ACCESS_KEY, SECRET_KEY)
    assert not await port.storage.head_bucket(missing, timeout=10)
    with pytest.raises(StorageError):
        await port.storage.check_bucket(missing, create=False)


# --- the in-memory storage's own switches: the faults tests tell it (unit) ------------------------------


@pytest.fixture
async def memory() -> AsyncIterator[tuple[MemoryStorage, S3Target]]:
    storage = MemoryStorage()
    target = S3Target("http://127.0.0.1:9001", new_bucket(), "us-east-1", ACCESS_KEY, SECRET_KEY)
    await storage.check_bucket(target)
    yield storage, target
    await storage.close()


async def stored(storage: MemoryStorage, target: S3Target, key: str, data: bytes) -> None:
    url, headers = storage.presign_put(target, key, content_type="text/plain", size=len(data), expires_in=TTL)
    assert (await storage.send("PUT", url, headers=headers, body=data, timeout=5)).status == 200


@pytest.mark.unit
async def test_memory_a_lost_object_is_gone_and_a_corrupt_one_keeps_its_etag_but_not_its_bytes(
    memory: tuple[MemoryStorage, S3Target],
) -> None:
    storage, target = memory
    await stored(storage, target, "lost", DATA)
    await stored(storage, target, "rot", DATA)
    storage.lose(target.endpoint_url, "lost")
    storage.corrupt(target.endpoint_url, "rot")
    assert await storage.head(target, "lost") is None
    info = await storage.head(target, "rot")
    assert info is not None and info.etag == hashlib.md5(DATA).hexdigest() and info.size == len(DATA)
    sha256, _ = await storage.checksum(target, "rot", size=len(DATA))
    assert sha256 != hashlib.sha256(DATA).hexdigest()


@pytest.mark.unit
async def test_memory_a_refused_server_fails_as_a_real_one_does_for_as_many_times_as_told(
    memory: tuple[MemoryStorage, S3Target],
) -> None:
    storage, target = memory
    await stored(storage, target, "k", DATA)
    storage.refuse(server=target.endpoint_url, key="k", times=1)
    with pytest.raises(StorageError) as refused:
        await storage.head(target, "k")
    assert refused.value.code == "storage_error"
    assert await storage.head(target, "k") is not None  # once only
    storage.refuse(server=target.endpoint_url, code="storage_unreachable")
    with pytest.raises(StorageError) as down:
        await storage.delete(target, "k")
    assert down.value.code == "storage_unreachable"
    assert not await storage.head_bucket(target, timeout=1)
    storage.heal()
    assert await storage.head_bucket(target, timeout=1)


@pytest.mark.unit
async def test_memory_a_downed_server_refuses_every_call_as_a_killed_one_until_it_is_up_again_with_its_objects(
    memory: tuple[MemoryStorage, S3Target],
) -> None:
    storage, target = memory
    await stored(storage, target, "k", DATA)
    url = storage.presign_get(target, "k", filename="k.txt", expires_in=TTL)

    async def whole() -> bytes:
        return b"".join([chunk async for chunk in storage.read(target, "k")])

    storage.down(target.endpoint_url)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: storage.head(target, "k"),
        whole,
        lambda: storage.delete(target, "k"),
        lambda: storage.check_bucket(target, create=False),
        lambda: storage.send("GET", url, timeout=5),
    ]
    for call in calls:  # each as `Storage` fails on a port nothing listens on (test_storage.test_unreachable_server)
        with pytest.raises(StorageError) as refused:
            await call()
        assert refused.value.code == "storage_unreachable"
    assert not await storage.head_bucket(target, timeout=1)  # (its health check finds it down)
    storage.heal()  # (no fault to heal: a killed server stays down until it runs again)
    assert not await storage.head_bucket(target, timeout=1)
    storage.up(target.endpoint_url)
    assert await storage.head_bucket(target, timeout=1)
    assert await whole() == DATA


@pytest.mark.unit
async def test_memory_a_stalled_server_waits_for_the_test_and_a_call_with_a_timeout_gives_up_unreachable(
    memory: tuple[MemoryStorage, S3Target],
) -> None:
    storage, target = memory
    await stored(storage, target, "k", DATA)
    gate = storage.stall(server=target.endpoint_url)
    with pytest.raises(StorageError) as silent:
        await storage.head(target, "k", timeout=0.01)
    assert silent.value.code == "storage_unreachable"
    waiting = asyncio.ensure_future(storage.head(target, "k"))
    await asyncio.sleep(0)  # (it started, and waits for the gate)
    assert not waiting.done()
    gate.set()
    assert (await waiting) is not None


@pytest.mark.unit
async def test_memory_a_versioned_bucket_keeps_each_version_and_a_delete_marker_until_every_version_goes(
    memory: tuple[MemoryStorage, S3Target],
) -> None:
    storage, target = memory
    storage.set_versioning(target)
    assert await storage.bucket_versioning(target) == "enabled"
    await stored(storage, target, "v", b"one")
    await stored(storage, target, "v", b"two")
    await storage.delete(target, "v")
    assert await storage.head(target, "v") is None and storage.versions(target, "v") == 3
    await storage.delete_every_version(target, "v")
    assert storage.versions(target, "v") == 0


@pytest.mark.unit
async def test_memory_an_expired_url_is_refused(memory: tuple[MemoryStorage, S3Target]) -> None:
    storage, target = memory
    url, headers = storage.presign_put(target, "late", content_type="text/plain", size=1, expires_in=1)
    signed = datetime.now(UTC) - timedelta(seconds=5)
    stamp = signed.strftime("%Y%m%dT%H%M%SZ")
    old = Presigner(target).presign(
        "PUT", "late", expires_in=1, now=signed, headers={k.lower(): v for k, v in headers.items()}
    )
    assert stamp in old
    answer = await storage.send("PUT", old, headers=headers, body=b"x", timeout=5)
    assert (answer.status, answer.code) == (403, "AccessDenied")
    assert (await storage.send("PUT", url, headers=headers, body=b"x", timeout=5)).status == 200
