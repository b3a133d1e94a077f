"""Upload requests: people without an account send files to a user, against real SeaweedFS servers, through
the public API."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from typing import Any

from apihelp import RUSSIA_IP, SOUTH_AFRICA_IP, US_IP, Answer, Api, Session, from_ip, put_bytes

from cdnstore import appkeys
from cdnstore.seaweed import WeedCluster

DATA = b"sent through an upload request\n" * 50
SECRET_WORD = "let me in"
REQUEST_KEYS = {
    "id",
    "token",
    "url",
    "owner",
    "message",
    "has_password",
    "expires_at",
    "max_files",
    "max_bytes",
    "files",
    "bytes",
    "is_open",
    "closed_at",
    "created_at",
}


async def owner(api: Api, weed: WeedCluster, bucket: str, *servers: str) -> tuple[Session, Session]:
    """root (an admin) registered `servers` (Dallas alone by default); alice is an ordinary user."""
    admin = await api.user("root", admin=True)
    for name in servers or ("dallas",):
        await admin.add_server(weed, name, bucket)
    return admin, await api.user("alice")


async def new_request(user: Session, **body: Any) -> dict[str, Any]:
    return dict((await user.post("/api/v1/upload-requests", json=body)).expect(201))


async def look(api: Api, token: str) -> Answer:
    return await api.call("GET", f"/api/v1/public/upload-requests/{token}")


async def offer(
    api: Api, token: str, name: str, data: bytes, *, ip: str = US_IP, password: str | None = None, **more: Any
) -> Answer:
    """A sender announces a file (no account, no token: only the request's)."""
    body: dict[str, Any] = {"name": name, "size": len(data), "content_type": "text/plain", **more}
    if password is not None:
        body["password"] = password
    return await api.call("POST", f"/api/v1/public/upload-requests/{token}/files", json=body, headers=from_ip(ip))


async def send(api: Api, token: str, name: str, data: bytes, **kw: Any) -> dict[str, Any]:
    """A sender's whole file: announced, PUT, confirmed; the announcement's answer."""
    sent = dict((await offer(api, token, name, data, **kw)).expect(201))
    assert await put_bytes(sent["upload"], data) == 200
    done = (await api.call("POST", f"/api/v1/public/uploads/{sent['upload_token']}/complete")).expect(200)
    assert done["status"] == "stored" and done["id"] == sent["file"]["id"]
    return sent


async def content(user: Session, file_id: str) -> bytes:
    return (await user.download(file_id))[1]


async def test_a_sender_without_an_account_sends_files_into_the_owners_list(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    _, alice = await owner(api, weed, bucket)
    request = await new_request(alice, message="The signed contract, please", max_files=3)
    assert set(request) == REQUEST_KEYS
    assert request["url"] == f"{api.app[appkeys.CONFIG].http.public_url}/u/{request['token']}"
    assert request["owner"] == "alice" and request["is_open"] and request["files"] == 0 and request["bytes"] == 0
    assert request["expires_at"] is not None  # requests.default_expires_in: a week

    info = (await look(api, request["token"])).expect(200)
    assert info == {
        "owner": "alice",
        "message": "The signed contract, please",
        "has_password": False,
        "expires_at": request["expires_at"],
        "files_left": 3,
        "bytes_left": None,
    }
    sent = await send(api, request["token"], "contract.pdf", DATA)
    assert set(sent) == {"file", "upload", "upload_token"} and sent["upload"]["server"]["name"] == "dallas"
    assert sent["file"]["received_via"] == request["id"]

    mine = (await alice.get("/api/v1/files")).expect(200)["items"]
    assert [(f["name"], f["status"], f["received_via"]) for f in mine] == [("contract.pdf", "stored", request["id"])]
    assert await content(alice, mine[0]["id"]) == DATA
    only = (await alice.get("/api/v1/files", params={"received_via": request["id"]})).expect(200)["items"]
    assert [f["id"] for f in only] == [mine[0]["id"]]
    after = (await alice.get(f"/api/v1/upload-requests/{request['id']}")).expect(200)
    assert (after["files"], after["bytes"]) == (1, len(DATA))
    assert (await look(api, request["token"])).expect(200)["files_left"] == 2
    history = (await alice.get("/api/v1/history", params={"event": "upload_request.received"})).expect(200)["items"]
    assert [(h["object_id"], h["data"]["name"], h["data"]["request_id"]) for h in history] == [
        (mine[0]["id"], "contract.pdf", request["id"])
    ]
    assert (await alice.get("/api/v1/me")).expect(200)["used_bytes"] == len(DATA)  # the owner's quota
    (await look(api, "no-such-token")).problem(404, "request_not_found")


async def test_the_bytes_go_to_the_server_nearest_to_the_sender_among_the_owners_zones(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await owner(api, weed, bucket, "capetown", "vladivostok", "newyork", "dallas")
    token = (await new_request(alice))["token"]
    where = {ip: (await offer(api, token, f"from-{ip}.txt", DATA, ip=ip)).expect(201) for ip in (US_IP, RUSSIA_IP)}
    assert where[US_IP]["upload"]["server"]["name"] == "dallas"
    assert where[RUSSIA_IP]["upload"]["server"]["name"] == "vladivostok"  # near the sender, not the owner
    # alice's files may only live in the USA: a sender in Russia gets the nearest server there.
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"zones": ["USA"]})).expect(200)
    for ip, near in ((RUSSIA_IP, "newyork"), (SOUTH_AFRICA_IP, "newyork"), (US_IP, "dallas")):
        got = (await offer(api, token, f"resident-{ip}.txt", DATA, ip=ip)).expect(201)
        assert got["upload"]["server"]["name"] == near, ip


