"""Webhook bodies -> object events: SeaweedFS filer events, Ceph RGW records as really sent, MinIO, AWS and
SNS envelopes as their documentation shows them; which SNS confirmation URLs may be fetched."""

from __future__ import annotations

import base64
import json

import pytest

from cdnstore.errors import Invalid
from cdnstore.events import ObjectEvent, parse
from cdnstore.sns import refusal

SEAWEED_CREATE = {  # a real payload of `weed mini` for a presigned PUT, re-wrapped
    "event_type": "create",
    "key": "/buckets/files/u/42/photo.jpg",
    "message": {
        "new_entry": {
            "name": "photo.jpg",
            "chunks": [
                {
                    "size": 1000,
                    "modified_ts_ns": 1795488610087767091,
                    "e_tag": "dkRnLQSSkPA5DZyZPH00PQ==",
                    "fid": {"volume_id": 2, "file_key": 2, "cookie": 2595051084},
                }
            ],
            "attributes": {
                "file_size": 1000,
                "mtime": 1795488610,
                "file_mode": 432,
                "crtime": 1795488610,
                "mime": "image/jpeg",
                "md5": "dkRnLQSSkPA5DZyZPH00PQ==",
                "inode": 4879414812292607654,
            },
            "extended": {
                "Seaweed-X-Amz-ETag": "NzY0NDY3MmQwNDkyOTBmMDM5MGQ5Yzk5M2M3ZDM0M2Q=",
                "Seaweed-X-Amz-Owner": "Y2Ruc3RvcmU=",
                "X-Amz-Meta-Fileid": "Zi00Mg==",
            },
        },
        "delete_chunks": True,
        "new_parent_path": "/buckets/files/u/42",
        "signatures": [143854229],
    },
}

MINIO_PUT = {
    "EventName": "s3:ObjectCreated:Put",
    "Key": "files/dir a/ünï+.txt",
    "Records": [
        {
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "eventName": "s3:ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": "files"},
                "object": {
                    "key": "dir+a%2F%C3%BCn%C3%AF%2B.txt",
                    "size": 1000,
                    "eTag": "7644672d049290f0390d9c993c7d343d",
                },
            },
        }
    ],
}


def test_a_seaweedfs_create_event_gives_bucket_key_size_and_etag() -> None:
    assert parse(SEAWEED_CREATE).events == (
        ObjectEvent("files", "u/42/photo.jpg", True, 1000, "7644672d049290f0390d9c993c7d343d"),
    )


def test_a_seaweedfs_multipart_result_has_no_md5_but_an_s3_etag() -> None:
    body = {
        "event_type": "create",
        "key": "/buckets/files/mp.bin",
        "message": {
            "new_entry": {
                "attributes": {"file_size": 12 << 20},
                "extended": {"Seaweed-X-Amz-ETag": base64.b64encode(b"c20290aa-2").decode()},
            }
        },
    }
    assert parse(body).events == (ObjectEvent("files", "mp.bin", True, 12 << 20, "c20290aa-2"),)


def test_a_seaweedfs_event_without_file_size_has_no_size_to_believe() -> None:
    # Go omits a zero file_size, so an empty file and a forged event look alike: the size is unknown,
    # and the upload is confirmed by a HEAD on its server (files.event_created).
    body = {"event_type": "create", "key": "/buckets/files/empty", "message": {"new_entry": {"attributes": {}}}}
    assert parse(body).events[0].size is None


@pytest.mark.parametrize(
    "body",
    [
        {"event_type": "create", "key": "/buckets/files", "message": {"new_entry": {"is_directory": True}}},
        {"event_type": "create", "key": "/buckets/files/u", "message": {"new_entry": {"is_directory": True}}},
        {"event_type": "create", "key": "/buckets/.system/owners/x", "message": {}},
        {"event_type": "rename", "key": "/buckets/files/a", "message": {"new_entry": {}}},
        {"event_type": "create", "key": "/elsewhere/files/a", "message": {"new_entry": {}}},
    ],
)
def test_seaweedfs_events_that_are_not_about_objects_are_dropped(body: dict[str, object]) -> None:
    assert parse(body).events == ()


def test_a_seaweedfs_delete_is_a_removal() -> None:
    body = {"event_type": "delete", "key": "/buckets/files/a.txt", "message": {"old_entry": {"name": "a.txt"}}}
    assert parse(body).events == (ObjectEvent("files", "a.txt", False, None, None),)


def test_a_minio_notification_decodes_the_object_key() -> None:
    assert parse(MINIO_PUT).events == (
        ObjectEvent("files", "dir a/ünï+.txt", True, 1000, "7644672d049290f0390d9c993c7d343d"),
    )


def test_a_minio_removal_has_no_size() -> None:
    body = {
        "EventName": "s3:ObjectRemoved:Delete",
        "Key": "files/a",
        "Records": [
            {"eventName": "s3:ObjectRemoved:Delete", "s3": {"bucket": {"name": "files"}, "object": {"key": "a"}}}
        ],
    }
    assert parse(body).events == (ObjectEvent("files", "a", False, None, None),)


