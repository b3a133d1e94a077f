"""Every S3 server people run: what each vendor proves to the capability probe, and what cdnstore does with
it (issue 26 items 3 and 4), against real SeaweedFS and a real Ceph RGW 16.2.

The two differ where it matters: SeaweedFS refuses bytes that differ from a signed x-amz-checksum-sha256,
RGW stores them (200); both refuse a second PUT with `If-None-Match: *` (412); RGW's bucket has no CORS rule
until the probe adds one; the bed's RGW sends no events (its topic is set up by the events tests only)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from apihelp import US_IP, Api, Session, fetch, from_ip, put_bytes, wait_for, writes_not_once

from cdnstore import appkeys, probe
from cdnstore.models import Capabilities, S3Target
from cdnstore.times import iso
from testbed.faultproxy import fault_proxy
from testbed.rgw import RgwBed
from testbed.seaweed import WeedCluster

VENDORS = ("seaweedfs", "rgw")
GOOD, BAD = b"the bytes the client meant\n" * 40, b"other bytes of the same size\n" * 40
BAD = BAD[: len(GOOD)]


@dataclass(frozen=True)
class Vendor:
    name: str  # "seaweedfs" or "rgw"
    endpoint_url: str | None  # None: the SeaweedFS instance of the site registered

    @property
    def enforces_checksums(self) -> bool:
        return self.name == "seaweedfs"


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    """Each vendor in turn (the RGW bed starts, once a session, when a test first asks for it)."""
    if request.param == "rgw":
        return Vendor("rgw", request.getfixturevalue("rgw").endpoint_url)
    return Vendor("seaweedfs", None)


async def register(admin: Session, weed: WeedCluster, vendor: Vendor, bucket: str, **overrides: Any) -> dict[str, Any]:
    """A server named `edge` in Dallas (zone USA: where US_IP's uploads go) on `vendor`."""
    if vendor.endpoint_url is not None:
        overrides.setdefault("endpoint_url", vendor.endpoint_url)
    return await admin.add_server(weed, "dallas", bucket, name="edge", **overrides)


def target(api: Api, server: dict[str, Any]) -> S3Target:
    return api.app[appkeys.SERVERS].get(server["id"]).s3


async def leftovers(api: Api, server: dict[str, Any]) -> list[str]:
    """What is in the server's bucket: objects, and multipart uploads never completed."""
    storage = api.app[appkeys.STORAGE]
    objects = [o.key async for o in storage.list_objects(target(api, server))]
    uploads = await storage.stale_uploads(target(api, server), datetime.now(UTC))
    return objects + [f"upload {key}" for key, _ in uploads]


async def test_the_probe_proves_what_each_vendor_does_and_leaves_nothing_behind(
    api: Api, weed: WeedCluster, vendor: Vendor, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    server = await register(admin, weed, vendor, bucket)
    found = server["capabilities"]
    assert found["checksum_enforced"] is vendor.enforces_checksums  # RGW 16.2 stores other bytes (200)
    assert found["content_md5_enforced"] is True and found["conditional_write"] is True
    assert found["cors"] is True and found["cors_rule"] is None
    assert found["versioning"] == "off"
    assert found["signing_region"] == "any"  # neither checks the region in a signature
    assert found["bucket_region"] == ("default" if vendor.name == "rgw" else None)
    assert found["events"] == "unknown"  # probed before its name could receive events
    assert await leftovers(api, server) == []
    again = (await admin.post(f"/api/v1/servers/{server['id']}/probe")).expect(200)
    assert again["capabilities"]["checked_at"] > found["checked_at"]
    assert await leftovers(api, server) == []


async def test_the_probe_adds_the_cors_rule_the_page_needs_where_the_bucket_has_none(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str
) -> None:
    """RGW answers every preflight 403 until the bucket has a rule: the probe adds one for the page's origin
    (http.public_url), beside the rules the bucket had."""
    async with rgw.client("s3") as s3:
        await s3.create_bucket(Bucket=bucket)
        theirs = {"AllowedOrigins": ["https://other.example"], "AllowedMethods": ["GET"]}
        await s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [theirs]})
        admin = await api.user("root", admin=True)
        server = await admin.add_server(weed, "dallas", bucket, name="edge", endpoint_url=rgw.endpoint_url)
        assert server["capabilities"]["cors"] is True
        rules = (await s3.get_bucket_cors(Bucket=bucket))["CORSRules"]
    page = api.app[appkeys.CONFIG].http.public_url
    assert [r["AllowedOrigins"] for r in rules] == [["https://other.example"], [page]]
    assert set(rules[1]["AllowedMethods"]) == {"PUT", "GET", "HEAD"} and rules[1]["ExposeHeaders"] == ["ETag"]


