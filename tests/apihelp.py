"""A small client for the API in tests: sessions of logged-in users, answers with status and JSON."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import inspect
import io
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from reliability import LEDGER
from s3bed import S3Bed, memory_site
from weedbed import ACCESS_KEY, SECRET_KEY

from cdnstore import appkeys, probe
from cdnstore.job_queue import Job
from cdnstore.models import S3Target
from cdnstore.storage import Storage
from testbed.demo import ORIGINAL_LAYOUT
from testbed.memory_storage import MemoryStorage
from testbed.rgw import RgwBed

PASSWORD = "correct horse battery"
SECRET = "a-test-secret-key-of-some-length"
EVENTS_TOKEN = "events-token-for-tests"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
# Real addresses and where the GeoLite2 database puts them.
US_IP, RUSSIA_IP, SOUTH_AFRICA_IP = "8.8.8.8", "77.88.8.8", "196.25.1.1"
DATA_SMALL = b"a small file\n" * 10


async def wait_for(condition: Callable[[], Any], what: str, within: float = 10.0, every: float = 0.02) -> Any:
    """Poll `condition` (a function, or a coroutine function) until it gives something true, and return
    that; fail saying `what` was awaited after `within` seconds. Tests wait for this, never for a time."""
    try:
        async with asyncio.timeout(within):
            while True:
                found = condition()
                if inspect.isawaitable(found):
                    found = await found
                if found:
                    return found
                await asyncio.sleep(every)  # polling, not synchronisation: the condition decides
    except TimeoutError:
        raise AssertionError(f"waited {within} s for {what}") from None


async def stored_and_copied(api: Api, admin: Session, name: str, data: bytes, *, ip: str = US_IP) -> dict[str, Any]:
    """`name` uploaded from `ip`, stored, and copied to the other active servers of its zone (every job run,
    none failed): the answer of its announcement."""
    answer = await admin.upload(name, data, ip=ip)
    await admin.wait_stored(answer["file"]["id"])
    await api.app[appkeys.WORKER].run_until_idle()
    return answer


async def events_unheard(api: Api, admin: Session, *names: str) -> None:
    """From now on the named servers' storage events do not reach cdnstore (each server gets an events token
    of its own, which its SeaweedFS does not send: 401), as with events lost; those heard before are re-checked
    first. What then happens in their buckets is behind cdnstore's back: only reading them finds it."""
    servers = {s["name"]: s for s in (await admin.get("/api/v1/servers")).expect(200)["items"]}
    for name in names:
        (await admin.patch(f"/api/v1/servers/{servers[name]['id']}", json={"events_token": "t" * 32})).expect(200)
    await api.app[appkeys.INTEGRITY].rechecks_done()


async def writes_not_once(api: Api, *server_ids: str) -> None:
    """From now on the servers count as not honouring `If-None-Match: *` (as their probe had found it ignored):
    their upload URLs do not ask for it, so a second PUT to one replaces the stored bytes, as on such a
    server."""
    registry = api.app[appkeys.SERVERS]
    async with api.app[appkeys.DB].transaction() as tx:
        for server_id in server_ids:
            found = registry.get(server_id).capabilities
            assert found is not None, "probed at registration"
            unproved = probe.dump(dataclasses.replace(found, conditional_write=False))
            await tx.execute("UPDATE servers SET capabilities = ? WHERE uuid = ?", (unproved, server_id))
    await registry.load()


@contextlib.asynccontextmanager
async def copies_held(api: Api) -> AsyncIterator[None]:
    """Copies the daemon's worker claims meanwhile wait in their handler until the block ends (they still
    count as its servers' pending jobs): what a test reads in the block cannot race with them."""
    worker, gate = api.app[appkeys.WORKER], asyncio.Event()
    copy = worker.handlers["copy"]

    async def held(job: Job) -> None:
        await gate.wait()
        await copy(job)

    worker.handlers["copy"] = held
    try:
        yield
    finally:
        worker.handlers["copy"] = copy
        gate.set()


