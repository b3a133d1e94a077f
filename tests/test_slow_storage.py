"""A storage server that stops answering (a TCP proxy in front of a real one that swallows requests):
timeouts bound the calls that need it, and no other request of the API waits behind it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from apihelp import DATA_SMALL, Answer, put_bytes, wait_for

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
    answer.problem(503, "storage_unavailable")  # ... with a plain answer

    await api.app[appkeys.HEALTH].check_all()  # (the periodic check may have seen it already)
    assert [s["health"] for s in (await admin.get("/api/v1/servers")).expect(200)["items"]] == ["down"]
    (await admin.get(f"/api/v1/files/{stored['file']['id']}/download")).problem(503, "no_replica_available")
    (await admin.post("/api/v1/files", json={"name": "x", "size": 1})).problem(503, "no_server_available")

    proxy.stall = False
    await api.app[appkeys.HEALTH].check_all()
    (await admin.get(f"/api/v1/files/{stored['file']['id']}/download")).expect(200)


async def test_a_silent_storage_server_gets_users_503_storage_unavailable_in_seconds_its_details_only_logged(
    make_api: object, weed: WeedCluster, bucket: str, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    # (Checked on main: GET /upload waited out botocore's read timeouts and retries, over a minute, then
    # answered 502 with the endpoint, bucket, key and upload id; /complete 409 with the same.)
    api = await make_api(
        storage={"connect_timeout": 5, "read_timeout": 30, "request_timeout": 2},  # type: ignore[operator]
        uploads={"multipart_threshold": 5 << 20},
    )
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="dallas-proxied", endpoint_url=proxy.url)
    announced = await admin.announce("big.bin", b"\0" * (6 << 20))
    file_id = announced["file"]["id"]
    assert announced["upload"]["method"] == "multipart"
    key, upload_id = await _key_and_upload_id(api)
    (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)

    proxy.stall = True
    answers: list[Answer] = []
    with caplog.at_level(logging.WARNING, logger="cdnstore.api.problems"):
        for method, path in (
            ("GET", f"/api/v1/files/{file_id}/upload"),
            ("POST", f"/api/v1/files/{file_id}/complete"),
            ("DELETE", f"/api/v1/files/{file_id}/upload"),
        ):
            # Within the request timeout (2 s) and its retries: far within this bound (botocore alone: 60 s+).
            answers.append(await asyncio.wait_for(admin.call(method, path), 20))
    for answer in answers:
        problem = answer.problem(503, "storage_unavailable")
        assert answer.headers["Retry-After"] == "5"
        shown = json.dumps(problem)
        for internal in (proxy.url, proxy.url.split("//")[1], bucket, key, upload_id):
            assert internal not in shown, (internal, problem)
    logged = caplog.text
    assert key in logged and upload_id in logged and proxy.url in logged  # the operator has them
    assert len([r for r in caplog.records if r.name == "cdnstore.api.problems"]) == len(answers)

    proxy.stall = False  # and nothing was changed: the upload is still there, and goes on
    state = (await admin.get(f"/api/v1/files/{file_id}/upload")).expect(200)
    assert state["method"] == "multipart" and state["uploaded"] == []


async def _key_and_upload_id(api: object) -> tuple[str, str]:
    row = await api.app[appkeys.DB].fetchone("SELECT object_key, upload_id FROM versions")  # type: ignore[attr-defined]
    assert row is not None
    return str(row["object_key"]), str(row["upload_id"])
