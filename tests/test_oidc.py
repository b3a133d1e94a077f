"""Single sign-on against a real OpenID provider (panva's oidc-provider run by Node, testbed/oidc_provider.py): the code
flow with PKCE, state and nonce, the ID token checked, the user found or created, the page signed in with
the same cookie session as a password login; and what must fail: a tampered state, a replayed code, a token
for another application, an expired token, a key the provider does not publish (until the JWKS is read
again), a user disabled or deleted in cdnstore."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from apihelp import PASSWORD, Answer, Api, Clock
from conftest import MakeApi

from cdnstore import appkeys
from cdnstore.oidc import CALLBACK_PATH, JWKS_COOLDOWN, OidcClient
from testbed.oidc_provider import (
    CLIENT_ID,
    PASSWORDS,
    OidcProvider,
    query_of,
    sign_in_at_provider,
    sso,
    token_for_other_app,
)

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
async def api(make_api: MakeApi, provider: OidcProvider) -> Api:
    return await make_api(oidc=sso(provider))


def public_url(api: Api) -> str:
    return api.app[appkeys.CONFIG].http.public_url


async def begin(api: Api, return_to: str = "/") -> str:
    """The page's "Sign in with ...": the provider's authorization URL cdnstore redirects to (the client's
    cookie jar keeps the sealed cookie, as a browser would)."""
    answer = await api.call("GET", "/api/v1/auth/oidc/login?" + urlencode({"return_to": return_to}))
    assert answer.status == 302, answer.body
    return str(answer.headers["Location"])


async def at_provider(api: Api, authorize_url: str, username: str) -> str:
    """Signed in at the provider's page: the callback URL it sends the browser back to (not followed yet)."""
    return await sign_in_at_provider(authorize_url, username, PASSWORDS[username], public_url(api) + CALLBACK_PATH)


async def back_at(api: Api, callback_url: str) -> Answer:
    parts = urlsplit(callback_url)
    return await api.call("GET", f"{parts.path}?{parts.query}")


async def page_session(api: Api) -> Answer:
    """What the page does once back: resume the session of the refresh cookie."""
    headers = {"X-Cdnstore-Session": "cookie", "Origin": public_url(api)}
    return await api.call("POST", "/api/v1/auth/refresh", json={}, headers=headers)


async def sign_in(api: Api, username: str, return_to: str = "/") -> dict[str, Any]:
    """The whole round: the page signed in as `username` through the provider; the refresh's answer."""
    back = await back_at(api, await at_provider(api, await begin(api, return_to), username))
    assert back.status == 302, back.body
    assert back.headers["Location"] == public_url(api) + return_to
    return dict((await page_session(api)).expect(200))


def pending_cookie(api: Api) -> str:
    return next(c.value for c in api.client.session.cookie_jar if c.key == "cdnstore_oidc")


async def test_a_first_sign_in_creates_the_user_and_signs_the_page_in_like_a_password_login(
    api: Api, provider: OidcProvider
) -> None:
    assert (await api.call("GET", "/api/v1/auth/methods")).expect(200) == {
        "password": True,
        "oidc": {"name": "Test IdP"},
    }
    authorize = await begin(api, "/#files")
    asked = query_of(authorize)
    assert authorize.startswith(f"{provider.issuer}/auth?")
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["redirect_uri"] == public_url(api) + CALLBACK_PATH and asked["client_id"] == CLIENT_ID
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32 and asked["state"] != asked["nonce"]
    assert "openid" in asked["scope"].split()
    back = await back_at(api, await at_provider(api, authorize, "dave"))
    assert back.status == 302 and back.headers["Location"] == public_url(api) + "/#files"
    cookie = next(c for c in api.client.session.cookie_jar if c.key == "cdnstore_refresh")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/api/v1/auth/"
    tokens = (await page_session(api)).expect(200)
    dave = tokens["user"]
    assert (dave["username"], dave["is_admin"], dave["quota_bytes"], dave["zones"]) == ("dave", False, None, None)
    me = (await api.call("GET", "/api/v1/me", token=tokens["access_token"])).expect(200)
    assert me["id"] == dave["id"]
    # Again: the same user (found by the provider's subject), and no password works for them.
    assert (await sign_in(api, "dave"))["user"]["id"] == dave["id"]
    refused = await api.call("POST", "/api/v1/auth/login", json={"username": "dave", "password": ""})
    assert refused.status == 422
    (await api.call("POST", "/api/v1/auth/login", json={"username": "dave", "password": "x"})).problem(
        401, "invalid_credentials"
    )


