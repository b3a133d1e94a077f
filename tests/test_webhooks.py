"""Outgoing webhooks against a real HTTP receiver in a child process (tests/webhook_receiver.py) and the real
SeaweedFS servers: users' and the fleet's events, Standard Webhooks signatures checked by a verifier written
here from the specification, the delivery log, test events, and the SSRF refusals. Both engines. What the
receiver's and the daemon's deaths do is tests/test_webhook_faults.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from apihelp import Api, Session, stored_and_copied, wait_for
from conftest import MakeApi
from multidict import CIMultiDict
from test_scrub import BAD, USA, deep_scrub, deep_setup, tamper
from webhook_receiver import Receiver

from cdnstore import appkeys
from cdnstore.db import tx_fetchone
from cdnstore.job_queue import Job
from cdnstore.models import Health
from testbed.ports import unused_port
from testbed.seaweed import WeedCluster

# Deliveries to the receiver on 127.0.0.1, a short timeout and quick retries: a test waits seconds, not a day.
WEBHOOKS = {"allow_private": True, "timeout": 2, "backoff_base": 0.05, "backoff_max": 0.5, "poll_interval": 0.1}
DATA = b"an event-worthy file\n" * 50


def verify(secret: str, headers: dict[str, str], body: str, tolerance: int = 300) -> dict[str, Any]:
    """The Standard Webhooks verification, written from the specification (standardwebhooks.com, "Verifying
    webhooks"): the signed content is `id.timestamp.body`; the key is the secret's base64 after `whsec_`; the
    header holds space-separated `v1,<base64 HMAC-SHA256>` signatures, any of which may match; a timestamp
    far from now is refused (replay)."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(stamp)) <= tolerance, "timestamp outside the tolerance"
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, f"{msg_id}.{stamp}.{body}".encode(), hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert any(hmac.compare_digest(expected, given) for given in headers["webhook-signature"].split(" "))
    payload: dict[str, Any] = json.loads(body)
    return payload


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    folder = tmp_path / "receiver"
    folder.mkdir()
    made = Receiver(folder, unused_port())
    await made.start()
    yield made
    await made.kill()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api(webhooks=WEBHOOKS)


async def subscribe(user: Session, url: str, *events: str) -> dict[str, Any]:
    return dict((await user.post("/api/v1/webhooks", json={"url": url, "events": list(events)})).expect(201))


async def log_of(user: Session, webhook: dict[str, Any]) -> list[dict[str, Any]]:
    return list((await user.get(f"/api/v1/webhooks/{webhook['id']}/deliveries")).expect(200)["items"])


async def delivered(user: Session, webhook: dict[str, Any], count: int, within: float = 15) -> list[dict[str, Any]]:
    """The webhook's log once `count` deliveries in it are delivered (newest first)."""

    async def done() -> list[dict[str, Any]] | None:
        items = await log_of(user, webhook)
        return items if sum(i["status"] == "delivered" for i in items) >= count else None

    return list(await wait_for(done, f"{count} deliveries of {webhook['url']}", within))


async def newest(
    user: Session, webhook: dict[str, Any], ready: Callable[[dict[str, Any]], Any], what: str, within: float = 10
) -> dict[str, Any]:
    """The webhook's newest delivery once `ready` says so of it."""

    async def found() -> dict[str, Any] | None:
        item = (await log_of(user, webhook))[0]
        return item if ready(item) else None

    return dict(await wait_for(found, what, within))


def events_received(receiver: Receiver, secret: str) -> dict[str, dict[str, Any]]:
    """webhook-id -> the verified payload, of every request the receiver took."""
    return {r["headers"]["webhook-id"]: verify(secret, r["headers"], r["body"]) for r in receiver.taken()}


async def deliveries_in_table(api: Api) -> int:
    return int(await api.app[appkeys.DB].fetchval("SELECT count(*) FROM webhook_deliveries"))


# --- registering ------------------------------------------------------------------------------------------


async def test_a_webhooks_secret_is_shown_once_and_sealed_at_rest(api: Api, receiver: Receiver) -> None:
    alice = await api.user("alice")
    made = await subscribe(alice, receiver.url, "file.stored", "link.downloaded", "file.stored")
    assert made["secret"].startswith("whsec_") and len(base64.b64decode(made["secret"][6:])) == 24
    assert made["events"] == ["file.stored", "link.downloaded"] and made["url"] == receiver.url
    listed = (await alice.get("/api/v1/webhooks")).expect(200)
    assert listed == {"items": [{k: v for k, v in made.items() if k != "secret"}], "next_cursor": None}
    stored = await api.app[appkeys.DB].fetchval("SELECT secret FROM webhooks")
    assert stored.startswith("sealed:v1:") and made["secret"] not in stored
    bob = await api.user("bob")
    assert (await bob.get("/api/v1/webhooks")).expect(200)["items"] == []


async def test_unknown_events_are_refused_naming_the_field_and_fleet_events_are_for_administrators(
    api: Api, receiver: Receiver
) -> None:
    alice = await api.user("alice")
    answer = await alice.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["file.renamed"]})
    assert answer.problem(422, "invalid_field")["detail"].startswith("events")
    assert (await alice.post("/api/v1/webhooks", json={"url": receiver.url, "events": []})).status == 422
    answer = await alice.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["file.stored", "server.down"]})
    assert "server.down" in answer.problem(403, "forbidden")["detail"]
    root = await api.user("root", admin=True)
    await subscribe(root, receiver.url, "server.down", "job.failed", "file.stored")


