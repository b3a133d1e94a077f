"""A real OpenID provider for the single sign-on tests: panva's oidc-provider (npm, pinned in dev.py, installed
under .cache/node like the page's TypeScript) run by Debian's Node from oidc_provider.mjs beside this module,
with test accounts and clients; and a browser's way through its login page over plain HTTP
(`sign_in_at_provider`)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp

from .ports import until_ok, unused_port

ROOT = Path(__file__).resolve().parent.parent  # the checkout (testbed/ is installed from it, editable)
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CLIENT_ID, CLIENT_SECRET = "cdnstore", "cdnstore-client-secret-for-tests"
OTHER_ID, OTHER_SECRET = "another-app", "another-app-secret-for-tests"
OTHER_REDIRECT = "http://127.0.0.1:9/another-app/callback"  # (never followed: the tests read the code off it)
ADMINS = "cdnstore-admins"
START_TIMEOUT = 30.0  # seconds for the provider to answer
PASSWORDS = {
    "carol": "carol's provider password",
    "dave": "dave's provider password",
    "erin": "erin's password",
    "impostor": "the impostor's password",
}
# carol is in the admin group; dave is not; erin's provider username is no valid cdnstore username; impostor is
# another identity (subject) of the provider whose username is dave's.
ACCOUNTS = {
    "carol": {"password": PASSWORDS["carol"], "email": "carol@example.com", "groups": [ADMINS, "staff"]},
    "dave": {"password": PASSWORDS["dave"], "email": "dave@example.com", "groups": ["staff"]},
    "erin": {"password": PASSWORDS["erin"], "username": "erin with spaces", "groups": []},
    "impostor": {"password": PASSWORDS["impostor"], "username": "dave", "groups": [ADMINS]},
}


def sso(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    """cdnstore's [oidc] settings for this provider, its client and its admin group."""
    return {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "name": "Test IdP",
        "admin_group": ADMINS,
        **overrides,
    }


def provider_module() -> Path:
    """oidc-provider's folder, installed by dev.py's npm_package (the one place that pins and installs it)."""
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return Path(dev.npm_package(dev.OIDC_PROVIDER))


@dataclass
class OidcProvider:
    """The provider as a child process on a port of its own; `control` rotates its key or moves its clock."""

    redirect_uris: list[str]
    log: Path
    # "localhost" makes the provider another site than the daemon's 127.0.0.1 for a browser (cookies are not
    # told apart by port): its redirect back is then a cross-site navigation, as with a real provider.
    host: str = "127.0.0.1"
    port: int = field(default_factory=unused_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        node = shutil.which("node")
        assert node is not None, "Node is missing: python3 dev.py test installs it (nodejs)"
        config = {
            "host": self.host,
            "port": self.port,
            "clients": [
                {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": self.redirect_uris},
                {"client_id": OTHER_ID, "client_secret": OTHER_SECRET, "redirect_uris": [OTHER_REDIRECT]},
            ],
            "accounts": ACCOUNTS,
        }
        env = {
            **os.environ,
            "OIDC_TEST_CONFIG": json.dumps(config),
            "OIDC_PROVIDER_MODULE": str(provider_module() / "lib" / "index.js"),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([node, str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)
        await self._ready()

    async def _ready(self) -> None:
        # (Node and the provider's first RSA key take a few seconds on a busy machine)
        await until_ok(f"http://127.0.0.1:{self.port}/.well-known/openid-configuration", self._running, START_TIMEOUT)

    def _running(self) -> None:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()[-2000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def control(self, what: str, **query: Any) -> dict[str, Any]:
        """rotate (a new signing key, the old one gone), clock (offset=seconds), reset, counts."""
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{self.port}/__test/{what}"
            async with http.post(url, params={k: str(v) for k, v in query.items()}) as resp:
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())

    async def requests_to(self, path: str) -> int:
        return int((await self.control("counts"))["counts"].get(path, 0))


async def sign_in_at_provider(authorize_url: str, username: str, password: str, stop_at: str) -> str:
    """What a browser does at the provider: follow its redirects to the login page, send the form, and be
    sent back; the URL it is sent back to (starting with `stop_at`: not followed, the test calls it)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        url, form = authorize_url, None
        for _ in range(20):
            if form is None:
                request = http.get(url, allow_redirects=False)
            else:
                request = http.post(url, data=form, allow_redirects=False)
            async with request as resp:
                body = await resp.text()
                if resp.status in (302, 303):
                    url, form = urljoin(url, resp.headers["Location"]), None
                    if url.startswith(stop_at):
                        return url
                    continue
                assert resp.status == 200, f"{resp.status} at {url}: {body[:500]}"
                if "Wrong username or password" in body:
                    raise AssertionError(f"the provider refused {username}'s password")
                action = re.search(r'<form method="post" action="([^"]+)"', body)
                assert action is not None, body[:500]
                url, form = urljoin(url, action[1]), {"username": username, "password": password}
    raise AssertionError("the provider never sent the browser back")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def token_for_other_app(issuer: str, nonce: str) -> str:
    """An ID token the provider issues to another application (its audience), with `nonce`: what a token
    substitution would hand cdnstore."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import urlencode

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": OTHER_ID,
        "redirect_uri": OTHER_REDIRECT,
        "scope": "openid profile",
        "state": "s",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    back = await sign_in_at_provider(f"{issuer}/auth?{urlencode(query)}", "dave", PASSWORDS["dave"], OTHER_REDIRECT)
    form = {"grant_type": "authorization_code", "code": query_of(back)["code"], "redirect_uri": OTHER_REDIRECT}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{issuer}/token",
            data={**form, "code_verifier": verifier},
            headers={"Authorization": "Basic " + base64.b64encode(f"{OTHER_ID}:{OTHER_SECRET}".encode()).decode()},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["id_token"])
