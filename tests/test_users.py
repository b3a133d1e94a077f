"""User administration."""

from __future__ import annotations

import asyncio

from apihelp import PASSWORD, Api

from cdnstore import appkeys
from cdnstore.models import DEFAULT_PERMISSIONS, PERMISSIONS


async def test_an_admin_creates_a_user_with_the_default_permissions(api: Api) -> None:
    admin = await api.user("root", admin=True)
    created = (
        await admin.post("/api/v1/users", json={"username": "alice", "password": "pass-word-1", "is_admin": False})
    ).expect(201)
    assert created["username"] == "alice" and created["is_admin"] is False
    assert created["permissions"] == list(DEFAULT_PERMISSIONS)
    alice = await api.login("alice", "pass-word-1")
    assert {**alice.user, "files": 0} == created  # an admin's answer also counts the user's files


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
    changed = (
        await admin.patch(
            f"/api/v1/users/{alice.user['id']}", json={"permissions": ["can_view_cdnserver", "can_view_file"]}
        )
    ).expect(200)
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
    (await admin.post("/api/v1/users", json={"username": "a", "password": "pass-word-1", "role": "x"})).problem(
        422, "unknown_field"
    )
    (await admin.patch("/api/v1/users/00000000-0000-0000-0000-000000000000", json={"is_admin": True})).problem(
        404, "user_not_found"
    )


async def test_a_user_answer_carries_disabled_quota_usage_and_zones(api: Api) -> None:
    admin = await api.user("root", admin=True)
    created = (await admin.post("/api/v1/users", json={"username": "alice", "password": "pass-word-1"})).expect(201)
    assert {k: created[k] for k in ("is_disabled", "quota_bytes", "used_bytes", "zones")} == {
        "is_disabled": False,
        "quota_bytes": None,
        "used_bytes": 0,
        "zones": None,
    }
    me = (await admin.get("/api/v1/me")).expect(200)
    assert me["used_bytes"] == 0 and me["zones"] is None


async def test_a_disabled_user_cannot_log_in_and_their_tokens_answer_401_at_once(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    disabled = (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": True})).expect(200)
    assert disabled["is_disabled"] is True
    (await alice.get("/api/v1/me")).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": alice.refresh})).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})).problem(
        401, "invalid_credentials"
    )
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": False})).expect(200)
    again = await api.login("alice")
    (await again.get("/api/v1/me")).expect(200)


async def test_the_last_enabled_admin_cannot_be_disabled_demoted_or_deleted(api: Api) -> None:
    root = await api.user("root", admin=True)
    me = f"/api/v1/users/{root.user['id']}"
    (await root.patch(me, json={"is_admin": False})).problem(409, "last_admin")
    (await root.patch(me, json={"is_disabled": True})).problem(409, "last_admin")
    (await root.delete(me)).problem(409, "last_admin")
    other = await api.user("other", admin=True)
    (await other.patch(f"/api/v1/users/{other.user['id']}", json={"is_disabled": True})).expect(200)
    (await root.delete(me)).problem(409, "last_admin")  # a disabled admin does not count
    assert (await root.get("/api/v1/me")).expect(200)["is_admin"] is True


async def test_the_two_last_admins_stepping_down_at_once_leave_one_admin(api: Api) -> None:
    ann = await api.user("ann", admin=True)
    bob = await api.user("bob", admin=True)
    for _ in range(3):
        answers = await asyncio.gather(
            ann.patch(f"/api/v1/users/{ann.user['id']}", json={"is_admin": False}),
            bob.patch(f"/api/v1/users/{bob.user['id']}", json={"is_admin": False}),
        )
        assert sorted(a.status for a in answers) == [200, 409], answers
        stayed, left = (ann, bob) if answers[0].status == 409 else (bob, ann)
        assert (await stayed.get("/api/v1/me")).expect(200)["is_admin"] is True
        (await stayed.patch(f"/api/v1/users/{left.user['id']}", json={"is_admin": True})).expect(200)


async def test_changing_ones_own_password_ends_every_other_session_but_this_one(api: Api) -> None:
    await api.make_user("alice")
    here, elsewhere = await api.login("alice"), await api.login("alice")
    changed = (
        await here.patch("/api/v1/me", json={"current_password": PASSWORD, "password": "a new password"})
    ).expect(200)
    assert changed["username"] == "alice"
    (await here.get("/api/v1/me")).expect(200)
    (await elsewhere.get("/api/v1/me")).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": elsewhere.refresh})).problem(
        401, "unauthorized"
    )
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": here.refresh})).expect(200)
    await api.login("alice", "a new password")