async def test_a_sender_never_replaces_the_owners_file_it_gets_a_name_of_its_own(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    _, alice = await owner(api, weed, bucket)
    mine = (await alice.upload_and_confirm("report.pdf", b"alice's own report"))["file"]["id"]
    token = (await new_request(alice))["token"]
    first = await send(api, token, "report.pdf", DATA)
    second = await send(api, token, "report.pdf", DATA + b"2")
    assert (first["file"]["name"], second["file"]["name"]) == ("report (2).pdf", "report (3).pdf")
    assert len({mine, first["file"]["id"], second["file"]["id"]}) == 3
    assert await content(alice, mine) == b"alice's own report"
    assert await content(alice, second["file"]["id"]) == DATA + b"2"
    names = sorted(f["name"] for f in (await alice.get("/api/v1/files")).expect(200)["items"])
    assert names == ["report (2).pdf", "report (3).pdf", "report.pdf"]


async def test_many_concurrent_senders_never_pass_max_files(make_api: Any, weed: WeedCluster, bucket: str) -> None:
    api = await make_api(requests={"max_per_minute": 0})
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice, max_files=5))["token"]
    answers = await asyncio.gather(*(offer(api, token, f"f{i}.txt", DATA) for i in range(20)))
    assert Counter(a.status for a in answers) == {201: 5, 413: 15}, [a.body for a in answers if a.status >= 500]
    for refused in (a for a in answers if a.status == 413):
        refused.problem(413, "request_limit")
    listed = (await alice.get("/api/v1/upload-requests")).expect(200)["items"][0]
    assert (listed["files"], listed["bytes"]) == (5, 5 * len(DATA))
    assert len((await alice.get("/api/v1/files")).expect(200)["items"]) == 5
    assert (await look(api, token)).expect(200)["files_left"] == 0