async def test_a_probe_of_a_versioned_bucket_says_so_and_leaves_no_version_behind(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str
) -> None:
    async with rgw.client("s3") as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        admin = await api.user("root", admin=True)
        server = await admin.add_server(weed, "dallas", bucket, name="edge", endpoint_url=rgw.endpoint_url)
        listed = await s3.list_object_versions(Bucket=bucket)
    assert server["capabilities"]["versioning"] == "enabled"
    assert listed.get("Versions", []) == [] and listed.get("DeleteMarkers", []) == []


async def test_the_daily_round_probes_the_servers_whose_proof_is_old_or_missing(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    fresh = await admin.add_server(weed, "dallas", bucket)
    stale = await admin.add_server(weed, "newyork", bucket)
    never = await admin.add_server(weed, "detroit", bucket)  # (as one registered by a cdnstore before probes)
    old = iso(datetime.now(UTC).timestamp() - 2 * 86400)
    async with api.app[appkeys.DB].transaction() as tx:
        await tx.execute("UPDATE servers SET capabilities = NULL WHERE uuid = ?", (never["id"],))
        await tx.execute(
            "UPDATE servers SET capabilities = ? WHERE uuid = ?",
            (probe.dump(Capabilities(checked_at=old)), stale["id"]),
        )
    registry = api.app[appkeys.SERVERS]
    await registry.load()
    assert await registry.probe_due(86400) == 2
    checked = {s.name: s.capabilities.checked_at for s in registry.all() if s.capabilities}
    assert checked[stale["name"]] > old and never["name"] in checked
    assert checked[fresh["name"]] == fresh["capabilities"]["checked_at"]
    assert await registry.probe_due(86400) == 0


async def announce(admin: Session, name: str, sha256: str) -> dict[str, Any]:
    body = {"name": name, "size": len(GOOD), "content_type": "text/plain", "sha256": sha256}
    return dict((await admin.post("/api/v1/files", json=body, headers=from_ip(US_IP))).expect(201))


async def test_wrong_bytes_under_a_declared_sha256_never_become_stored_on_either_vendor(
    api: Api, weed: WeedCluster, vendor: Vendor, bucket: str
) -> None:
    """SeaweedFS refuses them at the PUT; RGW stores them, so cdnstore reads the object before the file is
    stored (the integrity verifier) and rejects it."""
    admin = await api.user("root", admin=True)
    await register(admin, weed, vendor, bucket)
    answer = await announce(admin, "claimed.txt", hashlib.sha256(GOOD).hexdigest())
    file_id = answer["file"]["id"]
    assert await put_bytes(answer["upload"], BAD) == (400 if vendor.enforces_checksums else 200)
    completed = await admin.post(f"/api/v1/files/{file_id}/complete")
    if vendor.enforces_checksums:
        completed.problem(409, "upload_incomplete")  # nothing arrived
        return
    assert completed.expect(200)["status"] == "uploading"  # there, but not believed
    assert (await admin.get(f"/api/v1/files/{file_id}/download")).problem(409, "file_not_ready")
    assert await api.app[appkeys.INTEGRITY].verify() == 1
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    history = (await admin.get("/api/v1/history?event=file.corrupt")).expect(200)["items"]
    assert [h["data"]["name"] for h in history] == ["claimed.txt"]


async def test_the_right_bytes_under_a_declared_sha256_are_stored_once_read_on_a_server_that_does_not_enforce_it(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="edge", endpoint_url=rgw.endpoint_url)
    sha256 = hashlib.sha256(GOOD).hexdigest()
    answer = await announce(admin, "honest.txt", sha256)
    assert await put_bytes(answer["upload"], GOOD) == 200
    file_id = answer["file"]["id"]
    assert (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)["status"] == "uploading"
    assert await api.app[appkeys.INTEGRITY].verify() == 1
    stored = (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert (stored["status"], stored["sha256"]) == ("stored", sha256)
    assert (await admin.download(file_id))[1] == GOOD


async def test_wrong_bytes_on_a_server_that_does_not_enforce_checksums_are_caught_by_the_zones_first_copy(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str
) -> None:
    """With another server in the zone no verification read is needed: the first copy reads the bytes."""
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="edge", endpoint_url=rgw.endpoint_url)
    await admin.add_server(weed, "newyork", bucket)
    answer = await announce(admin, "claimed.txt", hashlib.sha256(GOOD).hexdigest())
    assert await put_bytes(answer["upload"], BAD) == 200
    file_id = answer["file"]["id"]
    assert (await admin.post(f"/api/v1/files/{file_id}/complete")).expect(200)["status"] == "uploading"
    await api.app[appkeys.WORKER].run_until_idle()
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    assert [j for j in await api.app[appkeys.JOBS].page(None, 10, None) if j.kind == "copy"] == []


async def test_a_second_put_to_the_upload_url_after_storing_is_refused_where_the_server_honours_if_none_match(
    api: Api, weed: WeedCluster, vendor: Vendor, bucket: str
) -> None:
    """Issue 24 item 3's content swap, closed at the storage server: the URL writes its key once."""
    admin = await api.user("root", admin=True)
    await register(admin, weed, vendor, bucket)
    answer = await admin.upload_and_confirm("once.txt", GOOD)
    assert answer["upload"]["headers"]["If-None-Match"] == "*"
    assert await put_bytes(answer["upload"], BAD) == 412
    assert (await admin.download(answer["file"]["id"]))[1] == GOOD


async def test_upload_urls_of_a_server_that_does_not_honour_if_none_match_do_not_ask_for_it(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "dallas", bucket)
    found = api.app[appkeys.SERVERS].get(server["id"]).capabilities
    assert found is not None and found.conditional_write is True
    await writes_not_once(api, server["id"])
    answer = await admin.upload_and_confirm("twice.txt", GOOD)
    assert "If-None-Match" not in answer["upload"]["headers"]
    assert (await admin.get(f"/api/v1/files/{answer['file']['id']}/upload")).problem(404, "no_upload")


async def test_events_are_seen_once_one_arrives_and_none_when_a_probe_heard_nothing(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str
) -> None:
    """SeaweedFS's filer sends its events to the test daemon; the bed's RGW has no topic: after a probe of
    the registered server wrote an object and a minute passed with nothing heard, its events are "none"."""
    admin = await api.user("root", admin=True)
    seaweed = await admin.add_server(weed, "dallas", bucket)
    quiet = await admin.add_server(weed, "newyork", bucket, name="edge", endpoint_url=rgw.endpoint_url)
    for server in (seaweed, quiet):
        assert (await admin.post(f"/api/v1/servers/{server['id']}/probe")).expect(200)

    async def events(server: dict[str, Any]) -> str:
        return str((await admin.get(f"/api/v1/servers/{server['id']}")).expect(200)["capabilities"]["events"])

    async def seaweed_seen() -> bool:
        return await events(seaweed) == "seen"

    await wait_for(seaweed_seen, "SeaweedFS's event of the probe's object to arrive")
    registry = api.app[appkeys.SERVERS]
    later = iso(datetime.now(UTC).timestamp() + 2 * probe.EVENTS_GRACE)
    assert probe.events_state(registry.get(quiet["id"]), later) == "none"
    assert probe.events_state(registry.get(seaweed["id"]), later) == "seen"
    assert await events(quiet) == "unknown"  # (within the minute an event may take)


async def test_an_upload_to_a_server_without_events_is_found_by_the_fast_sweep_without_complete(
    make_api: Any, weed: WeedCluster, rgw: RgwBed, bucket: str
) -> None:
    """The full sweep looks only after an hour here: the fast one, for servers whose events are not seen,
    stores the upload within seconds although the client never calls /complete."""
    api = await make_api(uploads={"sweep_after": 3600, "sweep_interval": 3600, "fast_sweep_interval": 0.2})
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket, name="edge", endpoint_url=rgw.endpoint_url)
    answer = await admin.upload("quiet.txt", GOOD)
    await admin.wait_stored(answer["file"]["id"])


