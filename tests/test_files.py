"""Files through the nearest server, against the real GeoLite2 database and the `s3` servers (tests/s3bed.py):
in memory (the fast tier) and real SeaweedFS, but for the tests marked REAL_ONLY."""

from __future__ import annotations

import io
import json
import re
import uuid
from typing import Any

import pytest
from apihelp import (
    EVENTS_TOKEN,
    RUSSIA_IP,
    SOUTH_AFRICA_IP,
    US_IP,
    Api,
    Session,
    from_ip,
    object_key,
    wait_for,
)
from s3bed import REAL_ONLY, S3Bed, store_of

from cdnstore import appkeys
from cdnstore.models import Health
from testbed.clock import FakeClock
from testbed.demo import ORIGINAL_LAYOUT
from testbed.seaweed import WeedCluster

DATA = b"hello from cdnstore\n" * 100


@pytest.fixture
def api(s3_api: Api) -> Api:
    """The daemon on this test's `s3` servers."""
    return s3_api


async def admin_with_layout(api: Api, s3: S3Bed, bucket: str) -> tuple[Session, dict[str, dict[str, Any]]]:
    admin = await api.user("root", admin=True)
    return admin, await admin.add_layout(s3, bucket)


async def object_on(api: Api, s3: S3Bed, server: str, bucket: str, file_id: str) -> bool:
    """Does the server's bucket hold the current object of the file (asked of S3 directly)?"""
    key = await api.app[appkeys.DB].fetchval(
        "SELECT v.object_key FROM files f JOIN versions v ON v.id = f.current_version_id WHERE f.uuid = ?", (file_id,)
    )
    return await api.app[appkeys.STORAGE].head(s3.target(server, bucket), key) is not None


async def keys_in(api: Api, s3: S3Bed, server: str, bucket: str) -> set[str]:
    return {o.key async for o in api.app[appkeys.STORAGE].list_objects(s3.target(server, bucket))}


@pytest.mark.parametrize(
    ("ip", "server"), [(US_IP, "dallas"), (RUSSIA_IP, "vladivostok"), (SOUTH_AFRICA_IP, "capetown")]
)
async def test_an_upload_goes_to_the_nearest_active_server(
    api: Api, s3: S3Bed, bucket: str, ip: str, server: str
) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    answer = await admin.announce("photo.jpg", DATA, ip=ip)
    assert answer["upload"]["server"]["name"] == server
    assert answer["upload"]["method"] == "PUT"
    # (If-None-Match: every SeaweedFS server proved it refuses a second PUT of the key: tests/test_vendors.py)
    assert answer["upload"]["headers"] == {
        "Content-Type": "text/plain",
        "Content-Length": str(len(DATA)),
        "If-None-Match": "*",
    }
    assert s3.instance(server).endpoint_url in answer["upload"]["url"]
    assert answer["file"]["status"] == "uploading" and answer["file"]["zone"] is None
    assert answer["file"]["size"] == len(DATA) and answer["file"]["name"] == "photo.jpg"


async def test_an_inactive_or_down_server_takes_no_uploads(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await admin_with_layout(api, s3, bucket)
    await admin.patch(f"/api/v1/servers/{servers['dallas']['id']}", json={"is_active": False})
    # Detroit is inactive too: the next nearest US server is New York.
    assert (await admin.announce("a.txt", DATA))["upload"]["server"]["name"] == "newyork"
    await admin.patch(f"/api/v1/servers/{servers['newyork']['id']}", json={"is_on": False})
    assert (await admin.announce("b.txt", DATA))["upload"]["server"]["name"] not in ("newyork", "dallas")


@REAL_ONLY  # webhooks
async def test_the_real_seaweedfs_webhook_marks_the_upload_stored(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    answer = await admin.upload("notes.txt", DATA)
    stored = await admin.wait_stored(answer["file"]["id"])
    assert stored["zone"] == "USA" and stored["size"] == len(DATA)
    history = (await admin.get("/api/v1/history?event=file.stored")).expect(200)["items"]
    assert history[0]["object_id"] == stored["id"] and history[0]["data"]["server"] == "dallas"


async def quiet_server(
    admin: Session, s3: S3Bed, bucket: str, name: str = "dallas", **overrides: object
) -> dict[str, Any]:
    """The weed instance registered under another name: its own webhook then reaches no known server."""
    return await admin.add_server(s3, name, bucket, name=f"{name}-quiet", **overrides)


async def test_a_minio_event_marks_the_upload_stored(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket)
    answer = await admin.upload("report.pdf", DATA)
    key = object_key(answer["upload"])
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)["status"] == "uploading"
    event = {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": len(DATA), "eTag": "abc"}},
            }
        ],
    }
    for _ in range(2):  # delivered twice: the same result
        (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json=event, token=EVENTS_TOKEN)).expect(204)
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)["status"] == "stored"
    assert len((await admin.get("/api/v1/history?event=file.stored")).expect(200)["items"]) == 1


