"""OpenID Connect sign-in against the provider at `oidc.issuer`: the authorization code flow with PKCE (S256),
`state` and `nonce`, and the ID token checked (its JWS signature against the provider's JWKS, issuer, audience,
expiry, nonce) by PyJWT, never by hand.

- Discovery: the provider's `/.well-known/openid-configuration`, read at the first sign-in and every hour; its
  `issuer` must be `oidc.issuer` exactly.
- Keys: the JWKS is read when first needed and kept. A token signed with a key id not in it (the provider
  rotated its keys) reads the JWKS again, at most once every `JWKS_COOLDOWN` seconds, so that forged key ids
  cannot make cdnstore hammer the provider.
- What the browser carries from the redirect to the callback (state, nonce, PKCE verifier, where to go back)
  is sealed (Fernet, a key derived from `auth.secret_key` for this use) in a short-lived HttpOnly cookie:
  any daemon can finish the sign-in, and a callback from another browser, or with another `state`, fails.
- Every failure is an `OidcFailed` (401 `oidc_failed`) whose sentence is cdnstore's; what the provider said
  goes to the log, never to the client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import jwt

from .config import OidcConfig
from .errors import OidcFailed, Unavailable
from .records import fast_init
from .sealing import Sealer, UnsealError

log = logging.getLogger(__name__)

CALLBACK_PATH = "/api/v1/auth/oidc/callback"
PENDING_MAX_AGE = 600  # seconds a sign-in may take at the provider
JWKS_COOLDOWN = 10.0  # seconds between two reads of the JWKS for unknown key ids
DISCOVERY_TTL = 3600.0  # seconds the discovery document is kept
LEEWAY = 60  # seconds of clock difference allowed with the provider (exp, iat)
TIMEOUT = aiohttp.ClientTimeout(total=10)
# Asymmetric signatures only: never "none", never HS* (a shared secret would let the client forge tokens).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@fast_init
@dataclass(frozen=True, slots=True)
class Discovery:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]  # those of ALGORITHMS the provider signs ID tokens with
    basic_auth: bool  # client_secret_basic (else client_secret_post)


@fast_init
@dataclass(frozen=True, slots=True)
class Pending:
    """A sign-in begun in a browser, waiting for the provider to send it back."""

    state: str
    nonce: str
    verifier: str
    return_to: str


def challenge_of(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)), without padding (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OidcClient:
    def __init__(
        self, cfg: OidcConfig, public_url: str, secret_key: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.redirect_uri = public_url + CALLBACK_PATH
        self.clock = clock  # (monotonic: the JWKS cooldown and the discovery's age; tests move it)
        self._sealer = Sealer(secret_key, purpose=b"cdnstore: OIDC sign-in, v1")
        self._http: aiohttp.ClientSession | None = None
        self._discovery: tuple[Discovery, float] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._keys_read_at: float | None = None
        self._reading = asyncio.Lock()

    @property
    def name(self) -> str:
        """What the page's button names: `oidc.name`, else the issuer's host."""
        return self.cfg.name or urlsplit(self.cfg.issuer).hostname or self.cfg.issuer

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    # --- the flow -------------------------------------------------------------------------------

    async def begin(self, return_to: str) -> tuple[str, str]:
        """The provider's authorization URL to send the browser to, and the sealed Pending for its cookie."""
        try:
            found = await self._discover()
        except OidcFailed as exc:  # (nothing began: the provider is away, which a retry may mend)
            raise Unavailable(exc.detail, code="oidc_unavailable") from None
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), return_to)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.cfg.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.cfg.scopes,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": challenge_of(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        joiner = "&" if "?" in found.authorization_endpoint else "?"
        sealed = self._sealer.seal(json.dumps([pending.state, pending.nonce, pending.verifier, pending.return_to]))
        return f"{found.authorization_endpoint}{joiner}{query}", sealed

    def pending(self, sealed: str | None) -> Pending:
        """The sign-in this browser began (its cookie), or OidcFailed."""
        if not sealed:
            raise OidcFailed("this browser began no sign-in (or its cookie was refused); sign in again")
        try:
            state, nonce, verifier, return_to = json.loads(self._sealer.open(sealed, max_age=PENDING_MAX_AGE))
        except (UnsealError, ValueError):
            raise OidcFailed("this sign-in took too long or was not begun here; sign in again") from None
        return Pending(state, nonce, verifier, return_to)

    async def finish(self, pending: Pending, state: str, code: str, iss: str | None = None) -> dict[str, Any]:
        """The provider sent the browser back with `state` and `code` (and `iss`, RFC 9207, when it says who it
        is): exchange the code (with the PKCE verifier) and check the ID token. Its claims (with the userinfo
        endpoint's when the ID token lacks the username or groups claims), or OidcFailed."""
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise OidcFailed("the provider's answer is not for the sign-in this browser began (state); sign in again")
        if iss is not None and iss.rstrip("/") != self.cfg.issuer:
            raise OidcFailed("the answer comes from another identity provider (iss); sign in again")
        found = await self._discover()
        tokens = await self._exchange(found, code, pending.verifier)
        claims = await self._verify(found, tokens["id_token"], pending.nonce)
        if self._wants_userinfo(claims) and found.userinfo_endpoint and isinstance(tokens.get("access_token"), str):
            info = await self._userinfo(found.userinfo_endpoint, tokens["access_token"])
            if info.get("sub") != claims["sub"]:
                raise OidcFailed("the provider's user information is about someone else (sub)")
            claims = {**info, **claims}
        return claims

    def _wants_userinfo(self, claims: Mapping[str, Any]) -> bool:
        # Certified providers may put profile claims at the userinfo endpoint only (the code flow's ID token).
        groups_missing = bool(self.cfg.admin_group) and self.cfg.groups_claim not in claims
        return self.cfg.username_claim not in claims or groups_missing

    # --- the provider's endpoints ---------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._http

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            async with self._client().get(url, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    log.warning("single sign-on: %s (%s) answered %s", what, url, resp.status)
                    raise OidcFailed(f"the identity provider did not give its {what}; try again later")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("single sign-on: reading the %s (%s) failed: %r", what, url, exc)
            raise OidcFailed(f"the identity provider cannot be reached for its {what}; try again later") from None

    async def _discover(self) -> Discovery:
        if self._discovery is not None and self.clock() - self._discovery[1] < DISCOVERY_TTL:
            return self._discovery[0]
        doc = await self._get_json(f"{self.cfg.issuer}/.well-known/openid-configuration", "configuration (discovery)")
        try:
            if doc["issuer"].rstrip("/") != self.cfg.issuer:
                log.warning("single sign-on: the provider says its issuer is %r, not oidc.issuer", doc["issuer"])
                raise OidcFailed("the identity provider names another issuer than oidc.issuer")
            algorithms = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
            methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            found = Discovery(
                str(doc["authorization_endpoint"]),
                str(doc["token_endpoint"]),
                str(doc["jwks_uri"]),
                doc.get("userinfo_endpoint"),
                tuple(a for a in ALGORITHMS if a in algorithms),
                "client_secret_basic" in methods or "client_secret_post" not in methods,
            )
        except (KeyError, TypeError, AttributeError):
            raise OidcFailed("the identity provider's configuration (discovery) is incomplete") from None
        self._discovery = (found, self.clock())
        return found

    async def _exchange(self, found: Discovery, code: str, verifier: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
            "client_id": self.cfg.client_id,
        }
        headers = {"Accept": "application/json"}
        if self.cfg.client_secret and found.basic_auth:
            # RFC 6749 2.3.1: id and secret form-encoded, then HTTP Basic.
            pair = f"{quote(self.cfg.client_id, safe='')}:{quote(self.cfg.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif self.cfg.client_secret:
            form["client_secret"] = self.cfg.client_secret
        try:
            post = self._client().post
            async with post(found.token_endpoint, data=form, headers=headers, allow_redirects=False) as resp:
                body = await resp.read()
                if resp.status != 200:
                    log.info("single sign-on: the token endpoint answered %s: %.300r", resp.status, body)
                    raise OidcFailed(
                        "the identity provider refused this sign-in's code (used already, expired, or not ours); "
                        "sign in again"
                    )
                tokens = json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise OidcFailed("the identity provider cannot be reached to finish the sign-in; try again") from None
        if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise OidcFailed("the identity provider gave no ID token")
        return tokens

    async def _userinfo(self, url: str, access_token: str) -> dict[str, Any]:
        try:
            async with self._client().get(url, headers={"Authorization": f"Bearer {access_token}"}) as resp:
                if resp.status != 200:
                    log.info("single sign-on: the userinfo endpoint answered %s", resp.status)
                    raise OidcFailed("the identity provider did not give the user's information")
                info = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise OidcFailed("the identity provider cannot be reached for the user's information") from None
        if not isinstance(info, dict):
            raise OidcFailed("the identity provider's user information is not a JSON object")
        return info

    # --- the ID token ---------------------------------------------------------------------------

    async def _verify(self, found: Discovery, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise OidcFailed("the provider's ID token is not a signed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in found.algorithms:
            raise OidcFailed(f"the ID token is signed with {algorithm!r}, which cdnstore does not accept")
        key = await self._key(found, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=[algorithm],
                audience=self.cfg.client_id,
                issuer=self.cfg.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcFailed(_refusal(exc)) from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.cfg.client_id:
            raise OidcFailed("the ID token was issued to another application (azp)")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcFailed("the ID token is not for the sign-in this browser began (nonce); sign in again")
        return claims

    async def _key(self, found: Discovery, kid: str | None) -> jwt.PyJWK:
        """The provider's key `kid`: a key id not known reads the JWKS again (at most once per cooldown)."""
        async with self._reading:
            stale = self._keys_read_at is None or self.clock() - self._keys_read_at >= JWKS_COOLDOWN
            if kid not in self._keys and stale:
                self._keys = await self._read_keys(found)
                self._keys_read_at = self.clock()
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # (a provider with one key may name none)
        if key is None:
            raise OidcFailed("the ID token is signed with a key the identity provider does not publish")
        return key

    async def _read_keys(self, found: Discovery) -> dict[str | None, jwt.PyJWK]:
        doc = await self._get_json(found.jwks_uri, "keys (JWKS)")
        keys: dict[str | None, jwt.PyJWK] = {}
        for item in doc.get("keys", []) if isinstance(doc, dict) else []:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(item)
            except (jwt.PyJWTError, ValueError, TypeError):  # a key type or curve cdnstore cannot use: skipped
                continue
            keys[key.key_id] = key
        log.info("single sign-on: read %d signing key(s) of the provider", len(keys))
        return keys


def _refusal(exc: jwt.PyJWTError) -> str:
    """Why an ID token was refused, in a sentence (never the library's own words)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the provider's ID token has expired (are cdnstore's and the provider's clocks right?); sign in again"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the ID token was issued to another application (audience)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the ID token was issued by another provider (issuer)"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the ID token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.ImmatureSignatureError | jwt.InvalidIssuedAtError):
        return "the ID token is dated in the future (are cdnstore's and the provider's clocks right?)"
    return "the ID token's signature does not verify with the identity provider's keys"