async def test_another_users_webhook_is_not_found(api: Api, receiver: Receiver) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    hook = await subscribe(alice, receiver.url, "file.stored")
    for method, path in (("GET", "/deliveries"), ("POST", "/test"), ("DELETE", "")):
        (await bob.call(method, f"/api/v1/webhooks/{hook['id']}{path}")).problem(404, "webhook_not_found")
    assert len((await alice.get("/api/v1/webhooks")).expect(200)["items"]) == 1


async def test_a_user_has_at_most_twenty_webhooks(api: Api, receiver: Receiver) -> None:
    alice = await api.user("alice")
    for _ in range(20):
        await subscribe(alice, receiver.url, "file.stored")
    answer = await alice.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["file.stored"]})
    answer.problem(409, "too_many_webhooks")


# --- delivering the users' events ------------------------------------------------------------------------


async def test_a_users_file_events_reach_their_webhook_signed_as_standard_webhooks_says(
    api: Api, receiver: Receiver, weed: WeedCluster, bucket: str
) -> None:
    root = await api.user("root", admin=True)
    await root.add_server(weed, "newyork", bucket)
    alice = await api.user("alice")
    hook = await subscribe(alice, receiver.url, "file.stored", "link.downloaded", "file.deleted")
    answer = await alice.upload_and_confirm("report.txt", DATA)
    file_id = answer["file"]["id"]
    link = (await alice.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={})).expect(200)
    (await alice.delete(f"/api/v1/files/{file_id}")).expect(204)

    log = await delivered(alice, hook, 3)
    assert [i["event"] for i in log] == ["file.deleted", "link.downloaded", "file.stored"]
    assert all(i["status"] == "delivered" and i["attempts"] == 1 and i["last_error"] is None for i in log)
    got = events_received(receiver, hook["secret"])
    assert set(got) == {i["id"] for i in log} and all(i["id"].startswith("msg_") for i in log)
    by_type = {p["type"]: p for p in got.values()}
    assert by_type["file.stored"]["data"] == {
        "file_id": file_id,
        "name": "report.txt",
        "size": len(DATA),
        "server": "newyork",
        "zone": "USA",
    }
    assert by_type["link.downloaded"]["data"]["link_id"] == link["id"]
    assert by_type["link.downloaded"]["data"]["downloads"] == 1
    assert by_type["file.deleted"]["data"] == {"file_id": file_id, "name": "report.txt"}
    stored = next(i for i in log if i["event"] == "file.stored")
    assert by_type["file.stored"]["timestamp"] == stored["created_at"]
    assert receiver.taken()[0]["headers"]["content-type"] == "application/json"


async def test_events_nobody_subscribes_to_make_no_delivery_and_others_events_stay_theirs(
    api: Api, receiver: Receiver, weed: WeedCluster, bucket: str
) -> None:
    root = await api.user("root", admin=True)
    await root.add_server(weed, "newyork", bucket)
    alice, bob = await api.user("alice"), await api.user("bob")
    hook = await subscribe(alice, receiver.url, "file.deleted")
    for user in (alice, bob):
        answer = await user.upload_and_confirm("mine.txt", DATA)
        link = (await user.post(f"/api/v1/files/{answer['file']['id']}/links", json={})).expect(201)
        (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={})).expect(200)
        await user.download(answer["file"]["id"])
    assert await deliveries_in_table(api) == 0  # stored, link downloads, downloads: nobody asked
    mine = await alice.upload_and_confirm("gone.txt", DATA)
    (await alice.delete(f"/api/v1/files/{mine['file']['id']}")).expect(204)
    log = await delivered(alice, hook, 1)
    assert [i["event"] for i in log] == ["file.deleted"] and await deliveries_in_table(api) == 1