async def test_an_event_without_a_size_stores_only_what_a_head_finds_on_the_server(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket)
    answer = await admin.announce("never-sent.bin", DATA)  # announced, never PUT
    file_id, key = answer["file"]["id"], object_key(answer["upload"])
    minio = {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}],
    }
    seaweed = {"event_type": "create", "key": f"/buckets/{bucket}/{key}", "message": {"new_entry": {"name": key}}}
    for body in (minio, seaweed):
        (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json=body, token=EVENTS_TOKEN)).expect(204)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "uploading"
    assert await api.put_bytes(answer["upload"], DATA) == 200
    (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json=minio, token=EVENTS_TOKEN)).expect(204)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "stored"


async def test_events_for_unknown_objects_are_ignored_and_bad_calls_refused(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket)
    unknown = {
        "event_type": "create",
        "key": f"/buckets/{bucket}/nobody-knows",
        "message": {"new_entry": {"name": "x", "attributes": {"file_size": 3}}},
    }
    (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json=unknown, token=EVENTS_TOKEN)).expect(204)
    surrogate = (
        b'{"event_type": "create", "key": "/buckets/%s/\\ud800", "message": {"new_entry": '
        b'{"name": "x", "attributes": {"file_size": 3}}}}' % bucket.encode()
    )
    answer = await api.call(
        "POST",
        "/api/v1/events/s3/dallas-quiet",
        data=surrogate,
        token=EVENTS_TOKEN,
        headers={"Content-Type": "application/json"},
    )
    assert "key" in answer.problem(422, "invalid_field")["detail"]  # valid JSON, but no Unicode text
    (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json=unknown, token="wrong")).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json=unknown)).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/events/s3/atlantis", json=unknown, token=EVENTS_TOKEN)).problem(
        404, "server_not_found"
    )
    (await api.call("POST", "/api/v1/events/s3/dallas-quiet", json={"what": 1}, token=EVENTS_TOKEN)).problem(
        422, "unsupported_event"
    )
    (await api.call("POST", "/api/v1/events/s3/dallas-quiet", data="{", token=EVENTS_TOKEN)).problem(
        400, "malformed_json"
    )


OWN_TOKEN = "dallas-own-webhook-token-0123"  # a server's own events_token (any 16+ characters)


async def test_a_server_with_its_own_events_token_accepts_only_that_token_on_its_path(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket, events_token=OWN_TOKEN)  # dallas-quiet: its own token
    await quiet_server(admin, s3, bucket, "newyork", is_active=False)  # newyork-quiet: none, events.token
    other = await quiet_server(admin, s3, bucket, "capetown", is_active=False, events_token="capetown-own-token-4567")
    assert other["has_events_token"] is True
    unknown = {
        "event_type": "create",
        "key": f"/buckets/{bucket}/nobody-knows",
        "message": {"new_entry": {"name": "x", "attributes": {"file_size": 3}}},
    }
    own, shared = "/api/v1/events/s3/dallas-quiet", "/api/v1/events/s3/newyork-quiet"
    (await api.call("POST", own, json=unknown, token=OWN_TOKEN)).expect(204)
    (await api.call("POST", own, json=unknown, token=EVENTS_TOKEN)).problem(401, "unauthorized")  # not the global
    (await api.call("POST", own, json=unknown)).problem(401, "unauthorized")
    (await api.call("POST", shared, json=unknown, token=EVENTS_TOKEN)).expect(204)
    (await api.call("POST", shared, json=unknown, token=OWN_TOKEN)).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/events/s3/capetown-quiet", json=unknown, token=OWN_TOKEN)).problem(
        401, "unauthorized"
    )  # nor another server's own token
    (await api.call("POST", "/api/v1/events/s3/atlantis", json=unknown, token=OWN_TOKEN)).problem(
        401, "unauthorized"
    )  # an unknown name takes events.token: a wrong token learns no names
    (await api.call("POST", "/api/v1/events/s3/atlantis", json=unknown, token=EVENTS_TOKEN)).problem(
        404, "server_not_found"
    )
    answer = await admin.upload("own-token.txt", DATA)  # to dallas-quiet, the only active server
    key = object_key(answer["upload"])
    event = {
        "event_type": "create",
        "key": f"/buckets/{bucket}/{key}",
        "message": {"new_entry": {"attributes": {"file_size": len(DATA)}}},
    }
    (await api.call("POST", own, json=event, token=EVENTS_TOKEN)).problem(401, "unauthorized")
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)["status"] == "uploading"
    (await api.call("POST", own, json=event, token=OWN_TOKEN)).expect(204)
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)["status"] == "stored"