async def test_a_public_url_other_than_the_endpoint_serves_uploads_and_downloads(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    """Clients get URLs for the public address (a proxy in front of the server here, as a TLS proxy or a
    Docker port would be); cdnstore's own requests (the /complete HEAD, copies, probes) use endpoint_url."""
    admin = await api.user("root", admin=True)
    async with fault_proxy(weed.instance("dallas").endpoint_url) as proxy:
        server = await admin.add_server(weed, "dallas", bucket, public_url=proxy.url)
        assert server["public_url"] == proxy.url and server["capabilities"]["cors"] is True
        assert proxy.connections == 0  # (the registration and its probe went to endpoint_url)
        answer = await admin.upload("public.txt", GOOD)
        assert answer["upload"]["url"].startswith(f"{proxy.url}/{bucket}/")
        seen = proxy.connections
        assert seen >= 1
        (await admin.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
        link = (await admin.get(f"/api/v1/files/{answer['file']['id']}/download", headers=from_ip(US_IP))).expect(200)
        assert proxy.connections == seen  # (the HEAD of /complete went to endpoint_url)
        assert link["url"].startswith(f"{proxy.url}/{bucket}/")
        status, body, _ = await fetch(link["url"])
        assert (status, body) == (200, GOOD) and proxy.connections > seen
        csp = (await api.call("GET", "/")).headers["Content-Security-Policy"]
        assert proxy.url in csp and weed.instance("dallas").endpoint_url not in csp
        cleared = (await admin.patch(f"/api/v1/servers/{server['id']}", json={"public_url": None})).expect(200)
    assert (
        cleared["public_url"] is None and cleared["capabilities"]["checked_at"] > server["capabilities"]["checked_at"]
    )
    link = (await admin.get(f"/api/v1/files/{answer['file']['id']}/download", headers=from_ip(US_IP))).expect(200)
    assert link["url"].startswith(weed.instance("dallas").endpoint_url)
