"""The storage server registry, against real SeaweedFS servers."""

from __future__ import annotations

import json

from apihelp import Api
from weedbed import ACCESS_KEY, SECRET_KEY, unused_port

from cdnstore import appkeys
from cdnstore.seaweed import WeedCluster


async def test_adding_a_server_creates_its_bucket(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "capetown", bucket)
    assert server["name"] == "capetown" and server["zone"] == "Africa" and server["location"] == "Cape Town"
    assert server["bucket"] == bucket and server["region"] == "us-east-1"
    assert server["is_on"] is True and server["is_active"] is True and server["health"] == "up"
    assert (server["files"], server["bytes"], server["pending_jobs"]) == (0, 0, 0)
    storage = api.app[appkeys.STORAGE]
    assert await storage.head_bucket(weed.target("capetown", bucket), timeout=5)


async def test_wrong_credentials_are_422_and_nothing_is_registered(api: Api, weed: WeedCluster,
                                                                   bucket: str) -> None:
    admin = await api.user("root", admin=True)
    answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, secret_key="wrong-secret"))
    problem = answer.problem(422, "storage_auth_failed")
    assert "endpoint_url" in problem["detail"]
    assert (await admin.get("/api/v1/servers")).expect(200)["items"] == []


async def test_an_unreachable_endpoint_is_422(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    body = _body(weed, bucket, endpoint_url=f"http://127.0.0.1:{unused_port()}")
    (await admin.post("/api/v1/servers", json=body)).problem(422, "storage_unreachable")


async def test_a_duplicate_name_is_409(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "capetown", bucket)
    (await admin.post("/api/v1/servers", json=_body(weed, bucket))).problem(409, "name_taken")
    other = await admin.add_server(weed, "dallas", bucket)
    (await admin.patch(f"/api/v1/servers/{other['id']}", json={"name": "capetown"})).problem(409, "name_taken")


async def test_the_secret_key_is_never_in_an_answer(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    created = await admin.add_server(weed, "capetown", bucket)
    answers = [
        created,
        (await admin.get("/api/v1/servers")).expect(200),
        (await admin.get(f"/api/v1/servers/{created['id']}")).expect(200),
        (await admin.patch(f"/api/v1/servers/{created['id']}", json={"secret_key": SECRET_KEY})).expect(200),
        (await api.call("GET", "/api/openapi.json")).expect(200)["components"]["schemas"]["ServerOut"],
    ]
    for answer in answers:
        text = json.dumps(answer)
        assert SECRET_KEY not in text
        assert "secret_key" not in text
    assert "access_key" not in json.dumps(created)


async def test_a_server_can_be_changed_and_removed(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "detroit", bucket)
    assert server["is_active"] is False
    changed = (await admin.patch(f"/api/v1/servers/{server['id']}",
                                 json={"is_active": True, "location": "Detroit, MI", "latitude": 42.0})
               ).expect(200)
    assert (changed["is_active"], changed["location"], changed["latitude"]) == (True, "Detroit, MI", 42.0)
    assert changed["updated_at"] >= server["updated_at"]
    assert (await admin.get(f"/api/v1/servers/{server['id']}")).expect(200) == changed
    (await admin.delete(f"/api/v1/servers/{server['id']}")).expect(204)
    (await admin.get(f"/api/v1/servers/{server['id']}")).problem(404, "server_not_found")
    (await admin.delete(f"/api/v1/servers/{server['id']}")).problem(404, "server_not_found")


async def test_changing_credentials_checks_them_again(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "newyork", bucket)
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"secret_key": "wrong-secret"})).problem(
        422, "storage_auth_failed")
    fresh = bucket + "-moved"
    moved = (await admin.patch(f"/api/v1/servers/{server['id']}", json={"bucket": fresh})).expect(200)
    assert moved["bucket"] == fresh
    assert await api.app[appkeys.STORAGE].head_bucket(weed.target("newyork", fresh), timeout=5)


async def test_server_changes_are_in_the_admins_history(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "dallas", bucket)
    await admin.patch(f"/api/v1/servers/{server['id']}", json={"is_on": False})
    await admin.delete(f"/api/v1/servers/{server['id']}")
    rows = await api.app[appkeys.DB].fetchall("SELECT event, object_id, data FROM history ORDER BY id")
    assert [r["event"] for r in rows] == ["server.created", "server.updated", "server.deleted"]
    assert {r["object_id"] for r in rows} == {server["id"]}
    assert json.loads(rows[1]["data"])["changes"] == {"is_on": False}


async def test_bad_server_fields_are_422_naming_the_field(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    cases = {
        "latitude": {"latitude": 91},
        "longitude": {"longitude": "east"},
        "bucket": {"bucket": "UPPER"},
        "name": {"name": "has space"},
        "endpoint_url": {"endpoint_url": "ftp://x"},
        "is_on": {"is_on": "yes"},
    }
    for field, override in cases.items():
        answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, **override))
        assert answer.problem(422, "invalid_field")["detail"].startswith(field), answer.body
    missing = {k: v for k, v in _body(weed, bucket).items() if k != "zone"}
    assert (await admin.post("/api/v1/servers", json=missing)).problem(422, "invalid_field")["detail"] \
        .startswith("zone")
    (await admin.post("/api/v1/servers", json=_body(weed, bucket, colour="red"))).problem(422, "unknown_field")
    server = await admin.add_server(weed, "capetown", bucket)
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={})).problem(422, "invalid_field")
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"zone": None})).problem(422, "invalid_field")


def _body(weed: WeedCluster, bucket: str, /, **overrides: object) -> dict[str, object]:
    return {"name": "capetown", "endpoint_url": weed.instance("capetown").endpoint_url, "bucket": bucket,
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "location": "Cape Town", "zone": "Africa",
            "latitude": -33.92, "longitude": 18.42, "is_on": True, "is_active": True, **overrides}
