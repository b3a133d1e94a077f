"""Login, token refresh rotation, logout revocation, throttling, 401 and 403."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.cookies import Morsel, SimpleCookie
from typing import Any

import pytest
from apihelp import PASSWORD, SECRET, Api, GatedArgon2, from_ip, wait_for
from conftest import MakeApi

from cdnstore import appkeys
from cdnstore.auth import Priority
from testbed.clock import FakeClock


async def test_login_answers_tokens_and_the_user(api: Api) -> None:
    await api.make_user("alice")
    body = (await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})).expect(200)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["user"]["username"] == "alice" and body["user"]["is_admin"] is False
    assert "can_upload_file" in body["user"]["permissions"]
    assert "can_add_cdnserver" not in body["user"]["permissions"]
    me = (await api.call("GET", "/api/v1/me", token=body["access_token"])).expect(200)
    assert me == body["user"]


async def test_wrong_password_and_unknown_user_are_the_same_401(api: Api) -> None:
    await api.make_user("alice")
    wrong = await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": "nope-nope"})
    unknown = await api.call("POST", "/api/v1/auth/login", json={"username": "bob", "password": "nope-nope"})
    assert wrong.problem(401, "invalid_credentials")["detail"] == unknown.problem(401, "invalid_credentials")["detail"]


async def test_refresh_rotates_and_the_used_token_stops_working(api: Api) -> None:
    session = await api.user("alice")
    first = (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).expect(200)
    assert first["refresh_token"] != session.refresh
    assert (await api.call("GET", "/api/v1/me", token=first["access_token"])).expect(200)["username"] == "alice"
    again = await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})
    again.problem(401, "unauthorized")


async def test_a_reused_refresh_token_revokes_its_whole_family(api: Api) -> None:
    session = await api.user("alice")
    rotated = (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).expect(200)
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).problem(
        401, "unauthorized"
    )
    # The thief replayed the old token: the legitimate newest one is ended too.
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).problem(
        401, "unauthorized"
    )


async def test_logout_revokes_the_refresh_token_only(api: Api) -> None:
    session = await api.user("alice")
    other = await api.login("alice")
    (await api.call("POST", "/api/v1/auth/logout", json={"refresh_token": session.refresh})).expect(204)
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).problem(
        401, "unauthorized"
    )
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": other.refresh})).expect(200)


async def test_a_new_password_ends_the_users_sessions(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"password": "a new password"})).expect(200)
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": alice.refresh})).problem(401, "unauthorized")
    await api.login("alice", "a new password")


async def test_repeated_failures_for_one_username_answer_429(api: Api) -> None:
    await api.make_user("alice")
    for _ in range(5):
        (await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": "wrong-pw"})).problem(
            401, "invalid_credentials"
        )
    locked = await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    locked.problem(429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) > 0
    # Another user from the same address is not locked out by alice's failures.
    await api.user("bob")


async def test_repeated_failures_from_one_address_answer_429(make_api: object) -> None:
    api = await make_api(auth={"login_max_failures_per_ip": 3})  # type: ignore[operator]
    await api.make_user("carol")
    for name in ("x1", "x2", "x3"):
        (await api.call("POST", "/api/v1/auth/login", json={"username": name, "password": "wrong-pw"})).problem(
            401, "invalid_credentials"
        )
    (await api.call("POST", "/api/v1/auth/login", json={"username": "carol", "password": PASSWORD})).problem(
        429, "too_many_attempts"
    )


def stopped_clock(at: float) -> Callable[[], float]:
    return lambda: at


async def test_the_lockout_ends_after_the_window(api: Api) -> None:
    await api.make_user("alice")
    for _ in range(5):
        await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": "wrong-pw"})
    (await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})).problem(
        429, "too_many_attempts"
    )
    accounts = api.app[appkeys.ACCOUNTS]
    for throttle in (accounts._by_account, accounts._by_address):
        later = throttle._clock() + 301  # (its own clock: monotonic in memory, unix time in the database)
        throttle._clock = stopped_clock(later)
    await api.login("alice")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic abc", "Token x"])
async def test_a_missing_or_bad_token_is_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    (await api.call("GET", "/api/v1/me", headers=headers)).problem(401, "unauthorized")


async def test_an_expired_access_token_is_401(api: Api) -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    class SixteenMinutesAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 16 * 60

    session = await api.user("alice")
    claims = URLSafeTimedSerializer(SECRET, salt="cdnstore.access").loads(session.access)
    old = URLSafeTimedSerializer(SECRET, salt="cdnstore.access", signer=SixteenMinutesAgo).dumps(claims)
    answer = await api.call("GET", "/api/v1/me", token=old)
    assert "expired" in answer.problem(401, "unauthorized")["detail"]


async def test_a_refresh_token_is_not_an_access_token(api: Api) -> None:
    session = await api.user("alice")
    (await api.call("GET", "/api/v1/me", token=session.refresh)).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.access})).problem(
        401, "unauthorized"
    )


async def test_a_token_signed_with_another_key_is_401(api: Api) -> None:
    from itsdangerous import URLSafeTimedSerializer

    session = await api.user("alice")
    claims = URLSafeTimedSerializer(SECRET, salt="cdnstore.access").loads(session.access)
    forged = URLSafeTimedSerializer("another-secret-key-entirely", salt="cdnstore.access").dumps(claims)
    (await api.call("GET", "/api/v1/me", token=forged)).problem(401, "unauthorized")


async def test_users_without_admin_get_403_on_admin_routes(api: Api) -> None:
    alice = await api.user("alice")
    (await alice.get("/api/v1/users")).problem(403, "forbidden")
    (await alice.post("/api/v1/users", json={"username": "x", "password": "12345678"})).problem(403, "forbidden")
    (await alice.get("/api/v1/servers")).problem(403, "forbidden")


async def test_a_permission_granted_opens_its_route(api: Api) -> None:
    viewer = await api.user("viewer", permissions=["can_view_cdnserver"])
    assert (await viewer.get("/api/v1/servers")).expect(200) == {"items": [], "next_cursor": None}
    (await viewer.post("/api/v1/servers", json={})).problem(403, "forbidden")


async def test_a_token_verified_while_valid_is_refused_once_it_expires(make_api: MakeApi) -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    clock = FakeClock()
    api = await make_api(clock=clock)

    class AlmostFifteenMinutesAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock.now) - 900 + 2

    session = await api.user("alice")
    claims = URLSafeTimedSerializer(SECRET, salt="cdnstore.access").loads(session.access)  # user, session
    old = URLSafeTimedSerializer(SECRET, salt="cdnstore.access", signer=AlmostFifteenMinutesAgo).dumps(claims)
    (await api.call("GET", "/api/v1/me", token=old)).expect(200)  # verified, and remembered
    clock.advance(3)  # the token checks' clock (the app's)
    (await api.call("GET", "/api/v1/me", token=old)).problem(401, "unauthorized")


async def test_a_forged_forwarded_for_does_not_escape_the_per_address_limit(make_api: object) -> None:
    api = await make_api(auth={"login_max_failures_per_ip": 3})  # type: ignore[operator]
    await api.make_user("carol")
    for n in range(3):  # each attempt claims to come from somewhere else; the proxy saw 203.0.113.7
        headers = {"X-Forwarded-For": f"1.1.1.{n}, 203.0.113.7"}
        (
            await api.call(
                "POST", "/api/v1/auth/login", json={"username": f"x{n}", "password": "wrong-pw"}, headers=headers
            )
        ).problem(401, "invalid_credentials")
    (
        await api.call(
            "POST",
            "/api/v1/auth/login",
            json={"username": "carol", "password": PASSWORD},
            headers={"X-Forwarded-For": "8.8.4.4, 203.0.113.7"},
        )
    ).problem(429, "too_many_attempts")
    # Another address behind the same proxy is not locked out.
    await api.login("carol", headers={"X-Forwarded-For": "203.0.113.8"})


# --- throttling a burst, per address and account (a burst of parallel requests, counted verifications)


def count_verifications(api: Api, delay: float = 0.0) -> dict[str, int]:
    """Count the argon2 verifications that run (and the most at once); `delay` makes each one slower."""
    passwords = api.app[appkeys.ACCOUNTS].passwords
    real = passwords._verify
    seen = {"ran": 0, "running": 0, "most": 0}
    lock = threading.Lock()

    def counted(stored_hash: str, password: str) -> bool:
        with lock:
            seen["ran"] += 1
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
        try:
            time.sleep(delay)  # the scenario, not a wait: a slow verification, in argon2's worker thread
            return real(stored_hash, password)
        finally:
            with lock:
                seen["running"] -= 1

    passwords._verify = counted  # type: ignore[method-assign]
    return seen


async def wrong_login(api: Api, username: str, ip: str = "198.51.100.1") -> int:
    answer = await api.call(
        "POST", "/api/v1/auth/login", json={"username": username, "password": "wrong-pw"}, headers=from_ip(ip)
    )
    assert answer.status in (401, 429), answer.body
    return answer.status


async def test_a_concurrent_burst_of_wrong_passwords_is_throttled(api: Api) -> None:
    await api.make_user("alice")
    seen = count_verifications(api)
    statuses = await asyncio.gather(*(wrong_login(api, "alice") for _ in range(60)))
    assert statuses.count(429) >= 55  # like 60 guesses one by one: five 401s, then 429s
    assert seen["ran"] <= 5  # login_max_failures: no more guesses were checked than allowed


async def test_a_flood_of_password_checks_beyond_the_queue_answers_429_at_once(make_api: object) -> None:
    api = await make_api(auth={"argon2_max_running": 1, "argon2_max_waiting": 2})  # type: ignore[operator]
    seen = count_verifications(api, delay=0.2)
    # Each guess is for another name from another address: no failure count stops them, the queue does.
    statuses = await asyncio.gather(*(wrong_login(api, f"user{n}", f"198.51.100.{n}") for n in range(30)))
    assert statuses.count(429) >= 20
    assert seen["most"] == 1 and seen["ran"] == statuses.count(401)


async def test_ipv6_addresses_are_counted_by_their_64(make_api: object) -> None:
    api = await make_api(auth={"login_max_failures_per_ip": 3})  # type: ignore[operator]
    await api.make_user("carol")
    for n in range(3):  # three addresses of one /64
        assert await wrong_login(api, f"x{n}", f"2001:db8:1:2::{n + 1}") == 401
    (
        await api.call(
            "POST",
            "/api/v1/auth/login",
            json={"username": "carol", "password": PASSWORD},
            headers=from_ip("2001:db8:1:2:ffff::9"),
        )
    ).problem(429, "too_many_attempts")
    await api.login("carol", headers=from_ip("2001:db8:1:3::1"))  # the next /64 is someone else


async def test_a_locked_out_address_does_not_lock_another_address_out_of_the_account(api: Api) -> None:
    await api.make_user("root", admin=True)
    for _ in range(5):
        assert await wrong_login(api, "root", "198.51.100.66") == 401
    (
        await api.call(
            "POST",
            "/api/v1/auth/login",
            json={"username": "root", "password": PASSWORD},
            headers=from_ip("198.51.100.66"),
        )
    ).problem(429, "too_many_attempts")
    await api.login("root", headers=from_ip("203.0.113.10"))  # the admin, from where they did not fail


# --- access tokens end with their session


async def test_logout_makes_the_sessions_access_token_401_at_once(api: Api) -> None:
    session = await api.user("alice")
    other = await api.login("alice")
    (await session.get("/api/v1/me")).expect(200)
    (await api.call("POST", "/api/v1/auth/logout", json={"refresh_token": session.refresh})).expect(204)
    (await session.get("/api/v1/me")).problem(401, "unauthorized")
    (await other.get("/api/v1/me")).expect(200)  # another login of the same user lives on


async def test_a_new_password_makes_every_sessions_access_token_401_at_once(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    laptop = await api.login("alice")
    (await alice.get("/api/v1/me")).expect(200)
    (await admin.patch(f"/api/v1/users/{alice.user['id']}", json={"password": "a new password"})).expect(200)
    (await alice.get("/api/v1/me")).problem(401, "unauthorized")
    (await laptop.get("/api/v1/me")).problem(401, "unauthorized")
    (await admin.get("/api/v1/me")).expect(200)


async def test_a_reused_refresh_token_makes_the_sessions_access_tokens_401_at_once(api: Api) -> None:
    session = await api.user("alice")
    other = await api.login("alice")
    rotated = (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).expect(200)
    (await api.call("GET", "/api/v1/me", token=rotated["access_token"])).expect(200)
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).problem(
        401, "unauthorized"
    )
    (await session.get("/api/v1/me")).problem(401, "unauthorized")
    (await api.call("GET", "/api/v1/me", token=rotated["access_token"])).problem(401, "unauthorized")
    (await other.get("/api/v1/me")).expect(200)


async def test_a_sessions_state_is_read_from_the_database_once_per_process(api: Api) -> None:
    session = await api.user("alice")
    accounts = api.app[appkeys.ACCOUNTS]
    accounts._ended.clear()  # as in another process, or after a restart
    real = accounts.db.fetchone
    reads: list[str] = []

    async def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
        if "FROM sessions" in sql:
            reads.append(sql)
        return await real(sql, *args, **kwargs)

    accounts.db.fetchone = counted  # type: ignore[method-assign]
    for _ in range(20):
        (await session.get("/api/v1/me")).expect(200)
    assert len(reads) == 1


# --- the page's cookie session


def page_headers(api: Api, origin: str | None = None, cookie: str | None = None) -> dict[str, str]:
    """What the bundled page sends: the opt-in header, its own Origin, and the cookie it holds."""
    headers = {"X-Cdnstore-Session": "cookie", "Origin": origin or api.app[appkeys.CONFIG].http.public_url}
    if cookie:
        headers["Cookie"] = f"cdnstore_refresh={cookie}"
    return headers


def cookie_named(answer: Any, name: str) -> Morsel[str]:
    jar: SimpleCookie = SimpleCookie()
    for header in answer.headers.getall("Set-Cookie"):
        jar.load(header)
    return jar[name]


def refresh_cookie(answer: Any) -> Morsel[str]:
    return cookie_named(answer, "cdnstore_refresh")


async def test_the_pages_cookie_session_keeps_the_refresh_token_in_an_httponly_cookie(api: Api) -> None:
    await api.make_user("alice")
    login = await api.call(
        "POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}, headers=page_headers(api)
    )
    assert login.expect(200)["refresh_token"] == ""  # script on the page never sees it
    cookie = refresh_cookie(login)
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/api/v1/auth/"
    assert not cookie["secure"]  # http.public_url is http here
    assert int(cookie["max-age"]) == 2592000
    # A reload: the page has no access token, only the cookie the browser sends.
    renewed = await api.call("POST", "/api/v1/auth/refresh", json={}, headers=page_headers(api, cookie=cookie.value))
    access = renewed.expect(200)["access_token"]
    rotated = refresh_cookie(renewed)
    assert rotated.value != cookie.value
    (await api.call("GET", "/api/v1/me", token=access)).expect(200)
    # Logout clears the cookie and ends the session.
    out = await api.call("POST", "/api/v1/auth/logout", json={}, headers=page_headers(api, cookie=rotated.value))
    out.expect(204)
    assert refresh_cookie(out).value == "" and refresh_cookie(out)["path"] == "/api/v1/auth/"
    (await api.call("GET", "/api/v1/me", token=access)).problem(401, "unauthorized")
    (await api.call("POST", "/api/v1/auth/refresh", json={}, headers=page_headers(api, cookie=rotated.value))).problem(
        401, "unauthorized"
    )


async def test_a_cookie_session_comes_with_a_hint_the_page_can_read_holding_nothing(api: Api) -> None:
    """The page asks for a refresh only when this hint is there (no refused refresh on a visit without a
    session); it lives as long as the session's cookie, and goes with it."""
    await api.make_user("alice")
    login = await api.call(
        "POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}, headers=page_headers(api)
    )
    login.expect(200)
    hint = cookie_named(login, "cdnstore_session")
    assert hint.value == "1" and not hint["httponly"] and hint["path"] == "/" and hint["samesite"] == "Strict"
    assert hint["max-age"] == refresh_cookie(login)["max-age"]
    renewed = await api.call(
        "POST", "/api/v1/auth/refresh", json={}, headers=page_headers(api, cookie=refresh_cookie(login).value)
    )
    renewed.expect(200)
    assert cookie_named(renewed, "cdnstore_session").value == "1"  # renewed with it
    out = await api.call(
        "POST", "/api/v1/auth/logout", json={}, headers=page_headers(api, cookie=refresh_cookie(renewed).value)
    )
    out.expect(204)
    assert cookie_named(out, "cdnstore_session").value == "" and cookie_named(out, "cdnstore_session")["path"] == "/"
    bearer = await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    bearer.expect(200)
    assert not bearer.headers.getall("Set-Cookie", [])  # bearer clients get no cookie at all