async def test_new_users_get_the_default_quota_and_zones(make_api: MakeApi, provider: OidcProvider) -> None:
    api = await make_api(oidc=sso(provider), users={"default_quota_bytes": 10**9, "default_zones": ["Africa"]})
    dave = (await sign_in(api, "dave"))["user"]
    assert (dave["quota_bytes"], dave["zones"]) == (10**9, ["Africa"])


async def test_the_admin_group_makes_admins_and_its_absence_unmakes_them(api: Api) -> None:
    root = await api.user("root", admin=True)
    assert (await sign_in(api, "carol"))["user"]["is_admin"] is True  # in the provider's admin group
    # dave, an admin made in cdnstore, signs in: not in the group, no longer an admin.
    await api.make_user("dave", admin=True)
    dave = (await sign_in(api, "dave"))["user"]
    assert dave["is_admin"] is False
    listed = (await root.get(f"/api/v1/users/{dave['id']}")).expect(200)
    assert listed["is_admin"] is False


async def test_the_last_admin_leaving_the_group_stays_an_admin(api: Api) -> None:
    await api.make_user("dave", admin=True)  # the only admin
    assert (await sign_in(api, "dave"))["user"]["is_admin"] is True


async def test_a_tampered_state_is_refused_before_the_code_is_used(api: Api, provider: OidcProvider) -> None:
    callback = await at_provider(api, await begin(api), "dave")
    state = query_of(callback)["state"]
    tampered = callback.replace(f"state={state}", f"state={state[:-2]}xy")
    tokens_before = await provider.requests_to("/token")
    refused = (await back_at(api, tampered)).problem(401, "oidc_failed")
    assert "state" in refused["detail"]
    assert await provider.requests_to("/token") == tokens_before  # never exchanged
    (await page_session(api)).problem(401, "unauthorized")  # not signed in
    # The untouched answer still works (the state is checked, not burnt by a forgery).
    assert (await back_at(api, callback)).status == 302


async def test_a_callback_from_another_browser_is_refused(api: Api, make_api: MakeApi) -> None:
    callback = await at_provider(api, await begin(api), "dave")
    api.client.session.cookie_jar.clear()  # (the sealed cookie is this browser's: another has none)
    refused = (await back_at(api, callback)).problem(401, "oidc_failed")
    assert "began no sign-in" in refused["detail"]


async def test_a_replayed_code_is_refused(api: Api) -> None:
    callback = await at_provider(api, await begin(api), "dave")
    sealed = pending_cookie(api)
    assert (await back_at(api, callback)).status == 302
    # The same answer again, with the same cookie (an attacker who copied both): the provider refuses the code.
    api.client.session.cookie_jar.update_cookies({"cdnstore_oidc": sealed}, api.client.make_url(CALLBACK_PATH))
    refused = (await back_at(api, callback)).problem(401, "oidc_failed")
    assert "code" in refused["detail"]