async def test_patching_the_events_token_to_null_gives_the_server_back_to_the_global_token(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    server = await quiet_server(admin, s3, bucket)
    assert server["has_events_token"] is False
    hook, unknown = (
        "/api/v1/events/s3/dallas-quiet",
        {
            "event_type": "create",
            "key": f"/buckets/{bucket}/x",
            "message": {"new_entry": {"attributes": {"file_size": 3}}},
        },
    )
    given = (await admin.patch(f"/api/v1/servers/{server['id']}", json={"events_token": OWN_TOKEN})).expect(200)
    assert given["has_events_token"] is True
    (await api.call("POST", hook, json=unknown, token=EVENTS_TOKEN)).problem(401, "unauthorized")
    (await api.call("POST", hook, json=unknown, token=OWN_TOKEN)).expect(204)
    kept = (await admin.patch(f"/api/v1/servers/{server['id']}", json={"location": "Dallas, TX"})).expect(200)
    assert kept["has_events_token"] is True  # a PATCH without the field keeps it
    cleared = (await admin.patch(f"/api/v1/servers/{server['id']}", json={"events_token": None})).expect(200)
    assert cleared["has_events_token"] is False
    (await api.call("POST", hook, json=unknown, token=OWN_TOKEN)).problem(401, "unauthorized")
    (await api.call("POST", hook, json=unknown, token=EVENTS_TOKEN)).expect(204)


async def test_complete_marks_the_upload_stored_once_the_object_is_there(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket)
    answer = await admin.announce("data.bin", DATA)
    file_id = answer["file"]["id"]
    (await admin.post(f"/api/v1/files/{file_id}/complete")).problem(409, "upload_incomplete")
    assert await api.put_bytes(answer["upload"], DATA) == 200
    done = (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    assert done["status"] == "stored" and done["zone"] == "USA"
    assert (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200) == done


async def test_the_sweep_finds_an_upload_whose_event_was_lost(make_api: object, weed: WeedCluster, bucket: str) -> None:
    clock = FakeClock()
    api = await make_api(uploads={"sweep_after": 0}, clock=clock)  # type: ignore[operator]
    admin = await api.user("root", admin=True)
    await quiet_server(admin, weed, bucket)
    answer = await admin.upload("lost-event.txt", DATA)
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)["status"] == "uploading"
    clock.advance(1)  # the upload is a second old: the sweep looks at it
    assert await api.app[appkeys.FILES].sweep_uploads() == 1
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)["status"] == "stored"


async def test_an_upload_that_never_arrives_is_given_up(make_api: object, s3: S3Bed, bucket: str) -> None:
    api = await make_api(store=store_of(s3), uploads={"sweep_after": 0, "abandon_after": 60})  # type: ignore[operator]
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket)
    answer = await admin.announce("never.txt", DATA)
    async with api.app[appkeys.DB].transaction() as tx:  # announced two minutes ago
        await tx.execute("UPDATE versions SET created_at = '2000-01-01T00:00:00.000Z'")
    assert await api.app[appkeys.FILES].sweep_uploads() == 0
    (await admin.get(f"/api/v1/files/{answer['file']['id']}")).problem(404, "file_not_found")
    deleted = (await admin.get("/api/v1/history?event=file.deleted")).expect(200)["items"]
    assert deleted[0]["data"] == {"name": "never.txt", "reason": "upload_never_arrived"}


