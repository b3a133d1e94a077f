"""Storage webhooks: the bodies every vendor sends, read into object events, and acted on.

Bodies understood (docs/operations.md says how to point each vendor here; tests/test_events.py holds real
ones):
- S3 event records (`{"Records": [...]}`) as MinIO, AWS, Ceph RGW and RustFS send them: `eventName` with or
  without the `s3:` prefix (`s3:ObjectCreated:Put`, `ObjectCreated:Put`). The object key is URL-encoded
  (form encoding: a space is `+`) by AWS, MinIO and RustFS, and sent as it is by Ceph RGW, which names
  itself in `eventSource` ("ceph:s3"): the key is decoded unless the record says it comes from Ceph.
  RGW copies its topic's `OpaqueData` into every record (`opaqueData`): usable as the events token.
- An SNS envelope (AWS delivers S3 events to HTTP only through SNS): a `Notification` is unwrapped (its
  `Message` is the records' JSON), a `SubscriptionConfirmation` carries the URL that confirms it.
- The SeaweedFS filer webhook (`{"event_type", "key", "message"}`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from .errors import Invalid
from .files import Files
from .metrics import Metrics
from .models import Server
from .records import fast_init
from .sns import SubscriptionConfirmer

log = logging.getLogger(__name__)

# What a body was: the label of the metrics
S3, SNS, SEAWEEDFS = "s3", "sns", "seaweedfs"
CEPH_SOURCE = "ceph:s3"  # RGW's eventSource: its keys are not URL-encoded
_SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


@fast_init
@dataclass(frozen=True, slots=True)
class ObjectEvent:
    bucket: str
    key: str
    created: bool  # False: removed
    size: int | None
    etag: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class Delivery:
    """What one webhook body holds."""

    shape: str  # S3, SNS or SEAWEEDFS
    events: tuple[ObjectEvent, ...] = ()
    # The records' opaqueData when every record carries the same one (an RGW topic's OpaqueData), else None
    token: str | None = None
    subscribe_url: str | None = None  # an SNS SubscriptionConfirmation's SubscribeURL
    topic: str | None = field(default=None, compare=False)  # the SNS TopicArn (for the logs)


def parse(body: Any) -> Delivery:
    """The object events in a webhook body (directory and other non-object events are dropped)."""
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    if isinstance(body.get("Type"), str) and "TopicArn" in body:
        return _sns(body)
    if isinstance(body.get("Records"), list):
        return _records(body["Records"], S3)
    if isinstance(body.get("event_type"), str) and isinstance(body.get("key"), str):
        event = _seaweed(body)
        return Delivery(SEAWEEDFS, () if event is None else (event,))
    raise Invalid(
        "body",
        "neither S3 event records (Records), an SNS message (Type, TopicArn) nor a SeaweedFS filer event "
        "(event_type, key, message)",
        code="unsupported_event",
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sns(body: dict[str, Any]) -> Delivery:
    kind, topic = body["Type"], body.get("TopicArn")
    topic = topic if isinstance(topic, str) else None
    if kind not in _SNS_TYPES:
        raise Invalid("Type", f"must be one of {', '.join(_SNS_TYPES)}", code="unsupported_event")
    if kind == "SubscriptionConfirmation":
        url = body.get("SubscribeURL")
        if not isinstance(url, str) or not url:
            raise Invalid("SubscribeURL", "a SubscriptionConfirmation must carry the URL that confirms it")
        return Delivery(SNS, subscribe_url=url, topic=topic)
    if kind == "UnsubscribeConfirmation":
        return Delivery(SNS, topic=topic)
    message = body.get("Message")
    try:
        inner = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        inner = None
    if not isinstance(inner, dict):
        raise Invalid("Message", "an SNS Notification's Message must be a JSON object (S3 event records)")
    records = inner.get("Records")
    # (S3's s3:TestEvent, sent when a notification is configured, has no records: no object event)
    found = _records(records, SNS) if isinstance(records, list) else Delivery(SNS)
    return Delivery(SNS, found.events, found.token, topic=topic)


def _records(records: list[Any], shape: str) -> Delivery:
    events = tuple(e for e in (_record(r) for r in records) if e is not None)
    opaque = {_dict(r).get("opaqueData") for r in records}
    token = opaque.pop() if len(opaque) == 1 else None
    return Delivery(shape, events, token if isinstance(token, str) and token else None)


def _record(record: Any) -> ObjectEvent | None:
    record = _dict(record)
    name = str(record.get("eventName", "")).removeprefix("s3:")
    s3 = _dict(record.get("s3"))
    bucket = _dict(s3.get("bucket")).get("name")
    obj = _dict(s3.get("object"))
    key = obj.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str):
        return None
    created = name.startswith("ObjectCreated:")
    if not created and not name.startswith("ObjectRemoved:"):
        return None
    etag = obj.get("eTag")
    return ObjectEvent(
        bucket,
        key if record.get("eventSource") == CEPH_SOURCE else unquote_plus(key),
        created,
        _size(obj.get("size")),
        etag.strip('"') if isinstance(etag, str) and etag else None,
    )


def _size(value: Any) -> int | None:
    """A record's size: a number, or a string of digits (some Ceph releases write it so); else unknown."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


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


