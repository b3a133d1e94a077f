"""Storage webhooks -> object events. Two bodies are understood: MinIO's bucket notification (S3 event
records) and the SeaweedFS filer webhook. Shapes: docs/operations.md, and tests/test_events.py."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from .errors import Invalid


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    bucket: str
    key: str
    created: bool  # False: removed
    size: int | None
    etag: str | None


def parse(body: Any) -> list[ObjectEvent]:
    """The object events in a webhook body (directory and other non-object events are dropped)."""
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    if isinstance(body.get("Records"), list):
        return [e for e in (_minio(r) for r in body["Records"]) if e is not None]
    if isinstance(body.get("event_type"), str) and isinstance(body.get("key"), str):
        event = _seaweed(body)
        return [] if event is None else [event]
    raise Invalid(
        "body",
        "neither a MinIO bucket notification (Records) nor a SeaweedFS filer event (event_type, key, message)",
        code="unsupported_event",
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _minio(record: Any) -> ObjectEvent | None:
    record = _dict(record)
    name = str(record.get("eventName", ""))
    s3 = _dict(record.get("s3"))
    bucket = _dict(s3.get("bucket")).get("name")
    obj = _dict(s3.get("object"))
    if not isinstance(bucket, str) or not isinstance(obj.get("key"), str):
        return None
    created = name.startswith("s3:ObjectCreated:")
    if not created and not name.startswith("s3:ObjectRemoved:"):
        return None
    size = obj.get("size")
    etag = obj.get("eTag")
    return ObjectEvent(
        bucket,
        unquote_plus(obj["key"]),
        created,
        size if isinstance(size, int) and not isinstance(size, bool) else None,
        etag.strip('"') if isinstance(etag, str) and etag else None,
    )


def _seaweed(body: dict[str, Any]) -> ObjectEvent | None:
    prefix, _, path = body["key"].partition("/buckets/")
    bucket, _, key = path.partition("/")
    if prefix or not bucket or not key:
        return None
    message = _dict(body.get("message"))
    if body["event_type"] in ("create", "update"):
        entry = message.get("new_entry")
        if not isinstance(entry, dict) or entry.get("is_directory"):
            return None
        # Go omits zero values: an empty file has no file_size, and neither has a forged event. Absent
        # means unknown (None), which the receiver confirms with a HEAD rather than believing 0.
        size = _dict(entry.get("attributes")).get("file_size")
        size = size if isinstance(size, int) and not isinstance(size, bool) else None
        return ObjectEvent(bucket, key, True, size, _seaweed_etag(entry))
    if body["event_type"] == "delete":
        entry = message.get("old_entry")
        if isinstance(entry, dict) and entry.get("is_directory"):
            return None
        return ObjectEvent(bucket, key, False, None, None)
    return None


def _seaweed_etag(entry: dict[str, Any]) -> str | None:
    # Go's encoding/json writes []byte as base64: the S3 ETag is base64 of its hex text.
    raw = _dict(entry.get("extended")).get("Seaweed-X-Amz-ETag")
    try:
        if isinstance(raw, str):
            return base64.b64decode(raw, validate=True).decode("ascii")
        md5 = _dict(entry.get("attributes")).get("md5")
        if isinstance(md5, str):
            return base64.b64decode(md5, validate=True).hex()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return None
