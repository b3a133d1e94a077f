"""The one-call path for scripts: `POST /files` with `"link": {...}` makes the share link in the transaction that
stores the file, so that a script (an API key) uploads and prints a link; on the `s3` servers (tests/s3bed.py:
in memory, the fast tier, and real SeaweedFS)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from apihelp import DATA_SMALL, Answer, Api, Session
from s3bed import S3Bed

from cdnstore import appkeys

SECRET_WORD = "open sesame"


@pytest.fixture
def api(s3_api: Api) -> Api:
    """The daemon on this test's `s3` servers."""
    return s3_api


async def look(api: Api, token: str) -> Answer:
    return await api.call("GET", f"/api/v1/public/links/{token}")


async def pull(api: Api, token: str, password: str | None = None) -> Answer:
    body = None if password is None else {"password": password}
    return await api.call("POST", f"/api/v1/public/links/{token}/download", json=body)


def seconds_until(when: str) -> float:
    return (datetime.fromisoformat(when.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


async def script_of_alice(api: Api, s3: S3Bed, bucket: str) -> tuple[Session, Session]:
    """alice (an ordinary user, Dallas registered) and her script: an API key for uploads and links."""
    admin = await api.user("root", admin=True)
    await admin.add_server(s3, "dallas", bucket)
    alice = await api.user("alice")
    return alice, await alice.key("read", "upload", "share")


async def announce(script: Session, name: str, data: bytes, link: dict[str, Any]) -> dict[str, Any]:
    body = {"name": name, "size": len(data), "content_type": "text/plain", "link": link}
    return dict((await script.post("/api/v1/files", json=body)).expect(201 if name.startswith("new") else 200))


async def test_an_upload_asking_for_a_link_gets_it_the_moment_the_file_is_stored(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    alice, script = await script_of_alice(api, s3, bucket)
    answer = await announce(script, "new.txt", DATA_SMALL, {"password": SECRET_WORD, "max_downloads": 2})
    file_id, link = answer["file"]["id"], answer["link"]
    assert link["url"] == f"{api.app[appkeys.CONFIG].http.public_url}/s/{link['token']}"
    # Until the file is stored, the link does not exist (nothing to serve), and no list shows it.
    (await look(api, link["token"])).problem(404, "link_not_found")
    assert (await alice.get(f"/api/v1/files/{file_id}/links")).expect(200)["items"] == []
    assert await api.put_bytes(answer["upload"], DATA_SMALL) == 200
    (await script.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    # Stored: the link is there, as asked, the one the announcement named.
    (listed,) = (await alice.get(f"/api/v1/files/{file_id}/links")).expect(200)["items"]
    assert (listed["id"], listed["token"], listed["url"]) == (link["id"], link["token"], link["url"])
    assert (listed["has_password"], listed["max_downloads"], listed["downloads"]) == (True, 2, 0)
    assert (await look(api, link["token"])).expect(200)["name"] == "new.txt"
    (await pull(api, link["token"])).problem(401, "password_required")
    got = (await pull(api, link["token"], SECRET_WORD)).expect(200)
    status, body, _ = await api.fetch(got["url"])
    assert (status, body) == (200, DATA_SMALL)
    # Made once: the file's confirmation again (a webhook arriving late) makes no second link.
    (await script.post(f"/api/v1/files/{file_id}/complete")).expect(200)
    assert len((await alice.get(f"/api/v1/files/{file_id}/links")).expect(200)["items"]) == 1
    events = [h["event"] for h in (await alice.get("/api/v1/history")).expect(200)["items"]]
    assert events.count("link.created") == 1 and events.count("file.stored") == 1


async def test_a_links_expiry_counts_from_when_the_file_is_stored(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, script = await script_of_alice(api, s3, bucket)
    answer = await announce(script, "new.txt", DATA_SMALL, {"expires_in": 3600})
    await api.put_bytes(answer["upload"], DATA_SMALL)
    await alice.wait_stored(answer["file"]["id"])
    (listed,) = (await alice.get(f"/api/v1/files/{answer['file']['id']}/links")).expect(200)["items"]
    assert 3500 < seconds_until(listed["expires_at"]) <= 3600


async def test_a_new_version_asking_for_a_link_shares_only_its_own_content(api: Api, s3: S3Bed, bucket: str) -> None:
    alice, script = await script_of_alice(api, s3, bucket)
    first = (await alice.upload_and_confirm("notes.txt", b"the old notes\n"))["file"]["id"]
    answer = await announce(script, "notes.txt", b"the new notes\n", {})
    assert answer["file"]["id"] == first
    # The old content is still the file's: the link asked for with the new one does not serve it.
    (await look(api, answer["link"]["token"])).problem(404, "link_not_found")
    await api.put_bytes(answer["upload"], b"the new notes\n")
    (await script.post(f"/api/v1/files/{first}/complete")).expect(200)
    got = (await pull(api, answer["link"]["token"])).expect(200)
    assert (await api.fetch(got["url"]))[1] == b"the new notes\n"


async def test_an_upload_never_stored_makes_no_link(api: Api, s3: S3Bed, bucket: str) -> None:
    _, script = await script_of_alice(api, s3, bucket)
    answer = await announce(script, "new.txt", DATA_SMALL, {})
    (await script.delete(f"/api/v1/files/{answer['file']['id']}/upload")).expect(204)  # given up
    (await look(api, answer["link"]["token"])).problem(404, "link_not_found")


async def test_a_link_asked_for_without_the_right_to_share_is_refused_before_anything_is_announced(
    api: Api, s3: S3Bed, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(s3, "dallas", bucket)
    bob = await api.user("bob", permissions=["can_view_file", "can_upload_file"])
    body = {"name": "x.txt", "size": 3, "link": {}}
    (await bob.post("/api/v1/files", json=body)).problem(403, "forbidden")
    assert (await bob.get("/api/v1/files")).expect(200)["items"] == []
    (await bob.post("/api/v1/files", json={**body, "link": {"max_downloads": 0}})).problem(422, "invalid_field")
