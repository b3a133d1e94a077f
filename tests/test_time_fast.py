"""What the passing of time decides, in the fast tier: the daemon on the in-memory storage and on a
`testbed.clock.FakeClock` handed to `create_app(clock=...)`, so a link's expiry, an upload's deadline and
the trash's retention pass when the test moves the clock, at once and on both engines; and what records
the time, the history and the webhook events, tells the clock's."""

from __future__ import annotations

import pytest
from apihelp import US_IP, from_ip
from conftest import MakeApi
from test_replication_fast import DATA, USA, Fleet, make_fleet

from cdnstore import appkeys
from testbed.clock import FakeClock

DAY = 86400


async def later(fleet: Fleet, clock: FakeClock, seconds: float) -> None:
    """`seconds` pass; the admin signs in again (access tokens live minutes, on the same clock)."""
    clock.advance(seconds)
    fleet.admin = await fleet.api.login("root")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fleet(make_api: MakeApi, clock: FakeClock) -> Fleet:
    # (webhooks to a private address: the stories below read the deliveries' log, nothing is received)
    return await make_fleet(make_api, clock=clock, files={"trash_days": 7}, webhooks={"allow_private": True})


async def test_a_link_works_until_its_expiry_passes_then_answers_expired(fleet: Fleet, clock: FakeClock) -> None:
    file_id, _ = await fleet.stored("shared.bin")
    link = (await fleet.admin.post(f"/api/v1/files/{file_id}/links", json={"expires_in": 60})).expect(201)
    assert link["expires_at"] == clock.iso_in(60)
    download = f"/api/v1/public/links/{link['token']}/download"
    clock.advance(59.9)
    (await fleet.api.call("POST", download, headers=from_ip(US_IP))).expect(200)
    clock.advance(0.1)  # its expiry is reached: no longer before it
    (await fleet.api.call("GET", f"/api/v1/public/links/{link['token']}")).problem(410, "link_expired")
    (await fleet.api.call("POST", download, headers=from_ip(US_IP))).problem(410, "link_expired")
    [listed] = (await fleet.admin.get(f"/api/v1/files/{file_id}/links")).expect(200)["items"]
    assert listed["state"] == "expired"


