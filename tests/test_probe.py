"""The capability probe's reading of answers no vendor of the test bed gives (AWS's, a server that refuses a
CORS rule or the If-None-Match header, one that fails a step), with the network faked; the real vendors'
answers are tests/test_vendors.py's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cdnstore import probe
from cdnstore.clock import SYSTEM_CLOCK, Clock
from cdnstore.errors import StorageError
from cdnstore.models import Capabilities, Health, S3Target, Server
from cdnstore.probe import Prober
from cdnstore.storage import RawAnswer, Storage
from cdnstore.times import iso
from testbed.clock import FakeClock

TARGET = S3Target("https://s3.eu-west-1.example.com", "files", "eu-west-1", "key", "secret")
PAGE = "https://files.example.com"
AWS_REGION_ERROR = (
    "<Error><Code>AuthorizationQueryParametersError</Code><Message>Error parsing the X-Amz-Credential parameter; "
    "the region 'cdnstore-probe-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>"
)

Answer = Callable[[str, str, dict[str, str]], RawAnswer]


def answer(status: int, code: str = "", headers: dict[str, str] | None = None, text: str = "") -> RawAnswer:
    return RawAnswer(status, headers or {}, code, text)


def aws(method: str, url: str, headers: dict[str, str]) -> RawAnswer:
    """What AWS S3 answers the probe: checksums and MD5 enforced, If-None-Match honoured, no CORS rule."""
    if method == "OPTIONS":
        return answer(403, "AccessForbidden")
    if method == "GET":  # the location signed for a made-up region
        return answer(400, "AuthorizationQueryParametersError", text=AWS_REGION_ERROR)
    if "x-amz-checksum-sha256" in headers or "Content-MD5" in headers:
        return answer(400, "BadDigest")
    return answer(412 if url in WRITTEN else 200, "PreconditionFailed" if url in WRITTEN else "")


WRITTEN: set[str] = set()


class FakeStorage(Storage):
    """Presigns for real; every request on the network is answered by `answer` or the fields below."""

    def __init__(self, respond: Answer) -> None:
        super().__init__()
        self.respond = respond
        self.cors: list[dict[str, Any]] | None = None
        self.refuse_cors = False
        self.deleted: list[str] = []
        self.aborted: list[str] = []

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Any = None,
        body: bytes = b"",
        timeout: float,  # noqa: ASYNC109
    ) -> RawAnswer:
        got = self.respond(method, url, dict(headers or {}))
        if method == "PUT" and 200 <= got.status < 300:
            WRITTEN.add(url)
        return got

    async def create_upload(
        self,
        target: S3Target,
        key: str,
        *,
        content_type: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        return "upload-1"

    async def abort_upload(
        self,
        target: S3Target,
        key: str,
        upload_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        self.aborted.append(key)

    async def delete(self, target: S3Target, key: str) -> None:
        self.deleted.append(key)

    async def delete_every_version(self, target: S3Target, key: str) -> None:
        self.deleted.append(f"versions of {key}")

    async def bucket_cors(self, target: S3Target) -> list[dict[str, Any]] | None:
        return self.cors

    async def set_bucket_cors(self, target: S3Target, rules: list[dict[str, Any]]) -> None:
        if self.refuse_cors:
            raise StorageError("PUT bucket CORS: access denied", code="storage_auth_failed")
        self.cors = rules

    async def bucket_versioning(self, target: S3Target) -> str:
        return "off"

    async def bucket_location(self, target: S3Target) -> str | None:
        return "eu-west-1"


async def probed(storage: FakeStorage, *, registered: bool = True, clock: Clock = SYSTEM_CLOCK) -> Capabilities:
    return await Prober(storage, PAGE, timeout=5, clock=clock).probe(TARGET, registered=registered)


async def test_an_aws_like_server_proves_everything_but_cors_and_names_the_region_it_expects() -> None:
    storage = FakeStorage(aws)
    storage.refuse_cors = True
    clock = FakeClock()
    clock.advance(7 * 86400)  # (its stamps are the clock's: the registry's due times and awaited events count on it)
    found = await probed(storage, clock=clock)
    assert found.checked_at == clock.now_iso()
    assert (found.checksum_enforced, found.content_md5_enforced, found.conditional_write) == (True, True, True)
    assert (found.bucket_region, found.signing_region, found.versioning) == ("eu-west-1", "eu-west-1", "off")
    assert found.cors is False
    assert found.cors_rule is not None and json.loads(found.cors_rule) == probe.cors_rule(PAGE)
    assert found.events_probe_at == found.checked_at  # it wrote an object whose event is due
    # nothing left: the object it wrote deleted (the checksum try was refused), its multipart upload aborted
    assert [k.rpartition("-")[2] for k in storage.deleted] == ["once"]
    assert [k.rpartition("-")[2] for k in storage.aborted] == ["md5"]


async def test_a_server_that_lets_cdnstore_add_the_rule_is_given_it_beside_its_own_rules() -> None:
    theirs = {"AllowedOrigins": ["https://other.example"], "AllowedMethods": ["GET"]}

    def allows_once_ruled(method: str, url: str, headers: dict[str, str]) -> RawAnswer:
        if method == "OPTIONS" and storage.cors is not None and len(storage.cors) == 2:
            return answer(200, headers={"access-control-allow-origin": PAGE, "access-control-allow-headers": "*"})
        return aws(method, url, headers)

    storage = FakeStorage(allows_once_ruled)
    storage.cors = [theirs]
    found = await probed(storage)
    assert found.cors is True and found.cors_rule is None
    assert storage.cors == [theirs, probe.cors_rule(PAGE)]


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"access-control-allow-origin": PAGE, "access-control-allow-headers": ",".join(probe.UPLOAD_HEADERS)}, True),
        ({"access-control-allow-origin": "*", "access-control-allow-headers": "*"}, True),
        ({"access-control-allow-origin": "https://other.example", "access-control-allow-headers": "*"}, False),
        ({"access-control-allow-origin": PAGE, "access-control-allow-headers": "content-type"}, False),
        (
            {
                "access-control-allow-origin": PAGE,
                "access-control-allow-headers": "*",
                "access-control-allow-methods": "GET",
            },
            False,
        ),
    ],
)
async def test_a_preflight_passes_only_with_the_origin_the_method_and_every_upload_header(
    headers: dict[str, str], allowed: bool
) -> None:
    storage = FakeStorage(lambda m, u, h: answer(200, headers=headers) if m == "OPTIONS" else aws(m, u, h))
    storage.refuse_cors = True
    assert (await probed(storage)).cors is allowed


async def test_a_server_that_refuses_the_if_none_match_header_is_never_sent_it() -> None:
    def refuses(method: str, url: str, headers: dict[str, str]) -> RawAnswer:
        if "If-None-Match" in headers:
            return answer(501, "NotImplemented")
        return aws(method, url, headers)

    found = await probed(FakeStorage(refuses))
    assert found.conditional_write is False and found.checksum_enforced is True
    assert found.events_probe_at is None  # nothing was written: no event is due


async def test_a_step_that_gets_no_answer_is_not_proved_and_the_others_still_are() -> None:
    def flaky(method: str, url: str, headers: dict[str, str]) -> RawAnswer:
        if "x-amz-checksum-sha256" in headers:
            raise StorageError("PUT: server unreachable", code="storage_unreachable")
        return aws(method, url, headers)

    found = await probed(FakeStorage(flaky))
    assert found.checksum_enforced is None and found.content_md5_enforced is True


async def test_a_probe_made_before_the_server_is_registered_awaits_no_event() -> None:
    assert (await probed(FakeStorage(aws), registered=False)).events_probe_at is None


def server(capabilities: Capabilities | None, events_seen_at: str | None) -> Server:
    return Server(
        "id", 1, "edge", "http://s3", "b", "us-east-1", "k", "s", "City", "Zone", 0, 0, True, True, Health.UP, "", "",
        capabilities=capabilities, events_seen_at=events_seen_at,
    )  # fmt: skip


def test_events_are_unknown_until_a_probe_of_the_registered_server_or_an_event_tells() -> None:
    t0 = 1_800_000_000.0
    probed_at = Capabilities(checked_at=iso(t0), events_probe_at=iso(t0))
    assert probe.events_state(server(None, None), iso(t0)) == "unknown"
    assert probe.events_state(server(probed_at, None), iso(t0 + 30)) == "unknown"  # its event may be on its way
    assert probe.events_state(server(probed_at, None), iso(t0 + 61)) == "none"
    assert probe.events_state(server(probed_at, iso(t0 + 1)), iso(t0 + 61)) == "seen"
    assert probe.events_state(server(probed_at, iso(t0 - 5)), iso(t0 + 61)) == "none"  # heard before, not since
    assert probe.events_state(server(None, iso(t0)), iso(t0 + 3 * 86400)) == "unknown"  # quiet for days


def test_capabilities_stored_by_another_cdnstore_read_back_with_the_fields_this_one_knows() -> None:
    stored = json.dumps({"checked_at": "2026-12-07T00:00:00.000Z", "cors": True, "from_the_future": 1})
    assert probe.load(stored) == Capabilities(checked_at="2026-12-07T00:00:00.000Z", cors=True)
    assert probe.load(None) is None
    found = Capabilities(checked_at="x", checksum_enforced=False, cors_rule='{"a":1}')
    assert probe.load(probe.dump(found)) == found


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://files.example.com", "https://files.example.com"),
        ("https://files.example.com:443/app", "https://files.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_the_page_origin_is_what_a_browser_sends(url: str, origin: str) -> None:
    assert probe.origin_of(url) == origin
