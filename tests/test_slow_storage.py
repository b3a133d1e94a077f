"""A storage server that stops answering (a TCP proxy in front of a real one that swallows requests):
timeouts bound the calls that need it, and no other request of the API waits behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from apihelp import DATA_SMALL, put_bytes, wait_for

from cdnstore import appkeys
from testbed.faultproxy import FaultProxy, fault_proxy
from testbed.seaweed import WeedCluster


@pytest.fixture
async def proxy(weed: WeedCluster) -> AsyncIterator[FaultProxy]:
    async with fault_proxy(weed.instance("dallas").endpoint_url) as made:
        yield made


async def test_a_storage_server_that_stops_answering_holds_up_no_other_request(
    make_api: object, weed: WeedCluster, bucket: str, proxy: FaultProxy
) -> None:
    api = await make_api(
        storage={"connect_timeout": 1, "read_timeout": 2},  # type: ignore[operator]
        health={"timeout": 1},
    )
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="dallas-proxied", endpoint_url=proxy.url)
    stored = await admin.upload("stored.txt", DATA_SMALL)
    (await admin.post(f"/api/v1/files/{stored['file']['id']}/complete")).expect(200)
    pending = await admin.announce("pending.txt", DATA_SMALL)
    assert await put_bytes(pending["upload"], DATA_SMALL) == 200

    proxy.stall = True
    complete = asyncio.create_task(admin.post(f"/api/v1/files/{pending['file']['id']}/complete"))
    await wait_for(lambda: proxy.stalled, "/complete to ask the silent server")
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