async def test_a_test_event_is_delivered_and_shown_in_the_log(api: Api, receiver: Receiver) -> None:
    alice = await api.user("alice")
    hook = await subscribe(alice, receiver.url, "file.stored")
    sent = (await alice.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)
    assert (sent["event"], sent["status"], sent["attempts"], sent["delivered_at"]) == (
        "webhook.test",
        "pending",
        0,
        None,
    )
    assert sent["next_attempt_at"] == sent["created_at"]
    log = await delivered(alice, hook, 1)
    assert log[0]["id"] == sent["id"] and log[0]["next_attempt_at"] is None and log[0]["delivered_at"]
    payload = events_received(receiver, hook["secret"])[sent["id"]]
    assert payload == {"type": "webhook.test", "timestamp": sent["created_at"], "data": {"webhook_id": hook["id"]}}


async def test_deleting_a_webhook_stops_its_deliveries_and_takes_its_log(api: Api, receiver: Receiver) -> None:
    alice = await api.user("alice")
    hook = await subscribe(alice, receiver.url, "file.stored")
    await receiver.kill()  # its test event waits for a receiver that answers
    (await alice.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)
    (await alice.delete(f"/api/v1/webhooks/{hook['id']}")).expect(204)
    assert await deliveries_in_table(api) == 0
    (await alice.get(f"/api/v1/webhooks/{hook['id']}/deliveries")).problem(404, "webhook_not_found")


async def test_a_deleted_users_webhooks_go_with_them(api: Api, receiver: Receiver) -> None:
    root, alice = await api.user("root", admin=True), await api.user("alice")
    await subscribe(alice, receiver.url, "file.stored")
    (await root.delete(f"/api/v1/users/{alice.user['id']}")).expect(204)
    assert await api.app[appkeys.DB].fetchval("SELECT count(*) FROM webhooks") == 0


async def test_a_receiver_that_keeps_failing_gets_its_delivery_marked_failed_after_retry_for(
    make_api: MakeApi, receiver: Receiver
) -> None:
    api = await make_api(webhooks={**WEBHOOKS, "retry_for": 1})
    alice = await api.user("alice")
    hook = await subscribe(alice, receiver.url, "file.stored")
    await receiver.restart("fail")
    (await alice.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)

    item = await newest(alice, hook, lambda i: i["status"] == "failed", "the delivery to be given up", within=15)
    assert item["attempts"] >= 2 and item["next_attempt_at"] is None and item["delivered_at"] is None
    # An error answer is kept as its status and first characters, never whole (the receiver sent 64 KiB).
    assert item["last_error"].startswith("HTTP 500: internal trouble xxx") and len(item["last_error"]) < 250


async def test_redirects_are_never_followed(api: Api, receiver: Receiver) -> None:
    alice = await api.user("alice")
    hook = await subscribe(alice, receiver.url, "file.stored")
    await receiver.restart("redirect")
    (await alice.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)

    item = await newest(alice, hook, lambda i: i["last_error"], "a failed attempt")
    assert item["last_error"] == "HTTP 302 (redirects are not followed)" and item["status"] == "pending"
    assert receiver.received("/moved") == []


# --- the fleet's events ------------------------------------------------------------------------------------


async def test_an_administrator_hears_of_servers_going_down_and_up_and_of_jobs_out_of_attempts(
    api: Api, receiver: Receiver, weed: WeedCluster, bucket: str
) -> None:
    root = await api.user("root", admin=True)
    server = await root.add_server(weed, "dallas", bucket)
    hook = await subscribe(root, receiver.url, "server.down", "server.up", "job.failed")
    registry = api.app[appkeys.SERVERS]
    await registry.set_health({server["id"]: Health.DOWN})  # as the health checker records what it saw
    await registry.set_health({server["id"]: Health.UP})
    await stored_and_copied(api, root, "kept.txt", DATA)
    queue, db = api.app[appkeys.JOBS], api.app[appkeys.DB]
    internal, version = registry.get(server["id"]).pk, await db.fetchval("SELECT id FROM versions")
    last = queue.cfg.max_attempts
    async with db.transaction() as tx:  # a copy on its last attempt, as a worker holds it
        made = await tx_fetchone(
            tx,
            "INSERT INTO jobs (kind, version_id, server_id, status, attempts, run_after, created_at, updated_at, "
            "claim_token) VALUES ('copy', ?, ?, 'running', ?, 0, 0, 0, 'claim') RETURNING id",
            (version, internal, last),
        )
    assert made is not None
    assert await queue.fail(Job(made["id"], "copy", version, internal, last, token="claim"), "the target refused it")

    log = await delivered(root, hook, 3)
    got = events_received(receiver, hook["secret"])
    payloads = [got[i["id"]] for i in reversed(log)]
    assert [p["type"] for p in payloads] == ["server.down", "server.up", "job.failed"]
    place = {"server_id": server["id"], "name": "dallas", "location": server["location"], "zone": server["zone"]}
    assert payloads[0]["data"] == payloads[1]["data"] == place
    failed = payloads[2]["data"]
    assert (failed["kind"], failed["error"], failed["server"], failed["file_name"]) == (
        "copy",
        "the target refused it",
        "dallas",
        "kept.txt",
    )