async def test_an_upload_never_sent_is_given_up_by_the_sweep_once_its_deadline_passes(
    fleet: Fleet, clock: FakeClock
) -> None:
    answer = await fleet.admin.announce("never.bin", DATA, ip=US_IP)
    file_id = answer["file"]["id"]
    abandon_after = fleet.api.app[appkeys.CONFIG].uploads.abandon_after
    await later(fleet, clock, abandon_after - 1)  # still within its deadline: the sweep leaves it
    assert await fleet.api.app[appkeys.UPLOADS].sweep() == 0
    assert (await fleet.admin.get(f"/api/v1/files/{file_id}")).expect(200)["status"] == "uploading"
    await later(fleet, clock, 2)
    assert await fleet.api.app[appkeys.UPLOADS].sweep() == 0
    (await fleet.admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    deleted = (await fleet.admin.get("/api/v1/history?event=file.deleted")).expect(200)["items"]
    assert deleted[0]["data"] == {"name": "never.bin", "reason": "upload_never_arrived"}


async def test_a_file_in_the_trash_is_purged_from_every_server_once_its_retention_passes(
    fleet: Fleet, clock: FakeClock
) -> None:
    file_id, key = await fleet.stored("old.bin")
    await fleet.run_jobs()
    assert fleet.holders(key) == USA
    (await fleet.admin.delete(f"/api/v1/files/{file_id}")).expect(204)
    [trashed] = (await fleet.admin.get("/api/v1/trash")).expect(200)["items"]
    assert trashed["purge_at"] == clock.iso_in(7 * DAY)
    await later(fleet, clock, 7 * DAY - 1)  # a second short of a week: kept
    assert await fleet.api.app[appkeys.TRASH].sweep() == 0
    await fleet.run_jobs()
    assert fleet.holders(key) == USA
    clock.advance(1)
    assert await fleet.api.app[appkeys.TRASH].sweep() == 1
    assert (await fleet.admin.get("/api/v1/trash")).expect(200)["items"] == []
    await fleet.run_jobs()
    assert all(key not in fleet.memory.objects(target) for target in fleet.servers.values())
    purged = (await fleet.admin.get("/api/v1/history?event=file.purged")).expect(200)["items"]
    assert purged[0]["data"] == {"name": "old.bin", "reason": "trash_period_over"}


async def test_a_file_whose_expiry_passes_goes_to_the_trash(fleet: Fleet, clock: FakeClock) -> None:
    file_id, _ = await fleet.stored("brief.bin")
    (await fleet.admin.patch(f"/api/v1/files/{file_id}", json={"expires_at": clock.iso_in(3600)})).expect(200)
    await later(fleet, clock, 3599)
    assert await fleet.api.app[appkeys.TRASH].sweep() == 0
    clock.advance(1)
    assert await fleet.api.app[appkeys.TRASH].sweep() == 1
    (await fleet.admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    [trashed] = (await fleet.admin.get("/api/v1/trash")).expect(200)["items"]
    assert trashed["id"] == file_id and trashed["purge_at"] == clock.iso_in(7 * DAY)


async def times_of(fleet: Fleet, path: str) -> dict[str, list[str]]:
    """The times `path` lists (the history's rows, a webhook's deliveries: their event's time), by event,
    oldest first."""
    found: dict[str, list[str]] = {}
    for item in reversed((await fleet.admin.get(path)).expect(200)["items"]):
        found.setdefault(item["event"], []).append(item["created_at"])
    return found


async def test_a_files_history_and_the_webhook_events_it_emits_carry_the_clocks_time(
    fleet: Fleet, clock: FakeClock
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["file.stored", "file.deleted"]}
    hook = (await fleet.admin.post("/api/v1/webhooks", json=body)).expect(201)
    await later(fleet, clock, 7 * DAY)  # a week from the real now: no row may tell that one
    uploaded = clock.now_iso()
    file_id, _ = await fleet.stored("week.bin")
    clock.advance(60)
    renamed = clock.now_iso()
    (await fleet.admin.patch(f"/api/v1/files/{file_id}", json={"name": "weekly.bin"})).expect(200)
    clock.advance(60)
    deleted = clock.now_iso()
    (await fleet.admin.delete(f"/api/v1/files/{file_id}")).expect(204)
    history = await times_of(fleet, "/api/v1/history")
    assert {event: history[event] for event in ("file.uploaded", "file.stored", "file.renamed", "file.deleted")} == {
        "file.uploaded": [uploaded],
        "file.stored": [uploaded],
        "file.renamed": [renamed],
        "file.deleted": [deleted],
    }
    events = await times_of(fleet, f"/api/v1/webhooks/{hook['id']}/deliveries")
    assert events == {"file.stored": [uploaded], "file.deleted": [deleted]}


async def test_a_downloads_batched_history_row_and_a_link_downloads_event_carry_the_clocks_time(
    fleet: Fleet, clock: FakeClock
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["link.downloaded"]}
    hook = (await fleet.admin.post("/api/v1/webhooks", json=body)).expect(201)
    file_id, _ = await fleet.stored("got.bin")
    link = (await fleet.admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    await later(fleet, clock, 7 * DAY)
    downloaded = clock.now_iso()
    (await fleet.admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    clock.advance(60)
    shared = clock.now_iso()
    download = f"/api/v1/public/links/{link['token']}/download"
    (await fleet.api.call("POST", download, headers=from_ip(US_IP))).expect(200)
    history = await times_of(fleet, "/api/v1/history")  # (it writes the batched rows first)
    assert (history["file.downloaded"], history["link.downloaded"]) == ([downloaded], [shared])
    events = await times_of(fleet, f"/api/v1/webhooks/{hook['id']}/deliveries")
    assert events == {"link.downloaded": [shared]}
