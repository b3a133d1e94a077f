"""Integrity on the way in and on every copy, on the `s3` servers (tests/s3bed.py: in memory, the fast tier,
and real SeaweedFS, but for the tests marked REAL_ONLY): a declared SHA-256 binds the
upload, every stored version gets a known SHA-256 (from its first copy, or a verification read when its
zone has no other server), a multipart upload whose declared SHA-256 is wrong is rejected, downloads carry
the SHA-256 and never go to a corrupt replica; the verifier's rounds are fair between owners, back off and
end in a verdict; an object written again after it was stored (a content swap) is found from its storage
event and repaired."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

import pytest
from apihelp import (
    SOUTH_AFRICA_IP,
    US_IP,
    Api,
    Session,
    events_unheard,
    from_ip,
    samples,
    stored_and_copied,
    value,
    wait_for,
    writes_not_once,
)
from s3bed import REAL_ONLY, S3Bed, store_of

from cdnstore import appkeys
from cdnstore.times import iso_in

MIB = 1 << 20
DATA = b"integrity matters " * 4000
SHA256 = hashlib.sha256(DATA).hexdigest()
QUICK_RETRIES = {"jobs": {"backoff_base": 0.05, "backoff_max": 0.2}}


@pytest.fixture
def api(s3_api: Api) -> Api:
    """The daemon on this test's `s3` servers."""
    return s3_api


async def setup(api: Api, s3: S3Bed, bucket: str) -> Session:
    admin = await api.user("root", admin=True)
    await admin.add_layout(s3, bucket)
    return admin


async def announce(user: Session, name: str, size: int, sha256: str | None, ip: str = US_IP) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "size": size, "content_type": "application/octet-stream"}
    if sha256 is not None:
        body["sha256"] = sha256
    return dict((await user.post("/api/v1/files", json=body, headers=from_ip(ip))).expect(201))


async def replica_rows(api: Api, file_id: str) -> dict[str, tuple[str, str | None]]:
    """server name -> (status, verified_at) of the file's current version, as the database has them."""
    rows = await api.app[appkeys.DB].fetchall(
        "SELECT s.name, r.status, r.verified_at FROM files f JOIN replicas r ON r.version_id = f.current_version_id "
        "JOIN servers s ON s.id = r.server_id WHERE f.uuid = ?",
        (file_id,),
    )
    return {r["name"]: (r["status"], r["verified_at"]) for r in rows}