class Clock:
    """A clock the test moves by hand, for what takes one (Throttle's `clock`): time passes at once."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 60, 40)) -> bytes:
    """A real PNG image of one colour (what a browser shows inline), made here rather than checked in."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class GatedArgon2:
    """Stands in for the app's argon2 hasher: each hash (and, with `verifications`, each verify) waits in
    its worker thread until the test lets one through (`let_through`), so password checks pile up in the
    daemon's queue exactly as under a flood. `verified` lists the passwords verified, in order."""

    def __init__(self, api: Api, *, verifications: bool = False) -> None:
        self.passwords = api.app[appkeys.ACCOUNTS].passwords
        self.real = self.passwords._hasher
        self.gate = threading.Semaphore(0)
        self.gate_verifications = verifications
        self.verified: list[str] = []
        self.passwords._hasher = self  # type: ignore[assignment]

    def _wait(self) -> None:
        assert self.gate.acquire(timeout=60), "the test never let this password check through"

    def hash(self, password: str) -> str:
        self._wait()
        return str(self.real.hash(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        if self.gate_verifications:
            self._wait()
        self.verified.append(password)
        return bool(self.real.verify(stored_hash, password))

    def let_through(self, count: int = 1) -> None:
        self.gate.release(count)


def s3_storage(api: Api) -> Storage:
    """The daemon's storage as the S3 one (aiobotocore), for the tests that reach around cdnstore to its
    clients; app[STORAGE] is typed as the port (an in-memory storage may stand in: test_replication_fast.py)."""
    storage = api.app[appkeys.STORAGE]
    assert isinstance(storage, Storage)
    return storage


async def overwrite(api: Api, target: S3Target, key: str, data: bytes) -> None:
    """Someone writes `data` under `key` in a server's bucket, behind cdnstore's back (an S3 PutObject of their
    own), on whichever storage the daemon has."""
    storage = api.memory()
    if storage is not None:
        storage.overwrite(target, key, data)
        return
    client = await s3_storage(api)._client(target)
    await client.put_object(Bucket=target.bucket, Key=key, Body=data)


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def object_key(upload: dict[str, Any]) -> str:
    """The object key an upload goes to: the last part of its presigned URL's path."""
    return str(upload["url"].split("?")[0].rsplit("/", 1)[1])


async def put_bytes(upload: dict[str, Any], data: bytes) -> int:
    """PUT `data` to a presigned upload URL with exactly the headers it came with, as a client would."""
    return (await put_answer(upload, data))[0]


async def put_answer(upload: dict[str, Any], data: bytes) -> tuple[int, str]:
    """`put_bytes`' status and the server's answer (the start of its text)."""
    async with aiohttp.ClientSession() as http:
        async with http.request(
            upload["method"], upload["url"], data=io.BytesIO(data), headers=upload["headers"]
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                print(f"PUT {upload['url'].split('?')[0]}: {resp.status} {body[:500]!r}")
            return resp.status, body[: 1 << 16].decode(errors="replace")


async def fetch(url: str) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            return resp.status, await resp.read(), resp.headers


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    def expect(self, status: int) -> Any:
        if status == self.status:
            LEDGER.expected(self)
        assert self.status == status, f"expected {status}, got {self.status}: {self.body}"
        return self.body

    def problem(self, status: int, code: str) -> dict[str, Any]:
        """Assert a problem+json answer with this status and code, and return it."""
        if status == self.status:
            LEDGER.expected(self)
        assert self.status == status, f"expected {status} {code}, got {self.status}: {self.body}"
        assert self.headers["Content-Type"].startswith("application/problem+json"), self.headers
        assert PROBLEM_KEYS <= set(self.body), self.body
        assert self.body["status"] == status and self.body["code"] == code, self.body
        return dict(self.body)


class Api:
    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client
        self.app = client.app

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Answer:
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.client.request(
            method, path, json=json, data=data, headers=headers, allow_redirects=False, **kwargs
        ) as resp:
            raw = await resp.read()
            kind = resp.headers.get("Content-Type", "")
            body: Any = raw.decode(errors="replace")
            if "json" in kind and raw:
                body = await resp.json(content_type=None)
            elif kind == "application/zip":  # (bytes, as they came)
                body = raw
            answer = Answer(resp.status, body, resp.headers)
            LEDGER.answered(answer, f"{method} {path} -> {resp.status}")
            return answer

    async def put_bytes(self, upload: dict[str, Any], data: bytes) -> int:
        """`put_bytes` to the daemon's storage: the in-memory one serves its own URLs, S3 servers theirs."""
        return (await self.put_answer(upload, data))[0]

    def memory(self) -> MemoryStorage | None:
        """The daemon's storage when it is in memory (this process's MemoryStorage); None: real S3 servers."""
        storage = self.app[appkeys.STORAGE]
        return storage if isinstance(storage, MemoryStorage) else None

    async def put_answer(self, upload: dict[str, Any], data: bytes) -> tuple[int, str]:
        """`put_answer` to the daemon's storage (see `put_bytes`)."""
        storage = self.memory()
        if storage is None:
            return await put_answer(upload, data)
        sent = await storage.send(upload["method"], upload["url"], headers=upload["headers"], body=data, timeout=30)
        if sent.status == 200 and "uploadId=" not in upload["url"]:
            await self._webhook(upload["url"], data)
        return sent.status, sent.text

    async def _webhook(self, url: str, data: bytes) -> None:
        """What the site's SeaweedFS sends on a stored object (conftest's `weed`): its event, to the daemon's
        path of the site's name, with the events token; unheard (as there) by a server registered under
        another name (404) or holding a token of its own (401)."""
        site = memory_site(url)
        if site is None:
            return
        bucket, _, key = unquote(urlsplit(url).path).lstrip("/").partition("/")
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        entry = {"name": key.rsplit("/", 1)[-1], "attributes": {"file_size": len(data), "md5": md5}}
        event = {"event_type": "create", "key": f"/buckets/{bucket}/{key}", "message": {"new_entry": entry}}
        await self.call("POST", f"/api/v1/events/s3/{site}", json=event, token=EVENTS_TOKEN)

    async def fetch(self, url: str) -> tuple[int, bytes, Any]:
        """`fetch` from the daemon's storage (headers: case-insensitive, as aiohttp gives them)."""
        storage = self.memory()
        if storage is not None:
            answer, body = await storage.fetch(url)
            return answer.status, body, CIMultiDict(answer.headers)
        return await fetch(url)

    async def make_user(self, username: str, *, admin: bool = False, permissions: list[str] | None = None) -> None:
        await self.app[appkeys.ACCOUNTS].create(username, PASSWORD, is_admin=admin, permissions=permissions)

    async def login(self, username: str, password: str = PASSWORD, **kw: Any) -> Session:
        answer = await self.call("POST", "/api/v1/auth/login", json={"username": username, "password": password}, **kw)
        return Session(self, answer.expect(200))

    async def user(self, username: str, *, admin: bool = False, permissions: list[str] | None = None) -> Session:
        await self.make_user(username, admin=admin, permissions=permissions)
        return await self.login(username)


class Session:
    def __init__(self, api: Api, tokens: dict[str, Any]) -> None:
        self.api = api
        self.tokens = tokens
        self.access: str = tokens["access_token"]
        self.refresh: str = tokens["refresh_token"]
        self.user: dict[str, Any] = tokens["user"]

    async def call(self, method: str, path: str, **kw: Any) -> Answer:
        return await self.api.call(method, path, token=self.access, **kw)

    async def key(self, *scopes: str, name: str = "script", **fields: Any) -> Session:
        """This user acting through a new API key of theirs with `scopes` (the key's answer: `.tokens`)."""
        made = await self.post("/api/v1/me/keys", json={"name": name, "scopes": list(scopes), **fields})
        key = made.expect(201)
        return Session(self.api, {**key, "access_token": key["secret"], "refresh_token": "", "user": self.user})

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Answer:
        return await self.call("POST", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Answer:
        return await self.call("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.call("DELETE", path, **kw)

    async def announce(
        self, name: str, data: bytes, *, ip: str = US_IP, content_type: str = "text/plain", expect: int = 201
    ) -> dict[str, Any]:
        answer = await self.post(
            "/api/v1/files", json={"name": name, "size": len(data), "content_type": content_type}, headers=from_ip(ip)
        )
        return dict(answer.expect(expect))

    async def upload(
        self, name: str, data: bytes, *, ip: str = US_IP, content_type: str = "text/plain", expect: int = 201
    ) -> dict[str, Any]:
        """Announce and PUT; the answer of the announcement (file and upload)."""
        answer = await self.announce(name, data, ip=ip, content_type=content_type, expect=expect)
        assert await self.api.put_bytes(answer["upload"], data) == 200
        return answer

    async def upload_and_confirm(
        self, name: str, data: bytes, *, ip: str = US_IP, content_type: str = "text/plain"
    ) -> dict[str, Any]:
        """Announce, PUT and confirm (POST .../complete: stored at once); the announcement's answer."""
        answer = await self.upload(name, data, ip=ip, content_type=content_type)
        (await self.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
        return answer

    async def upload_in_parts(self, name: str, data: bytes, sha256: str, *, ip: str = US_IP) -> str:
        """Announce `data` declaring `sha256` (a daemon whose multipart threshold it passes), PUT its parts
        and complete it; the file's id."""
        upload = await self.post(
            "/api/v1/files", json={"name": name, "size": len(data), "sha256": sha256}, headers=from_ip(ip)
        )
        answer = upload.body
        assert upload.status in (200, 201) and answer["upload"]["method"] == "multipart", answer
        file_id, part_size = answer["file"]["id"], answer["upload"]["part_size"]
        numbers = list(range(1, answer["upload"]["parts"] + 1))
        items = (await self.post(f"/api/v1/files/{file_id}/upload/parts", json={"numbers": numbers})).expect(200)
        for item in items["items"]:
            n = item["number"]
            assert await self.api.put_bytes(item, data[(n - 1) * part_size : n * part_size]) == 200
        (await self.post(f"/api/v1/files/{file_id}/complete")).expect(200)
        return str(file_id)

    async def wait_stored(self, file_id: str, within: float = 10.0) -> dict[str, Any]:
        async def stored() -> dict[str, Any] | None:
            file = dict((await self.get(f"/api/v1/files/{file_id}")).expect(200))
            return file if file["status"] == "stored" else None

        return dict(await wait_for(stored, f"file {file_id} to be stored", within))

    async def download(self, file_id: str, *, ip: str = US_IP) -> tuple[dict[str, Any], bytes]:
        link = (await self.get(f"/api/v1/files/{file_id}/download", headers=from_ip(ip))).expect(200)
        status, body, _ = await self.api.fetch(link["url"])
        assert status == 200
        return link, body

    async def add_server(self, where: S3Bed | RgwBed, name: str, bucket: str, /, **overrides: Any) -> dict[str, Any]:
        """The original layout's site `name` registered with `bucket`: on its SeaweedFS instance, or on the
        Ceph RGW bed (then give it a `name` of its own to register it beside the SeaweedFS one)."""
        site = next(s for s in ORIGINAL_LAYOUT if s.name == name)
        endpoint = where.endpoint_url if isinstance(where, RgwBed) else where.instance(name).endpoint_url
        body = {
            **site.registration(),
            "endpoint_url": endpoint,
            "bucket": bucket,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            **overrides,
        }
        answer = await self.post("/api/v1/servers", json=body)
        return dict(answer.expect(201))

    async def add_layout(self, weed: S3Bed, bucket: str) -> dict[str, dict[str, Any]]:
        """Register the original's five servers, each with `bucket` (a fresh one per test)."""
        return {site.name: await self.add_server(weed, site.name, bucket) for site in ORIGINAL_LAYOUT}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics' text as {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample of `samples`' answer (0 when it is not there)."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)