async def test_many_concurrent_senders_never_pass_max_bytes(make_api: Any, weed: WeedCluster, bucket: str) -> None:
    api = await make_api(requests={"max_per_minute": 0})
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice, max_bytes=7 * len(DATA) + len(DATA) // 2))["token"]
    answers = await asyncio.gather(*(offer(api, token, f"b{i}.txt", DATA) for i in range(25)))
    assert Counter(a.status for a in answers) == {201: 7, 413: 18}
    refused = next(a for a in answers if a.status == 413).problem(413, "request_limit")
    assert refused["bytes_left"] == len(DATA) // 2, refused
    assert (await look(api, token)).expect(200)["bytes_left"] == len(DATA) // 2
    (await offer(api, token, "small.txt", DATA[: len(DATA) // 2])).expect(201)  # what is left still fits
    (await offer(api, token, "one-more.txt", b"x")).problem(413, "request_limit")


async def test_a_cancelled_upload_gives_its_place_back(api: Api, weed: WeedCluster, bucket: str) -> None:
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice, max_files=1))["token"]
    sent = (await offer(api, token, "first.txt", DATA)).expect(201)
    (await offer(api, token, "second.txt", DATA)).problem(413, "request_limit")  # the announced one holds it
    upload = f"/api/v1/public/uploads/{sent['upload_token']}/upload"
    assert (await api.call("GET", upload)).expect(200)["method"] == "PUT"
    (await api.call("DELETE", upload)).expect(204)
    (await api.call("DELETE", upload)).problem(404, "no_upload")
    assert (await alice.get("/api/v1/files")).expect(200)["items"] == []  # it never had content: gone
    await send(api, token, "second.txt", DATA)
    (await offer(api, token, "third.txt", DATA)).problem(413, "request_limit")


async def test_a_big_file_is_sent_in_parts_and_resumed(make_api: Any, weed: WeedCluster, bucket: str) -> None:
    api = await make_api(uploads={"multipart_threshold": 5 << 20})
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice))["token"]
    data = bytes(range(256)) * (11 * 4096)  # 11 MiB: 3 parts of 5 MiB (the last 1 MiB)
    sent = (await offer(api, token, "video.bin", data)).expect(201)
    assert sent["upload"]["method"] == "multipart" and sent["upload"]["parts"] == 3
    base = f"/api/v1/public/uploads/{sent['upload_token']}"
    size = sent["upload"]["part_size"]
    parts = (await api.call("POST", f"{base}/upload/parts", json={"numbers": [1, 3]})).expect(200)["items"]
    for part in parts:
        n = part["number"]
        assert await put_bytes(part, data[(n - 1) * size : n * size]) == 200
    (await api.call("POST", f"{base}/complete")).problem(409, "upload_incomplete")
    view = (await api.call("GET", f"{base}/upload")).expect(200)  # where a reload resumes from
    assert sorted(p["number"] for p in view["uploaded"]) == [1, 3]
    part = (await api.call("POST", f"{base}/upload/parts", json={"numbers": [2]})).expect(200)["items"][0]
    assert await put_bytes(part, data[size : 2 * size]) == 200
    assert (await api.call("POST", f"{base}/complete")).expect(200)["status"] == "stored"
    got = await content(alice, sent["file"]["id"])
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


async def test_an_upload_token_reaches_its_own_upload_and_nothing_else(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice))["token"]
    sent = await send(api, token, "theirs.txt", DATA)
    upload_token = sent["upload_token"]
    for forged in ("nonsense", upload_token[:-2] + ("AA" if not upload_token.endswith("AA") else "BB")):
        (await api.call("GET", f"/api/v1/public/uploads/{forged}/upload")).problem(404, "no_upload")
    (await api.call("GET", f"/api/v1/public/uploads/{upload_token}/upload")).problem(404, "no_upload")  # stored
    # The owner uploads a new version of the file: the sender's token does not reach the owner's upload.
    await alice.upload("theirs.txt", b"alice's version", expect=200)
    for method, path in (("GET", "upload"), ("DELETE", "upload"), ("POST", "complete")):
        (await api.call(method, f"/api/v1/public/uploads/{upload_token}/{path}")).problem(404, "no_upload")


