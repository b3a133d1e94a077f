"""A share link's files as one ZIP archive streamed by the daemon, against real SeaweedFS servers: the
bytes, the framing, holders failing mid-file, the concurrency limit, the download count, and memory that
stays flat while hundreds of MiB stream through a real `cdnstore serve`."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apihelp import US_IP, Answer, Api, Session, from_ip, png, samples, stored_and_copied, value, wait_for
from daemonproc import admin_session, write_config

from cdnstore import appkeys
from cdnstore.api import links as links_api
from cdnstore.errors import StorageError
from cdnstore.models import Health, S3Target
from testbed.daemon import Daemon
from testbed.seaweed import WeedCluster

MIB = 1 << 20
NOTES = b"notes\n" * 5000
PHOTO = png(64, 48)
BIG = bytes(range(256)) * (3 * MIB // 256)  # three chunks of storage.read: a holder can fail between them


async def with_files(api: Api, weed: WeedCluster, bucket: str, *servers: str) -> tuple[Session, list[str]]:
    """alice's notes.txt, photo.png, an empty file and big.bin, stored (and copied to the other USA server
    when both are registered)."""
    admin = await api.user("root", admin=True)
    for name in servers or ("dallas",):
        await admin.add_server(weed, name, bucket)
    alice = await api.user("alice")
    ids = []
    for name, data in (("notes.txt", NOTES), ("Grüße.png", PHOTO), ("empty.bin", b""), ("big.bin", BIG)):
        ids.append((await stored_and_copied(api, alice, name, data))["file"]["id"])
    return alice, ids


async def link_to(owner: Session, file_ids: list[str], **body: Any) -> dict[str, Any]:
    return dict((await owner.post("/api/v1/links", json={"file_ids": file_ids, **body})).expect(201))


async def archive(api: Api, token: str, **kw: Any) -> Answer:
    return await api.call("POST", f"/api/v1/public/links/{token}/archive", headers=from_ip(US_IP), **kw)


def unzipped(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as zipped:
        assert zipped.testzip() is None
        assert {i.compress_type for i in zipped.infolist()} == {zipfile.ZIP_STORED}
        return {i.filename: zipped.read(i) for i in zipped.infolist()}


def metric(api: Api, name: str, **labels: str) -> float:
    return value(samples(api.app[appkeys.METRICS].exposition().decode()), name, **labels)


async def test_download_all_streams_one_zip_of_the_links_files(api: Api, weed: WeedCluster, bucket: str) -> None:
    alice, ids = await with_files(api, weed, bucket)
    link = await link_to(alice, ids, max_downloads=5)
    got = await archive(api, link["token"])
    assert got.status == 200 and got.headers["Content-Type"] == "application/zip"
    assert got.headers["Content-Disposition"].startswith('attachment; filename="shared files.zip"')
    body = got.body
    assert int(got.headers["Content-Length"]) == len(body)
    assert unzipped(body) == {"notes.txt": NOTES, "Grüße.png": PHOTO, "empty.bin": b"", "big.bin": BIG}
    assert (await alice.get(f"/api/v1/links/{link['id']}")).expect(200)["downloads"] == 1  # one download
    history = (await alice.get("/api/v1/history?event=link.downloaded")).expect(200)["items"]
    assert history[0]["data"] | {"link_id": None} == {
        "link_id": None,
        "name": "notes.txt and 3 more",
        "archive": True,
        "files": 4,
        "downloads": 1,
    }
    assert metric(api, "cdnstore_archives_total", outcome="completed") == 1
    assert metric(api, "cdnstore_archive_bytes_total") == len(NOTES) + len(PHOTO) + len(BIG)
    assert metric(api, "cdnstore_archives_streaming") == 0
    # Info-ZIP's unzip agrees (it reads the local headers and data descriptors too, not only the directory).
    checked = subprocess.run(["unzip", "-tq", "/dev/stdin"], input=body, capture_output=True, check=False)
    if checked.returncode != 0:  # (unzip cannot seek a pipe on every build: a file then)
        path = Path(api.app[appkeys.CONFIG].database.path).parent / "all.zip"
        path.write_bytes(body)
        checked = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_the_archive_of_a_link_to_one_file_is_named_after_it(api: Api, weed: WeedCluster, bucket: str) -> None:
    alice, ids = await with_files(api, weed, bucket)
    link = (await alice.post(f"/api/v1/files/{ids[0]}/links", json={})).expect(201)
    got = await archive(api, link["token"])
    assert got.headers["Content-Disposition"].startswith('attachment; filename="notes.txt.zip"')
    assert unzipped(got.body) == {"notes.txt": NOTES}


async def test_the_archive_takes_the_password_as_json_or_as_a_form(api: Api, weed: WeedCluster, bucket: str) -> None:
    alice, ids = await with_files(api, weed, bucket)
    token = (await link_to(alice, ids[:2], password="open sesame"))["token"]
    (await archive(api, token)).problem(401, "password_required")
    (await archive(api, token, json={"password": "guess"})).problem(401, "invalid_password")
    (await archive(api, token, data={"password": "guess"})).problem(401, "invalid_password")
    (await archive(api, token, json={"password": "open sesame", "x": 1})).problem(422, "unknown_field")
    (await archive(api, token, data={"password": "open sesame", "colour": "red"})).problem(422, "unknown_field")
    twice = (await archive(api, token, data=[("password", "open sesame"), ("password", "x")])).problem(
        422, "invalid_field"
    )
    assert twice["detail"] == "password: given more than once"
    for body in ({"json": {"password": "open sesame"}}, {"data": {"password": "open sesame"}}):
        got = await archive(api, token, **body)
        assert got.status == 200, got.body
        assert set(unzipped(got.body)) == {"notes.txt", "Grüße.png"}


def failing_after(storage: Any, endpoint: str, chunks: int) -> Any:
    """storage.read, but reads from the server at `endpoint` fail after `chunks` chunks (a holder that dies
    mid-file). Every read is noted in `reads` as (endpoint, start)."""
    real = storage.read
    reads: list[tuple[str, int]] = []

    async def read(target: S3Target, key: str, *, start: int = 0) -> AsyncGenerator[bytes, None]:
        reads.append((target.endpoint_url, start))
        given = 0
        async for chunk in real(target, key, start=start):
            if target.endpoint_url == endpoint and given == chunks:
                raise StorageError("connection reset by peer (the test's)", code="storage_unreachable")
            given += 1
            yield chunk

    read.reads = reads  # type: ignore[attr-defined]
    return read


async def test_a_holder_failing_mid_file_is_left_for_the_next_from_where_it_was(
    api: Api, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, ids = await with_files(api, weed, bucket, "dallas", "newyork")
    token = (await link_to(alice, [ids[3]]))["token"]
    storage = api.app[appkeys.STORAGE]
    dallas = weed.instance("dallas").endpoint_url  # the nearest holder for a client in the USA (8.8.8.8)
    read = failing_after(storage, dallas, chunks=1)
    monkeypatch.setattr(storage, "read", read)
    got = await archive(api, token)
    assert got.status == 200 and unzipped(got.body) == {"big.bin": BIG}
    (first, start), (then, offset) = read.reads
    assert (first, start) == (dallas, 0) and then == weed.instance("newyork").endpoint_url and 0 < offset < len(BIG)


async def test_an_archive_no_holder_can_finish_is_cut_short_of_its_length(
    api: Api, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, ids = await with_files(api, weed, bucket)
    token = (await link_to(alice, ids))["token"]
    storage = api.app[appkeys.STORAGE]
    monkeypatch.setattr(storage, "read", failing_after(storage, weed.instance("dallas").endpoint_url, chunks=1))
    async with api.client.post(f"/api/v1/public/links/{token}/archive") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):  # fewer bytes than its Content-Length
            await resp.read()
    await wait_for(lambda: metric(api, "cdnstore_archives_total", outcome="failed") == 1, "the failed archive counted")
    assert metric(api, "cdnstore_archives_streaming") == 0


async def test_archives_beyond_links_max_archives_are_refused_with_retry_after_and_not_counted(
    make_api: Any, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await make_api(links={"max_archives": 1})
    alice, ids = await with_files(api, weed, bucket)
    link = await link_to(alice, ids[:2])
    storage, gate = api.app[appkeys.STORAGE], asyncio.Event()
    real = storage.read

    async def held(target: S3Target, key: str, *, start: int = 0) -> AsyncIterator[bytes]:
        await gate.wait()  # the first archive streams until the test lets it go on
        async for chunk in real(target, key, start=start):
            yield chunk

    monkeypatch.setattr(storage, "read", held)
    first = asyncio.create_task(archive(api, link["token"]))
    await wait_for(lambda: metric(api, "cdnstore_archives_streaming") == 1, "the first archive to stream")
    refused = (await archive(api, link["token"])).problem(503, "archive_busy")
    assert refused["detail"].endswith("try again shortly")
    (await archive(api, link["token"])).problem(503, "archive_busy")  # (every one, while the place is taken)
    assert metric(api, "cdnstore_archives_total", outcome="refused") == 2
    gate.set()
    assert (await first).status == 200
    assert (await archive(api, link["token"])).status == 200  # its place was given back
    assert (await alice.get(f"/api/v1/links/{link['id']}")).expect(200)["downloads"] == 2


async def test_a_refused_archive_says_when_to_try_again(
    make_api: Any, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await make_api(links={"max_archives": 1})
    alice, ids = await with_files(api, weed, bucket)
    token = (await link_to(alice, ids[:1]))["token"]
    archives = api.app[appkeys.LINKS].archives
    taken = archives.reserve("held", [])  # the one place, taken
    refused = await archive(api, token)
    refused.problem(503, "archive_busy")
    assert refused.headers["Retry-After"] == "10"
    taken.release()
    assert (await archive(api, token)).status == 200


async def test_a_client_that_stops_reading_loses_its_place(
    make_api: Any, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await make_api(links={"max_archives": 1})
    alice, ids = await with_files(api, weed, bucket)
    big = (await stored_and_copied(api, alice, "big.iso", bytes(32 * MIB)))["file"]["id"]  # more than socket buffers
    token = (await link_to(alice, [big]))["token"]
    monkeypatch.setattr(links_api, "ARCHIVE_STALL", 1.0)
    async with api.client.post(f"/api/v1/public/links/{token}/archive") as resp:
        assert resp.status == 200  # ... and then this client reads nothing more
        await wait_for(
            lambda: metric(api, "cdnstore_archives_total", outcome="failed") == 1, "the stalled archive cut", within=30
        )
        assert metric(api, "cdnstore_archives_streaming") == 0
        # Its place is free while it still holds its connection: another client gets an archive.
        got = await archive(api, (await link_to(alice, ids[:1]))["token"])
        assert got.status == 200 and unzipped(got.body) == {"notes.txt": NOTES}


async def test_two_archives_racing_for_the_last_allowed_download_exactly_one_wins(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    alice, ids = await with_files(api, weed, bucket)
    link = await link_to(alice, ids[:2], max_downloads=1)
    answers = await asyncio.gather(archive(api, link["token"]), archive(api, link["token"]))
    assert sorted(a.status for a in answers) == [200, 410]
    assert (await alice.get(f"/api/v1/links/{link['id']}")).expect(200)["downloads"] == 1
    assert metric(api, "cdnstore_archives_streaming") == 0


async def test_no_archive_without_a_stored_file_a_holder_up_or_a_file_left(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    alice, ids = await with_files(api, weed, bucket)
    uploading = (await alice.announce("later.txt", NOTES))["file"]["id"]
    (await archive(api, (await link_to(alice, [uploading]))["token"])).problem(409, "file_not_ready")
    token = (await link_to(alice, ids[:2]))["token"]
    dallas = next(s for s in api.app[appkeys.SERVERS].all() if s.name == "dallas")
    await api.app[appkeys.SERVERS].set_health({dallas.id: Health.DOWN})
    (await archive(api, token)).problem(503, "no_replica_available")
    await api.app[appkeys.SERVERS].set_health({dallas.id: Health.UP})
    for file_id in ids[:2]:
        (await alice.delete(f"/api/v1/files/{file_id}")).expect(204)
    (await archive(api, token)).problem(410, "link_expired")
    (await archive(api, "no-such-token")).problem(404, "link_not_found")
    assert metric(api, "cdnstore_archives_total", outcome="completed") == 0


# --- memory: hundreds of MiB through a real daemon ------------------------------------------------

FILES, FILE_SIZE = 5, 60 * MIB  # 300 MiB; each under uploads.multipart_threshold: one PUT
BOUND = 32 * MIB  # one chunk in flight plus buffers (measured: ~1 MiB); one file kept in memory: 60 MiB more


async def pattern(seed: int, size: int) -> AsyncIterator[bytes]:
    """`size` bytes that differ from file to file and MiB to MiB, made as they are sent."""
    for n in range(size // MIB):
        yield hashlib.sha256(f"{seed}:{n}".encode()).digest() * (MIB // 32)


async def sha256_of_pattern(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    async for block in pattern(seed, size):
        digest.update(block)
    return digest.hexdigest()


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def put_pattern(owner: Session, name: str, seed: int, size: int) -> str:
    body = {"name": name, "size": size, "content_type": "application/octet-stream"}
    announced = (await owner.post("/api/v1/files", json=body, headers=from_ip(US_IP))).expect(201)
    upload = announced["upload"]
    async with aiohttp.ClientSession() as http:
        async with http.put(upload["url"], data=pattern(seed, size), headers=upload["headers"]) as resp:
            assert resp.status == 200, await resp.text()
    file_id = str(announced["file"]["id"])
    await owner.wait_stored(file_id, within=60)
    return file_id


@pytest.mark.timeout(400)
async def test_a_zip_of_hundreds_of_mib_streams_through_the_daemon_with_flat_memory(
    tmp_path: Path, daemon: Daemon, weed: WeedCluster, bucket: str
) -> None:
    write_config(tmp_path, daemon.port)
    await daemon.start()
    assert daemon.proc is not None
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        await admin.add_server(weed, "dallas", bucket)
        ids = [await put_pattern(admin, f"part {n}.bin", n, FILE_SIZE) for n in range(FILES)]
        small = await put_pattern(admin, "warm-up.bin", 99, MIB)

        async def download(token: str, into: Path) -> int:
            async with http.post(f"/api/v1/public/links/{token}/archive") as resp:
                assert resp.status == 200, await resp.text()
                with into.open("wb") as out:
                    async for chunk in resp.content.iter_chunked(MIB):
                        out.write(chunk)
                return int(resp.headers["Content-Length"])

        warm = (await admin.post("/api/v1/links", json={"file_ids": [small]})).expect(201)["token"]
        await download(warm, tmp_path / "warm.zip")  # first use: the daemon's clients and pools exist now
        before = peak_rss(daemon.proc.pid)
        token = (await admin.post("/api/v1/links", json={"file_ids": ids})).expect(201)["token"]
        length = await download(token, tmp_path / "all.zip")
        grown = peak_rss(daemon.proc.pid) - before
        assert length == (tmp_path / "all.zip").stat().st_size > FILES * FILE_SIZE
        assert grown < BOUND, f"the daemon's peak memory grew {grown / MIB:.1f} MiB for {length / MIB:.0f} MiB"
    with zipfile.ZipFile(tmp_path / "all.zip") as zipped:
        for n, info in enumerate(zipped.infolist()):
            assert (info.filename, info.file_size) == (f"part {n}.bin", FILE_SIZE)
            digest = hashlib.sha256()
            with zipped.open(info) as entry:  # checks the CRC-32 at its end too
                while block := entry.read(MIB):
                    digest.update(block)
            assert digest.hexdigest() == await sha256_of_pattern(n, FILE_SIZE), info.filename