async def test_an_administrator_hears_of_a_corrupt_replica_found_by_the_deep_scrub(
    make_api: MakeApi, receiver: Receiver, weed: WeedCluster, bucket: str
) -> None:
    api, admin, file_id, key = await deep_setup(make_api, weed, bucket, webhooks=WEBHOOKS)
    hook = await subscribe(admin, receiver.url, "replica.corrupt")
    await tamper(api, weed, bucket, USA[1], key, BAD)
    assert (await deep_scrub(api)).corrupt == 1
    log = await delivered(admin, hook, 1)
    data = events_received(receiver, hook["secret"])[log[0]["id"]]["data"]
    assert (data["file_id"], data["server"], data["name"], data["reason"]) == (
        file_id,
        USA[1],
        "precious.bin",
        "altered",
    )


# --- SSRF --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata, always refused
        "http://[fd00:ec2::254]/",
        "http://2852039166/hook",  # a name that resolves to 169.254.169.254
        "http://user:pass@example.com/hook",  # user info
    ],
)
async def test_link_local_metadata_and_user_info_urls_are_refused_even_with_private_addresses_allowed(
    api: Api, url: str
) -> None:
    alice = await api.user("alice")
    answer = await alice.post("/api/v1/webhooks", json={"url": url, "events": ["file.stored"]})
    assert answer.problem(422, "endpoint_not_allowed")["detail"].startswith("url: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/",
        "http://[::1]:8080/",
        "http://2130706433/",
    ],
)
async def test_loopback_and_private_urls_are_refused_unless_allowed(make_api: MakeApi, url: str) -> None:
    api = await make_api()  # webhooks.allow_private off, the default
    alice = await api.user("alice")
    answer = await alice.post("/api/v1/webhooks", json={"url": url, "events": ["file.stored"]})
    assert "webhooks.allow_private" in answer.problem(422, "endpoint_not_allowed")["detail"]


async def test_private_addresses_are_refused_again_at_connection_time_once_no_longer_allowed(
    make_api: MakeApi, receiver: Receiver
) -> None:
    """Webhooks made while allow_private was on, to a name and to an IP literal, on a daemon where it is off:
    the resolver refuses the name's addresses, the worker the literal; nothing reaches the receiver."""
    api = await make_api(webhooks=WEBHOOKS)
    alice = await api.user("alice")
    by_name = await subscribe(alice, f"http://localhost:{receiver.port}/hook", "file.stored")
    by_address = await subscribe(alice, receiver.url, "file.stored")
    await api.client.close()
    api = await make_api(webhooks={**WEBHOOKS, "allow_private": False})
    alice = await api.login("alice")
    for hook in (by_name, by_address):
        (await alice.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)

    def refused(item: dict[str, Any]) -> bool:
        return str(item["last_error"]).startswith("refused: ")

    assert "non-public" in (await newest(alice, by_name, refused, "the name's refusal"))["last_error"]
    assert "127.0.0.1" in (await newest(alice, by_address, refused, "the literal's refusal"))["last_error"]
    assert receiver.received() == []


# --- the operations guide's verifier ------------------------------------------------------------------------

OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"


def verifier_in_the_guide() -> Callable[..., dict[str, Any]]:
    """The `verify` of docs/operations.md's "Verifying a signature", run as written."""
    text = OPERATIONS.read_text()
    code = text[text.index("**Verifying a signature**") :].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)
    found: Callable[..., dict[str, Any]] = scope["verify"]
    return found


async def test_the_operations_guides_verifier_takes_a_real_delivery_and_refuses_forged_and_replayed_ones(
    api: Api, receiver: Receiver
) -> None:
    alice = await api.user("alice")
    hook = await subscribe(alice, receiver.url, "file.stored")
    (await alice.post(f"/api/v1/webhooks/{hook['id']}/test")).expect(202)
    await delivered(alice, hook, 1)
    call = receiver.taken()[0]
    headers = CIMultiDict({name.title(): value for name, value in call["headers"].items()})  # (as a framework's)
    body = call["body"].encode()
    verify = verifier_in_the_guide()
    assert verify(hook["secret"], headers, body)["data"] == {"webhook_id": hook["id"]}
    other = await subscribe(alice, receiver.url, "file.stored")
    forged = body.replace(hook["id"].encode(), other["id"].encode())
    replayed = CIMultiDict({**headers, "Webhook-Timestamp": str(int(headers["webhook-timestamp"]) - 600)})
    for secret, sent, what in ((other["secret"], headers, body), (hook["secret"], headers, forged)):
        with pytest.raises(ValueError, match="wrong signature"):
            verify(secret, sent, what)
    with pytest.raises(ValueError, match="timestamp"):
        verify(hook["secret"], replayed, body)
