"""Storage events of every shape through the webhook: AWS records (no `s3:` prefix), SNS envelopes (a
Notification unwrapped, a SubscriptionConfirmation confirmed where it may be), the token in the path, in
Basic auth or in an RGW topic's OpaqueData; and the real Ceph RGW's bucket notifications confirming uploads.

The SeaweedFS servers are registered under other names here ("dallas-quiet"): their own webhooks then reach
no known server, and every event comes from the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from apihelp import EVENTS_TOKEN, Api, Session, object_key, samples, value, wait_for
from conftest import MakeApi

from cdnstore import appkeys
from testbed.rgw import RgwBed
from testbed.seaweed import WeedCluster
from testbed.webhooks import WebhookSink

DATA = b"an event of every shape\n" * 40
HOOK = "/api/v1/events/s3/dallas-quiet"
OWN_TOKEN = "dallas-own/webhook+token=0123"  # a server's own token, with what a path must percent-encode


def aws_records(bucket: str, key: str, name: str = "ObjectCreated:Put", size: int = len(DATA)) -> dict[str, Any]:
    """AWS's S3 event records (2.1): no `s3:` prefix, the key URL-encoded (form encoding)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-12-07T00:40:08.353Z",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote(key, safe="/").replace("%20", "+"), "size": size, "eTag": "0123abcd"},
                },
            }
        ]
    }


def sns_notification(records: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:cdnstore",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(records),
        "Timestamp": "2026-12-07T00:40:09.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
    }


def sns_confirmation(url: str) -> dict[str, Any]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:cdnstore",
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:cdnstore.",
        "SubscribeURL": url,
        "Timestamp": "2026-12-07T00:40:04.751Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
    }


async def quiet_upload(api: Api, weed: WeedCluster, bucket: str, **server: Any) -> tuple[Session, str, str]:
    """An admin, "dallas-quiet" (the only server), and a file uploaded there and not confirmed: (admin, file
    id, object key)."""
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="dallas-quiet", **server)
    answer = await admin.upload("shapes.txt", DATA)
    return admin, answer["file"]["id"], object_key(answer["upload"])


