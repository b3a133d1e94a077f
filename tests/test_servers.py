"""The storage server registry, against real SeaweedFS servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from apihelp import US_IP, Api, Session, wait_for
from conftest import MakeApi
from weedbed import ACCESS_KEY, SECRET_KEY

from cdnstore import appkeys
from cdnstore.db import connect
from cdnstore.job_queue import Job
from cdnstore.models import S3Target
from testbed.ports import unused_port
from testbed.seaweed import WeedCluster


async def test_adding_a_server_creates_its_bucket(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "capetown", bucket)
    assert server["name"] == "capetown" and server["zone"] == "Africa" and server["location"] == "Cape Town"
    assert server["bucket"] == bucket and server["region"] == "us-east-1"
    assert server["is_on"] is True and server["is_active"] is True and server["health"] == "up"
    assert (server["files"], server["bytes"], server["pending_jobs"]) == (0, 0, 0)
    storage = api.app[appkeys.STORAGE]
    assert await storage.head_bucket(weed.target("capetown", bucket), timeout=5)


async def test_wrong_credentials_are_422_and_nothing_is_registered(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, secret_key="wrong-secret"))
    problem = answer.problem(422, "storage_check_failed")
    assert "endpoint_url" in problem["detail"]
    assert (await admin.get("/api/v1/servers")).expect(200)["items"] == []


async def test_an_unreachable_endpoint_is_422(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    body = _body(weed, bucket, endpoint_url=f"http://127.0.0.1:{unused_port()}")
    (await admin.post("/api/v1/servers", json=body)).problem(422, "storage_check_failed")


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


async def test_a_servers_events_token_is_never_in_an_answer_and_stored_only_as_its_hash(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    token, later = "capetown-webhook-token-one", "capetown-webhook-token-two"
    created = await admin.add_server(weed, "capetown", bucket, events_token=token)
    answers = [
        created,
        (await admin.get("/api/v1/servers")).expect(200),
        (await admin.get(f"/api/v1/servers/{created['id']}")).expect(200),
        (await admin.patch(f"/api/v1/servers/{created['id']}", json={"events_token": later})).expect(200),
        (await admin.get("/api/v1/history")).expect(200),
        (await api.call("GET", "/api/openapi.json")).expect(200),
    ]
    assert created["has_events_token"] is True and answers[3]["has_events_token"] is True
    for answer in answers:
        text = json.dumps(answer)
        assert token not in text and later not in text
        assert "events_token_hash" not in text and hashlib.sha256(later.encode()).hexdigest() not in text
    schema = answers[-1]["components"]["schemas"]["ServerOut"]["properties"]
    assert "events_token" not in schema and schema["has_events_token"]["type"] == "boolean"
    rows = await api.app[appkeys.DB].fetchall("SELECT * FROM servers")
    assert [r["events_token_hash"] for r in rows] == [hashlib.sha256(later.encode()).hexdigest()]
    stored = json.dumps([dict(r) for r in rows]) + json.dumps(
        [dict(r) for r in await api.app[appkeys.DB].fetchall("SELECT * FROM history")]
    )
    assert token not in stored and later not in stored


async def test_a_server_can_be_changed_and_removed(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "detroit", bucket)
    assert server["is_active"] is False
    changed = (
        await admin.patch(
            f"/api/v1/servers/{server['id']}", json={"is_active": True, "location": "Detroit, MI", "latitude": 42.0}
        )
    ).expect(200)
    assert (changed["is_active"], changed["location"], changed["latitude"]) == (True, "Detroit, MI", 42.0)
    assert changed["updated_at"] >= server["updated_at"]
    assert (await admin.get(f"/api/v1/servers/{server['id']}")).expect(200) == changed
    (await admin.delete(f"/api/v1/servers/{server['id']}")).expect(204)
    (await admin.get(f"/api/v1/servers/{server['id']}")).problem(404, "server_not_found")
    (await admin.delete(f"/api/v1/servers/{server['id']}")).problem(404, "server_not_found")


# A trigger that pauses a removal job's DELETE of one server's replica after it has locked that replica row
# and before the replica counters' trigger (fired after it: PostgreSQL fires a table's triggers by name)
# updates the server row: the window in which DELETE /servers deadlocked with the job (it locked the
# server row, then waited for the replica row).
REMOVAL_PAUSED = """
CREATE FUNCTION removal_paused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.server_id = {server_id} AND current_query() LIKE 'DELETE FROM replicas%' THEN
        PERFORM pg_sleep(0.5);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER a_removal_paused AFTER DELETE ON replicas FOR EACH ROW EXECUTE FUNCTION removal_paused();