async def test_a_password_guards_sending_and_wrong_ones_are_throttled(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await make_api(links={"max_password_failures": 3})
    _, alice = await owner(api, weed, bucket)
    request = await new_request(alice, password=SECRET_WORD)
    assert request["has_password"] is True and SECRET_WORD not in str(request)
    stored = await api.app[appkeys.DB].fetchval(
        "SELECT password_hash FROM upload_requests WHERE uuid = ?", (request["id"],)
    )
    assert stored.startswith("$argon2id$")
    token = request["token"]
    assert (await look(api, token)).expect(200)["has_password"] is True
    (await offer(api, token, "a.txt", DATA)).problem(401, "password_required")
    (await offer(api, token, "a.txt", DATA, password="guess")).problem(401, "invalid_password")
    await send(api, token, "a.txt", DATA, password=SECRET_WORD)
    for _ in range(3):
        (await offer(api, token, "b.txt", DATA, password="guess", ip=RUSSIA_IP)).problem(401, "invalid_password")
    (await offer(api, token, "b.txt", DATA, password=SECRET_WORD)).problem(429, "too_many_attempts")
    assert [f["name"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == ["a.txt"]


async def test_announcements_are_throttled_per_sender_address(make_api: Any, weed: WeedCluster, bucket: str) -> None:
    api = await make_api(requests={"max_per_minute": 3})
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice))["token"]
    for i in range(3):
        (await offer(api, token, f"us{i}.txt", DATA)).expect(201)
    refused = await offer(api, token, "us3.txt", DATA)
    refused.problem(429, "too_many_uploads")
    assert int(refused.headers["Retry-After"]) >= 1
    (await offer(api, token, "ru.txt", DATA, ip=RUSSIA_IP)).expect(201)  # another address is not held up
    await alice.upload("alices-own.txt", DATA)  # nor the owner's own uploads


async def test_closed_expired_deleted_and_disabled_requests_take_nothing(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await owner(api, weed, bucket)
    request = await new_request(alice, expires_in=None)
    token, path = request["token"], f"/api/v1/upload-requests/{request['id']}"
    assert request["expires_at"] is None
    sent = (await offer(api, token, "under-way.txt", DATA)).expect(201)
    closed = (await alice.patch(path, json={"is_open": False})).expect(200)
    assert closed["is_open"] is False and closed["closed_at"] is not None
    (await look(api, token)).problem(410, "request_closed")
    (await offer(api, token, "late.txt", DATA)).problem(410, "request_closed")
    assert await put_bytes(sent["upload"], DATA) == 200  # an upload admitted before the close may finish
    (await api.call("POST", f"/api/v1/public/uploads/{sent['upload_token']}/complete")).expect(200)
    assert (await alice.patch(path, json={"is_open": True})).expect(200)["is_open"] is True
    (await look(api, token)).expect(200)

    async with api.app[appkeys.DB].transaction() as tx:  # its time has passed
        await tx.execute(
            "UPDATE upload_requests SET expires_at = '2000-01-01T00:00:00.000Z' WHERE uuid = ?", (request["id"],)
        )
    (await offer(api, token, "expired.txt", DATA)).problem(410, "request_closed")
    assert (await alice.get(path)).expect(200)["is_open"] is False
    reopened = (await alice.patch(path, json={"expires_in": 3600})).expect(200)
    assert reopened["is_open"] is True

    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": True})).expect(200)
    (await look(api, token)).problem(410, "request_closed")
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": False})).expect(200)
    alice = await api.login("alice")
    (await look(api, token)).expect(200)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"permissions": ["can_view_file"]})).expect(200)
    (await offer(api, token, "not-any-more.txt", DATA)).problem(410, "request_closed")  # alice may not upload
    everything = ["can_view_file", "can_upload_file", "can_delete_file"]
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"permissions": everything})).expect(200)
    (await look(api, token)).expect(200)

    (await alice.delete(path)).expect(204)
    (await look(api, token)).problem(404, "request_not_found")
    (await offer(api, token, "after.txt", DATA)).problem(404, "request_not_found")
    (await alice.get(path)).problem(404, "request_not_found")
    assert (await alice.get("/api/v1/upload-requests")).expect(200)["items"] == []
    # What it received stays alice's.
    assert [f["name"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == ["under-way.txt"]


async def test_a_sender_fills_the_owners_quota_not_more(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin, alice = await owner(api, weed, bucket)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"quota_bytes": len(DATA) + 10})).expect(200)
    token = (await new_request(alice))["token"]
    await send(api, token, "fits.txt", DATA)
    (await offer(api, token, "too-much.txt", DATA)).problem(507, "quota_exceeded")