async def test_a_cookie_session_is_secure_when_the_page_is_served_over_https(make_api: object) -> None:
    api = await make_api(http={"public_url": "https://files.example.com"})  # type: ignore[operator]
    await api.make_user("alice")
    login = await api.call(
        "POST",
        "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers=page_headers(api, origin="https://files.example.com"),
    )
    login.expect(200)
    assert refresh_cookie(login)["secure"]


async def test_a_cookie_session_refuses_other_origins_and_needs_its_header(api: Api) -> None:
    session = await api.user("alice")
    login = await api.call(
        "POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}, headers=page_headers(api)
    )
    login.expect(200)
    cookie = refresh_cookie(login).value
    for origin in ("https://evil.example", "null"):
        (
            await api.call(
                "POST", "/api/v1/auth/refresh", json={}, headers=page_headers(api, origin=origin, cookie=cookie)
            )
        ).problem(403, "forbidden")
    no_origin = page_headers(api, cookie=cookie)
    del no_origin["Origin"]
    (await api.call("POST", "/api/v1/auth/refresh", json={}, headers=no_origin)).problem(403, "forbidden")
    # Without the opt-in header (a plain cross-site form could send the cookie), the cookie is ignored.
    (await api.call("POST", "/api/v1/auth/refresh", json={}, headers={"Cookie": f"cdnstore_refresh={cookie}"})).problem(
        422, "invalid_field"
    )
    (await api.call("POST", "/api/v1/auth/logout", json={}, headers={"Cookie": f"cdnstore_refresh={cookie}"})).problem(
        422, "invalid_field"
    )
    # Nothing above ended the session; bearer clients are unchanged.
    (await api.call("POST", "/api/v1/auth/refresh", json={}, headers=page_headers(api, cookie=cookie))).expect(200)
    (await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session.refresh})).expect(200)