"""


async def one_file_on_two_servers(
    make_api: MakeApi, weed: WeedCluster, bucket: str, name: str
) -> tuple[Api, Session, dict[str, Any], dict[str, Any], int]:
    """The app, its admin, a file stored on New York and Dallas (every job done), New York's server answer
    and internal id."""
    api = await make_api()
    admin = await api.user("root", admin=True)
    servers = [await admin.add_server(weed, city, bucket, is_active=True) for city in ("newyork", "dallas")]
    answer = await admin.upload(name, name.encode() * 100, ip=US_IP)
    await admin.wait_stored(answer["file"]["id"])
    await api.app[appkeys.WORKER].run_until_idle()
    registry = api.app[appkeys.SERVERS]
    return api, admin, answer, servers[0], registry.get(servers[0]["id"]).pk


@pytest.mark.parametrize("engine", ["postgres"])  # (SQLite has one writer: its transactions never cross)
async def test_removing_a_server_while_one_of_its_removal_jobs_finishes_does_not_deadlock(
    make_api: MakeApi, weed: WeedCluster, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cdnstore.db")
    api, admin, answer, server, doomed = await one_file_on_two_servers(make_api, weed, bucket, "doomed.bin")
    worker, db = api.app[appkeys.WORKER], api.app[appkeys.DB]
    async with db.transaction() as tx:
        await tx.execute(REMOVAL_PAUSED.format(server_id=doomed))
    remove, failures = worker.handlers["remove"], []

    async def watched(job: Job) -> None:
        try:
            await remove(job)
        except Exception as exc:
            failures.append(exc)
            raise

    worker.handlers["remove"] = watched
    (await admin.delete(f"/api/v1/files/{answer['file']['id']}")).expect(204)

    async def removal_paused() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND query LIKE 'DELETE FROM replicas%'"
            )
        )

    await wait_for(removal_paused, "the removal job's transaction paused holding the replica row")
    (await admin.delete(f"/api/v1/servers/{server['id']}")).expect(204)
    await worker.run_until_idle()
    assert failures == []
    # Nor did the deletion lose a deadlock and run again (Database.retried would hide it from the answer).
    assert not [r for r in caplog.records if "lost to another" in r.getMessage()]
    assert await db.fetchval("SELECT count(*) FROM replicas") == 0


@pytest.mark.parametrize("engine", ["postgres"])
async def test_removing_a_server_that_loses_a_deadlock_is_run_again_not_answered_503(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    api, admin, _, server, doomed = await one_file_on_two_servers(make_api, weed, bucket, "kept.bin")
    db, other = api.app[appkeys.DB], connect(api.app[appkeys.CONFIG].database)

    async def deletion_waits() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'DELETE FROM servers%'"
            )
        )

    await other.open()
    try:
        async with other.transaction() as tx:  # a transaction that locks in the other order: replica, server
            await tx.execute("SELECT 1 FROM replicas WHERE server_id = ? FOR UPDATE", (doomed,))
            deleting = asyncio.create_task(admin.delete(f"/api/v1/servers/{server['id']}"))
            await wait_for(deletion_waits, "the deletion waiting for the replica row")
            # The deletion waited first: PostgreSQL finds the deadlock there and aborts it.
            await tx.execute("SELECT 1 FROM servers WHERE id = ? FOR UPDATE", (doomed,))
        (await deleting).expect(204)
    finally:
        await other.close()
    (await admin.get(f"/api/v1/servers/{server['id']}")).problem(404, "server_not_found")


async def test_changing_credentials_checks_them_again(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "newyork", bucket)
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"secret_key": "wrong-secret"})).problem(
        422, "storage_check_failed"
    )
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
    cases: dict[str, dict[str, object]] = {
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
    assert (
        (await admin.post("/api/v1/servers", json=missing)).problem(422, "invalid_field")["detail"].startswith("zone")
    )
    (await admin.post("/api/v1/servers", json=_body(weed, bucket, colour="red"))).problem(422, "unknown_field")
    server = await admin.add_server(weed, "capetown", bucket)
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={})).problem(422, "invalid_field")
    (await admin.patch(f"/api/v1/servers/{server['id']}", json={"zone": None})).problem(422, "invalid_field")


@pytest.mark.parametrize("token", ["x" * 15, "", "has a space in it!", 1234567890123456789])
async def test_an_events_token_under_16_characters_or_not_a_plain_string_is_422_naming_it(
    api: Api, weed: WeedCluster, bucket: str, token: object
) -> None:
    admin = await api.user("root", admin=True)
    answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, events_token=token))
    assert answer.problem(422, "invalid_field")["detail"].startswith("events_token"), answer.body
    assert (await admin.get("/api/v1/servers")).expect(200)["items"] == []
    server = await admin.add_server(weed, "capetown", bucket)
    answer = await admin.patch(f"/api/v1/servers/{server['id']}", json={"events_token": token})
    assert answer.problem(422, "invalid_field")["detail"].startswith("events_token"), answer.body
    assert (await admin.get(f"/api/v1/servers/{server['id']}")).expect(200)["has_events_token"] is False


def _body(weed: WeedCluster, bucket: str, /, **overrides: object) -> dict[str, object]:
    return {
        "name": "capetown",
        "endpoint_url": weed.instance("capetown").endpoint_url,
        "bucket": bucket,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "location": "Cape Town",
        "zone": "Africa",
        "latitude": -33.92,
        "longitude": 18.42,
        "is_on": True,
        "is_active": True,
        **overrides,
    }


class FakeS3:
    """A tiny HTTP server that answers every request with one canned answer and records what it saw."""

    def __init__(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        return web.Response(status=self.status, text=self.body, headers=self.headers, content_type="application/xml")


StartFake = Callable[..., Awaitable[FakeS3]]


@pytest.fixture
def fake_s3(aiohttp_server: Any) -> StartFake:
    async def start(status: int, body: str = "", headers: dict[str, str] | None = None) -> FakeS3:
        fake = FakeS3(status, body, headers)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fake.handle)
        server = await aiohttp_server(app, host="127.0.0.1")
        fake.url = f"http://127.0.0.1:{server.port}"
        return fake

    return start


@pytest.mark.parametrize(
    "endpoint_url",
    [
        "http://169.254.169.254",
        "http://169.254.170.2:8333",
        "http://[fe80::1]:8333",
        "http://[fd00:ec2::254]",
        "http://[::ffff:169.254.169.254]",
        "http://[64:ff9b::a9fe:a9fe]",
        "http://2852039166",  # a name that resolves to 169.254.169.254 (decimal IPv4)
        "http://cdnkey:secret@127.0.0.1:8333",
        "http://user@127.0.0.1:8333",
    ],
)
async def test_link_local_metadata_and_user_info_endpoints_are_refused(
    api: Api, weed: WeedCluster, bucket: str, endpoint_url: str
) -> None:
    admin = await api.user("root", admin=True)
    answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, endpoint_url=endpoint_url))
    assert answer.problem(422, "endpoint_not_allowed")["detail"].startswith("endpoint_url")
    assert (await admin.get("/api/v1/servers")).expect(200)["items"] == []
    server = await admin.add_server(weed, "capetown", bucket)  # loopback (private too) stays allowed
    moved = await admin.patch(
        f"/api/v1/servers/{server['id']}",
        json={"endpoint_url": endpoint_url, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
    )
    moved.problem(422, "endpoint_not_allowed")
    assert (await admin.get(f"/api/v1/servers/{server['id']}")).expect(200)["endpoint_url"] == server["endpoint_url"]


async def test_a_new_endpoint_url_needs_the_credentials_again(
    api: Api, weed: WeedCluster, bucket: str, fake_s3: StartFake
) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "capetown", bucket)
    elsewhere = await fake_s3(200)
    for partial in ({}, {"access_key": ACCESS_KEY}, {"secret_key": SECRET_KEY}):
        answer = await admin.patch(f"/api/v1/servers/{server['id']}", json={"endpoint_url": elsewhere.url, **partial})
        missing = "access_key" if "access_key" not in partial else "secret_key"
        assert answer.problem(422, "invalid_field")["detail"].startswith(missing)
    assert elsewhere.seen == []  # the stored credentials never went to the new address
    other = weed.instance("newyork").endpoint_url
    moved = (
        await admin.patch(
            f"/api/v1/servers/{server['id']}",
            json={"endpoint_url": other, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
        )
    ).expect(200)
    assert moved["endpoint_url"] == other
    same = await admin.patch(f"/api/v1/servers/{server['id']}", json={"endpoint_url": other, "zone": "Z"})
    assert same.expect(200)["zone"] == "Z"  # the same address is not a new one


async def test_every_failed_check_is_one_code_and_one_sentence_the_log_says_which_step(
    api: Api, weed: WeedCluster, bucket: str, fake_s3: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    # (Checked on main: no answer, refused credentials and an error status were three codes and three
    # sentences, enough to tell closed ports from open ones and S3 servers from other services.)
    admin = await api.user("root", admin=True)
    denied = await fake_s3(
        403, "<Error><Code>AccessDenied</Code><Message>internal-secret-9f3a from 10.0.0.7</Message></Error>"
    )
    failing = await fake_s3(500, "<Error><Code>X</Code><Message>internal-secret-9f3a</Message></Error>")
    refusing = await fake_s3(400, "<Error><Code>X</Code><Message>internal-secret-9f3a</Message></Error>")
    endpoints = [  # (the step the log names, the address)
        ("storage_auth_failed", denied.url),
        ("storage_error", failing.url),
        ("storage_error", refusing.url),
        ("storage_unreachable", f"http://127.0.0.1:{unused_port()}"),
    ]
    problems = []
    with caplog.at_level(logging.WARNING, logger="cdnstore.servers"):
        for step, url in endpoints:
            answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, endpoint_url=url))
            problem = answer.problem(422, "storage_check_failed")
            assert "internal-secret-9f3a" not in json.dumps(problem) and "10.0.0.7" not in json.dumps(problem)
            problems.append(problem)
            logged = [r.getMessage() for r in caplog.records if url in r.getMessage()]
            assert logged and f"({step})" in logged[-1], (step, logged)
    assert all(p == problems[0] for p in problems), problems  # nothing tells one failure from another
    assert denied.seen and failing.seen and refusing.seen  # each was asked
    assert "access denied (Forbidden)" in caplog.text  # the operator reads what the server said


async def test_cloud_metadata_addresses_are_refused_before_any_connection(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    # (Checked on main: Alibaba's and Oracle's addresses went on to the bucket check.)
    admin = await api.user("root", admin=True)
    for host in ("100.100.100.200", "192.0.0.192", "[::ffff:100.100.100.200]", "[fd20:ce::254]"):
        answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, endpoint_url=f"http://{host}:9000"))
        assert answer.problem(422, "endpoint_not_allowed")["field"] == "endpoint_url", host
    assert (await admin.get("/api/v1/servers")).expect(200)["items"] == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_storage_and_health_requests_never_follow_a_redirect(
    api: Api, weed: WeedCluster, bucket: str, fake_s3: StartFake, status: int
) -> None:
    admin = await api.user("root", admin=True)
    target = await fake_s3(200)
    redirector = await fake_s3(status, headers={"Location": f"{target.url}/{bucket}"})
    answer = await admin.post("/api/v1/servers", json=_body(weed, bucket, endpoint_url=redirector.url))
    assert answer.status == 422, answer.body
    storage = api.app[appkeys.STORAGE]
    s3 = S3Target(redirector.url, bucket, "us-east-1", ACCESS_KEY, SECRET_KEY)
    assert await storage.head_bucket(s3, timeout=5) is False  # the health check
    await storage.forget(s3)
    assert redirector.seen and target.seen == []  # never contacted: neither request nor credentials
