"""Webhook bodies -> object events: SeaweedFS filer events as really sent, and MinIO notifications."""

from __future__ import annotations

import base64

import pytest

from cdnstore.errors import Invalid
from cdnstore.events import ObjectEvent, parse

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
    assert parse(SEAWEED_CREATE) == [
        ObjectEvent("files", "u/42/photo.jpg", True, 1000, "7644672d049290f0390d9c993c7d343d")
    ]


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
    assert parse(body) == [ObjectEvent("files", "mp.bin", True, 12 << 20, "c20290aa-2")]


def test_a_seaweedfs_event_without_file_size_has_no_size_to_believe() -> None:
    # Go omits a zero file_size, so an empty file and a forged event look alike: the size is unknown,
    # and the upload is confirmed by a HEAD on its server (files.event_created).
    body = {"event_type": "create", "key": "/buckets/files/empty", "message": {"new_entry": {"attributes": {}}}}
    assert parse(body)[0].size is None


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
    assert parse(body) == []


def test_a_seaweedfs_delete_is_a_removal() -> None:
    body = {"event_type": "delete", "key": "/buckets/files/a.txt", "message": {"old_entry": {"name": "a.txt"}}}
    assert parse(body) == [ObjectEvent("files", "a.txt", False, None, None)]


def test_a_minio_notification_decodes_the_object_key() -> None:
    assert parse(MINIO_PUT) == [ObjectEvent("files", "dir a/ünï+.txt", True, 1000, "7644672d049290f0390d9c993c7d343d")]


def test_a_minio_removal_has_no_size() -> None:
    body = {
        "EventName": "s3:ObjectRemoved:Delete",
        "Key": "files/a",
        "Records": [
            {"eventName": "s3:ObjectRemoved:Delete", "s3": {"bucket": {"name": "files"}, "object": {"key": "a"}}}
        ],
    }
    assert parse(body) == [ObjectEvent("files", "a", False, None, None)]


def test_minio_records_of_other_kinds_or_shapes_are_dropped() -> None:
    body = {
        "Records": [
            {"eventName": "s3:ObjectAccessed:Get", "s3": {"bucket": {"name": "f"}, "object": {"key": "a"}}},
            "garbage",
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": 3}}},
        ]
    }
    assert parse(body) == []


@pytest.mark.parametrize("body", [{}, {"hello": "world"}, {"event_type": 5, "key": "x"}, [], "text"])
def test_a_body_of_neither_shape_is_refused(body: object) -> None:
    with pytest.raises(Invalid):
        parse(body)