# --- password checks under a flood: the bounded queue, and the turns of the callers known lately ------------


async def test_password_hashes_beyond_the_queue_answer_429_at_once_and_a_known_login_goes_before_them(
    make_api: object,
) -> None:
    # (Checked on main: hashes waited without a cap, all ten, and a login's check queued behind them.)
    api = await make_api(auth={"argon2_max_running": 1, "argon2_max_waiting": 3})  # type: ignore[operator]
    admin = await api.user("root", admin=True)  # its login makes this address (and account) known
    argon2 = GatedArgon2(api)
    passwords = argon2.passwords
    creations = [
        asyncio.create_task(admin.post("/api/v1/users", json={"username": f"u{n}", "password": PASSWORD}))
        for n in range(10)
    ]
    # One hashes (held), three wait, six are refused at once: while the hashing is still held.
    await wait_for(lambda: sum(t.done() for t in creations) == 6, "six creations answered at once")
    assert passwords.waiting(Priority.OTHER) == 3
    for refused in (t.result() for t in creations if t.done()):
        assert refused.problem(429, "too_many_attempts")["retry_after"] == 1
    login = asyncio.create_task(api.login("root"))
    await wait_for(lambda: passwords.waiting(Priority.KNOWN_ADDRESS) == 1, "the login to wait for its turn")
    # One hash may end: the login's check has the next turn, before the three waiting hashes (it could not
    # end otherwise: they would wait for hashing the test never lets through).
    argon2.let_through()
    session = await asyncio.wait_for(login, 30)
    assert session.user["username"] == "root"
    assert passwords.waiting(Priority.OTHER) == 2  # the next hash has its turn (held); two still wait
    argon2.let_through(3)
    answers = await asyncio.gather(*creations)
    assert sorted(a.status for a in answers) == [201] * 4 + [429] * 6