async def test_an_id_token_issued_to_another_application_is_refused(
    api: Api, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    authorize = await begin(api)
    callback = await at_provider(api, authorize, "dave")
    # A genuine token of this provider, for this very sign-in's nonce, but issued to another application:
    # what a substituted token endpoint answer would carry. cdnstore must refuse it for its audience.
    stolen = await token_for_other_app(provider.issuer, query_of(authorize)["nonce"])
    oidc = api.app[appkeys.OIDC]
    assert isinstance(oidc, OidcClient)

    async def substituted(*args: Any) -> dict[str, Any]:
        return {"id_token": stolen}

    monkeypatch.setattr(oidc, "_exchange", substituted)
    refused = (await back_at(api, callback)).problem(401, "oidc_failed")
    assert "another application" in refused["detail"]
    (await page_session(api)).problem(401, "unauthorized")


async def test_an_expired_id_token_is_refused(api: Api, provider: OidcProvider) -> None:
    callback = await at_provider(api, await begin(api), "dave")
    await provider.control("clock", offset=-7200)  # the provider issues the ID token "two hours ago"
    refused = (await back_at(api, callback)).problem(401, "oidc_failed")
    assert "expired" in refused["detail"]
    (await page_session(api)).problem(401, "unauthorized")


async def test_a_rotated_key_is_read_again_at_most_once_per_cooldown(api: Api, provider: OidcProvider) -> None:
    oidc = api.app[appkeys.OIDC]
    assert isinstance(oidc, OidcClient)
    clock = oidc.clock = Clock()
    await sign_in(api, "dave")
    reads = await provider.requests_to("/jwks")
    await provider.control("rotate")  # a new key signs from now on; the old one is gone from the JWKS
    # Within the cooldown of the last read, an unknown key id reads nothing more: refused.
    refused = (await back_at(api, await at_provider(api, await begin(api), "dave"))).problem(401, "oidc_failed")
    assert "key" in refused["detail"]
    assert await provider.requests_to("/jwks") == reads
    clock.advance(JWKS_COOLDOWN)
    await sign_in(api, "dave")  # the new key is read, once
    await sign_in(api, "carol")
    assert await provider.requests_to("/jwks") == reads + 1


async def test_a_user_disabled_or_deleted_in_cdnstore_stays_out_whatever_the_provider_says(api: Api) -> None:
    root = await api.user("root", admin=True)
    dave = (await sign_in(api, "dave"))["user"]
    (await root.patch(f"/api/v1/users/{dave['id']}", json={"is_disabled": True})).expect(200)
    refused = (await back_at(api, await at_provider(api, await begin(api), "dave"))).problem(401, "oidc_failed")
    assert "disabled" in refused["detail"]
    (await root.delete(f"/api/v1/users/{dave['id']}")).expect(204)
    refused = (await back_at(api, await at_provider(api, await begin(api), "dave"))).problem(401, "oidc_failed")
    assert "deleted" in refused["detail"]
    names = [u["username"] for u in (await root.get("/api/v1/users")).expect(200)["items"]]
    assert names == ["root"]


async def test_another_identity_with_a_linked_users_name_does_not_get_that_user(api: Api) -> None:
    dave = (await sign_in(api, "dave"))["user"]  # linked to dave's subject from now on
    refused = (await back_at(api, await at_provider(api, await begin(api), "impostor"))).problem(401, "oidc_failed")
    assert "another identity" in refused["detail"]
    assert (await sign_in(api, "dave"))["user"] == dave  # (and unchanged: no admin rights came with the try)


async def test_without_create_users_only_users_made_in_cdnstore_sign_in_and_are_linked(
    make_api: MakeApi, provider: OidcProvider
) -> None:
    api = await make_api(oidc=sso(provider, create_users=False))
    refused = (await back_at(api, await at_provider(api, await begin(api), "dave"))).problem(401, "oidc_failed")
    assert "no cdnstore user named 'dave'" in refused["detail"]
    await api.make_user("dave")
    made = (await api.login("dave")).user
    assert (await sign_in(api, "dave"))["user"]["id"] == made["id"]
    await api.login("dave", PASSWORD)  # their password goes on working too


async def test_a_username_claim_that_is_no_cdnstore_username_is_refused(api: Api) -> None:
    refused = (await back_at(api, await at_provider(api, await begin(api), "erin"))).problem(401, "oidc_failed")
    assert "username" in refused["detail"]


async def test_the_providers_own_error_is_never_shown(api: Api) -> None:
    await begin(api)
    raw = "<script>alert(1)</script> internal: database timeout at idp-7"
    answer = await api.call("GET", f"{CALLBACK_PATH}?" + urlencode({"error": "server_error", "error_description": raw}))
    refused = answer.problem(401, "oidc_failed")
    assert "server_error" not in str(refused) and "idp-7" not in str(refused)


@pytest.mark.parametrize("return_to", ["//evil.example/", "/\\evil.example", "https://evil.example/", "files"])
async def test_return_to_is_a_path_of_this_site_only(api: Api, return_to: str) -> None:
    answer = await api.call("GET", "/api/v1/auth/oidc/login?" + urlencode({"return_to": return_to}))
    assert answer.problem(422, "invalid_field")["field"] == "return_to"


async def test_with_password_login_off_only_single_sign_on_signs_in(make_api: MakeApi, provider: OidcProvider) -> None:
    api = await make_api(oidc=sso(provider, password_login=False))
    assert (await api.call("GET", "/api/v1/auth/methods")).expect(200)["password"] is False
    await api.make_user("alice")
    answer = await api.call("POST", "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    answer.problem(403, "password_login_disabled")
    await sign_in(api, "dave")


async def test_without_an_issuer_there_is_no_single_sign_on(make_api: MakeApi) -> None:
    api = await make_api()
    assert (await api.call("GET", "/api/v1/auth/methods")).expect(200) == {"password": True, "oidc": None}
    (await api.call("GET", "/api/v1/auth/oidc/login")).problem(404, "oidc_disabled")
    (await api.call("GET", f"{CALLBACK_PATH}?code=x&state=y")).problem(404, "oidc_disabled")


async def test_an_unreachable_provider_is_503_at_the_start_and_nothing_is_half_done(make_api: MakeApi) -> None:
    from testbed.ports import unused_port

    api = await make_api(oidc={"issuer": f"http://127.0.0.1:{unused_port()}", "client_id": CLIENT_ID})
    (await api.call("GET", "/api/v1/auth/oidc/login")).problem(503, "oidc_unavailable")
