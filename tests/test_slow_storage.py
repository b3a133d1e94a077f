"""A storage server that stops answering (a TCP proxy in front of a real one that swallows requests):
timeouts bound the calls that need it, and no other request of the API waits behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from apihelp import DATA_SMALL, put_bytes

from cdnstore import appkeys
from cdnstore.seaweed import WeedCluster


class StallingProxy:
    """Forwards TCP to an upstream; once `stall` is set, new connections are accepted and then ignored."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.stall = False
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.stall:
                await asyncio.sleep(3600)  # read nothing, answer nothing
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for stream in (writer, up_writer):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                        await stream.wait_closed()
            self.tasks.discard(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await src.read(1 << 16):
                if self.stall:  # connections already open go silent too (clients keep them alive)
                    await asyncio.sleep(3600)
                dst.write(chunk)
                await dst.drain()
        dst.close()




@pytest.fixture
async def proxy(weed: WeedCluster) -> AsyncIterator[StallingProxy]:
    made = StallingProxy(weed.instance("dallas").endpoint_url)
    await made.start()
    yield made
    await made.stop()


async def test_a_storage_server_that_stops_answering_holds_up_no_other_request(
        make_api: object, weed: WeedCluster, bucket: str, proxy: StallingProxy) -> None:
    api = await make_api(storage={"connect_timeout": 1, "read_timeout": 2},  # type: ignore[operator]
                         health={"timeout": 1})
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="dallas-proxied", endpoint_url=proxy.url)
    stored = await admin.upload("stored.txt", DATA_SMALL)
    (await admin.post(f"/api/v1/files/{stored['file']['id']}/complete")).expect(200)
    pending = await admin.announce("pending.txt", DATA_SMALL)
    assert await put_bytes(pending["upload"], DATA_SMALL) == 200

    proxy.stall = True
    complete = asyncio.create_task(admin.post(f"/api/v1/files/{pending['file']['id']}/complete"))
    await asyncio.sleep(0.2)
    for _ in range(20):  # while /complete waits on the silent server, the rest of the API answers
        (await admin.get("/api/v1/files")).expect(200)
        (await admin.get(f"/api/v1/files/{stored['file']['id']}/download")).expect(200)
    assert not complete.done()
    answer = await asyncio.wait_for(complete, 60)  # the storage timeouts end the wait ...
    answer.problem(409, "upload_incomplete")  # ... with a plain answer

    await api.app[appkeys.HEALTH].check_all()  # (the periodic check may have seen it already)
    assert [s["health"] for s in (await admin.get("/api/v1/servers")).expect(200)["items"]] == ["down"]
    (await admin.get(f"/api/v1/files/{stored['file']['id']}/download")).problem(503, "no_replica_available")
    (await admin.post("/api/v1/files", json={"name": "x", "size": 1})).problem(503, "no_server_available")

    proxy.stall = False
    await api.app[appkeys.HEALTH].check_all()
    (await admin.get(f"/api/v1/files/{stored['file']['id']}/download")).expect(200)