async def test_a_login_flood_from_many_addresses_does_not_shut_out_a_known_address_or_account(
    make_api: object,
) -> None:
    # (Checked on main: with the queue full of the flood's checks, alice's logins got 429 like every other.)
    api = await make_api(  # type: ignore[operator]
        auth={"argon2_max_running": 1, "argon2_max_waiting": 4, "argon2_reserved_waiting": 2}
    )
    await api.make_user("alice")
    await api.login("alice", headers=from_ip("203.0.113.7"))  # yesterday, say: a known address and account
    argon2 = GatedArgon2(api, verifications=True)
    passwords = argon2.passwords
    flood = [asyncio.create_task(wrong_login(api, f"user{n}", f"198.51.100.{n}")) for n in range(30)]
    await wait_for(lambda: sum(t.done() for t in flood) == 25, "the flood beyond the queue refused at once")
    assert passwords.waiting(Priority.OTHER) == 4
    from_known_address = asyncio.create_task(api.login("alice", headers=from_ip("203.0.113.7")))
    from_new_address = asyncio.create_task(api.login("alice", headers=from_ip("192.0.2.50")))  # a known account
    await wait_for(
        lambda: passwords.waiting(Priority.KNOWN_ADDRESS) == 1 and passwords.waiting(Priority.KNOWN_ACCOUNT) == 1,
        "both of alice's logins to wait for a turn",
    )
    argon2.let_through(7)
    await asyncio.wait_for(asyncio.gather(from_known_address, from_new_address), 30)
    statuses = await asyncio.gather(*flood)
    assert statuses.count(429) == 25 and statuses.count(401) == 5
    # The turns: the flood's check already running, then alice's two, then the flood's waiting ones.
    assert argon2.verified == ["wrong-pw", PASSWORD, PASSWORD, *["wrong-pw"] * 4], argon2.verified
    # An address that guesses is known no more: its next check waits with everyone else's.
    argon2.let_through()
    assert await wrong_login(api, "alice", "203.0.113.7") == 401
    assert api.app[appkeys.ACCOUNTS]._priority("203.0.113.7", None) is Priority.OTHER
