"""IDOR: every route that takes an object's id, called by another user holding every permission.

alice owns a stored file with a share link. mallory, an ordinary user with all eleven permissions (and her
own file, to cross ids with), calls each route with alice's ids: files and links answer 404 as if they
did not exist, administrator-only routes 403; afterwards alice's objects are exactly as they were.

The table is checked against the declared routes (`cdnstore.app.ROUTES`): a new route with an id in its
path and no row here fails `test_every_route_with_an_id_has_an_idor_case`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from apihelp import PASSWORD, Api, Session
from reliability import LEDGER

from cdnstore.app import ROUTES
from cdnstore.models import PERMISSIONS
from testbed.seaweed import WeedCluster

DATA = b"alice's own bytes\n" * 50
NOBODY = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # as declared
    path: str  # with {file}, {link}, {user}, {mallory_file} filled in
    status: int
    code: str
    body: Any = None


def on_alices(method: str, route: str, body: Any = None, query: str = "") -> Case:
    """Mallory calls `route` with alice's object in it: her files (and their links) and webhooks are not found,
    404 (not 403: nothing says that they exist); users and jobs are an administrator's, 403."""
    kind = route.split("/")[3]  # files, webhooks, users, jobs
    path = route.replace("{id}", "{" + kind.removesuffix("s") + "}").replace("{link_id}", "{link}") + query
    status, code = {"files": (404, "file_not_found"), "webhooks": (404, "webhook_not_found")}.get(
        kind, (403, "forbidden")
    )
    return Case(method, route, path, status, code, body)


CASES = [
    on_alices("POST", "/api/v1/files/{id}/complete"),
    on_alices("GET", "/api/v1/files/{id}"),
    on_alices("GET", "/api/v1/files/{id}/upload"),
    on_alices("POST", "/api/v1/files/{id}/upload/parts", {"numbers": [1]}),
    on_alices("DELETE", "/api/v1/files/{id}/upload"),
    on_alices("GET", "/api/v1/files/{id}/download"),
    on_alices("GET", "/api/v1/files/{id}/download", query="?redirect=true"),
    on_alices("PATCH", "/api/v1/files/{id}", {"name": "stolen.txt"}),
    on_alices("DELETE", "/api/v1/files/{id}"),
    on_alices("POST", "/api/v1/files/{id}/links", {}),
    on_alices("GET", "/api/v1/files/{id}/links"),
    on_alices("DELETE", "/api/v1/files/{id}/links/{link_id}"),
    # alice's link through mallory's own file: the link is not found under it.
    Case(
        "DELETE",
        "/api/v1/files/{id}/links/{link_id}",
        "/api/v1/files/{mallory_file}/links/{link}",
        404,
        "link_not_found",
    ),
    on_alices("PATCH", "/api/v1/files/{id}/links/{link_id}", {"password": None, "max_downloads": None}),
    Case(
        "PATCH",
        "/api/v1/files/{id}/links/{link_id}",
        "/api/v1/files/{mallory_file}/links/{link}",
        404,
        "link_not_found",
        {"password": None},
    ),
    # A link by its own id (links of one file or several): not found for anyone but its owner.
    Case("GET", "/api/v1/links/{link_id}", "/api/v1/links/{link}", 404, "link_not_found"),
    Case("PATCH", "/api/v1/links/{link_id}", "/api/v1/links/{link}", 404, "link_not_found", {"expires_in": None}),
    Case("DELETE", "/api/v1/links/{link_id}", "/api/v1/links/{link}", 404, "link_not_found"),
    on_alices("PATCH", "/api/v1/users/{id}", {"password": "mallory was here", "permissions": [], "is_admin": True}),
    on_alices("GET", "/api/v1/users/{id}"),
    on_alices("PATCH", "/api/v1/users/{id}", {"is_disabled": True, "quota_bytes": 0, "zones": ["USA"]}),
    on_alices("DELETE", "/api/v1/users/{id}"),
    on_alices("POST", "/api/v1/jobs/{id}/retry"),
    # alice's file through mallory's trash: not in it.
    Case("POST", "/api/v1/trash/{id}/restore", "/api/v1/trash/{file}/restore", 404, "file_not_found"),
    Case("DELETE", "/api/v1/trash/{id}", "/api/v1/trash/{file}", 404, "file_not_found"),
    # alice's upload request: another user's is not found (admins may see and close it: not mallory).
    Case("GET", "/api/v1/upload-requests/{id}", "/api/v1/upload-requests/{request}", 404, "request_not_found"),
    Case(
        "PATCH",
        "/api/v1/upload-requests/{id}",
        "/api/v1/upload-requests/{request}",
        404,
        "request_not_found",
        {"is_open": False, "message": "send them to mallory", "password": None},
    ),
    Case("DELETE", "/api/v1/upload-requests/{id}", "/api/v1/upload-requests/{request}", 404, "request_not_found"),
    # alice's API key: keys are each user's own (under /me), another's is not found.
    Case("DELETE", "/api/v1/me/keys/{id}", "/api/v1/me/keys/{key}", 404, "key_not_found"),
    on_alices("GET", "/api/v1/webhooks/{id}/deliveries"),
    on_alices("POST", "/api/v1/webhooks/{id}/test"),
    on_alices("DELETE", "/api/v1/webhooks/{id}"),
]
# Routes with an id that name no one's private object: the server registry is shared by everyone holding the
# can_*_cdnserver permissions (a user with those rights is meant to see and manage every server). Importing a
# server's bucket makes files for a user: administrators only (test_imports checks others get 403).
SHARED = {
    ("GET", "/api/v1/servers/{id}"),
    ("PATCH", "/api/v1/servers/{id}"),
    ("DELETE", "/api/v1/servers/{id}"),
    ("POST", "/api/v1/servers/{id}/probe"),
    ("POST", "/api/v1/servers/{id}/import"),
    ("GET", "/api/v1/servers/{id}/import"),
}
# Where any user's file is, by contract the view of every holder of can_view_cdnserver:
# test_a_server_viewer_sees_where_anyones_file_is_and_nothing_more.
ADMIN_VIEWS = {("GET", "/api/v1/files/{id}/servers")}


