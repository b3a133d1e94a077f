"""cdnstore.storage and cdnstore.seaweed against real SeaweedFS (`weed mini`) servers.

Two instances ("a", "b") are started once for the module; every test gets a fresh bucket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from weedbed import ACCESS_KEY, SECRET_KEY, Hook, WebhookSink, md5_of_get, new_bucket, unused_port

from cdnstore.errors import StorageError
from cdnstore.models import S3Target
from cdnstore.presign import Presigner
from cdnstore.seaweed import ADMIN_HANG_AFTER, STOP_TIMEOUT, WeedCluster, WeedInstance
from cdnstore.storage import Storage, content_disposition

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

MiB = 1 << 20


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


@pytest_asyncio.fixture(loop_scope="session")
async def target_a(cluster: WeedCluster, storage: Storage) -> S3Target:
    target = cluster.target("a", new_bucket())
    await storage.check_bucket(target)
    return target


@pytest_asyncio.fixture(loop_scope="session")
async def target_b(cluster: WeedCluster, storage: Storage) -> S3Target:
    target = cluster.target("b", new_bucket())
    await storage.check_bucket(target)
    return target


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


async def test_check_bucket_creates_missing_bucket(cluster: WeedCluster, storage: Storage) -> None:
    target = cluster.target("a", new_bucket())
    assert await storage.head_bucket(target, timeout=5) is False
    with pytest.raises(StorageError) as err:
        await storage.check_bucket(target, create=False)
    assert err.value.code == "storage_error"
    await storage.check_bucket(target)
    assert await storage.head_bucket(target, timeout=5) is True
    await storage.check_bucket(target)  # idempotent


async def test_wrong_secret_is_auth_failure(cluster: WeedCluster, storage: Storage) -> None:
    good = cluster.target("a", new_bucket())
    wrong_secret, unknown_key = (
        dataclasses.replace(good, secret_key="wrong-secret"),
        dataclasses.replace(good, access_key="nobody"),
    )
    for bad in (wrong_secret, unknown_key):
        with pytest.raises(StorageError) as err:
            await storage.check_bucket(bad)
        assert err.value.code == "storage_auth_failed"
        assert err.value.status == 502
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


async def test_clients_are_shared_and_forgettable(cluster: WeedCluster, target_a: S3Target) -> None:
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
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target, target_b: S3Target
) -> None:
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
    http: aiohttp.ClientSession, storage: Storage, target_a: S3Target, target_b: S3Target
) -> None:
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
    cluster: WeedCluster, http: aiohttp.ClientSession, storage: Storage, target_b: S3Target
) -> None:
    data = os.urandom(300_000)
    await put(http, storage, target_b, "survivor.bin", data)
    await cluster.kill("b")
    assert not cluster.instance("b").running
    assert await storage.head_bucket(target_b, timeout=3) is False
    await cluster.restart("b")
    assert cluster.instance("b").running
    info = await storage.head(target_b, "survivor.bin")  # the cached client reconnects
    assert info is not None and info.size == len(data)
    url = storage.presign_get(target_b, "survivor.bin", filename="s.bin", expires_in=60)
    digest, _, _ = await md5_of_get(http, url)
    assert digest == hashlib.md5(data).hexdigest()


# A stand-in for `weed mini` at SIGTERM, printing its shutdown board as weed does: "hang", its admin server
# hangs after the S3 gateway stopped (what weed 4.48 does about one stop in twenty); "slow", both stopped and
# the rest takes its time, as a clean stop on a busy machine may.
WEED_AT_SIGTERM = """
import signal, sys, time
def stop(*_):
    print("  Shutting down SeaweedFS Mini ...", flush=True)
    print("  S3           stopped   0.0s", flush=True)
    if sys.argv[1] == "slow":
        print("  Admin        stopped   0.0s", flush=True)
        time.sleep(3 * ADMIN_HANG_AFTER)
        sys.exit(0)
    time.sleep(600)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(600)
"""


async def stop_a_stand_in(tmp_path: Path, how: str) -> tuple[int | None, float]:
    """Start the stand-in as a cluster's instance, stop the cluster: (its exit code, seconds the stop took)."""
    inst = WeedInstance("stand-in", tmp_path, 0, 0, "http://127.0.0.1:1")
    with inst.output_path.open("ab") as out:
        inst.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", f"ADMIN_HANG_AFTER = {ADMIN_HANG_AFTER}\n{WEED_AT_SIGTERM}", how, stdout=out
        )
    cluster = WeedCluster(tmp_path, [inst.name], access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    cluster._instances[inst.name] = inst  # (started by hand: the stand-in has no S3 to wait for)
    while b"ready" not in inst.output_path.read_bytes():
        await asyncio.sleep(0.02)
    started = time.monotonic()
    await cluster.stop()
    return inst.process.returncode, time.monotonic() - started


async def test_a_server_whose_admin_hangs_on_its_way_out_is_killed_at_once_and_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cdnstore.seaweed"):
        code, took = await stop_a_stand_in(tmp_path, "hang")
    assert code == -9 and took < STOP_TIMEOUT / 2, (code, took)  # not the 10 s it took before
    assert "its admin server hangs on its way out" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_server_stopping_slowly_but_cleanly_is_waited_for(tmp_path: Path) -> None:
    code, took = await stop_a_stand_in(tmp_path, "slow")
    assert code == 0 and took >= 3 * ADMIN_HANG_AFTER  # never killed while its data parts stop


# --- webhooks --------------------------------------------------------------------------------


async def test_webhook_delivers_filer_events_with_token(
    tmp_path_factory: pytest.TempPathFactory, http: aiohttp.ClientSession, storage: Storage
) -> None:
    sink = WebhookSink()
    await sink.start()
    try:
        async with WeedCluster(
            tmp_path_factory.mktemp("hooked"),
            ["w0"],
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            webhook_url=lambda name: sink.url(f"/hook/{name}"),
            webhook_token="s3cr3t-token",
        ) as weed:
            target = weed.target("w0", new_bucket())
            await storage.check_bucket(target)
            await put(http, storage, target, "u/42/photo.jpg", b"x" * 1000, content_type="image/jpeg", fileid="f-42")
            wanted = f"/buckets/{target.bucket}/u/42/photo.jpg"

            def is_create(hook: Hook) -> bool:
                return bool(hook.body.get("key") == wanted and hook.body.get("event_type") == "create")

            hook = await sink.wait_for(is_create)
            await storage.forget(target)
    finally:
        await sink.stop()
    assert hook.path == "/hook/w0"
    assert hook.headers["Authorization"] == "Bearer s3cr3t-token"
    entry = hook.body["message"]["new_entry"]
    assert entry["attributes"]["file_size"] == 1000
    assert entry["attributes"]["mime"] == "image/jpeg"
    assert "X-Amz-Meta-Fileid" in entry["extended"]


async def test_weed_instances_have_own_dirs_and_ports(cluster: WeedCluster) -> None:
    a, b = cluster.instance("a"), cluster.instance("b")
    assert a.dir != b.dir and not set(a.ports) & set(b.ports)
    assert len(a.ports) == 11
    assert a.dir.name == "a" and b.dir.parent == a.dir.parent
    assert a.endpoint_url == f"http://127.0.0.1:{a.s3_port}"