async def test_a_download_is_on_the_nearest_holder_and_returns_the_same_bytes(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    answer = await admin.upload("ünï cödé+%.txt", DATA, ip=SOUTH_AFRICA_IP)
    file_id = answer["file"]["id"]
    await admin.wait_stored(file_id)
    link, body = await admin.download(file_id, ip=RUSSIA_IP)  # only Cape Town holds it
    assert body == DATA
    assert link["server"] == {"name": "capetown", "location": "Cape Town", "zone": "Africa"}
    status, _, headers = await api.fetch(link["url"])
    assert status == 200
    assert "filename*=UTF-8''%C3%BCn%C3%AF%20c%C3%B6d%C3%A9+%25.txt" in headers["Content-Disposition"]
    redirect = await admin.get(f"/api/v1/files/{file_id}/download?redirect=true", headers=from_ip(US_IP))
    assert redirect.status == 302
    assert redirect.headers["Location"].split("?")[0] == link["url"].split("?")[0]
    assert (await api.fetch(redirect.headers["Location"]))[1] == DATA


async def test_downloads_skip_holders_that_are_off_or_down(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, servers = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.upload("a.txt", DATA, ip=US_IP))["file"]["id"]
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()
    # 8.8.8.8 sits in Kansas: Dallas is the nearest of the two holders.
    assert (await admin.download(file_id, ip=US_IP))[0]["server"]["name"] == "dallas"
    await api.app[appkeys.SERVERS].set_health({servers["dallas"]["id"]: Health.DOWN})
    assert (await admin.download(file_id, ip=US_IP))[0]["server"]["name"] == "newyork"
    await api.app[appkeys.SERVERS].set_health({servers["dallas"]["id"]: Health.UP})
    assert (await admin.download(file_id, ip=US_IP))[0]["server"]["name"] == "dallas"
    await admin.patch(f"/api/v1/servers/{servers['dallas']['id']}", json={"is_on": False})
    assert (await admin.download(file_id, ip=US_IP))[0]["server"]["name"] == "newyork"


async def test_a_file_still_uploading_cannot_be_downloaded(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.announce("a.txt", DATA))["file"]["id"]
    (await admin.get(f"/api/v1/files/{file_id}/download")).problem(409, "file_not_ready")


async def test_no_holder_on_is_503(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(s3, "capetown", bucket)
    file_id = (await admin.upload("a.txt", DATA))["file"]["id"]
    await admin.wait_stored(file_id)
    await admin.patch(f"/api/v1/servers/{server['id']}", json={"is_on": False})
    (await admin.get(f"/api/v1/files/{file_id}/download")).problem(503, "no_replica_available")
    (await admin.post("/api/v1/files", json={"name": "b", "size": 1})).problem(503, "no_server_available")


async def test_a_new_version_keeps_the_old_one_until_it_lands(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(s3, "dallas", bucket)
    first = await admin.upload("doc.txt", b"version one")
    file_id = first["file"]["id"]
    await admin.wait_stored(file_id)
    old_key = object_key(first["upload"])
    second = await admin.announce("doc.txt", b"version two!", expect=200)
    assert second["file"]["id"] == file_id and second["file"]["status"] == "stored"
    assert second["upload"]["url"].split("?")[0] != first["upload"]["url"].split("?")[0]
    assert (await admin.download(file_id))[1] == b"version one"
    assert await api.put_bytes(second["upload"], b"version two!") == 200

    async def serves_version_two() -> bool:
        return (await admin.download(file_id))[1] == b"version two!"

    await wait_for(serves_version_two, "downloads to serve the new version")
    await api.app[appkeys.WORKER].run_until_idle()
    assert old_key not in await keys_in(api, s3, "dallas", bucket)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["size"] == len(b"version two!")


async def test_a_renamed_file_downloads_under_its_new_name_at_once(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.upload("old.txt", DATA))["file"]["id"]
    await admin.wait_stored(file_id)
    first, _ = await admin.download(file_id)
    again, _ = await admin.download(file_id)
    assert again["url"] == first["url"]  # signed once, handed out again within the minute
    await admin.patch(f"/api/v1/files/{file_id}", json={"name": "new.txt"})
    renamed = (await admin.get(f"/api/v1/files/{file_id}/download")).expect(200)
    status, _, headers = await api.fetch(renamed["url"])
    assert status == 200 and 'filename="new.txt"' in headers["Content-Disposition"]


async def test_rename_and_its_conflicts(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    a = (await admin.upload("a.txt", DATA))["file"]["id"]
    await admin.upload("b.txt", DATA)
    renamed = (await admin.patch(f"/api/v1/files/{a}", json={"name": "c.txt"})).expect(200)
    assert renamed["name"] == "c.txt"
    (await admin.patch(f"/api/v1/files/{a}", json={"name": "b.txt"})).problem(409, "name_taken")
    await admin.wait_stored(a)
    status, _, headers = await api.fetch((await admin.get(f"/api/v1/files/{a}/download")).expect(200)["url"])
    assert status == 200 and 'filename="c.txt"' in headers["Content-Disposition"]
    item = (await admin.get("/api/v1/history?event=file.renamed")).expect(200)["items"][0]
    assert item["data"] == {"old_name": "a.txt", "new_name": "c.txt"}


async def test_delete_answers_at_once_and_removes_every_object(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.upload("gone.txt", DATA))["file"]["id"]
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()
    assert await object_on(api, s3, "newyork", bucket, file_id)
    (await admin.delete(f"/api/v1/files/{file_id}")).expect(204)
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    (await admin.delete(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    await api.app[appkeys.WORKER].run_until_idle()
    for server in ("dallas", "newyork", "detroit", "capetown", "vladivostok"):
        assert await keys_in(api, s3, server, bucket) == set(), server
    # The name is free again.
    await admin.upload("gone.txt", DATA)


async def test_files_are_listed_newest_first_in_pages_and_searched(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    for name in ("alpha.txt", "beta.txt", "gamma_1.txt", "Alphabet.md", "100%.txt"):
        await admin.announce(name, DATA)
    first = (await admin.get("/api/v1/files?limit=2")).expect(200)
    assert [f["name"] for f in first["items"]] == ["100%.txt", "Alphabet.md"]
    rest = (await admin.get(f"/api/v1/files?limit=10&cursor={first['next_cursor']}")).expect(200)
    assert [f["name"] for f in rest["items"]] == ["gamma_1.txt", "beta.txt", "alpha.txt"]
    assert rest["next_cursor"] is None
    found = (await admin.get("/api/v1/files", params={"q": "alpha"})).expect(200)["items"]
    assert sorted(f["name"] for f in found) == ["Alphabet.md", "alpha.txt"]
    assert [f["name"] for f in (await admin.get("/api/v1/files", params={"q": "%"})).expect(200)["items"]] == [
        "100%.txt"
    ]
    assert [f["name"] for f in (await admin.get("/api/v1/files", params={"q": "a_1"})).expect(200)["items"]] == [
        "gamma_1.txt"
    ]


async def test_another_users_file_is_404_everywhere(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.upload("mine.txt", DATA))["file"]["id"]
    await admin.wait_stored(file_id)
    eve = await api.user(
        "eve",
        permissions=["can_view_file", "can_rename_file", "can_delete_file", "can_upload_file", "can_view_cdnserver"],
    )
    for method, path, body in [
        ("GET", "", None),
        ("GET", "/download", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/complete", None),
    ]:
        answer = await eve.call(method, f"/api/v1/files/{file_id}{path}", json=body)
        answer.problem(404, "file_not_found")
    # Except where it is: the view of every holder of can_view_cdnserver, by contract.
    assert (await eve.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
    assert (await eve.get("/api/v1/files")).expect(200)["items"] == []
    assert (await eve.get("/api/v1/history")).expect(200)["items"] == []
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["name"] == "mine.txt"


async def test_history_records_every_file_action(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.upload("h.txt", DATA))["file"]["id"]
    await admin.wait_stored(file_id)
    await admin.download(file_id)
    await admin.patch(f"/api/v1/files/{file_id}", json={"name": "h2.txt"})
    await admin.delete(f"/api/v1/files/{file_id}")
    items = (await admin.get("/api/v1/history?limit=5")).expect(200)
    events = [i["event"] for i in items["items"]]
    assert events == ["file.deleted", "file.renamed", "file.downloaded", "file.stored", "file.uploaded"]
    assert {i["object_id"] for i in items["items"]} == {file_id}
    assert items["items"][2]["data"] == {"name": "h.txt", "server": "dallas"}
    more = (await admin.get(f"/api/v1/history?limit=5&cursor={items['next_cursor']}")).expect(200)["items"]
    assert [i["event"] for i in more] == ["server.created"] * 5
    (await admin.get("/api/v1/history?event=file.exploded")).problem(422, "invalid_field")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "size": 1}, "name"),
        ({"name": "a/b", "size": 1}, "name"),
        ({"name": "x" * 256, "size": 1}, "name"),
        ({"name": "bell\x07", "size": 1}, "name"),
        ({"name": "ok", "size": -1}, "size"),
        ({"name": "ok", "size": "12"}, "size"),
        ({"name": "ok", "size": 1.5}, "size"),
        ({"name": "ok", "size": 1, "content_type": "text"}, "content_type"),
        ({"size": 1}, "name"),
    ],
)
async def test_bad_announcements_are_422_naming_the_field(api: Api, body: dict[str, object], field: str) -> None:
    alice = await api.user("alice")
    problem = (await alice.post("/api/v1/files", json=body)).problem(422, "invalid_field")
    assert problem["detail"].startswith(f"{field}:")


async def test_too_large_a_file_is_413_and_an_unknown_field_422(make_api: object) -> None:
    api = await make_api(uploads={"max_file_size": 1000})  # type: ignore[operator]
    alice = await api.user("alice")
    (await alice.post("/api/v1/files", json={"name": "big", "size": 1001})).problem(413, "file_too_large")
    (await alice.post("/api/v1/files", json={"name": "big", "size": 1, "colour": "red"})).problem(422, "unknown_field")
    (await alice.patch("/api/v1/files/not-a-uuid", json={"name": "x"})).problem(404, "file_not_found")
    (await alice.patch("/api/v1/files/not-a-uuid", json={"name": ""})).problem(422, "invalid_field")


async def test_a_name_is_stored_in_unicode_normal_form(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    decomposed = "cafe\u0301.txt"
    answer = await admin.announce(decomposed, DATA)
    assert answer["file"]["name"] == "caf\u00e9.txt"
    # The same name in the other normal form is the same file: a new version.
    assert (await admin.announce("caf\u00e9.txt", DATA, expect=200))["file"]["id"] == answer["file"]["id"]


async def test_file_servers_shows_present_and_pending_copies(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    file_id = (await admin.upload("w.txt", DATA))["file"]["id"]
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()
    items = (await admin.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
    # Each copy: its server as a ServerRef (no id, endpoint or credentials) and its status.
    sites = {site.name: site for site in ORIGINAL_LAYOUT}
    assert items == [
        {"server": {"name": name, "location": sites[name].location, "zone": "USA"}, "status": "present"}
        for name in ("dallas", "newyork")
    ]
    alice = await api.user("alice")
    (await alice.get(f"/api/v1/files/{file_id}/servers")).problem(403, "forbidden")


async def test_the_file_list_includes_where_each_file_is_in_one_answer(api: Api, s3: S3Bed, bucket: str) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    stored = (await admin.upload("w.txt", DATA))["file"]["id"]
    await admin.wait_stored(stored)
    await api.app[appkeys.WORKER].run_until_idle()
    uploading = (await admin.announce("later.txt", DATA))["file"]["id"]
    listed = (await admin.get("/api/v1/files", params={"include": "servers"})).expect(200)["items"]
    where = {f["id"]: [(r["server"]["name"], r["status"]) for r in f["servers"]] for f in listed}
    assert where == {stored: [("dallas", "present"), ("newyork", "present")], uploading: []}
    # The same as the per-file route says, and nothing extra without include.
    alone = (await admin.get(f"/api/v1/files/{stored}/servers")).expect(200)["items"]
    assert next(f["servers"] for f in listed if f["id"] == stored) == alone
    assert all("servers" not in f for f in (await admin.get("/api/v1/files")).expect(200)["items"])
    alice = await api.user("alice")
    (await alice.get("/api/v1/files", params={"include": "servers"})).problem(403, "forbidden")
    (await alice.get("/api/v1/files", params={"include": "everything"})).problem(422, "invalid_field")


async def test_announcing_too_many_uploads_a_minute_is_429(make_api: object, s3: S3Bed, bucket: str) -> None:
    api = await make_api(store=store_of(s3), uploads={"max_per_minute": 3})  # type: ignore[operator]
    admin, _ = await admin_with_layout(api, s3, bucket)
    for n in range(3):
        await admin.announce(f"f{n}.txt", DATA)
    answer = await admin.post("/api/v1/files", json={"name": "f3.txt", "size": 1}, headers=from_ip(US_IP))
    answer.problem(429, "too_many_uploads")
    assert 0 < int(answer.headers["Retry-After"]) <= 60
    alice = await api.user("alice")  # the limit is per user
    (await alice.post("/api/v1/files", json={"name": "mine.txt", "size": 1}, headers=from_ip(US_IP))).expect(201)


async def test_webhooks_duplicated_reordered_or_oversized_change_nothing(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await quiet_server(admin, s3, bucket)
    answer = await admin.upload("order.txt", DATA)
    file_id = answer["file"]["id"]
    key = object_key(answer["upload"])
    path = f"/buckets/{bucket}/{key}"
    created = {"event_type": "create", "key": path, "message": {"new_entry": {"attributes": {"file_size": len(DATA)}}}}
    deleted = {"event_type": "delete", "key": path, "message": {"old_entry": {"name": key}}}
    wrong_size = {"event_type": "create", "key": path, "message": {"new_entry": {"attributes": {"file_size": 1}}}}
    hook = "/api/v1/events/s3/dallas-quiet"
    # A removal first, then a creation of the wrong size: neither stores the upload.
    for body in (deleted, wrong_size):
        (await api.call("POST", hook, json=body, token=EVENTS_TOKEN)).expect(204)
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "uploading"
    for body in (created, created, deleted, created):  # the real one, again, out of order
        (await api.call("POST", hook, json=body, token=EVENTS_TOKEN)).expect(204)
    stored = (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert stored["status"] == "stored"
    assert len((await admin.get("/api/v1/history?event=file.stored")).expect(200)["items"]) == 1
    assert (await admin.download(file_id))[1] == DATA
    oversized = {"event_type": "create", "key": path, "message": {"padding": "x" * (2 << 20)}}
    (
        await api.call(
            "POST",
            hook,
            data=io.BytesIO(json.dumps(oversized).encode()),
            token=EVENTS_TOKEN,
            headers={"Content-Type": "application/json"},
        )
    ).problem(413, "request_too_large")


async def test_an_announcement_answers_the_file_as_a_read_right_after_shows_it(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)

    async def announced_as_read(name: str, data: bytes, expect: int, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "size": len(data), "content_type": "text/plain", **extra}
        answer = (await admin.post("/api/v1/files", json=body, headers=from_ip(US_IP))).expect(expect)
        assert answer["file"] == (await admin.get(f"/api/v1/files/{answer['file']['id']}")).expect(200)
        return dict(answer)

    first = await announced_as_read("a.txt", DATA, 201, sha256="ab" * 32)  # a new file: this upload
    assert first["file"]["status"] == "uploading" and first["file"]["sha256"] == "ab" * 32
    await announced_as_read("a.txt", DATA * 2, 200)  # its first upload still open: the latest upload
    stored = await admin.upload("b.txt", DATA)
    await admin.wait_stored(stored["file"]["id"])
    # (its copies learn its SHA-256: not between the answer and the read)
    await api.app[appkeys.WORKER].run_until_idle()
    again = await announced_as_read("b.txt", DATA * 3, 200)  # a new version of a stored file: its stored content
    assert again["file"]["status"] == "stored" and again["file"]["size"] == len(DATA)


async def test_history_rows_have_distinct_version_4_uuids_and_millisecond_utc_times(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin, _ = await admin_with_layout(api, s3, bucket)
    stored = await admin.upload("c.txt", DATA)
    await admin.wait_stored(stored["file"]["id"])
    for _ in range(3):
        await admin.download(stored["file"]["id"])
    rows = (await admin.get("/api/v1/history?limit=100")).expect(200)["items"]
    assert len(rows) >= 5 and len({r["id"] for r in rows}) == len(rows)  # (the layout's servers too)
    for row in rows:
        assert uuid.UUID(row["id"]).version == 4 and str(uuid.UUID(row["id"])) == row["id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["created_at"])
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
