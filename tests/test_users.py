"""User administration."""

from __future__ import annotations

from apihelp import Api

from cdnstore.models import DEFAULT_PERMISSIONS, PERMISSIONS


async def test_an_admin_creates_a_user_with_the_default_permissions(api: Api) -> None:
    admin = await api.user("root", admin=True)
    created = (await admin.post("/api/v1/users", json={"username": "alice", "password": "pass-word-1",
                                                        "is_admin": False})).expect(201)
    assert created["username"] == "alice" and created["is_admin"] is False
    assert created["permissions"] == list(DEFAULT_PERMISSIONS)
    alice = await api.login("alice", "pass-word-1")
    assert alice.user == created


async def test_an_admin_holds_every_permission(api: Api) -> None:
    admin = await api.user("root", admin=True)
    assert admin.user["permissions"] == list(PERMISSIONS)


async def test_a_taken_username_is_409(api: Api) -> None:
    admin = await api.user("root", admin=True)
    body = {"username": "alice", "password": "pass-word-1", "is_admin": False}
    (await admin.post("/api/v1/users", json=body)).expect(201)
    (await admin.post("/api/v1/users", json=body)).problem(409, "username_taken")


async def test_users_are_listed_in_pages(api: Api) -> None:
    admin = await api.user("root", admin=True)
    for i in range(5):
        await api.make_user(f"user{i}")
    first = (await admin.get("/api/v1/users?limit=4")).expect(200)
    assert [u["username"] for u in first["items"]] == ["root", "user0", "user1", "user2"]
    second = (await admin.get(f"/api/v1/users?limit=4&cursor={first['next_cursor']}")).expect(200)
    assert [u["username"] for u in second["items"]] == ["user3", "user4"]
    assert second["next_cursor"] is None
    (await admin.get("/api/v1/users?limit=0")).problem(422, "invalid_field")
    (await admin.get("/api/v1/users?limit=1001")).problem(422, "invalid_field")
    (await admin.get("/api/v1/users?cursor=garbage")).problem(422, "invalid_field")


async def test_an_admin_changes_permissions_and_they_apply_at_once(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    (await alice.get("/api/v1/servers")).problem(403, "forbidden")
    changed = (await admin.patch(f"/api/v1/users/{alice.user['id']}",
                                 json={"permissions": ["can_view_cdnserver", "can_view_file"]})).expect(200)
    assert changed["permissions"] == ["can_view_file", "can_view_cdnserver"]
    (await alice.get("/api/v1/servers")).expect(200)
    promoted = (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_admin": True})).expect(200)
    assert promoted["is_admin"] and promoted["permissions"] == list(PERMISSIONS)
    (await alice.get("/api/v1/users")).expect(200)


async def test_bad_user_input_is_422_naming_the_field(api: Api) -> None:
    admin = await api.user("root", admin=True)
    cases = [
        ({"username": "alice", "password": "short"}, "password"),
        ({"username": "bad name", "password": "pass-word-1"}, "username"),
        ({"username": "alice", "password": "pass-word-1", "permissions": ["can_fly"]}, "permissions.0"),
        ({"username": "alice", "password": "pass-word-1", "is_admin": "yes"}, "is_admin"),
        ({"password": "pass-word-1"}, "username"),
    ]
    for body, field in cases:
        problem = (await admin.post("/api/v1/users", json=body)).problem(422, "invalid_field")
        assert problem["detail"].startswith(f"{field}:"), problem
    (await admin.post("/api/v1/users", json={"username": "a", "password": "pass-word-1", "role": "x"})
     ).problem(422, "unknown_field")
    (await admin.patch("/api/v1/users/00000000-0000-0000-0000-000000000000", json={"is_admin": True})
     ).problem(404, "user_not_found")


async def test_a_user_answer_carries_disabled_quota_usage_and_zones(api: Api) -> None:
    admin = await api.user("root", admin=True)
    created = (await admin.post("/api/v1/users", json={"username": "alice", "password": "pass-word-1"})).expect(201)
    assert {k: created[k] for k in ("is_disabled", "quota_bytes", "used_bytes", "zones")} == {
        "is_disabled": False, "quota_bytes": None, "used_bytes": 0, "zones": None}
    me = (await admin.get("/api/v1/me")).expect(200)
    assert me["used_bytes"] == 0 and me["zones"] is None