def test_minio_records_of_other_kinds_or_shapes_are_dropped() -> None:
    body = {
        "Records": [
            {"eventName": "s3:ObjectAccessed:Get", "s3": {"bucket": {"name": "f"}, "object": {"key": "a"}}},
            "garbage",
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": 3}}},
        ]
    }
    assert parse(body).events == ()


@pytest.mark.parametrize("body", [{}, {"hello": "world"}, {"event_type": 5, "key": "x"}, [], "text"])
def test_a_body_of_neither_shape_is_refused(body: object) -> None:
    with pytest.raises(Invalid):
        parse(body)


# --- Ceph RGW, AWS and SNS ---------------------------------------------------------------------

# Ceph RGW 16.2.15's POST for a presigned PUT of `u/42/photo ü+.jpg` (one record per POST, the key as it is,
# the topic's OpaqueData in opaqueData), verbatim as received (/work/shared/notes/ceph-rgw.md, section 6).
RGW_PUT = json.loads(
    '{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"","eventTime":"2026-12-07T00:40:08.353218Z",'
    '"eventName":"ObjectCreated:Put","userIdentity":{"principalId":"tester"},"requestParameters":{"sourceIPAddress":""},'
    '"responseElements":{"x-amz-request-id":"6f211046-4f99-48cc-b34b-4532cc9d3758.4102.8502556330667296514",'
    '"x-amz-id-2":"1006-default-default"},"s3":{"s3SchemaVersion":"1.0","configurationId":"cfg-nb-np","bucket":'
    '{"name":"nb-np","ownerIdentity":{"principalId":"tester"},"arn":"arn:aws:s3:::nb-np",'
    '"id":"6f211046-4f99-48cc-b34b-4532cc9d3758.4110.1"},"object":{"key":"u/42/photo ü+.jpg","size":1000,'
    '"eTag":"912485fe921b64abf79d3839057f7f36","versionId":"","sequencer":"6800166BFD832E15","metadata":'
    '[{"key":"x-amz-meta-fileid","val":"f-42"}],"tags":[]}},'
    '"eventId":"1796604008.355369.912485fe921b64abf79d3839057f7f36","opaqueData":"opaque-token-123"}]}'
)