def test_every_route_with_an_id_has_an_idor_case() -> None:
    with_ids = {(ep.method, ep.path) for ep in ROUTES if re.search(r"{(id|link_id)}", ep.path)}
    covered = {(case.method, case.route) for case in CASES}
    known = covered | SHARED | ADMIN_VIEWS
    assert with_ids == known, (with_ids - known, known - with_ids)
    # {token} and {upload_token} routes are public by design (the token is the capability); {server_name} is
    # the webhook.
    others = {(ep.method, ep.path) for ep in ROUTES if "{" in ep.path} - with_ids
    assert all(re.search(r"{(token|upload_token|server_name|path:[^}]*)}", path) for _, path in others), others


async def alices_stored_file(api: Api, weed: WeedCluster, bucket: str) -> tuple[Session, Session, str]:
    """The administrator, who registered Dallas, and alice with her private file stored there (its id)."""
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket)
    alice = await api.user("alice")
    file_id = (await alice.upload("private.txt", DATA))["file"]["id"]
    await alice.wait_stored(file_id)
    return admin, alice, file_id


async def test_a_server_viewer_sees_where_anyones_file_is_and_nothing_more(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin, alice, file_id = await alices_stored_file(api, weed, bucket)
    mallory = await api.user("mallory", permissions=list(PERMISSIONS))  # not an admin, but can_view_cdnserver
    bob = await api.user("bob")  # the default permissions: files and links, no servers

    for viewer in (admin, mallory):
        items = (await viewer.get(f"/api/v1/files/{file_id}/servers")).expect(200)["items"]
        assert [(i["server"]["name"], i["status"]) for i in items] == [("dallas", "present")]
    (await bob.get(f"/api/v1/files/{file_id}/servers")).problem(403, "forbidden")
    (await alice.get(f"/api/v1/files/{file_id}/servers")).problem(403, "forbidden")  # even for her own
    (await admin.get(f"/api/v1/files/{NOBODY}/servers")).problem(404, "file_not_found")
    # Seeing where it is gives nothing else: the file itself stays alice's alone.
    (await admin.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    (await mallory.get(f"/api/v1/files/{file_id}/download")).problem(404, "file_not_found")
    await alice.delete(f"/api/v1/files/{file_id}")
    (await admin.get(f"/api/v1/files/{file_id}/servers")).problem(404, "file_not_found")


async def _snapshot(api: Api, admin: Session, alice: Session, ids: dict[str, str]) -> dict[str, Any]:
    file = (await alice.get(f"/api/v1/files/{ids['file']}")).expect(200)
    links = (await alice.get(f"/api/v1/files/{ids['file']}/links")).expect(200)["items"]
    users = (await admin.get("/api/v1/users", params={"limit": 1000})).expect(200)["items"]
    public = (await api.call("GET", f"/api/v1/public/links/{ids['token']}")).expect(200)
    request = (await alice.get(f"/api/v1/upload-requests/{ids['request']}")).expect(200)
    keys = (await alice.get("/api/v1/me/keys")).expect(200)["items"]
    webhooks = (await alice.get("/api/v1/webhooks")).expect(200)["items"]
    deliveries = (await alice.get(f"/api/v1/webhooks/{ids['webhook']}/deliveries")).expect(200)["items"]
    alice_user = next(u for u in users if u["id"] == ids["user"])
    return {
        "file": file,
        "links": links,
        "alice": alice_user,
        "public": public,
        "request": request,
        "keys": keys,
        "webhooks": webhooks,
        "log": deliveries,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
async def test_another_users_ids_are_not_found_and_change_nothing(
    api: Api, weed: WeedCluster, bucket: str, case: Case
) -> None:
    admin, alice, file_id = await alices_stored_file(api, weed, bucket)
    link = (await alice.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    request = (await alice.post("/api/v1/upload-requests", json={"message": "for alice"})).expect(201)
    # (an address nothing will call: only file.deleted, and nothing is deleted)
    hook = await alice.post("/api/v1/webhooks", json={"url": "https://9.9.9.9/alice", "events": ["file.deleted"]})
    mallory = await api.user("mallory", permissions=list(PERMISSIONS))
    assert set(mallory.user["permissions"]) == set(PERMISSIONS) and not mallory.user["is_admin"]
    mallory_file = (await mallory.upload("mallory.txt", b"mine\n"))["file"]["id"]
    ids = {
        "file": file_id,
        "link": link["id"],
        "token": link["token"],
        "user": alice.user["id"],
        "mallory_file": mallory_file,
        "request": request["id"],
        "job": NOBODY,
        "key": (await alice.key("read")).tokens["id"],
        "webhook": hook.expect(201)["id"],
    }
    before = await _snapshot(api, admin, alice, ids)

    answer = await mallory.call(case.method, case.path.format(**ids), json=case.body)
    LEDGER.add(
        "IDOR: another user's ids on every route that takes one", bad_inputs=1, server_errors=int(answer.status >= 500)
    )
    answer.problem(case.status, case.code)

    assert await _snapshot(api, admin, alice, ids) == before
    _, body = await alice.download(file_id)
    assert body == DATA
    await api.login("alice", PASSWORD)  # her password is unchanged
    assert (await mallory.get("/api/v1/me")).expect(200)["is_admin"] is False