async def status_of(admin: Session, file_id: str) -> str:
    return str((await admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"])


async def stored_once(admin: Session) -> bool:
    return len((await admin.get("/api/v1/history?event=file.stored")).expect(200)["items"]) == 1


async def test_an_aws_record_without_the_s3_prefix_confirms_an_upload_and_again_changes_nothing(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, file_id, key = await quiet_upload(api, weed, bucket)
    removed = aws_records(bucket, key, "ObjectRemoved:Delete")
    (await api.call("POST", HOOK, json=removed, token=EVENTS_TOKEN)).expect(204)  # before its creation: nothing
    assert await status_of(admin, file_id) == "uploading"
    created = aws_records(bucket, key)
    for body in (created, created, removed, created):  # twice, and out of order
        (await api.call("POST", HOOK, json=body, token=EVENTS_TOKEN)).expect(204)
        assert await status_of(admin, file_id) == "stored"
    assert await stored_once(admin)


async def test_an_sns_notification_with_the_token_in_the_path_confirms_an_upload(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, file_id, key = await quiet_upload(api, weed, bucket)
    body = sns_notification(aws_records(bucket, key))
    (await api.call("POST", f"{HOOK}/wrong-token-0123456789", json=body)).problem(401, "unauthorized")
    assert await status_of(admin, file_id) == "uploading"
    for _ in range(2):
        (await api.call("POST", f"{HOOK}/{EVENTS_TOKEN}", json=body)).expect(204)
    assert await status_of(admin, file_id) == "stored"
    assert await stored_once(admin)


async def test_a_servers_own_token_in_the_path_may_hold_a_slash_and_is_never_logged(
    api: Api, weed: WeedCluster, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cdnstore.requests")
    admin, file_id, key = await quiet_upload(api, weed, bucket, events_token=OWN_TOKEN)
    body = aws_records(bucket, key)
    (await api.call("POST", f"{HOOK}/{quote(EVENTS_TOKEN)}", json=body)).problem(401, "unauthorized")  # not global
    (await api.call("POST", f"{HOOK}/{quote(OWN_TOKEN, safe='')}", json=body)).expect(204)
    assert await status_of(admin, file_id) == "stored"
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cdnstore"))
    assert "POST /api/v1/events/s3/{server_name}/{token} 204" in logged  # the route, never the token
    assert "webhook" not in logged and "dallas-own" not in logged


async def test_basic_auth_or_the_records_opaque_data_carry_the_token(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin, file_id, key = await quiet_upload(api, weed, bucket)
    records = aws_records(bucket, key)
    records["Records"][0]["eventSource"] = "ceph:s3"  # as RGW sends them: the key as it is
    records["Records"][0]["s3"]["object"]["key"] = key
    opaque = json.loads(json.dumps(records))
    opaque["Records"][0]["opaqueData"] = "not-the-token-0123"
    (await api.call("POST", HOOK, json=opaque)).problem(401, "unauthorized")
    (await api.call("POST", HOOK, json=records)).problem(401, "unauthorized")  # no token anywhere
    (await api.call("POST", HOOK, data="{", headers={"Content-Type": "application/json"})).problem(401, "unauthorized")
    basic = base64.b64encode(b"rgw:wrong-password-0123").decode()
    (await api.call("POST", HOOK, json=records, headers={"Authorization": f"Basic {basic}"})).problem(
        401, "unauthorized"
    )
    assert await status_of(admin, file_id) == "uploading"
    opaque["Records"][0]["opaqueData"] = EVENTS_TOKEN
    (await api.call("POST", HOOK, json=opaque)).expect(204)
    assert await status_of(admin, file_id) == "stored"
    basic = base64.b64encode(f"rgw:{EVENTS_TOKEN}".encode()).decode()
    (await api.call("POST", HOOK, json=records, headers={"Authorization": f"Basic {basic}"})).expect(204)
    assert await stored_once(admin)


async def test_unknown_objects_and_bodies_without_object_events_are_204_and_the_empty_ones_counted(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="dallas-quiet")
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket, "RequestId": "5582815E1AEA5ADF"}
    bodies = [
        (aws_records(bucket, "nobody-knows"), None),  # an unknown object: not counted, it is an object event
        (sns_notification(aws_records(bucket, "nobody-knows-either")), None),
        (sns_notification(test_event), "sns"),
        (aws_records("another-bucket", "k"), "s3"),  # a webhook of another bucket
        (aws_records(bucket, "k", "ObjectAccessed:Get"), "s3"),
        ({"event_type": "create", "key": f"/buckets/{bucket}", "message": {"new_entry": {"is_directory": True}}}, None),
    ]
    for body, _ in bodies:
        (await api.call("POST", HOOK, json=body, token=EVENTS_TOKEN)).expect(204)
    found = samples((await api.call("GET", "/metrics")).body)
    name = "cdnstore_storage_event_bodies_without_objects_total"
    assert value(found, name, server="dallas-quiet", shape="sns") == 1
    assert value(found, name, server="dallas-quiet", shape="s3") == 2
    assert value(found, name, server="dallas-quiet", shape="seaweedfs") == 1
    assert value(found, "cdnstore_storage_events_total", server="dallas-quiet", kind="created") == 2


async def test_an_sns_subscription_is_confirmed_only_where_a_confirmation_can_come_from(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    sink = WebhookSink()
    await sink.start()
    try:
        api = await make_api(events={"sns_origins": [sink.url("")]})
        admin = await api.user("root", admin=True)
        # Registered by the name "localhost": the sink on 127.0.0.1 is not the server's own host.
        port = weed.instance("dallas").s3_port
        await admin.add_server(weed, "dallas", bucket, name="dallas-quiet", endpoint_url=f"http://localhost:{port}")

        def confirmation(token: str) -> Any:
            return lambda hook: hook.method == "GET" and hook.query.get("Token") == token

        listed = sink.url("/confirm?Action=ConfirmSubscription&Token=listed")
        (await api.call("POST", f"{HOOK}/{EVENTS_TOKEN}", json=sns_confirmation(listed))).expect(204)
        assert (await sink.wait_for(confirmation("listed"))).path == "/confirm"

        own_host = f"http://localhost:{sink.port}/confirm?Action=ConfirmSubscription&Token=own"
        (await api.call("POST", f"{HOOK}/{EVENTS_TOKEN}", json=sns_confirmation(own_host))).expect(204)
        await sink.wait_for(confirmation("own"))

        for refused in (
            f"http://127.0.0.2:{sink.port}/confirm?Action=ConfirmSubscription&Token=other-host",
            sink.url("/confirm?Action=Unsubscribe&Token=other-action"),
        ):
            answer = await api.call("POST", f"{HOOK}/{EVENTS_TOKEN}", json=sns_confirmation(refused))
            assert answer.problem(422, "subscribe_url_not_allowed")["field"] == "SubscribeURL"
        not_sns = f"http://localhost:{port}/?Action=ConfirmSubscription&Token=x"  # the S3 server does not confirm
        answer = await api.call("POST", f"{HOOK}/{EVENTS_TOKEN}", json=sns_confirmation(not_sns))
        answer.problem(502, "subscription_not_confirmed")
        assert [h.query.get("Token") for h in sink.received] == ["listed", "own"]
    finally:
        await sink.stop()


@contextlib.asynccontextmanager
async def events_held(api: Api) -> AsyncIterator[asyncio.Event]:
    """The daemon's handling of object events waits until the test sets the event it is given."""
    files, gate = api.app[appkeys.FILES], asyncio.Event()
    real = files.event_created

    async def held(*args: Any) -> bool:
        await gate.wait()
        return await real(*args)

    files.event_created = held  # type: ignore[method-assign,assignment]
    try:
        yield gate
    finally:
        gate.set()
        del files.event_created


async def test_the_answer_does_not_wait_for_slow_work_which_goes_on_after_it(
    make_api: MakeApi, weed: WeedCluster, bucket: str
) -> None:
    # RGW holds its client's PUT until the webhook answers: the answer comes within events.answer_within.
    api = await make_api(events={"answer_within": 0.2})
    admin, file_id, key = await quiet_upload(api, weed, bucket)
    async with events_held(api) as gate:
        (await api.call("POST", HOOK, json=aws_records(bucket, key), token=EVENTS_TOKEN)).expect(204)
        assert await status_of(admin, file_id) == "uploading"  # answered while the work waits
        gate.set()
        await admin.wait_stored(file_id)
    assert await stored_once(admin)


# --- the real Ceph RGW -------------------------------------------------------------------------


def hook_url(daemon_port: int, server: str, token: str | None = None) -> str:
    path = f"/api/v1/events/s3/{server}" + (f"/{quote(token, safe='')}" if token else "")
    return f"http://127.0.0.1:{daemon_port}{path}"


OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"


def rgw_setup_in_the_guide(**real: str) -> str:
    """The Python block of docs/operations.md's "Ceph RGW" webhook setup, its placeholders replaced."""
    text = OPERATIONS.read_text()
    code = text[text.index("**Ceph RGW** (bucket notifications") :].split("```python\n", 1)[1].split("```", 1)[0]
    for placeholder, actual in real.items():
        assert placeholder in code, placeholder
        code = code.replace(placeholder, actual)
    return code


async def rgw_admin(api: Api, rgw: RgwBed, bucket: str) -> Session:
    """An admin, and the RGW bed registered as "dallas-rgw" (the only server)."""
    admin = await api.user("root", admin=True)
    await admin.add_server(rgw, "dallas", bucket, name="dallas-rgw")
    return admin


async def uploaded_and_stored_by_rgw_events(api: Api, admin: Session) -> None:
    answer = await admin.upload("by-rgw.txt", DATA)  # (no /complete: the event alone stores it)
    await admin.wait_stored(answer["file"]["id"])
    found = samples((await api.call("GET", "/metrics")).body)
    assert value(found, "cdnstore_storage_events_total", server="dallas-rgw", kind="created") == 1
    _, body = await admin.download(answer["file"]["id"])
    assert body == DATA


async def test_rgw_set_up_as_the_operations_guide_says_confirms_uploads_by_its_events(
    api: Api, rgw: RgwBed, bucket: str, daemon_port: int
) -> None:
    admin = await rgw_admin(api, rgw, bucket)
    code = rgw_setup_in_the_guide(
        **{
            "https://s3-rgw.example.com": rgw.endpoint_url,
            "ACCESS_KEY": rgw.access_key,
            "SECRET_KEY": rgw.secret_key,
            "https://files.example.com": f"http://127.0.0.1:{daemon_port}",
            "<server name>": "dallas-rgw",
            "<token>": EVENTS_TOKEN,
            "<bucket>": bucket,
        }
    )
    await asyncio.to_thread(exec, code, {})  # (boto3 blocks: not on the loop that serves the webhook)
    await uploaded_and_stored_by_rgw_events(api, admin)


async def test_rgw_events_carrying_the_token_in_their_opaque_data_confirm_uploads(
    api: Api, rgw: RgwBed, bucket: str, daemon_port: int
) -> None:
    admin = await rgw_admin(api, rgw, bucket)
    await rgw.notify(bucket, hook_url(daemon_port, "dallas-rgw"), opaque_data=EVENTS_TOKEN)
    await uploaded_and_stored_by_rgw_events(api, admin)


async def test_removals_never_use_the_multi_object_delete_that_aborts_rgw_when_removals_are_notified(
    api: Api, rgw: RgwBed, bucket: str, daemon_port: int
) -> None:
    # Ceph RGW 16.2's beast frontend aborts on DeleteObjects in a bucket whose notification covers removals
    # (the bed uses beast): cdnstore removes objects one DELETE at a time (storage.delete).
    admin = await rgw_admin(api, rgw, bucket)
    events = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
    await rgw.notify(bucket, hook_url(daemon_port, "dallas-rgw", EVENTS_TOKEN), events=events)
    answers = [await admin.upload(f"gone-{n}.txt", DATA) for n in range(3)]
    for answer in answers:
        await admin.wait_stored(answer["file"]["id"])
        (await admin.delete(f"/api/v1/files/{answer['file']['id']}")).expect(204)
    storage, target = api.app[appkeys.STORAGE], rgw.target(bucket)

    async def all_gone() -> bool:
        return all([await storage.head(target, object_key(a["upload"])) is None for a in answers])

    await wait_for(all_gone, "the objects to be removed from RGW")
    assert rgw.running
    found = samples((await api.call("GET", "/metrics")).body)
    assert value(found, "cdnstore_storage_events_total", server="dallas-rgw", kind="removed") == 3