def aws_record(key: str, name: str = "ObjectCreated:Put", **obj: object) -> dict[str, object]:
    """An AWS S3 event record (version 2.1) as AWS documents it: the key URL-encoded, no `s3:` prefix."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": "2026-12-07T00:40:08.353Z",
        "eventName": name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "cdnstore",
            "bucket": {
                "name": "files",
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": "arn:aws:s3:::files",
            },
            "object": {
                "key": key,
                "size": 1000,
                "eTag": "7644672d049290f0390d9c993c7d343d",
                "sequencer": "0A1B2C3D4E5F678901",
                **obj,
            },
        },
    }


def sns(kind: str, **fields: object) -> dict[str, object]:
    """An SNS message to an HTTP(S) subscription, as AWS documents its JSON."""
    return {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:cdnstore-files",
        "Timestamp": "2026-12-07T00:40:09.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkk...",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        **fields,
    }


def test_an_rgw_record_keeps_its_key_as_it_is_and_carries_the_topics_opaque_data() -> None:
    found = parse(RGW_PUT)
    assert found.events == (ObjectEvent("nb-np", "u/42/photo ü+.jpg", True, 1000, "912485fe921b64abf79d3839057f7f36"),)
    assert (found.shape, found.token) == ("s3", "opaque-token-123")


def test_only_records_from_ceph_keep_their_key_undecoded() -> None:
    literal = "100%2B more+.txt"  # a key that holds these very characters
    ceph = json.loads(json.dumps(RGW_PUT))
    ceph["Records"][0]["s3"]["object"]["key"] = literal
    assert parse(ceph).events[0].key == literal
    for source in ("aws:s3", "minio:s3", "rustfs:s3", None):  # every other sender encodes (AWS documents it)
        record = aws_record("100%252B+more%2B.txt")
        record["eventSource"] = source
        assert parse({"Records": [record]}).events[0].key == literal


def test_an_aws_record_without_the_s3_prefix_is_an_upload_and_its_key_is_decoded() -> None:
    found = parse({"Records": [aws_record("u/42/red+flower%C3%BC%2B.jpg")]})
    assert found.events == (
        ObjectEvent("files", "u/42/red flowerü+.jpg", True, 1000, "7644672d049290f0390d9c993c7d343d"),
    )
    assert found.token is None


@pytest.mark.parametrize(
    ("name", "created"),
    [
        ("ObjectCreated:Put", True),
        ("ObjectCreated:CompleteMultipartUpload", True),
        ("ObjectCreated:Copy", True),
        ("ObjectCreated:Post", True),
        ("s3:ObjectCreated:Put", True),
        ("ObjectRemoved:Delete", False),
        ("ObjectRemoved:DeleteMarkerCreated", False),
        ("s3:ObjectRemoved:Delete", False),
    ],
)
def test_every_spelling_of_created_and_removed_is_understood(name: str, created: bool) -> None:
    assert parse({"Records": [aws_record("k", name)]}).events[0].created is created


@pytest.mark.parametrize("name", ["ObjectAccessed:Get", "s3:TestEvent", "ObjectRestore:Completed", "", "ObjectCreated"])
def test_records_of_other_kinds_hold_no_object_event(name: str) -> None:
    assert parse({"Records": [aws_record("k", name)]}).events == ()


@pytest.mark.parametrize(
    ("size", "read"), [(7, 7), ("1024", 1024), ("-1", None), (-1, None), (True, None), ("1e3", None)]
)
def test_a_size_is_a_number_or_a_string_of_digits(size: object, read: int | None) -> None:
    # (Ceph's documentation shows "size":"1024"; 16.2 sends a number)
    assert parse({"Records": [aws_record("k", size=size)]}).events[0].size == read


def test_records_that_disagree_on_their_opaque_data_carry_no_token() -> None:
    first, second = (json.loads(json.dumps(RGW_PUT["Records"][0])) for _ in range(2))
    second["opaqueData"] = "another"
    assert parse({"Records": [first, second]}).token is None
    first["opaqueData"] = ""
    assert parse({"Records": [first]}).token is None


def test_an_sns_notification_is_unwrapped() -> None:
    records = {"Records": [aws_record("u/a+b.txt")]}
    found = parse(sns("Notification", Subject="Amazon S3 Notification", Message=json.dumps(records)))
    assert found.shape == "sns"
    assert found.events == (ObjectEvent("files", "u/a b.txt", True, 1000, "7644672d049290f0390d9c993c7d343d"),)
    assert found.subscribe_url is None


def test_an_sns_subscription_confirmation_carries_its_url_and_no_event() -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:eu-west-1:123456789012:cdnstore-files&Token=2336412f37fb687f5d51e6e2425"
    found = parse(
        sns(
            "SubscriptionConfirmation",
            Token="2336412f37fb687f5d51e6e2425",
            Message="You have chosen to subscribe",
            SubscribeURL=url,
        )
    )
    assert (found.subscribe_url, found.events, found.topic) == (
        url,
        (),
        "arn:aws:sns:eu-west-1:123456789012:cdnstore-files",
    )


def test_sns_messages_without_object_events_parse_to_none() -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-12-07T00:40:09.655Z",
        "Bucket": "files",
    }
    assert parse(sns("Notification", Message=json.dumps(test_event))).events == ()
    assert parse(sns("UnsubscribeConfirmation", Message="unsubscribed")).events == ()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (sns("Notification", Message="not json"), "Message"),
        (sns("Notification", Message="[1]"), "Message"),
        (sns("Notification"), "Message"),
        (sns("SubscriptionConfirmation"), "SubscribeURL"),
        (sns("Whatever"), "Type"),
    ],
)
def test_an_sns_message_that_cannot_be_read_is_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as err:
        parse(body)
    assert err.value.extra["field"] == field


SERVER = "https://s3-eu.example.com:9000"


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=x",
        "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription&Token=x",
        "https://s3-eu.example.com/?Action=ConfirmSubscription&Token=x",  # the server's own host
        "http://sns.internal:4566/?Action=ConfirmSubscription&Token=x",  # in events.sns_origins
    ],
)
def test_a_subscribe_url_of_sns_the_servers_own_host_or_a_listed_origin_may_be_fetched(url: str) -> None:
    assert refusal(url, SERVER, ["http://sns.internal:4566"]) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example.net/?Action=ConfirmSubscription&Token=x", "neither an AWS SNS host"),
        ("https://sns.eu-west-1.amazonaws.com.evil.net/?Action=ConfirmSubscription", "neither an AWS SNS host"),
        ("http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription", "neither an AWS SNS host"),  # not https
        ("https://sns.eu-west-1.amazonaws.com:8443/?Action=ConfirmSubscription", "neither an AWS SNS host"),
        ("http://169.254.169.254/latest/meta-data/?Action=ConfirmSubscription", "neither an AWS SNS host"),
        ("http://sns.internal:4567/?Action=ConfirmSubscription", "neither an AWS SNS host"),  # another port
        ("https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x", "ConfirmSubscription"),
        ("https://sns.eu-west-1.amazonaws.com/?Token=x", "ConfirmSubscription"),
        ("https://u:p@sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription", "user info"),
        ("file:///etc/passwd?Action=ConfirmSubscription", "http(s) URL"),
        ("https://[::1/?Action=ConfirmSubscription", "http(s) URL"),
    ],
)
def test_any_other_subscribe_url_is_refused_saying_why(url: str, why: str) -> None:
    found = refusal(url, SERVER, ["http://sns.internal:4566"])
    assert found is not None and why in found
