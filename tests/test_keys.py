"""Personal API keys: made by a signed-in user, shown once, kept as a hash, acting as their user within their
scopes, never managing passwords, sessions or keys, revoked at once, ended with their user."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

import pytest
from apihelp import Api
from conftest import MakeApi

from cdnstore import appkeys
from cdnstore.api.endpoint import scope_of
from cdnstore.app import ROUTES
from cdnstore.models import PERMISSION_SCOPES, PERMISSIONS, SCOPES
from testbed.clock import FakeClock

NOBODY = "00000000-0000-0000-0000-000000000000"


async def stored_key_rows(api: Api) -> list[dict[str, Any]]:
    return [dict(r) for r in await api.app[appkeys.DB].fetchall("SELECT * FROM api_keys ORDER BY id")]


async def test_a_keys_secret_is_shown_once_kept_as_its_hash_and_acts_as_its_user(api: Api) -> None:
    alice = await api.user("alice")
    script = await alice.key("read", name="backup job", expires_in=86400)
    made = script.tokens
    assert re.fullmatch(r"cdn_[A-Za-z0-9_-]{43}", made["secret"]), made["secret"]
    assert made["name"] == "backup job" and made["scopes"] == ["read"] and made["last_used_at"] is None
    assert made["secret"].startswith(made["prefix"]) and len(made["prefix"]) == 12
    assert made["expires_at"] is not None
    # Acting as alice:
    assert (await script.get("/api/v1/me")).expect(200)["username"] == "alice"
    # The database holds its SHA-256, never the secret; no list shows the secret again.
    rows = await stored_key_rows(api)
    assert [r["secret_hash"] for r in rows] == [hashlib.sha256(made["secret"].encode()).hexdigest()]
    assert made["secret"] not in repr(rows)
    listed = (await alice.get("/api/v1/me/keys")).expect(200)["items"]
    assert [k["id"] for k in listed] == [made["id"]] and "secret" not in listed[0]
    assert made["secret"] not in repr(listed)


async def test_a_key_acts_only_within_its_scopes(api: Api) -> None:
    alice = await api.user("alice")
    reader, uploader, deleter = await alice.key("read"), await alice.key("upload"), await alice.key("delete")
    announce = {"name": "a.txt", "size": 3}
    (await reader.get("/api/v1/files")).expect(200)
    (await reader.post("/api/v1/files", json=announce)).problem(403, "insufficient_scope")
    (await reader.delete(f"/api/v1/files/{NOBODY}")).problem(403, "insufficient_scope")
    # (no storage server here: an announcement the scope allows goes on to find none)
    (await uploader.post("/api/v1/files", json=announce)).problem(503, "no_server_available")
    (await uploader.get("/api/v1/files")).problem(403, "insufficient_scope")
    (await deleter.delete(f"/api/v1/files/{NOBODY}")).problem(404, "file_not_found")
    (await deleter.post(f"/api/v1/files/{NOBODY}/links", json={})).problem(403, "insufficient_scope")
    # An upload that asks for a link also needs `share`.
    with_link = {**announce, "link": {"max_downloads": 3}}
    (await uploader.post("/api/v1/files", json=with_link)).problem(403, "insufficient_scope")
    both = await alice.key("upload", "share")
    (await both.post("/api/v1/files", json=with_link)).problem(503, "no_server_available")


async def test_the_admin_scope_is_for_admins_and_needed_for_their_routes(api: Api) -> None:
    alice = await api.user("alice")
    refused = await alice.post("/api/v1/me/keys", json={"name": "x", "scopes": ["read", "admin"]})
    assert refused.problem(422, "invalid_field")["field"] == "scopes"
    root = await api.user("root", admin=True)
    ops, reader = await root.key("admin"), await root.key("read")
    (await ops.get("/api/v1/users")).expect(200)
    (await ops.get("/api/v1/servers")).expect(200)
    (await reader.get("/api/v1/users")).problem(403, "insufficient_scope")
    (await reader.get("/api/v1/files")).expect(200)
    # A key acts as its user: admin scope or not, a user's own permissions still decide.
    (await (await alice.key("read", "upload")).get("/api/v1/users")).problem(403, "insufficient_scope")
    demoted = await api.user("bob", admin=True)
    bobs = await demoted.key("admin")
    (await root.patch(f"/api/v1/users/{demoted.user['id']}", json={"is_admin": False})).expect(200)
    (await bobs.get("/api/v1/users")).problem(403, "forbidden")


async def test_a_key_never_manages_passwords_sessions_or_keys(api: Api) -> None:
    alice = await api.user("alice")
    everything = await alice.key(*SCOPES[:-1])
    listed = (await alice.get("/api/v1/me/keys")).expect(200)["items"]
    for method, path, body in (
        ("POST", "/api/v1/me/keys", {"name": "another", "scopes": ["read"]}),
        ("GET", "/api/v1/me/keys", None),
        ("DELETE", f"/api/v1/me/keys/{listed[0]['id']}", None),
        ("PATCH", "/api/v1/me", {"current_password": "correct horse battery", "password": "stolen forever"}),
    ):
        (await everything.call(method, path, json=body)).problem(403, "insufficient_scope")
    assert [k["id"] for k in (await alice.get("/api/v1/me/keys")).expect(200)["items"]] == [listed[0]["id"]]
    await api.login("alice")  # the password is unchanged


async def test_a_revoked_key_answers_401_on_the_next_request(api: Api) -> None:
    alice = await api.user("alice")
    script = await alice.key("read")
    (await script.get("/api/v1/files")).expect(200)
    (await alice.delete(f"/api/v1/me/keys/{script.tokens['id']}")).expect(204)
    (await script.get("/api/v1/files")).problem(401, "unauthorized")
    (await alice.delete(f"/api/v1/me/keys/{script.tokens['id']}")).problem(404, "key_not_found")
    assert await stored_key_rows(api) == []


async def test_another_users_key_cannot_be_revoked_or_seen(api: Api) -> None:
    alice, mallory = await api.user("alice"), await api.user("mallory")
    script = await alice.key("read")
    (await mallory.delete(f"/api/v1/me/keys/{script.tokens['id']}")).problem(404, "key_not_found")
    assert (await mallory.get("/api/v1/me/keys")).expect(200)["items"] == []
    (await script.get("/api/v1/me")).expect(200)


async def test_an_unknown_or_forged_key_is_401(api: Api) -> None:
    alice = await api.user("alice")
    script = await alice.key("read")
    for forged in ("cdn_", "cdn_" + "A" * 43, script.access[:-1] + ("A" if script.access[-1] != "A" else "B")):
        (await api.call("GET", "/api/v1/me", token=forged)).problem(401, "unauthorized")


async def test_a_key_past_its_expiry_is_401_even_when_checked_before(api: Api) -> None:
    alice = await api.user("alice")
    script = await alice.key("read", expires_in=3600)
    (await script.get("/api/v1/me")).expect(200)  # checked once: kept in this daemon's cache
    expiry = datetime.fromisoformat(script.tokens["expires_at"]).timestamp()
    api.app[appkeys.KEYS].clock = lambda: expiry - 0.001
    (await script.get("/api/v1/me")).expect(200)
    api.app[appkeys.KEYS].clock = lambda: expiry  # (the first moment it no longer works)
    refused = (await script.get("/api/v1/me")).problem(401, "unauthorized")
    assert "expired" in refused["detail"]


async def test_a_keys_times_are_the_daemons_clocks_and_its_expiry_counts_from_it(make_api: MakeApi) -> None:
    clock = FakeClock()
    clock.advance(7 * 86400)  # a week from the real now: the key must neither be stamped by it nor expire by it
    api = await make_api(clock=clock)
    script = await (await api.user("alice")).key("read", expires_in=3600)
    made = script.tokens
    assert (made["created_at"], made["expires_at"]) == (clock.now_iso(), clock.iso_in(3600, timespec="seconds"))
    clock.advance(3599)
    (await script.get("/api/v1/me")).expect(200)
    clock.advance(1)
    (await script.get("/api/v1/me")).problem(401, "unauthorized")


async def test_disabling_a_user_ends_their_keys_for_good(api: Api) -> None:
    root = await api.user("root", admin=True)
    alice = await api.user("alice")
    script = await alice.key("read")
    (await script.get("/api/v1/me")).expect(200)
    (await root.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": True})).expect(200)
    (await script.get("/api/v1/me")).problem(401, "unauthorized")
    (await root.patch(f"/api/v1/users/{alice.user['id']}", json={"is_disabled": False})).expect(200)
    (await script.get("/api/v1/me")).problem(401, "unauthorized")
    assert await stored_key_rows(api) == []


async def test_deleting_a_user_ends_their_keys(api: Api) -> None:
    root = await api.user("root", admin=True)
    alice = await api.user("alice")
    script = await alice.key("read")
    (await root.delete(f"/api/v1/users/{alice.user['id']}")).expect(204)
    (await script.get("/api/v1/me")).problem(401, "unauthorized")
    assert await stored_key_rows(api) == []


async def test_last_use_is_written_in_batches_not_once_per_request(api: Api) -> None:
    alice = await api.user("alice")
    script = await alice.key("read")
    for _ in range(20):
        (await script.get("/api/v1/files")).expect(200)
    # Twenty requests, no write yet: the use waits in memory for the next batch ...
    assert [r["last_used_at"] for r in await stored_key_rows(api)] == [None]
    # ... which the list writes first (so it shows this daemon's uses).
    listed = (await alice.get("/api/v1/me/keys")).expect(200)["items"]
    assert listed[0]["last_used_at"] is not None
    assert [r["last_used_at"] for r in await stored_key_rows(api)] == [listed[0]["last_used_at"]]


def test_every_permission_has_a_scope_and_every_users_route_one_derived_from_its_declaration() -> None:
    assert set(PERMISSION_SCOPES) == set(PERMISSIONS) and set(PERMISSION_SCOPES.values()) <= set(SCOPES)
    # Routes that name their scope rather than derive it: setting webhooks up sends the user's events out, so
    # it takes `share`, not the method's `upload`/`delete`.
    named = {
        ("POST", "/api/v1/webhooks"): "share",
        ("DELETE", "/api/v1/webhooks/{id}"): "share",
        ("POST", "/api/v1/webhooks/{id}/test"): "share",
    }
    for ep in ROUTES:
        if ep.auth not in ("user", "session"):
            continue
        assert ep.scope in SCOPES, ep.path
        expected = named.get((ep.method, ep.path), scope_of(ep.method, ep.permission, ep.admin))
        assert ep.scope == expected, (ep.method, ep.path)
    assert scope_of("GET", "can_view_cdnserver", False) == "admin"
    assert scope_of("POST", None, True) == "admin"
    assert scope_of("DELETE", "can_delete_filesharelink", False) == "share"
    assert (scope_of("GET", None, False), scope_of("POST", None, False)) == ("read", "upload")
    assert scope_of("DELETE", None, False) == "delete"
    # What manages passwords, sessions and keys refuses keys whatever their scopes.
    session_only = {(ep.method, ep.path) for ep in ROUTES if ep.auth == "session"}
    assert session_only == {
        ("PATCH", "/api/v1/me"),
        ("POST", "/api/v1/me/keys"),
        ("GET", "/api/v1/me/keys"),
        ("DELETE", "/api/v1/me/keys/{id}"),
    }


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["write"]},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_in": 10},
        {"name": "x", "scopes": ["read"], "owner": "root"},
    ],
)
async def test_a_bad_key_request_is_422_naming_the_field(api: Api, body: dict[str, Any]) -> None:
    alice = await api.user("alice")
    problem = (await alice.post("/api/v1/me/keys", json=body)).problem(422, problem_code(body))
    assert problem["field"].split(".")[0] in body
    assert await stored_key_rows(api) == []


def problem_code(body: dict[str, Any]) -> str:
    return "unknown_field" if "owner" in body else "invalid_field"