async def test_received_files_live_the_owners_default_file_lifetime(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin, alice = await owner(api, weed, bucket)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"default_file_lifetime": 86400})).expect(200)
    token = (await new_request(alice))["token"]
    sent = (await offer(api, token, "short-lived.txt", DATA)).expect(201)
    assert sent["file"]["expires_at"] is not None
    (await offer(api, token, "mine-to-say.txt", DATA, expires_at=None)).problem(422, "unknown_field")


async def test_admins_see_and_close_everyones_requests_others_see_none(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice = await owner(api, weed, bucket)
    bob = await api.user("bob")
    request = await new_request(alice, message="for alice")
    path = f"/api/v1/upload-requests/{request['id']}"
    assert (await admin.get("/api/v1/upload-requests")).expect(200)["items"] == []  # an admin's own, by default
    everyone = (await admin.get("/api/v1/upload-requests", params={"all": "true"})).expect(200)["items"]
    assert [(r["id"], r["owner"]) for r in everyone] == [(request["id"], "alice")]
    (await alice.get("/api/v1/upload-requests", params={"all": "true"})).problem(403, "forbidden")
    for call in (bob.get(path), bob.patch(path, json={"is_open": False}), bob.delete(path)):
        (await call).problem(404, "request_not_found")
    (await admin.patch(path, json={"message": "mine now"})).problem(403, "forbidden")
    assert (await admin.patch(path, json={"is_open": False})).expect(200)["is_open"] is False
    (await look(api, request["token"])).problem(410, "request_closed")
    closed = (await alice.get("/api/v1/history", params={"event": "upload_request.closed"})).expect(200)["items"]
    assert [h["data"].get("by_admin") for h in closed] == [True]
    (await admin.delete(path)).expect(204)
    (await look(api, request["token"])).problem(404, "request_not_found")


async def test_a_request_changes_its_message_password_limits_and_expiry(
    make_api: Any, weed: WeedCluster, bucket: str
) -> None:
    api = await make_api(requests={"max_expires_in": 86400, "default_expires_in": 3600})
    _, alice = await owner(api, weed, bucket)
    request = await new_request(alice, max_files=1, password=SECRET_WORD)
    path = f"/api/v1/upload-requests/{request['id']}"
    (await alice.post("/api/v1/upload-requests", json={"expires_in": None})).problem(422, "invalid_field")
    (await alice.post("/api/v1/upload-requests", json={"expires_in": 86401})).problem(422, "invalid_field")
    (await alice.post("/api/v1/upload-requests", json={"surprise": 1})).problem(422, "unknown_field")
    (await alice.patch(path, json={})).problem(422, "invalid_field")
    changed = (
        await alice.patch(path, json={"message": "new words", "password": None, "max_files": None, "expires_in": 60})
    ).expect(200)
    assert changed["message"] == "new words" and changed["has_password"] is False and changed["max_files"] is None
    await send(api, request["token"], "one.txt", DATA)
    await send(api, request["token"], "two.txt", DATA)  # no limit, no password now
    lowered = (await alice.patch(path, json={"max_files": 1, "max_bytes": 10})).expect(200)
    assert (lowered["files"], lowered["max_files"]) == (2, 1)
    (await offer(api, request["token"], "three.txt", b"x")).problem(413, "request_limit")
    assert (await look(api, request["token"])).expect(200)["files_left"] == 0


async def test_the_public_upload_page_is_served_at_its_address_and_may_reach_the_storage_servers(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    _, alice = await owner(api, weed, bucket)
    token = (await new_request(alice))["token"]
    page = await api.call("GET", f"/u/{token}")
    assert page.status == 200 and "upload-page.js" in page.body
    assert page.headers["Referrer-Policy"] == "no-referrer"  # the address holds the token
    dallas = weed.instance("dallas").endpoint_url
    assert dallas.rstrip("/") in page.headers["Content-Security-Policy"]  # a sender PUTs straight to it