async def test_a_declared_sha256_binds_the_put_so_the_storage_server_refuses_other_bytes(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    answer = await announce(admin, "bound.bin", len(DATA), SHA256.upper())
    assert answer["file"]["sha256"] == SHA256  # kept in lowercase
    upload = answer["upload"]
    assert upload["headers"]["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(SHA256)).decode()

    tampered = DATA[:-1] + b"?"  # same size, other bytes
    assert await api.put_bytes(upload, tampered) == 400  # BadDigest: nothing stored
    (await admin.post(f"/api/v1/files/{answer['file']['id']}/complete")).problem(409, "upload_incomplete")
    assert await api.put_bytes(upload, DATA) == 200
    stored = (await admin.post(f"/api/v1/files/{answer['file']['id']}/complete")).expect(200)
    assert (stored["status"], stored["sha256"]) == ("stored", SHA256)


async def test_a_sha256_that_is_not_64_hex_characters_is_refused_naming_the_field(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    for wrong in ("abc", "g" * 64, SHA256 + "0", 42):
        answer = await admin.post("/api/v1/files", json={"name": "x.bin", "size": 3, "sha256": wrong})
        problem = answer.problem(422, "invalid_field")
        assert "sha256" in str(problem), problem


async def test_a_stored_files_sha256_is_learnt_from_its_first_copy_and_every_copy_is_verified(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    answer = await announce(admin, "undeclared.bin", len(DATA), None)
    assert answer["file"]["sha256"] is None
    assert "x-amz-checksum-sha256" not in answer["upload"]["headers"]
    assert await api.put_bytes(answer["upload"], DATA) == 200
    file_id = answer["file"]["id"]
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()

    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] == SHA256
    replicas = await replica_rows(api, file_id)
    assert set(replicas) == {"dallas", "newyork"}
    copied = [name for name, (_, verified_at) in replicas.items() if verified_at is not None]
    assert len(copied) == 1 and all(status == "present" for status, _ in replicas.values())
    link = (await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    status, body, _ = await api.fetch(link["url"])
    assert (status, hashlib.sha256(body).hexdigest(), link["sha256"]) == (200, SHA256, SHA256)


async def test_a_version_stored_before_sha256s_were_kept_learns_its_own_from_its_next_copy(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    file_id = (await stored_and_copied(api, admin, "old.bin", DATA))["file"]["id"]
    async with api.app[appkeys.DB].transaction() as tx:  # as migration 0006 leaves an older version
        await tx.execute("UPDATE versions SET sha256 = NULL, verify_pending = 0")
        await tx.execute("UPDATE replicas SET verified_at = NULL")
    assert await api.app[appkeys.INTEGRITY].verify() == 0  # no big-bang rehash of old versions
    detroit = next(s for s in (await admin.get("/api/v1/servers")).expect(200)["items"] if s["name"] == "detroit")
    (await admin.patch(f"/api/v1/servers/{detroit['id']}", json={"is_active": True})).expect(200)
    await api.app[appkeys.WORKER].run_until_idle()
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] == SHA256
    assert (await replica_rows(api, file_id))["detroit"][1] is not None


async def test_a_file_alone_in_its_zone_gets_its_sha256_from_one_verification_read(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    alone = await stored_and_copied(api, admin, "alone.bin", DATA, ip=SOUTH_AFRICA_IP)  # Cape Town: no other
    file_id = alone["file"]["id"]
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] is None

    assert await api.app[appkeys.INTEGRITY].verify() == 1
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] == SHA256
    ((status, verified_at),) = (await replica_rows(api, file_id)).values()
    assert status == "present" and verified_at is not None
    assert await api.app[appkeys.INTEGRITY].verify() == 0  # read once, not again


@REAL_ONLY  # pacing (the S3 storage's own; memory reads are not paced)
async def test_verification_reads_take_at_most_integrity_verify_rate_bytes_a_second(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), integrity={"verify_rate": len(DATA)})  # the file in one second, not faster
    admin = await setup(api, s3, bucket)
    file_id = (await admin.upload("slow.bin", DATA, ip=SOUTH_AFRICA_IP))["file"]["id"]
    await admin.wait_stored(file_id)
    started = time.monotonic()
    assert await api.app[appkeys.INTEGRITY].verify() == 1
    assert time.monotonic() - started >= 0.9
    assert (await admin.get(f"/api/v1/files/{file_id}")).expect(200)["sha256"] == SHA256


async def test_a_multipart_upload_whose_declared_sha256_is_wrong_is_rejected_and_the_file_keeps_its_content(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), uploads={"multipart_threshold": 5 * MIB})
    admin = await setup(api, s3, bucket)
    file_id = (await stored_and_copied(api, admin, "big.bin", DATA))["file"]["id"]
    big = bytes(range(256)) * (6 * MIB // 256)

    assert await admin.upload_in_parts("big.bin", big, "0" * 64) == file_id  # declared wrong
    await api.app[appkeys.WORKER].run_until_idle()
    file = (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert (file["size"], file["sha256"]) == (len(DATA), SHA256)  # the previous content, still served
    _, body = await admin.download(file_id)
    assert body == DATA
    events = (await admin.get("/api/v1/history?event=file.corrupt")).expect(200)["items"]
    assert [e["data"]["found"] for e in events] == [hashlib.sha256(big).hexdigest()]
    rejected = await api.app[appkeys.DB].fetchone(
        "SELECT status, rejected_at FROM versions WHERE sha256 = ?", ("0" * 64,)
    )
    assert rejected is not None and rejected["status"] == "deleted" and rejected["rejected_at"] is not None

    right = hashlib.sha256(big).hexdigest()
    assert await admin.upload_in_parts("big.bin", big, right) == file_id  # declared right: becomes current
    await api.app[appkeys.WORKER].run_until_idle()
    file = (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert (file["size"], file["sha256"]) == (len(big), right)


async def test_a_new_file_whose_declared_sha256_is_wrong_goes_when_the_verification_read_finds_it(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), uploads={"multipart_threshold": 5 * MIB})
    admin = await setup(api, s3, bucket)
    big = bytes(range(256)) * (6 * MIB // 256)
    file_id = await admin.upload_in_parts("alone.bin", big, "f" * 64, ip=SOUTH_AFRICA_IP)  # Cape Town alone
    file = (await admin.get(f"/api/v1/files/{file_id}")).expect(200)
    assert file["status"] == "uploading"  # stored, but not its content until a read confirms the SHA-256
    (await admin.get(f"/api/v1/files/{file_id}/download")).problem(409, "file_not_ready")

    assert await api.app[appkeys.INTEGRITY].verify() == 1
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    events = (await admin.get("/api/v1/history")).expect(200)["items"]
    assert [(e["event"], e["data"].get("reason")) for e in events[:2]] == [
        ("file.deleted", "content_corrupt"),
        ("file.corrupt", "sha256_mismatch"),
    ]
    await api.app[appkeys.WORKER].run_until_idle()
    storage = api.app[appkeys.STORAGE]
    assert [o async for o in storage.list_objects(s3.target("capetown", bucket))] == []


async def test_servers_show_corrupt_replicas_and_downloads_never_choose_one(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await setup(api, s3, bucket)
    file_id = (await stored_and_copied(api, admin, "c.bin", DATA))["file"]["id"]
    nearest = (await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
    db = api.app[appkeys.DB]
    async with db.transaction() as tx:
        await tx.execute(
            "UPDATE replicas SET status = 'corrupt' WHERE server_id = (SELECT id FROM servers WHERE name = ?)",
            (nearest["server"]["name"],),
        )
    items = (await admin.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
    assert {i["server"]["name"]: i["status"] for i in items} == {
        "dallas": "present",
        "newyork": "present",
        nearest["server"]["name"]: "corrupt",
    }
    for _ in range(3):
        other = (await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).expect(200)
        assert other["server"]["name"] != nearest["server"]["name"]
    link = (await admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    got = (
        await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={}, headers=from_ip(US_IP))
    ).expect(200)
    assert got["server"]["name"] != nearest["server"]["name"] and got["sha256"] == SHA256

    async with db.transaction() as tx:
        await tx.execute("UPDATE replicas SET status = 'corrupt'")
    (await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(US_IP))).problem(503, "no_replica_available")


# --- the verifier: fair order, back-off, final verdict ----------------------------------------------------


async def server_named(admin: Session, name: str) -> dict[str, Any]:
    return dict(next(s for s in (await admin.get("/api/v1/servers")).expect(200)["items"] if s["name"] == name))


async def test_a_poisoned_owners_versions_do_not_delay_another_owners_verification_beyond_one_round(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    # Cape Town's events do not reach cdnstore: an object written again there is found by the verifier's
    # read, not by the event's re-check.
    await events_unheard(api, admin, "capetown")
    capetown = next(s for s in (await admin.get("/api/v1/servers")).expect(200)["items"] if s["name"] == "capetown")
    await writes_not_once(api, capetown["id"])  # (else the second PUT below is refused: If-None-Match)
    mallory, alice = await api.user("mallory"), await api.user("alice")

    async def poisoned(i: int) -> None:
        data = b"%06d tiny\n" % i
        answer = await mallory.upload_and_confirm(f"p{i}.txt", data, ip=SOUTH_AFRICA_IP)
        assert await api.put_bytes(answer["upload"], data.upper()) == 200  # overwritten after it was stored

    for first in range(0, 100, 10):  # a whole round's worth, all older than alice's upload
        await asyncio.gather(*(poisoned(i) for i in range(first, first + 10)))
    mine = (await alice.upload_and_confirm("mine.bin", DATA, ip=SOUTH_AFRICA_IP))["file"]["id"]
    assert (await alice.get(f"/api/v1/files/{mine}")).expect(200)["sha256"] is None

    await api.app[appkeys.INTEGRITY].verify()  # one round
    assert (await alice.get(f"/api/v1/files/{mine}")).expect(200)["sha256"] == SHA256
    _, body = await alice.download(mine, ip=SOUTH_AFRICA_IP)
    assert body == DATA
    # mallory's bytes are not what was uploaded: never served, said in mallory's history
    altered = (await mallory.get("/api/v1/history?event=file.corrupt&limit=100")).expect(200)["items"]
    assert len(altered) >= 99 and {e["data"]["reason"] for e in altered} == {"altered"}
    first_poisoned = altered[-1]["object_id"]
    (await mallory.get(f"/api/v1/files/{first_poisoned}/download")).problem(503, "no_replica_available")


async def test_a_version_whose_reads_never_settle_is_read_less_often_and_then_rejected(
    make_api: Any, s3: S3Bed, bucket: str
) -> None:
    api = await make_api(store=store_of(s3), uploads={"multipart_threshold": 5 * MIB}, integrity={"verify_attempts": 3})
    admin = await setup(api, s3, bucket)
    big = bytes(range(256)) * (6 * MIB // 256)
    file_id = await admin.upload_in_parts("alone.bin", big, hashlib.sha256(big).hexdigest(), ip=SOUTH_AFRICA_IP)
    db, integrity = api.app[appkeys.DB], api.app[appkeys.INTEGRITY]
    key = await db.fetchval("SELECT object_key FROM versions WHERE verify_pending = 1")
    await api.app[appkeys.STORAGE].delete(s3.target("capetown", bucket), key)  # every read of it fails now
    assert (await server_named(admin, "capetown"))["awaiting_verification"] == 1

    async def state() -> tuple[int, str]:
        row = await db.fetchone("SELECT verify_attempts, verify_after FROM versions WHERE object_key = ?", (key,))
        assert row is not None
        return row["verify_attempts"], row["verify_after"]

    assert await integrity.verify() == 0
    attempts, after = await state()
    assert attempts == 1 and iso_in(55) < after < iso_in(65)  # integrity.verify_backoff (60 s) from now
    assert await integrity.verify() == 0 and await state() == (1, after)  # not read again meanwhile
    assert await integrity.verify(iso_in(61)) == 0
    attempts, after = await state()
    assert attempts == 2 and iso_in(115) < after < iso_in(125)  # twice as long
    assert await integrity.verify(iso_in(61)) == 0 and (await state())[0] == 2

    assert await integrity.verify(iso_in(121)) == 1  # the third read: the final verdict
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")  # never became content
    events = (await admin.get("/api/v1/history?event=file.corrupt")).expect(200)["items"]
    assert [(e["object_id"], e["data"]["reason"]) for e in events] == [(file_id, "unverifiable")]
    capetown = await server_named(admin, "capetown")
    assert (capetown["awaiting_verification"], capetown["rejected_uploads"]) == (0, 1)
    found = samples((await api.call("GET", "/metrics")).expect(200))
    assert value(found, "cdnstore_verifications_given_up_total") == 1
    assert value(found, "cdnstore_verification_retries_total", server="capetown") == 3
    assert await integrity.verify(iso_in(86400)) == 0  # nothing left to read


# --- a content swap after storage ------------------------------------------------------------------------


async def holder_bytes(api: Api, s3: S3Bed, bucket: str, file_id: str) -> dict[str, str]:
    """server name -> SHA-256 of what each server holding the file's current version has under its key."""
    rows = await api.app[appkeys.DB].fetchall(
        "SELECT s.name, v.object_key, v.size FROM files f JOIN versions v ON v.id = f.current_version_id "
        "JOIN replicas r ON r.version_id = v.id JOIN servers s ON s.id = r.server_id WHERE f.uuid = ?",
        (file_id,),
    )
    storage = api.app[appkeys.STORAGE]
    return {
        r["name"]: (await storage.checksum(s3.target(r["name"], bucket), r["object_key"], size=r["size"]))[0]
        for r in rows
    }


async def test_a_second_put_to_a_stored_files_upload_url_is_found_and_repaired_within_seconds(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    # On a server that honours If-None-Match the second PUT is refused outright (test_vendors.py): here, one
    # that does not.
    await writes_not_once(api, *[s["id"] for s in (await admin.get("/api/v1/servers")).expect(200)["items"]])
    answer = await stored_and_copied(api, admin, "swap.bin", DATA)
    file_id, uploaded_to = answer["file"]["id"], answer["upload"]["server"]["name"]
    link = (await admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    assert set((await holder_bytes(api, s3, bucket, file_id)).values()) == {SHA256}

    swapped = DATA[::-1]  # the same size, other bytes, to the URL still valid
    assert await api.put_bytes(answer["upload"], swapped) == 200
    # SeaweedFS tells cdnstore; the replica is re-checked, found altered, and repaired from the other holder.
    events = await wait_for(lambda: corrupt_events(admin), "the swap in the history", within=30)
    assert [(e["object_id"], e["data"]["reason"], e["data"]["server"]) for e in events] == [
        (file_id, "altered", uploaded_to)
    ]
    await wait_for(lambda: all_hold(api, s3, bucket, file_id, SHA256), "the original bytes back", within=30)
    for ip in (US_IP, SOUTH_AFRICA_IP):
        _, body = await admin.download(file_id, ip=ip)
        assert body == DATA
    got = (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={})).expect(200)
    status, body, _ = await api.fetch(got["url"])
    assert (status, body) == (200, DATA)
    found = samples((await api.call("GET", "/metrics")).expect(200))
    assert value(found, "cdnstore_replicas_altered_found_total", server=uploaded_to) == 1


async def corrupt_events(user: Session) -> list[dict[str, Any]]:
    return list((await user.get("/api/v1/history?event=file.corrupt")).expect(200)["items"])


async def all_hold(api: Api, s3: S3Bed, bucket: str, file_id: str, sha256: str) -> bool:
    statuses = {status for status, _ in (await replica_rows(api, file_id)).values()}
    return statuses == {"present"} and set((await holder_bytes(api, s3, bucket, file_id)).values()) == {sha256}


async def test_a_swapped_file_with_no_other_copy_is_never_served(api: Api, s3: S3Bed, bucket: str) -> None:
    admin = await setup(api, s3, bucket)
    await writes_not_once(api, *[s["id"] for s in (await admin.get("/api/v1/servers")).expect(200)["items"]])
    answer = await stored_and_copied(api, admin, "alone.bin", DATA, ip=SOUTH_AFRICA_IP)  # Cape Town: no other
    file_id = answer["file"]["id"]
    assert await api.put_bytes(answer["upload"], DATA[::-1]) == 200
    events = await wait_for(lambda: corrupt_events(admin), "the swap in the history", within=30)
    assert [(e["data"]["reason"], e["data"]["repair"]) for e in events] == [("altered", "no good copy left")]
    (await admin.get(f"/api/v1/files/{file_id}/download", headers=from_ip(SOUTH_AFRICA_IP))).problem(
        503, "no_replica_available"
    )


async def test_events_for_stored_objects_that_did_not_change_read_nothing_and_change_nothing(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await setup(api, s3, bucket)
    file_id = (await stored_and_copied(api, admin, "same.bin", DATA))["file"]["id"]
    integrity = api.app[appkeys.INTEGRITY]
    db = api.app[appkeys.DB]
    rows = await db.fetchall(
        "SELECT r.server_id, v.object_key FROM files f JOIN replicas r ON r.version_id = f.current_version_id "
        "JOIN versions v ON v.id = r.version_id WHERE f.uuid = ?",
        (file_id,),
    )
    assert len(rows) == 2
    before = samples((await api.call("GET", "/metrics")).expect(200))
    for row in rows:  # the upload's own event again, and the copy's: their objects are as recorded
        assert await integrity.recheck(row["server_id"], row["object_key"]) == "unchanged"
    after = samples((await api.call("GET", "/metrics")).expect(200))
    assert {k: v for k, v in after.items() if k[0] == "cdnstore_verified_bytes_total"} == {
        k: v for k, v in before.items() if k[0] == "cdnstore_verified_bytes_total"
    }  # HEADs only, no read
    assert await corrupt_events(admin) == []
    assert {status for status, _ in (await replica_rows(api, file_id)).values()} == {"present"}