class EventReceiver:
    """Acts on a delivery of a storage server: SNS subscriptions confirmed, uploads confirmed by their events.

    The sender waits for the answer, and some make their client wait too: Ceph RGW pushes a non-persistent
    topic's event from inside the S3 request, so the client's PUT is held until cdnstore answers. So the
    work runs in a task of its own that the answer waits for at most `answer_within` seconds; what takes
    longer (a busy database, a HEAD on a slow server) goes on after the answer, and a failure then is logged
    (the upload sweep confirms what an event could not)."""

    def __init__(
        self,
        files: Files,
        confirmer: SubscriptionConfirmer,
        metrics: Metrics,
        *,
        answer_within: float,
        seen: Callable[[Server], Awaitable[None]],
    ) -> None:
        self.files = files
        self.confirmer = confirmer
        self.metrics = metrics
        self.answer_within = answer_within
        self.seen = seen  # told that a server's events reach cdnstore (its capabilities say so: probe.py)
        self._running: set[asyncio.Task[None]] = set()

    async def receive(self, server: Server, delivery: Delivery) -> None:
        if delivery.subscribe_url is not None:
            await self.confirmer.confirm(delivery.subscribe_url, server.endpoint_url, topic=delivery.topic)
            return
        ours = [e for e in delivery.events if e.bucket == server.bucket]
        for event in ours:
            self.metrics.storage_event(server.name, event.created)
        if not ours:
            # Parsed, but about no object of this server's bucket: a webhook pointed at the wrong server,
            # a test event, a notification of other kinds. Counted, so that a misconfiguration shows.
            self.metrics.event_without_objects(server.name, delivery.shape)
        if ours:
            created = [e for e in ours if e.created]
            await self._within_answer_time(self._created(server, created), f"storage events of {server.name}")

    async def _created(self, server: Server, events: list[ObjectEvent]) -> None:
        await self.seen(server)
        for event in events:
            await self.files.event_created(server, event.key, event.size, event.etag)

    async def _within_answer_time(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        answered = False
        try:
            finished, _ = await asyncio.wait([task], timeout=self.answer_within)
            answered = bool(finished)
        finally:
            if not answered:  # (it goes on without anyone waiting: its failure is logged)
                task.add_done_callback(_log_failure)
        if answered:
            task.result()  # its failure is the answer's: a sender that retries sends the event again
        else:
            log.info("%s still being handled after %.1f s: answered meanwhile", name, self.answer_within)

    async def close(self) -> None:
        """At shutdown: the events still being handled are cancelled (the sweep confirms their uploads)."""
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed after the answer", task.get_name(), exc_info=task.exception())