async def test_a_wrong_current_password_is_403_and_changes_nothing(api: Api) -> None:
    alice = await api.user("alice")
    (await alice.patch("/api/v1/me", json={"current_password": "not it at all", "password": "a new password"})).problem(
        403, "invalid_credentials"
    )
    (await alice.patch("/api/v1/me", json={"password": "a new password"})).problem(422, "invalid_field")
    await api.login("alice")


async def test_unknown_zones_and_negative_quotas_are_422_naming_them(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    path = f"/api/v1/users/{alice.user['id']}"
    problem = (await admin.patch(path, json={"zones": ["Atlantis"]})).problem(422, "invalid_field")
    assert problem["detail"].startswith("zones:") and "'Atlantis'" in problem["detail"], problem
    assert (
        (await admin.patch(path, json={"quota_bytes": -1}))
        .problem(422, "invalid_field")["detail"]
        .startswith("quota_bytes")
    )
    (await admin.patch(path, json={"zones": []})).problem(422, "invalid_field")
    (await admin.post("/api/v1/users", json={"username": "bob", "password": "pass-word-1", "zones": ["Mars"]})).problem(
        422, "invalid_field"
    )
    set_quota = (await admin.patch(path, json={"quota_bytes": 1000})).expect(200)
    assert set_quota["quota_bytes"] == 1000
    assert (await admin.patch(path, json={"quota_bytes": None})).expect(200)["quota_bytes"] is None


async def test_a_deleted_user_is_gone_and_their_name_is_free_again(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    (await admin.delete(f"/api/v1/users/{alice.user['id']}")).expect(204)
    (await alice.get("/api/v1/me")).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})).problem(
        401, "invalid_credentials"
    )
    (await admin.delete(f"/api/v1/users/{alice.user['id']}")).problem(404, "user_not_found")
    (await admin.get(f"/api/v1/users/{alice.user['id']}")).problem(404, "user_not_found")
    assert [u["username"] for u in (await admin.get("/api/v1/users")).expect(200)["items"]] == ["root"]
    (await admin.post("/api/v1/users", json={"username": "alice", "password": "pass-word-1"})).expect(201)


async def test_an_admin_may_delete_themselves_when_another_admin_remains(api: Api) -> None:
    root = await api.user("root", admin=True)
    await api.user("other", admin=True)
    (await root.delete(f"/api/v1/users/{root.user['id']}")).expect(204)
    (await root.get("/api/v1/me")).problem(401, "unauthorized")


async def test_usernames_are_one_name_whatever_their_case_and_keep_their_spelling(api: Api) -> None:
    # (Checked on main: "alice" beside "Alice" was a second account, and "ALICE" could not log in.)
    admin = await api.user("root", admin=True)
    created = (await admin.post("/api/v1/users", json={"username": "Alice.B", "password": PASSWORD})).expect(201)
    for other in ("alice.b", "ALICE.B", "aLiCe.b"):
        (await admin.post("/api/v1/users", json={"username": other, "password": PASSWORD})).problem(
            409, "username_taken"
        )
        session = await api.login(other)
        assert session.user["id"] == created["id"] and session.user["username"] == "Alice.B"
    (await admin.post("/api/v1/users", json={"username": "ROOT", "password": PASSWORD})).problem(409, "username_taken")
    accounts = api.app[appkeys.ACCOUNTS]
    assert await accounts.uuid_of("alice.B") == created["id"]  # the command line's look-up too
    names = [u["username"] for u in (await admin.get("/api/v1/users")).expect(200)["items"]]
    assert names == ["root", "Alice.B"]
    # Wrong passwords under any spelling count against one account (per address): the 6th is refused.
    for spelling in ("alice.b", "ALICE.B", "Alice.b", "aLICE.B", "alice.B"):
        (await api.call("POST", "/api/v1/auth/login", json={"username": spelling, "password": "wrong-one"})).problem(
            401, "invalid_credentials"
        )
    (await api.call("POST", "/api/v1/auth/login", json={"username": "ALICE.b", "password": PASSWORD})).problem(
        429, "too_many_attempts"
    )
    # A deleted user's name is free again, in any spelling.
    (await admin.delete(f"/api/v1/users/{created['id']}")).expect(204)
    (await admin.post("/api/v1/users", json={"username": "alice.b", "password": PASSWORD})).expect(201)
