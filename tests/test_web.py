"""The bundled web page, driven in a real headless Chromium (Debian's, through Playwright) against the
test daemon and the five real SeaweedFS servers: uploads go from the browser straight to a storage server.

Screenshots of every view land in artifacts/screenshots/ (git-ignored). Without Chromium or Playwright the
browser tests skip locally and fail in CI (CI=true): `python3 dev.py test` installs Chromium with apt-get.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apihelp import (
    PASSWORD,
    SOUTH_AFRICA_IP,
    US_IP,
    Api,
    Session,
    copies_held,
    events_unheard,
    from_ip,
    put_bytes,
    s3_storage,
    wait_for,
    writes_not_once,
)
from weedbed import ACCESS_KEY, SECRET_KEY

from cdnstore import appkeys
from cdnstore.api.pages import page_csp, share_csp
from testbed.ports import unused_port
from testbed.rgw import RgwBed
from testbed.seaweed import WeedCluster

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
SIZES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": DESKTOP},
    "phone": {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
}

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Download,
        FilePayload,
        Page,
        Request,
        ViewportSize,
        async_playwright,
        expect,
    )
except ImportError:  # pragma: no cover - reported by the browser fixture
    async_playwright = None  # type: ignore[assignment]


def _unavailable() -> str | None:
    if async_playwright is None:
        return "the playwright package is missing: pip install -e '.[test]'"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium (python3 dev.py test does it)"
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    ctx.set_default_timeout(15_000)
    yield ctx
    await ctx.close()


def base(api: Api) -> str:
    return f"http://127.0.0.1:{api.client.port}"


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("() => document.querySelectorAll('.toast').forEach((t) => t.remove())")
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


async def sign_in(page: Page, api: Api, username: str, password: str = PASSWORD) -> None:
    await page.goto(base(api) + "/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#app-view")).to_be_visible()


async def admin_signed_in(api: Api, weed: WeedCluster, bucket: str, context: BrowserContext) -> tuple[Session, Page]:
    """The administrator, with the original's five servers registered, signed in on a new page."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    page = await context.new_page()
    await sign_in(page, api, "root")
    return admin, page


async def downloaded(download: Download) -> bytes:
    """The bytes the browser saved."""
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def fill_in(form: Any, fields: dict[str, str]) -> None:
    """A form's fields, by their labels."""
    for label, value in fields.items():
        await form.get_by_label(label, exact=True).fill(value)


async def link_made_in(dialog: Any, fields: dict[str, str]) -> str:
    """A new link made in the open share dialog, with these fields (by label) filled in; its URL."""
    for label, value in fields.items():
        await dialog.get_by_label(label).fill(value)
    await dialog.get_by_role("button", name="Create link").click()
    await expect(dialog.locator("#share-qr svg")).to_be_visible()
    return str(await dialog.locator("#share-url").input_value())


def file_row(page: Page, name: str) -> Any:
    return page.locator("#files-body tr").filter(has=page.locator(".name", has_text=re.compile(f"^{re.escape(name)}$")))


async def no_secret_stored(page: Page, *, signed_in: bool = False) -> None:
    """Nothing in storage or the URL, and no secret in a cookie script can read (only the hint that there
    is a session, "1"); a signed-in page's refresh token is only in its HttpOnly, SameSite=Strict cookie,
    sent to the session routes alone."""
    stored = await page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, "cdnstore_session=1" if signed_in else ""]
    assert "token" not in page.url
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert sorted(cookies) == (["cdnstore_refresh", "cdnstore_session"] if signed_in else [])
    if signed_in:
        refresh, hint = cookies["cdnstore_refresh"], cookies["cdnstore_session"]
        assert refresh["httpOnly"] and refresh["sameSite"] == "Strict" and refresh["path"] == "/api/v1/auth/"
        assert hint["value"] == "1" and hint["sameSite"] == "Strict" and hint["path"] == "/"


# ------------------------------------------------------------------------------------------ serving


async def test_pages_and_static_files_are_served_with_their_headers(api: Api) -> None:
    index = await api.call("GET", "/")
    assert index.status == 200 and "<title>cdnstore</title>" in index.body
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    assert index.headers["Content-Security-Policy"] == page_csp([])  # no storage server registered yet
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    share = await api.call("GET", "/s/some-token")
    assert share.status == 200 and 'src="/static/share.js"' in share.body
    assert share.headers["Content-Security-Policy"] == share_csp([])
    assert share.headers["Referrer-Policy"] == "no-referrer"

    kinds = {
        "app.js": "text/javascript",
        "style.css": "text/css",
        "icon.svg": "image/svg+xml",
        "vendor/qrcode.mjs": "text/javascript",
        "vendor/qrcode-generator.LICENSE.txt": "text/plain",
    }
    for name, kind in kinds.items():
        answer = await api.call("GET", f"/static/{name}")
        assert answer.status == 200, name
        assert answer.headers["Content-Type"].startswith(kind), (name, answer.headers["Content-Type"])
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-cache"
        again = await api.call("GET", f"/static/{name}", headers={"If-None-Match": answer.headers["ETag"]})
        assert again.status == 304, name

    for bad in ("nope.js", "..%2F..%2Fpyproject.toml", "../api/pages.py", ".hidden", "vendor", "vendor/"):
        answer = await api.call("GET", f"/static/{bad}")
        assert answer.status == 404, bad
        assert answer.headers["Content-Type"].startswith("application/problem+json"), bad


def test_the_web_files_ship_in_the_wheel() -> None:
    """pyproject names the web folders as packages; their package-data patterns match every file."""
    import tomllib
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parent.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    web = root / "cdnstore" / "web"
    found = [p for p in web.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {"index.html", "share.html", "app.js", "qrcode.mjs"} <= {p.name for p in found}
    for path in found:
        package = ".".join(path.parent.relative_to(root).parts)
        assert package in setuptools["packages"], package
        assert any(fnmatch(path.name, pattern) for pattern in setuptools["package-data"][package]), path


def test_every_script_of_the_page_passes_the_type_check() -> None:
    """Each module says `// @ts-check`, and dev.py lint's check (tsc over jsconfig.json) passes."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    scripts = sorted((root / "cdnstore" / "web").glob("*.js"))
    assert [p.name for p in scripts if not p.read_text().startswith("// @ts-check\n")] == []
    if shutil.which("npm") is None and not (root / ".cache" / "node" / "node_modules" / ".bin" / "tsc").exists():
        pytest.skip("npm is missing: the type checker cannot be installed")
    checked = subprocess.run(
        [sys.executable, "-c", "import dev, sys; sys.exit(dev.check_page())"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------------------------------------ the page


async def test_a_user_uploads_downloads_renames_shares_and_deletes(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext, browser: Browser
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    alice = await api.user("alice")
    data = os.urandom(3 << 20)

    page = await context.new_page()
    await page.goto(base(api) + "/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password", exact=True).fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).not_to_be_empty()
    await shot(page, "01-login")
    await sign_in(page, api, "alice")
    await expect(page.get_by_text("No files yet")).to_be_visible()
    # Alice may not see the servers: no Servers tab, no Copies column.
    await expect(page.locator('.tabs a[data-view="servers"]')).to_be_hidden()
    await expect(page.locator("th.copies-col")).to_be_hidden()

    # Upload through the picker: the progress bar reaches 100% and the file turns stored.
    await page.set_input_files(
        "#file-input",
        files=[
            FilePayload(name="report.bin", mimeType="application/octet-stream", buffer=data),
            FilePayload(name="notes.txt", mimeType="text/plain", buffer=b"a few notes\n"),
        ],
    )
    upload = page.locator(".upload", has_text="report.bin")
    await expect(upload.locator("progress")).to_have_attribute("value", "100")
    await expect(upload.locator(".pct")).to_have_text("100%")
    await expect(upload.locator(".status")).to_contain_text("Stored in")
    await expect(file_row(page, "report.bin").locator(".status-cell")).to_have_text("Stored")
    await expect(file_row(page, "notes.txt").locator(".status-cell")).to_have_text("Stored")
    files = (await alice.get("/api/v1/files")).expect(200)["items"]
    assert {(f["name"], f["size"], f["status"]) for f in files} == {
        ("report.bin", len(data), "stored"),
        ("notes.txt", 12, "stored"),
    }
    report_id = next(f["id"] for f in files if f["name"] == "report.bin")

    # Search.
    await page.get_by_label("Search files by name").fill("notes")
    await expect(page.locator("#files-body tr")).to_have_count(1)
    await page.get_by_label("Search files by name").fill("")
    await expect(page.locator("#files-body tr")).to_have_count(2)
    await shot(page, "02-files")

    # Download: the browser gets the same bytes from the storage server.
    async with page.expect_download() as got:
        await page.get_by_role("button", name="Download report.bin").click()
    download = await got.value
    assert await downloaded(download) == data

    # Rename in place; a taken name is refused with the problem's detail.
    await page.get_by_role("button", name="Rename report.bin").click()
    await page.get_by_label("New name for report.bin").fill("notes.txt")
    await page.get_by_label("New name for report.bin").press("Enter")
    await expect(page.locator(f'#files-body tr[data-id="{report_id}"] .error')).to_contain_text("notes.txt")
    await page.get_by_label("New name for report.bin").fill("quarterly report.bin")
    await page.get_by_label("New name for report.bin").press("Enter")
    await expect(file_row(page, "quarterly report.bin")).to_have_count(1)
    assert (await alice.get(f"/api/v1/files/{report_id}")).expect(200)["name"] == "quarterly report.bin"

    # Share with a password and a download limit.
    await page.get_by_role("button", name="Share quarterly report.bin").click()
    dialog = page.locator("#share-dialog")
    await expect(dialog).to_be_visible()
    url = await link_made_in(dialog, {"Password": "open sesame", "Download limit": "3"})
    assert url.startswith(base(api) + "/s/")
    await expect(dialog.locator("#share-qr svg path")).to_have_count(1)
    await expect(dialog.locator(".link-item")).to_have_count(1)
    await expect(dialog.locator(".link-item")).to_contain_text("0 / 3 downloads")
    await shot(page, "03-share-dialog", full_page=False)

    # Someone else opens the link in their own browser.
    stranger = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    try:
        public = await stranger.new_page()
        await public.goto(url)
        await expect(public.get_by_role("heading", name="quarterly report.bin")).to_be_visible()
        await expect(public.get_by_label("Password")).to_be_visible()
        await public.get_by_label("Password").fill("not it")
        await public.get_by_role("button", name="Download").click()
        await expect(public.locator("#public-error")).to_contain_text("not right")
        await public.get_by_label("Password").fill("open sesame")
        await shot(public, "06-public-page")
        async with public.expect_download() as got:
            await public.get_by_role("button", name="Download").click()
        assert await downloaded(await got.value) == data
        await no_secret_stored(public)

        # Revoked: the public page says so.
        await dialog.get_by_role("button", name=re.compile("^Revoke link")).click()
        await expect(dialog.locator(".link-item")).to_have_count(0)
        await public.reload()
        await expect(public.get_by_role("heading", name="Link not found")).to_be_visible()
        await shot(public, "07-public-not-found")
    finally:
        await stranger.close()
    await dialog.get_by_role("button", name="Close").click()

    # Delete, after confirming.
    await page.get_by_role("button", name="Delete notes.txt").click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    await expect(file_row(page, "notes.txt")).to_have_count(0)
    assert [f["name"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == ["quarterly report.bin"]

    # History, then filtered by event.
    await page.get_by_role("link", name="History").click()
    await expect(page.locator("#history-body tr").first).to_be_visible()
    await expect(page.locator("#history-body")).to_contain_text("report.bin → quarterly report.bin")
    await shot(page, "04-history")
    await page.get_by_label("Show events of kind").select_option("file.deleted")
    await expect(page.locator("#history-body tr")).to_have_count(1)
    await expect(page.locator("#history-body")).to_contain_text("notes.txt")
    await no_secret_stored(page, signed_in=True)

    # Sign out.
    async with page.expect_request(lambda r: r.url.endswith("/api/v1/auth/logout")) as logout:
        await page.get_by_role("button", name="Sign out").click()
    assert (await logout.value).method == "POST"
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await no_secret_stored(page)  # the cookie is gone too


async def test_the_public_page_explains_used_up_and_unknown_links(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    bob = await api.user("bob")
    uploaded = await bob.upload_and_confirm("once.txt", b"only once")
    link = (await bob.post(f"/api/v1/files/{uploaded['file']['id']}/links", json={"max_downloads": 1})).expect(201)

    page = await context.new_page()
    await page.goto(link["url"])
    await expect(page.get_by_role("heading", name="once.txt")).to_be_visible()
    await expect(page.get_by_label("Password")).to_be_hidden()
    async with page.expect_download() as got:
        await page.get_by_role("button", name="Download").click()
    assert await downloaded(await got.value) == b"only once"
    await page.reload()
    await expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    await page.goto(base(api) + "/s/no-such-token")
    await expect(page.get_by_role("heading", name="Link not found")).to_be_visible()


async def test_the_page_renews_its_token_before_it_expires(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    api = await make_api(auth={"access_token_ttl": 10})
    await api.user("carol")
    page = await context.new_page()
    await sign_in(page, api, "carol")
    async with page.expect_request(lambda r: r.url.endswith("/api/v1/auth/refresh"), timeout=12_000) as renewed:
        pass
    assert (await renewed.value).method == "POST"
    # Past the first token's lifetime, the page still works.
    await page.wait_for_timeout(3_000)
    await page.get_by_role("link", name="History").click()
    await expect(page.locator("#history-view")).to_be_visible()
    await expect(page.locator("#history-empty")).to_be_visible()
    await expect(page.locator("#login-view")).to_be_hidden()
    await no_secret_stored(page, signed_in=True)


async def test_a_reload_and_other_tabs_keep_the_session_until_logout(api: Api, context: BrowserContext) -> None:
    await api.user("carol")
    page = await context.new_page()
    await sign_in(page, api, "carol")
    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(page.locator("#whoami")).to_have_text("carol")

    # Two more tabs open at once, and each refresh takes a while: they resume the session in turn (the
    # same cookie sent twice would be taken for a stolen refresh token, ending the session).
    async def slowly(route: Any) -> None:
        await asyncio.sleep(0.5)
        await route.continue_()

    await context.route("**/api/v1/auth/refresh", slowly)
    tabs = [await context.new_page(), await context.new_page()]
    await asyncio.gather(*(tab.goto(base(api) + "/") for tab in tabs))
    for tab in tabs:
        await expect(tab.locator("#app-view")).to_be_visible()
        await tab.get_by_role("link", name="History").click()
        await expect(tab.locator("#history-empty")).to_be_visible()
    await no_secret_stored(page, signed_in=True)
    # Signing out in one tab ends the session: a reload of another shows the sign-in form.
    await tabs[0].get_by_role("button", name="Sign out").click()
    await expect(tabs[0].get_by_role("heading", name="Sign in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#app-view")).to_be_hidden()
    await no_secret_stored(page)


async def test_signing_out_ends_the_session_even_while_another_tab_refreshes(api: Api, context: BrowserContext) -> None:
    await api.user("dave")
    page = await context.new_page()
    await sign_in(page, api, "dave")
    # Another tab holds the tabs' refresh turn, as a slow refresh would.
    other = await context.new_page()
    await other.goto(base(api) + "/")
    await expect(other.locator("#app-view")).to_be_visible()
    await other.evaluate("""() => new Promise((held) => navigator.locks.request("cdnstore-refresh",
        () => new Promise((release) => { window.releaseTurn = release; held(); })))""")
    # Sign out, then leave at once: the logout must not wait for that turn (the navigation would cancel
    # it, and the cookie's session would sign the next visit straight back in).
    await page.get_by_role("button", name="Sign out").click()
    await page.goto(base(api) + "/")
    await other.evaluate("() => window.releaseTurn()")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#app-view")).to_be_hidden()


async def test_an_admin_sees_the_servers_and_switches_one_off_and_on(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext, browser: Browser
) -> None:
    admin = await api.user("root", admin=True)
    servers = await admin.add_layout(weed, bucket)
    await admin.upload_and_confirm("map.txt", b"where is it")

    page = await context.new_page()
    await sign_in(page, api, "root")
    # An admin sees where each file is.
    await expect(page.locator("th.copies-col")).to_be_visible()
    await expect(file_row(page, "map.txt").locator(".copies-col")).to_contain_text(re.compile(r"\d cop"))

    # Drag and drop uploads too.
    await page.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File(["dropped in"], "dropped.txt", {type: "text/plain"}));
        document.getElementById("dropzone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    await expect(file_row(page, "dropped.txt").locator(".status-cell")).to_have_text("Stored")

    # A storage server that cannot be reached: the upload says so.
    await page.route(f"**/{bucket}/**", lambda route: route.abort())
    await page.set_input_files("#file-input", files=[FilePayload(name="lost.txt", mimeType="text/plain", buffer=b"x")])
    failed = page.locator(".upload.failed", has_text="lost.txt")
    await expect(failed.locator(".status")).to_contain_text("The upload failed: the storage server")
    await expect(failed.locator(".status")).to_contain_text("could not be reached")
    await page.unroute(f"**/{bucket}/**")

    await page.get_by_role("link", name="Servers").click()
    rows = page.locator("#servers-body tr")
    await expect(rows).to_have_count(5)
    await expect(page.locator("#worldmap g.server")).to_have_count(5)
    await expect(page.locator("#jobs-empty")).to_be_visible()
    name = next(iter(servers))
    switch = page.get_by_role("switch", name=f"{name} on")
    await expect(switch).to_be_checked()
    await shot(page, "05-admin")
    await shot(page, "05-admin-top", full_page=False)

    # Turning a switch off asks first, saying what it does; cancelled, nothing changes.
    confirm = page.locator("#confirm-dialog")
    for field, label, title, does in (
        ("is_on", "on", f"Turn {name} off?", "takes part in nothing"),
        ("is_active", "active", f"Make {name} inactive?", "still serves downloads"),
    ):
        toggle = page.get_by_role("switch", name=f"{name} {label}")
        await toggle.click()
        await expect(confirm.get_by_role("heading", name=title)).to_be_visible()
        await expect(confirm).to_contain_text(does)
        await confirm.get_by_role("button", name="Cancel").click()
        await expect(toggle).to_be_checked()
        assert (await admin.get(f"/api/v1/servers/{servers[name]['id']}")).expect(200)[field] is True
    await switch.click()
    await confirm.get_by_role("button", name="Turn off").click()
    await expect(switch).not_to_be_checked()
    await expect(page.locator(f'#worldmap g.server.off[data-name="{name}"]')).to_have_count(1)
    assert (await admin.get(f"/api/v1/servers/{servers[name]['id']}")).expect(200)["is_on"] is False
    await switch.click()  # on again: nothing to ask
    await expect(switch).to_be_checked()
    await expect(confirm).to_be_hidden()
    await expect(page.locator("#worldmap g.server.off")).to_have_count(0)
    assert (await admin.get(f"/api/v1/servers/{servers[name]['id']}")).expect(200)["is_on"] is True
    # The GeoIP database clients are placed with, and its age (the one shipped is from 2018).
    geoip = page.locator("#geoip-note")
    await expect(geoip).to_contain_text("GeoIP data: GeoLite2-City, built 2018-07-03: over a year old")
    await expect(geoip).to_have_class(re.compile(r"\bwarn\b"))

    # The add form shows the problem's detail: a name in use, then an endpoint that does not answer.
    await page.get_by_role("button", name="Add server").click()
    form = page.locator("#server-dialog")
    fields = {
        "Name": name,
        "City": "Lisbon",
        "S3 endpoint URL": f"http://127.0.0.1:{unused_port()}",
        "Bucket": bucket,
        "Access key": "key",
        "Secret key": "secret-key",
        "Zone": "Europe",
        "Latitude": "38.72",
        "Longitude": "-9.14",
    }
    await fill_in(form, fields)
    await form.get_by_role("button", name="Save").click()
    await expect(form.locator("#server-error")).not_to_be_empty()
    first = await form.locator("#server-error").text_content()
    await form.get_by_label("Name", exact=True).fill("lisbon")
    await form.get_by_role("button", name="Save").click()
    await expect(form.locator("#server-error")).not_to_have_text(first or "")
    await expect(form.locator("#server-error")).not_to_be_empty()
    await form.get_by_role("button", name="Cancel").click()
    await expect(rows).to_have_count(5)

    # A phone-sized screen: the same page, stacked.
    phone = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        small = await phone.new_page()
        await sign_in(small, api, "root")
        await expect(file_row(small, "map.txt")).to_be_visible()
        await shot(small, "08-phone-files")
        await small.get_by_role("link", name="Servers").click()
        await expect(small.locator("#servers-body tr")).to_have_count(5)
        await shot(small, "09-phone-servers")
    finally:
        await phone.close()


async def test_an_admins_file_list_comes_with_every_files_copies_in_one_call(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    names = [f"copy-{n}.txt" for n in range(3)]
    for name in names:
        await admin.upload_and_confirm(name, name.encode())

    page = await context.new_page()
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url))
    await sign_in(page, api, "root")
    for name in names:
        await expect(file_row(page, name).locator(".copies-col")).to_contain_text(re.compile(r"\d cop"))
    lists = [url for url in calls if urlsplit(url).path == "/api/v1/files"]
    assert len(lists) == 1 and parse_qs(urlsplit(lists[0]).query)["include"] == ["servers"]
    assert [url for url in calls if urlsplit(url).path.endswith("/servers")] == []


# ------------------------------------------------------------------------------------------ running it for a team


def user_row(page: Page, username: str) -> Any:
    return page.locator(f'#users-body tr[data-username="{username}"]')


async def users_by_name(admin: Session) -> dict[str, dict[str, Any]]:
    return {u["username"]: u for u in (await admin.get("/api/v1/users?limit=1000")).expect(200)["items"]}


async def test_an_admin_adds_disables_and_deletes_a_user_on_the_users_screen(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin, page = await admin_signed_in(api, weed, bucket, context)
    await page.get_by_role("link", name="Users").click()
    await expect(user_row(page, "root")).to_contain_text("Everything (administrator)")

    # A new user, without the right to delete files, with a quota and limited to Africa.
    await page.get_by_role("button", name="Add user").click()
    form = page.locator("#user-dialog")
    await form.get_by_label("User name").fill("bea")
    await form.get_by_label("Initial password").fill(PASSWORD)
    await expect(form.get_by_label("Files: delete")).to_be_checked()  # a new user's defaults
    await expect(form.get_by_label("Servers: view")).not_to_be_checked()
    await form.get_by_label("Files: delete").uncheck()
    await form.get_by_label("Quota", exact=True).fill("2")
    await form.get_by_label("Quota unit").select_option("MB")
    await form.get_by_label("Africa").check()
    await form.get_by_role("button", name="Save").click()
    await expect(form).to_be_hidden()
    row = user_row(page, "bea")
    await expect(row.locator(".zones-cell")).to_have_text("Africa")
    await expect(row.locator(".usage-cell")).to_have_text("0 B of 2.0 MB used (0%)")
    await expect(row.locator(".perm-cell")).to_contain_text("Files: view, upload, rename ·")
    bea = (await users_by_name(admin))["bea"]
    assert bea["quota_bytes"] == 2_000_000 and bea["zones"] == ["Africa"] and not bea["is_admin"]
    assert "can_delete_file" not in bea["permissions"] and "can_upload_file" in bea["permissions"]

    # Her upload lands in her zone, and her row shows it used.
    her = await api.login("bea")
    uploaded = await her.upload_and_confirm("report.pdf", os.urandom(500_000))
    assert uploaded["upload"]["server"]["zone"] == "Africa"
    await page.get_by_role("link", name="Files").click()
    await page.get_by_role("link", name="Users").click()
    await expect(row.locator(".usage-cell")).to_have_text("500 kB of 2.0 MB used (25%)")
    await expect(row.get_by_role("meter")).to_have_attribute("aria-valuenow", "500000")

    # Bad input is told with the daemon's detail: a name in use.
    await page.get_by_role("button", name="Add user").click()
    await form.get_by_label("User name").fill("bea")
    await form.get_by_label("Initial password").fill(PASSWORD)
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator(".toast.error").last).to_contain_text("bea")
    await expect(form).to_be_visible()
    await form.get_by_label("User name").fill("no spaces please")  # a 422 names the field
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator(".toast.error").last).to_contain_text("Username:")
    await expect(form.get_by_label("User name")).to_have_attribute("aria-invalid", "true")
    await form.get_by_role("button", name="Cancel").click()

    # Edited: a smaller quota, zone USA (her file stays in Africa, and the row says so), a new password.
    await row.get_by_role("button", name="Edit bea").click()
    await expect(form.get_by_role("heading")).to_have_text("Edit bea")
    await expect(form.get_by_label("Quota", exact=True)).to_have_value("2")
    await expect(form.get_by_label("Quota unit")).to_have_value("MB")
    await expect(form.get_by_label("Africa")).to_be_checked()
    await form.get_by_label("Quota", exact=True).fill("1")
    await form.get_by_label("Africa").uncheck()
    await form.get_by_label("USA").check()
    await form.get_by_label("New password").fill("her new passphrase")
    await form.get_by_role("button", name="Save").click()
    await expect(form).to_be_hidden()
    await expect(row.locator(".zones-cell")).to_contain_text("USA")
    await expect(row.locator(".zones-cell .outside")).to_have_text("1 file outside")
    await expect(row.locator(".usage-cell")).to_have_text("500 kB of 1.0 MB used (50%)")
    (await her.get("/api/v1/me")).problem(401, "unauthorized")  # a new password ends her sessions
    her = await api.login("bea", "her new passphrase")

    # Disabled: she is signed out at once and cannot sign in; enabled again, she can.
    await row.get_by_role("button", name="Disable bea").click()
    await expect(row.locator(".state-cell")).to_have_text("Disabled")
    await shot(page, "16-users")
    (await her.get("/api/v1/me")).problem(401, "unauthorized")
    refused = await api.call("POST", "/api/v1/auth/login", json={"username": "bea", "password": "her new passphrase"})
    assert refused.status >= 400
    await row.get_by_role("button", name="Enable bea").click()
    await expect(row.locator(".state-cell")).to_have_text("Enabled")
    her = await api.login("bea", "her new passphrase")

    # The last enabled administrator cannot disable themselves: the 409 says why.
    await user_row(page, "root").get_by_role("button", name="Disable root").click()
    await expect(page.locator(".toast.error").last).to_contain_text("admin")
    await expect(user_row(page, "root").locator(".state-cell")).to_have_text("Enabled")

    # Deleted: the confirmation says what goes; then she and her file are gone.
    await row.get_by_role("button", name="Delete bea").click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm.get_by_role("heading")).to_have_text("Delete bea?")
    await expect(confirm).to_contain_text("Their 1 file (500 kB) is removed from every server")
    await expect(confirm).to_contain_text("share links stop working and their history is deleted")
    await shot(page, "17-users-delete", full_page=False)
    await confirm.get_by_role("button", name="Delete").click()
    await expect(row).to_have_count(0)
    assert "bea" not in await users_by_name(admin)
    (await her.get("/api/v1/me")).problem(401, "unauthorized")


async def test_a_user_changes_their_own_password_and_stays_signed_in(api: Api, context: BrowserContext) -> None:
    await api.user("carol")
    elsewhere = await api.login("carol")  # her session on another device
    page = await context.new_page()
    await sign_in(page, api, "carol")
    await page.get_by_role("button", name="Password", exact=True).click()
    dialog = page.locator("#password-dialog")
    await dialog.get_by_label("Current password").fill("not my password")
    await dialog.get_by_label("New password").fill("a brand new passphrase")
    await dialog.get_by_role("button", name="Change password").click()
    await expect(dialog.locator("#password-error")).to_have_text("Your current password is not right.")
    await expect(dialog.get_by_label("Current password")).to_be_focused()

    await dialog.get_by_label("Current password").fill(PASSWORD)
    await dialog.get_by_role("button", name="Change password").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".toast").last).to_contain_text("Password changed")
    # The other session has ended; this one goes on, after a reload too.
    (await elsewhere.get("/api/v1/me")).problem(401, "unauthorized")
    await page.get_by_role("link", name="History").click()
    await expect(page.locator("#history-view")).to_be_visible()
    await page.reload()
    await expect(page.locator("#whoami")).to_have_text("carol")
    await expect(page.locator("#login-view")).to_be_hidden()
    # Only the new password signs in.
    (await api.call("POST", "/api/v1/auth/login", json={"username": "carol", "password": PASSWORD})).expect(401)
    await api.login("carol", "a brand new passphrase")


async def test_the_usage_bar_shows_what_a_user_stores_of_their_quota(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    dora = await api.user("dora")
    await dora.upload_and_confirm("first.bin", os.urandom(250_000))

    # Without a quota: what she uses, and no bar.
    page = await context.new_page()
    await sign_in(page, api, "dora")
    usage = page.locator("#usage")
    await expect(usage).to_have_text("250 kB used")
    await expect(usage.get_by_role("meter")).to_have_count(0)

    # With one: the bar, which follows her uploads and deletes.
    (await admin.patch(f"/api/v1/users/{dora.user['id']}", json={"quota_bytes": 1_000_000})).expect(200)
    await page.reload()
    await expect(usage).to_have_text("250 kB of 1.0 MB used (25%)")
    await page.set_input_files(
        "#file-input",
        files=[FilePayload(name="second.bin", mimeType="application/octet-stream", buffer=os.urandom(500_000))],
    )
    await expect(usage).to_have_text("750 kB of 1.0 MB used (75%)")
    await expect(usage.get_by_role("meter")).to_have_attribute("aria-valuenow", "750000")
    await shot(page, "18-usage", full_page=False)
    # Past the quota: the upload does not start, and says how much is left.
    await page.set_input_files(
        "#file-input",
        files=[FilePayload(name="too-big.bin", mimeType="application/octet-stream", buffer=os.urandom(400_000))],
    )
    refused = page.locator(".upload.failed", has_text="too-big.bin").locator(".status")
    await expect(refused).to_contain_text("only 250000 are left of the quota")
    await page.get_by_role("button", name="Delete first.bin").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    await expect(usage).to_have_text("500 kB of 1.0 MB used (50%)")
    # A quota lowered below what she stores: the bar is full and the words say by how much.
    (await admin.patch(f"/api/v1/users/{dora.user['id']}", json={"quota_bytes": 400_000})).expect(200)
    await page.reload()
    await expect(usage).to_have_text("500 kB of 400 kB used (125%)")
    await expect(usage.locator(".usage.full")).to_have_count(1)


async def test_the_statistics_chart_shows_each_servers_downloads_of_the_last_days(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin, page = await admin_signed_in(api, weed, bucket, context)
    await page.get_by_role("link", name="Servers").click()
    await expect(page.locator("#stats-empty")).to_be_visible()

    # Three owner's downloads and two by link, each counted for the server that handed it out.
    data = b"counted bytes\n" * 100
    uploaded = await admin.upload_and_confirm("stats.txt", data)
    file_id = uploaded["file"]["id"]
    link = (await admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    expected: dict[str, int] = {}
    for _ in range(3):
        answer, _body = await admin.download(file_id)
        expected[answer["server"]["name"]] = expected.get(answer["server"]["name"], 0) + 1
    for _ in range(2):
        answer = (
            await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={}, headers=from_ip(US_IP))
        ).expect(200)
        expected[answer["server"]["name"]] = expected.get(answer["server"]["name"], 0) + 1

    async def counted() -> bool:
        items = (await admin.get("/api/v1/stats/downloads?days=30")).expect(200)["items"]
        downloads: int = sum(i["downloads"] for i in items)
        return downloads == 5

    await wait_for(counted, "the five downloads in the statistics")

    await page.reload()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for server, n in expected.items():
        chart = page.locator(f'#stats-charts figure[data-server="{server}"]')
        await expect(chart).to_have_attribute("data-downloads", str(n))
        words = f"{n} download{'s' if n > 1 else ''}"
        await expect(chart.locator(".stats-total")).to_have_text(f"{words} · {n * len(data) / 1000:.1f} kB")
        day = chart.locator(f'g.day[data-day="{today}"]')
        await expect(day.locator("title")).to_contain_text(f"{n} download")
        await expect(day.locator("rect.bar")).to_have_count(1)
    await expect(page.locator("#stats-charts figure")).to_have_count(len(expected))
    await expect(page.locator("#stats-empty")).to_be_hidden()
    await page.locator("#stats-card").scroll_into_view_if_needed()
    await shot(page, "19-download-statistics", full_page=False)


# ------------------------------------------------------------------------------------------ the polish


async def test_a_wrong_sign_in_says_so_in_a_sentence(api: Api, context: BrowserContext) -> None:
    await api.user("dora")
    page = await context.new_page()
    await page.goto(base(api) + "/")
    await page.get_by_label("Username").fill("dora")
    await page.get_by_label("Password", exact=True).fill("not her password")
    await page.get_by_label("Password", exact=True).press("Enter")
    await expect(page.locator("#login-error")).to_have_text("Wrong username or password. Try again.")
    await expect(page.get_by_label("Password", exact=True)).to_be_focused()
    await expect(page.get_by_label("Password", exact=True)).to_have_value("")


async def test_link_download_counts_are_in_the_right_number_and_used_up_links_say_so(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    erin = await api.user("erin")
    uploaded = await erin.upload_and_confirm("count.txt", b"counted")
    file_id = uploaded["file"]["id"]
    once = (await erin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    (await erin.post(f"/api/v1/files/{file_id}/links", json={"max_downloads": 1})).expect(201)
    used = (await erin.post(f"/api/v1/files/{file_id}/links", json={"max_downloads": 1})).expect(201)
    for link in (once, used):
        (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={})).expect(200)

    page = await context.new_page()
    await sign_in(page, api, "erin")
    await page.get_by_role("button", name="Share count.txt").click()
    await expect(page.locator("#share-dialog .link-item")).to_have_count(3)
    badges = page.locator("#share-dialog .link-item .badge")
    await expect(badges.filter(has_text=re.compile("^0 / 1 download$"))).to_have_count(1)
    await expect(badges.filter(has_text=re.compile("^1 download$"))).to_have_count(1)
    # The used-up link says it no longer works.
    used_up = page.locator(f'#share-dialog .link-item[data-id="{used["id"]}"]')
    await expect(used_up.locator(".badge").first).to_have_text("Used up")
    await expect(badges.filter(has_text="Used up")).to_have_count(1)
    await expect(page.locator("#share-dialog")).not_to_contain_text("1 downloads")


async def test_the_public_page_says_when_the_download_has_started(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    frank = await api.user("frank")
    uploaded = await frank.upload_and_confirm("done.txt", b"all done")
    link = (await frank.post(f"/api/v1/files/{uploaded['file']['id']}/links", json={})).expect(201)

    page = await context.new_page()
    await page.goto(link["url"])
    status = page.locator("#public-status")
    async with page.expect_download() as got:
        await page.get_by_role("button", name="Download").click()
        await expect(page.get_by_role("button", name="Download")).to_be_disabled()
    assert await downloaded(await got.value) == b"all done"
    await expect(status).to_contain_text("has started")
    await expect(status).not_to_contain_text("…")
    await expect(page.get_by_role("button", name="Download again")).to_be_enabled()


async def test_a_files_details_open_from_its_name_with_the_keyboard(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    await admin.upload_and_confirm("details.txt", b"the details")

    page = await context.new_page()
    await sign_in(page, api, "root")
    await file_row(page, "details.txt").locator("button.file-name").focus()
    await page.keyboard.press("Enter")
    details = page.locator("#details-dialog")
    await expect(details.get_by_role("heading", name="details.txt")).to_be_visible()
    await expect(details.locator("dl")).to_contain_text("11 B")
    await expect(details.locator("dl")).to_contain_text("text/plain")
    # Uploaded from the USA: a copy on each active server there (Detroit is inactive).
    await expect(details.locator("#details-copies li")).to_have_count(2)
    await expect(details.locator("#details-copies")).to_contain_text("Dallas")
    await expect(details.locator("#details-copies")).to_contain_text("New York")
    await page.keyboard.press("Escape")
    await expect(details).to_be_hidden()


async def test_a_files_details_show_its_sha256_once_known(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    uploaded = await admin.upload("checked.txt", b"hash me")
    await admin.wait_stored(uploaded["file"]["id"])
    await api.app[appkeys.WORKER].run_until_idle()  # the copy to New York learns the SHA-256 as it streams

    page = await context.new_page()
    await sign_in(page, api, "root")
    await file_row(page, "checked.txt").locator("button.file-name").click()
    details = page.locator("#details-dialog")
    await expect(details.locator("dl code.hash")).to_have_text(hashlib.sha256(b"hash me").hexdigest())


async def test_the_page_declares_the_sha256_of_a_file_it_sends_in_one_put(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin, page = await admin_signed_in(api, weed, bucket, context)
    # Servers that honour If-None-Match refuse any second PUT (412, test_vendors); without it, the checksum
    # still binds the URL to the bytes the page hashed.
    await writes_not_once(api, *(s["id"] for s in (await admin.get("/api/v1/servers")).expect(200)["items"]))
    data = os.urandom(1 << 20)
    payload = FilePayload(name="bound.bin", mimeType="application/octet-stream", buffer=data)
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/files") and r.request.method == "POST") as got:
        await page.set_input_files("#file-input", files=[payload])
    answer = await (await got.value).json()
    assert answer["upload"]["method"] == "PUT"
    assert answer["file"]["sha256"] == hashlib.sha256(data).hexdigest()  # hashed in the page, before announcing
    await expect(page.locator(".upload", has_text="bound.bin").locator(".status")).to_contain_text("Stored in")

    # The URL, still valid, is bound to those bytes: the storage server refuses others (BadDigest).
    assert await put_bytes(answer["upload"], os.urandom(len(data))) == 400
    _, body = await admin.download(answer["file"]["id"])
    assert body == data


async def test_the_sign_in_page_asks_for_no_refresh_without_a_session(api: Api, context: BrowserContext) -> None:
    """A visit with no session asks nothing it would be refused (no red 401 in the console); a signed-in
    visit resumes its session; after signing out, none is asked for again."""
    await api.user("erin")
    page = await context.new_page()
    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if r.url.endswith("/api/v1/auth/refresh") else None)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(base(api) + "/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await sign_in(page, api, "erin")
    await page.reload()
    await expect(page.locator("#whoami")).to_have_text("erin")
    assert len(refreshes) == 1  # the reload resumed the session
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert len(refreshes) == 1 and errors == [], (refreshes, errors)


async def test_rename_looks_like_the_other_actions_it_sits_with(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    """Rename is no ghost of a button: it reads as enabled, like Download and Share beside it."""
    admin, page = await admin_signed_in(api, weed, bucket, context)
    await admin.upload_and_confirm("plain.txt", b"plain")
    await page.reload()
    looks = """(b) => { const s = getComputedStyle(b); return [s.color, s.borderColor, s.opacity, b.disabled]; }"""
    rename = await page.get_by_role("button", name="Rename plain.txt").evaluate(looks)
    download = await page.get_by_role("button", name="Download plain.txt").evaluate(looks)
    assert rename == download and rename[2] == "1" and rename[3] is False, (rename, download)


async def test_the_file_list_follows_a_copy_and_a_hash_that_arrive_later_in_place(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    """ "1 copy + 1 pending" turns "2 copies" by itself, in the same row (what has the focus keeps it), and
    the details, read afresh when opened, show the SHA-256 the copy learnt."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    page = await context.new_page()
    async with copies_held(api):
        uploaded = await admin.upload("later.txt", b"copied later")
        file_id = uploaded["file"]["id"]
        await admin.wait_stored(file_id)
        await sign_in(page, api, "root")
        row = file_row(page, "later.txt")
        await expect(row.locator(".copies-col")).to_have_text("1 copy + 1 pending")
        await row.locator("button.file-name").focus()
        await row.evaluate("(tr) => { tr.dataset.seen = 'before'; }")
    await expect(row.locator(".copies-col")).to_have_text("2 copies", timeout=40_000)
    assert await row.evaluate("(tr) => tr.dataset.seen") == "before"  # the same row, updated in place
    assert await page.evaluate("() => document.activeElement.classList.contains('file-name')")
    async with page.expect_request(lambda r: urlsplit(r.url).path == f"/api/v1/files/{file_id}"):
        await page.keyboard.press("Enter")  # the details, read afresh
    details = page.locator("#details-dialog")
    await expect(details.locator("dl code.hash")).to_have_text(hashlib.sha256(b"copied later").hexdigest())


async def test_the_file_list_stops_looking_at_what_does_not_settle(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    """A copy that does not come is looked for less and less often, and not at all after a few minutes
    without a change (the page's clock is moved by hand: twenty minutes pass in seconds)."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    async with copies_held(api):  # throughout: the copy stays pending
        uploaded = await admin.upload("stuck.txt", b"never copied")
        await admin.wait_stored(uploaded["file"]["id"])
        page = await context.new_page()
        await page.clock.install()
        # A look is two calls, the file then its copies: it is over when every call of both is answered
        # (counting the copies alone, a look whose file is still being read would seem over).
        file_path = f"/api/v1/files/{uploaded['file']['id']}"
        of_the_file = (file_path, f"{file_path}/servers")
        asked: list[str] = []
        answered: list[str] = []
        page.on(
            "request", lambda r: asked.append(urlsplit(r.url).path) if urlsplit(r.url).path in of_the_file else None
        )
        page.on("requestfinished", lambda r: answered.append(r.url) if urlsplit(r.url).path in of_the_file else None)

        def looks() -> int:
            return asked.count(of_the_file[1])

        await sign_in(page, api, "root")
        await expect(file_row(page, "stuck.txt").locator(".copies-col")).to_have_text("1 copy + 1 pending")
        for _ in range(40):  # twenty minutes of the page's time, half a minute at a time
            await page.clock.run_for(30_000)
            await wait_for(lambda: len(answered) == len(asked) == 2 * looks(), "the page's looks to be answered")
        looked = looks()
        assert 5 <= looked <= 16, looked  # looked at again, less and less often
        for _ in range(20):  # ten more minutes
            await page.clock.run_for(30_000)
        assert len(asked) == 2 * looked  # and then no more
        await expect(file_row(page, "stuck.txt").locator(".copies-col")).to_have_text("1 copy + 1 pending")


async def test_an_admin_registers_the_first_storage_server_on_the_page(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    """docs/operations.md's install, step 7 on the page: Servers, Add server, the fields, Save."""
    admin = await api.user("root", admin=True)
    page = await context.new_page()
    await sign_in(page, api, "root")
    await page.get_by_role("link", name="Servers").click()
    await expect(page.locator("#servers-empty")).to_be_visible()
    await page.get_by_role("button", name="Add server").click()
    form = page.locator("#server-dialog")
    await fill_in(
        form,
        {
            "Name": "lisbon",
            "City": "Lisbon",
            "S3 endpoint URL": weed.instance("capetown").endpoint_url,
            "Bucket": bucket,
            "Region": "us-east-1",
            "Access key": ACCESS_KEY,
            "Secret key": SECRET_KEY,
            "Zone": "Europe",
            "Latitude": "38.72",
            "Longitude": "-9.14",
        },
    )
    await form.get_by_role("button", name="Save").click()
    await expect(form).to_be_hidden(timeout=30_000)
    await expect(page.locator("#servers-body tr")).to_have_count(1)
    await expect(page.get_by_role("switch", name="lisbon on")).to_be_checked()
    (server,) = (await admin.get("/api/v1/servers")).expect(200)["items"]
    assert (server["name"], server["zone"], server["is_on"], server["is_active"]) == ("lisbon", "Europe", True, True)
    assert (await api.call("GET", "/readyz")).status == 200


async def test_an_empty_add_server_form_names_every_missing_field(api: Api, context: BrowserContext) -> None:
    await api.user("root", admin=True)
    page = await context.new_page()
    await sign_in(page, api, "root")
    await page.get_by_role("link", name="Servers").click()
    await page.get_by_role("button", name="Add server").click()
    form = page.locator("#server-dialog")
    await form.get_by_role("button", name="Save").click()
    await expect(form.locator("#server-error")).to_have_text(
        "Fill in Name, City, S3 endpoint URL, Bucket, Access key, Secret key, Zone, Latitude and Longitude."
    )
    await expect(form.locator('[aria-invalid="true"]')).to_have_count(9)
    await expect(form.get_by_label("Name", exact=True)).to_be_focused()

    # Once filled in, a coordinate out of range is named on its own, next to what is still missing.
    await fill_in(
        form,
        {
            "Name": "lisbon",
            "City": "Lisbon",
            "S3 endpoint URL": "http://127.0.0.1:9",
            "Bucket": "b",
            "Zone": "Europe",
            "Latitude": "123",
            "Longitude": "-9.14",
        },
    )
    await form.get_by_role("button", name="Save").click()
    await expect(form.locator("#server-error")).to_have_text(
        "Fill in Access key and Secret key. Latitude must be a number from -90 to 90."
    )
    await expect(form.locator('[aria-invalid="true"]')).to_have_count(3)


async def test_the_history_filter_offers_server_events_only_to_who_changes_servers(
    api: Api, context: BrowserContext
) -> None:
    await api.user("root", admin=True)
    await api.user("gina")
    page = await context.new_page()
    await sign_in(page, api, "gina")
    await page.get_by_role("link", name="History").click()
    await expect(page.locator("#history-empty")).to_be_visible()
    options = page.locator("#history-filter option")
    await expect(options.filter(has_text="Deleted")).to_have_count(1)
    await expect(options.filter(has_text="Server")).to_have_count(0)

    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, api, "root")
    await page.get_by_role("link", name="History").click()
    await expect(options.filter(has_text="Server added")).to_have_count(1)


async def test_an_inactive_server_shows_as_inactive_on_the_map_and_in_the_table(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    servers = await admin.add_layout(weed, bucket)
    # The original layout keeps Detroit inactive: it takes no uploads or copies, so it holds nothing.
    name, server = next((n, s) for n, s in servers.items() if not s["is_active"])

    page = await context.new_page()
    await sign_in(page, api, "root")
    await page.get_by_role("link", name="Servers").click()
    row = page.locator(f'#servers-body tr[data-id="{server["id"]}"]')
    await expect(row.locator('td[data-label="Sync"]')).to_have_text("Inactive")
    await expect(page.locator("#servers-body td[data-label=Sync]").filter(has_text="In sync")).to_have_count(4)
    await expect(page.locator("#worldmap g.server.inactive")).to_have_count(1)
    await expect(page.locator(f'#worldmap g.server.inactive[data-name="{name}"] .label')).to_contain_text("inactive")
    await expect(page.locator("#map-legend")).to_contain_text("inactive")
    await expect(page.locator("#servers-summary")).to_contain_text("1 inactive")


async def test_the_servers_view_shows_what_the_deep_scrub_found(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    servers = {name: await admin.add_server(weed, name, bucket, is_active=True) for name in ("newyork", "dallas")}
    answer = await admin.upload("precious.bin", b"precious " * 100)
    await admin.wait_stored(answer["file"]["id"])
    await api.app[appkeys.WORKER].run_until_idle()
    key = answer["upload"]["url"].split("?")[0].rsplit("/", 1)[1]
    await events_unheard(api, admin, *servers)
    for name in servers:  # altered behind cdnstore's back on both: no good copy left
        client = await s3_storage(api)._client(weed.target(name, bucket))
        await client.put_object(Bucket=bucket, Key=key, Body=b"PRECIOUS " * 100)
    report = await api.app[appkeys.DEEP_SCRUB].scrub()
    assert report is not None and report.corrupt == 2

    page = await context.new_page()
    await sign_in(page, api, "root")
    await page.get_by_role("link", name="Servers").click()
    dallas = servers["dallas"]["id"]
    sync = page.locator(f'#servers-body tr[data-id="{dallas}"] td[data-label="Sync"]')
    await expect(sync.locator(".badge.danger")).to_have_text("1 corrupt")
    await expect(sync.locator(".badge.danger")).to_have_attribute("title", re.compile("no good copy on any server"))
    await expect(page.locator("#servers-summary")).to_contain_text("2 corrupt replicas with no good copy left")


async def test_the_servers_view_shows_uploads_awaiting_verification_and_those_rejected(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    api = await make_api(uploads={"multipart_threshold": 5 * MIB})
    admin, page = await admin_signed_in(api, weed, bucket, context)
    big = os.urandom(6 * MIB)
    await admin.upload_in_parts("wrong.bin", big, "0" * 64, ip=SOUTH_AFRICA_IP)  # Cape Town: the verifier reads it
    capetown = (await admin.get("/api/v1/servers")).expect(200)["items"]
    row = page.locator(f'#servers-body tr[data-id="{next(s["id"] for s in capetown if s["name"] == "capetown")}"]')
    await page.get_by_role("link", name="Servers").click()
    await expect(row.locator('td[data-label="Sync"] .badge.warn')).to_have_text("1 awaiting verification")

    assert await api.app[appkeys.INTEGRITY].verify() == 1  # its bytes are not the declared SHA-256: rejected
    await page.get_by_role("link", name="Files").click()
    await page.get_by_role("link", name="Servers").click()
    await expect(row.locator('td[data-label="Sync"] .badge.danger')).to_have_text("1 upload rejected")
    await expect(row.locator('td[data-label="Sync"] .badge.warn')).to_have_count(0)


async def test_the_page_uploads_to_a_ceph_rgw_server_whose_cors_rule_the_probe_added(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str, context: BrowserContext
) -> None:
    """RGW answers every preflight 403 until its bucket has a CORS rule: the probe at registration adds the
    page's. The upload also carries the signed If-None-Match (RGW honours it) and, RGW sending no events
    here, is confirmed by the page's /complete; RGW ignoring the signed SHA-256, the bytes are read back
    first (by the verifier, every integrity.verify_interval: run here by the test) and the page waits."""
    admin = await api.user("root", admin=True)
    server = await admin.add_server(weed, "dallas", bucket, name="ceph", endpoint_url=rgw.endpoint_url)
    assert (server["capabilities"]["cors"], server["capabilities"]["conditional_write"]) == (True, True)
    await api.user("alice")
    data = os.urandom(300_000)
    page = await context.new_page()
    await sign_in(page, api, "alice")
    await page.set_input_files(
        "#file-input", files=[FilePayload(name="to-ceph.bin", mimeType="application/octet-stream", buffer=data)]
    )
    upload = page.locator(".upload", has_text="to-ceph.bin")
    await expect(upload.locator(".status")).to_contain_text("Confirming")
    await wait_for(lambda: read_back(api), "the verifier to read the upload back")
    await expect(upload.locator(".status")).to_contain_text("Stored in")
    await expect(file_row(page, "to-ceph.bin").locator(".status-cell")).to_have_text("Stored")
    alice = await api.login("alice")
    file = next(f for f in (await alice.get("/api/v1/files")).expect(200)["items"] if f["name"] == "to-ceph.bin")
    assert (await alice.download(file["id"]))[1] == data
    async with page.expect_download() as got:
        await page.get_by_role("button", name="Download to-ceph.bin").click()
    assert await downloaded(await got.value) == data


async def read_back(api: Api) -> bool:
    """One round of the verifier; whether it settled a version (the page's /complete came first)."""
    return await api.app[appkeys.INTEGRITY].verify() > 0


async def test_the_servers_view_shows_what_each_server_proved_and_imports_a_bucket(
    api: Api, weed: WeedCluster, rgw: RgwBed, bucket: str, context: BrowserContext
) -> None:
    admin = await api.user("root", admin=True)
    seaweed = await admin.add_server(weed, "newyork", bucket)
    ceph = await admin.add_server(weed, "dallas", bucket, name="ceph", endpoint_url=rgw.endpoint_url)
    await api.user("alice")
    async with rgw.client("s3") as s3:  # objects cdnstore does not know, as a bucket being left would hold
        for key in ("kept.txt", "folder/deep.txt"):
            await s3.put_object(Bucket=bucket, Key=key, Body=b"from before\n")

    page = await context.new_page()
    await sign_in(page, api, "root")
    await page.get_by_role("link", name="Servers").click()
    proved = page.locator(f'#servers-body tr[data-id="{ceph["id"]}"] .proved')
    await expect(proved.locator(".badge.warn", has_text="No checksums")).to_have_attribute(
        "title", re.compile("reads such uploads back")
    )
    await expect(proved.locator(".badge.ok", has_text="Writes once")).to_be_visible()
    await expect(proved.locator(".badge.ok", has_text="CORS")).to_be_visible()
    others = page.locator(f'#servers-body tr[data-id="{seaweed["id"]}"] .proved')
    await expect(others.locator(".badge.ok", has_text="Checksums")).to_be_visible()
    await page.get_by_role("button", name="Probe ceph").click()
    await expect(page.locator(".toast", has_text="ceph probed")).to_be_visible()
    probed = (await admin.get(f"/api/v1/servers/{ceph['id']}")).expect(200)["capabilities"]
    assert probed["checked_at"] > ceph["capabilities"]["checked_at"]

    await page.get_by_role("button", name="Import the bucket of ceph").click()
    dialog = page.locator("#import-dialog")
    await dialog.get_by_role("button", name="Import").click()
    await expect(dialog.locator("#import-error")).to_contain_text("Fill in the owner")
    await dialog.get_by_label("Owner", exact=True).fill("alice")
    await dialog.get_by_role("button", name="Import").click()
    await expect(dialog).to_be_hidden()
    sync = page.locator(f'#servers-body tr[data-id="{ceph["id"]}"] td[data-label="Sync"]')
    # (the daemons look for imports every imports.poll_interval, 5 s; the page refreshes every 4 s)
    await expect(sync.locator(".badge", has_text="Imported 1 file")).to_have_attribute(
        "title", re.compile("1 not adopted"), timeout=30_000
    )
    await shot(page, "18-servers-proved-and-imported")


async def test_on_a_phone_the_upload_box_does_not_ask_to_drop_files(api: Api, browser: Browser) -> None:
    await api.user("hana")
    phone = await browser.new_context(**SIZES["phone"])
    try:
        page = await phone.new_page()
        await sign_in(page, api, "hana")
        dropzone = page.locator("#dropzone")
        await expect(dropzone.get_by_text("Choose files")).to_be_visible()
        await expect(dropzone.get_by_text("Upload files from this device")).to_be_visible()
        assert "Drop" not in await dropzone.inner_text()
        await expect(page.locator("#files-empty")).not_to_contain_text("Drop")
    finally:
        await phone.close()


# ------------------------------------------------------------------------------------------ big files in parts

MIB = 1 << 20
BIG = 16 * MIB  # four parts of at least 5 MiB (the last one 1 MiB) under the tests' 5 MiB threshold
# Progress while the first three parts are on their way together (the fourth starts when one of them is done).
BEFORE_THE_FIRST_PARTS_ARRIVE = re.compile(r"^([1-9]|[1-5]\d)%$")


async def in_parts_page(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, username: str
) -> tuple[Session, Page]:
    """A daemon that takes files over 5 MiB in parts, and `username` signed in on the page."""
    api = await make_api(uploads={"multipart_threshold": 5 * MIB})
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    user = await api.user(username)
    page = await context.new_page()
    await sign_in(page, api, username)
    return user, page


def part_number(url: str) -> int | None:
    """The part a storage URL PUTs, None for any other URL."""
    query = parse_qs(urlsplit(url).query)
    return int(query["partNumber"][0]) if "uploadId" in query and "partNumber" in query else None


def note_part_numbers(asked: list[list[int]]) -> Callable[[Request], None]:
    """A request listener that keeps the part numbers each POST .../upload/parts asks URLs for."""

    def listener(request: Request) -> None:
        if request.url.endswith("/upload/parts"):  # only then: the parts' own PUTs carry bytes, not JSON
            body = request.post_data_json
            assert body is not None
            asked.append(body["numbers"])

    return listener


def count_part_puts(page: Page) -> dict[int, int]:
    """Part number -> PUTs the page started for it (watched, not intercepted)."""
    puts: dict[int, int] = {}

    def seen(request: Any) -> None:
        number = part_number(request.url)
        if request.method == "PUT" and number is not None:
            puts[number] = puts.get(number, 0) + 1

    page.on("request", seen)
    return puts


def to_storage(request: Request) -> bool:
    """A PUT of a file's bytes (or of one of its parts) to a storage server, not a call of the daemon."""
    return request.method == "PUT" and "/api/" not in request.url


async def choose_file(page: Page, tmp_path: Path, name: str, size: int) -> bytes:
    """Pick a new file of `size` random bytes, and wait until the page starts sending them: before that
    the page announces the file and hashes it (for a big file, part by part), however long that takes on
    a busy machine, and the upload's progress cannot move yet."""
    data = os.urandom(size)
    path = tmp_path / name
    await asyncio.to_thread(path.write_bytes, data)
    async with page.expect_request(to_storage, timeout=60_000):
        await page.set_input_files("#file-input", files=[str(path)])
    return data


async def choose_big_file(page: Page, tmp_path: Path, name: str) -> bytes:
    return await choose_file(page, tmp_path, name, BIG)


async def pause_a_big_upload(page: Page, user: Session, tmp_path: Path, name: str) -> tuple[bytes, str, Any]:
    """Choose a 4-part file, pause it before its first parts arrive (uploads slowed meanwhile), and let the
    parts on their way go through at full speed: (its bytes, its file id, its upload item)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await throttle_uploads(cdp, 4 * MIB)
    data = await choose_big_file(page, tmp_path, name)
    item = page.locator(".upload", has_text=name)
    await expect(item.locator(".pct")).to_have_text(BEFORE_THE_FIRST_PARTS_ARRIVE)
    await page.get_by_role("button", name=f"Pause {name}").click()
    await expect(item.locator(".status")).to_have_text("Paused")
    await throttle_uploads(cdp, -1)
    return data, await file_id_of(user, name), item


async def file_id_of(user: Session, name: str) -> str:
    files = (await user.get("/api/v1/files")).expect(200)["items"]
    return str(next(f["id"] for f in files if f["name"] == name))


async def assert_downloads_as(user: Session, file_id: str, data: bytes) -> None:
    """The file, downloaded through the API, is `data` byte for byte (compared by MD5: big files)."""
    _, body = await user.download(file_id)
    assert hashlib.md5(body).hexdigest() == hashlib.md5(data).hexdigest()


async def test_a_big_file_goes_up_in_parts_that_survive_dropped_connections(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "ines")
    puts = count_part_puts(page)
    watched = asyncio.Event()  # set once the test has seen the upload in progress

    async def drop_first_try_of_parts_2_and_4(route: Any) -> None:
        number = part_number(route.request.url)
        if route.request.method == "PUT" and number in (2, 4) and puts.get(number) == 1:
            if number == 4:  # the last part: the upload cannot end before the test has watched it move
                await watched.wait()
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route(lambda url: part_number(url) is not None, drop_first_try_of_parts_2_and_4)
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await throttle_uploads(cdp, 4 * MIB)  # slow enough to watch the bar move

    data = await choose_big_file(page, tmp_path, "film.mov")
    item = page.locator(".upload", has_text="film.mov")
    await expect(item.locator(".pct")).to_have_text(re.compile(r"^[1-9]\d?%$"))
    speed_and_time_left = re.compile(r" of 16\.8 MB · [\d.]+ [kM]B/s · \d+ (s|min) left")
    await expect(item.locator(".status")).to_contain_text(speed_and_time_left)
    watched.set()
    await throttle_uploads(cdp, -1)
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=30_000)
    await expect(item.locator(".pct")).to_have_text("100%")
    await expect(file_row(page, "film.mov").locator(".status-cell")).to_have_text("Stored")

    assert puts == {1: 1, 2: 2, 3: 1, 4: 2}  # each dropped part sent again, the others once
    await assert_downloads_as(user, await file_id_of(user, "film.mov"), data)


async def test_a_part_damaged_on_the_way_is_refused_by_its_md5_and_sent_again(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "ida")
    puts = count_part_puts(page)

    async def damage_the_first_try_of_part_3(route: Any) -> None:
        body = route.request.post_data_buffer
        if route.request.method == "PUT" and part_number(route.request.url) == 3 and puts.get(3) == 1 and body:
            await route.continue_(post_data=bytes([body[0] ^ 0xFF]) + body[1:])  # same size, one byte off
        else:
            await route.continue_()

    await page.route(lambda url: part_number(url) is not None, damage_the_first_try_of_part_3)

    data = await choose_big_file(page, tmp_path, "scan.tiff")
    item = page.locator(".upload", has_text="scan.tiff")
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=30_000)
    assert puts == {1: 1, 2: 1, 3: 2, 4: 1}  # the storage server refused the damaged part (BadDigest)
    await assert_downloads_as(user, await file_id_of(user, "scan.tiff"), data)


async def test_an_expired_part_url_is_asked_again_and_parts_said_missing_are_sent_again(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "ada")
    puts = count_part_puts(page)
    asked: list[list[int]] = []
    page.on("request", note_part_numbers(asked))

    async def part_1_expired_once(route: Any) -> None:
        if route.request.method == "PUT" and puts.get(1) == 1:
            expired = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            await route.fulfill(status=403, body=expired)
        else:
            await route.continue_()

    await page.route(lambda url: part_number(url) == 1, part_1_expired_once)
    completes = 0

    async def part_2_missing_at_first(route: Any) -> None:
        # As if part 2 had not arrived: the daemon's 409 names it, and the page sends it again.
        nonlocal completes
        completes += 1
        if completes > 1:
            await route.continue_()
            return
        problem = {
            "type": "urn:cdnstore:problem:upload_incomplete",
            "title": "Conflict",
            "status": 409,
            "detail": "parts are missing",
            "code": "upload_incomplete",
            "missing": [2],
        }
        await route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(problem))

    await page.route("**/api/v1/files/*/complete", part_2_missing_at_first)

    data = await choose_big_file(page, tmp_path, "atlas.bin")
    item = page.locator(".upload", has_text="atlas.bin")
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=30_000)
    assert puts == {1: 2, 2: 2, 3: 1, 4: 1} and completes == 2
    assert sum(1 in numbers for numbers in asked) == 2  # part 1's URL was asked for again after the 403
    await assert_downloads_as(user, await file_id_of(user, "atlas.bin"), data)


async def test_cancelling_an_upload_big_or_small_leaves_nothing_behind(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "jon")
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    # Neither upload can end before the test cancels it: each crawls, at a rate at which its bytes would take
    # longer than the test may run (120 s): 3 MiB in one PUT at 24 KiB/s, 16 MiB in parts at 128 KiB/s.
    for name, size, rate in (("letter.pdf", 3 * MIB, 24 * 1024), ("backup.tar", BIG, 128 * 1024)):
        await throttle_uploads(cdp, rate)
        await choose_file(page, tmp_path, name, size)  # under the 5 MiB threshold, one PUT; over it, parts
        item = page.locator(".upload", has_text=name)
        await expect(item.locator(".pct")).to_have_text(re.compile(r"^[1-9]\d?%$"))
        file_id = await file_id_of(user, name)
        await page.get_by_role("button", name=f"Cancel {name}").click()
        await expect(item.locator(".status")).to_have_text("Cancelled")
        await expect(file_row(page, name)).to_have_count(0)
        # The upload is aborted on its server (no parts left) and the file, which had no content, is gone.
        (await user.get(f"/api/v1/files/{file_id}/upload")).problem(404, "file_not_found")
        (await user.get(f"/api/v1/files/{file_id}")).problem(404, "file_not_found")
    await throttle_uploads(cdp, -1)


async def test_a_paused_upload_resumes_with_only_the_parts_the_server_lacks(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "kim")
    puts = count_part_puts(page)
    data, file_id, item = await pause_a_big_upload(page, user, tmp_path, "archive.zip")

    # The parts on their way arrive; no new one starts while paused.

    async def parts_on_server() -> list[int] | None:
        view = (await user.get(f"/api/v1/files/{file_id}/upload")).expect(200)
        held = sorted(p["number"] for p in view["uploaded"])
        return held if held and len(held) == sum(puts.values()) else None

    held = await wait_for(parts_on_server, "the parts on their way to arrive")
    # (up to three at a time: how many had started when the pause came depends on the hashing worker)
    assert held == sorted(puts) and set(puts.values()) == {1} and len(held) <= 3, (held, puts)
    await expect(item.locator(".status")).to_have_text("Paused")

    await page.get_by_role("button", name="Resume archive.zip").click()
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=30_000)
    assert puts == {1: 1, 2: 1, 3: 1, 4: 1}
    await assert_downloads_as(user, file_id, data)


async def test_after_a_reload_the_same_file_chosen_again_resumes_its_unfinished_upload(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "lea")
    puts = count_part_puts(page)
    data, file_id, _ = await pause_a_big_upload(page, user, tmp_path, "thesis.pdf")

    async def three_parts_on_server() -> bool:
        view = (await user.get(f"/api/v1/files/{file_id}/upload")).expect(200)
        return len(view["uploaded"]) == 3

    await wait_for(three_parts_on_server, "the parts on their way to arrive")

    # The page is reloaded (the session stays); the user picks the same file again.
    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()
    await page.set_input_files("#file-input", files=[str(tmp_path / "thesis.pdf")])
    item = page.locator(".upload:not(.unfinished)", has_text="thesis.pdf")  # (beside the offer of the reload)
    await expect(item.locator(".status")).to_contain_text("An unfinished upload of this file is on")
    await expect(item.locator(".status")).to_contain_text("3 of 4 parts")
    await item.get_by_role("button", name="Resume", exact=True).click()
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=30_000)
    assert puts == {1: 1, 2: 1, 3: 1, 4: 1}  # only the missing part was sent after the reload
    files = (await user.get("/api/v1/files")).expect(200)["items"]
    assert [(f["id"], f["status"]) for f in files] == [(file_id, "stored")]
    await assert_downloads_as(user, file_id, data)


async def test_after_a_reload_an_unfinished_upload_is_offered_to_resume_or_discard(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    """Reloaded in the middle of an upload, the page says what was left unfinished, at once: choosing the
    file again resumes it (only the missing parts are sent), Discard drops it (nothing left on the server)."""
    user, page = await in_parts_page(make_api, weed, bucket, context, "noa")
    puts = count_part_puts(page)
    data, file_id, _ = await pause_a_big_upload(page, user, tmp_path, "thesis.pdf")
    await wait_for(lambda: parts_held(user, file_id, 3), "the parts on their way to arrive")
    _, dropped_id, _ = await pause_a_big_upload(page, user, tmp_path, "draft.pdf")
    await wait_for(lambda: parts_held(user, dropped_id, 3), "the parts on their way to arrive")

    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()
    offers = page.locator(".upload.unfinished")
    await expect(offers).to_have_count(2)
    thesis = offers.filter(has_text="thesis.pdf")
    await expect(thesis.locator(".status")).to_contain_text("Not finished: 3 parts of 4 (15.7 MB of 16.8 MB) are in")
    await expect(thesis.locator(".status")).to_contain_text("Choose the file again to resume, or discard it.")
    await shot(page, "10-unfinished-uploads", full_page=False)

    # Another file chosen by mistake: said so, nothing starts.
    picker = thesis.get_by_label("Choose thesis.pdf again")
    await picker.set_input_files(files=[FilePayload(name="other.pdf", mimeType="application/pdf", buffer=b"x")])
    await expect(thesis.locator(".status")).to_contain_text("That is “other.pdf” (1 B): choose “thesis.pdf”")
    # The right one: it resumes, sending only the missing part.
    await picker.set_input_files(files=[str(tmp_path / "thesis.pdf")])
    item = page.locator(".upload:not(.unfinished)", has_text="thesis.pdf")
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=30_000)
    assert puts[4] == 1 and all(puts[n] == 2 for n in (1, 2, 3)), puts  # (each file's parts 1-3 went before)
    await assert_downloads_as(user, file_id, data)

    # Discarded: the upload is aborted on its server, and the file, which had no content, is gone.
    await offers.filter(has_text="draft.pdf").get_by_role("button", name="Discard").click()
    await expect(offers).to_have_count(0)
    await expect(file_row(page, "draft.pdf")).to_have_count(0)
    (await user.get(f"/api/v1/files/{dropped_id}/upload")).problem(404, "file_not_found")
    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(file_row(page, "thesis.pdf").locator(".status-cell")).to_have_text("Stored")
    await expect(page.locator(".upload.unfinished")).to_have_count(0)


async def parts_held(user: Session, file_id: str, count: int) -> bool:
    view = (await user.get(f"/api/v1/files/{file_id}/upload")).expect(200)
    return len(view["uploaded"]) == count


async def test_a_big_files_parts_are_hashed_in_a_worker_and_their_urls_asked_in_batches(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, tmp_path: Path
) -> None:
    user, page = await in_parts_page(make_api, weed, bucket, context, "max")
    asked: list[list[int]] = []
    page.on("request", note_part_numbers(asked))
    workers: list[Any] = []
    page.on("worker", lambda worker: workers.append(worker))
    md5_code_fetched_as: list[str] = []  # Sec-Fetch-Dest of each fetch of md5.js

    async def note_md5_fetch(request: Any) -> None:
        if urlsplit(request.url).path.endswith("/md5.js"):
            md5_code_fetched_as.append((await request.all_headers()).get("sec-fetch-dest", ""))

    page.on("request", note_md5_fetch)
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await throttle_uploads(cdp, 8 * MIB)  # the parts go slower than they are hashed, even on a busy machine
    data = os.urandom(11 * 5 * MIB + MIB)  # twelve parts
    path = tmp_path / "dataset.parquet"
    await asyncio.to_thread(path.write_bytes, data)
    await page.set_input_files("#file-input", files=[str(path)])
    item = page.locator(".upload", has_text="dataset.parquet")

    # Every part is hashed by the page's MD5 worker.
    async def all_twelve_hashed_by_the_worker() -> bool:
        hashers = [w for w in workers if w.url.endswith("/md5-worker.js")]
        return len(hashers) == 1 and await hashers[0].evaluate("self.partsHashed") == 12

    await wait_for(all_twelve_hashed_by_the_worker, "the worker to hash the twelve parts", within=30)
    await throttle_uploads(cdp, -1)
    await expect(item.locator(".status")).to_contain_text("Stored in", timeout=60_000)

    # The page's own thread never even loaded the MD5 code: only the worker fetched it.
    assert md5_code_fetched_as == ["worker"]
    # Each part's URL was asked for once, in fewer calls than there are parts.
    assert sorted(n for numbers in asked for n in numbers) == list(range(1, 13))
    assert len(asked) < 12 and max(len(numbers) for numbers in asked) > 1, asked
    await assert_downloads_as(user, await file_id_of(user, "dataset.parquet"), data)


# ------------------------------------------------------------------------------------------ every view


async def fail_a_job(api: Api, last_error: str) -> None:
    """A copy that ran out of attempts, as the worker leaves it (only the failed-jobs card needs one)."""
    async with api.app[appkeys.DB].transaction() as tx:
        await tx.execute(
            "INSERT INTO jobs (kind, version_id, server_id, status, attempts, run_after, last_error, created_at,"
            " updated_at) SELECT 'copy', v.id, s.id, 'failed', 8, 0, :error, :now, :now"
            " FROM versions v, servers s WHERE s.is_active ORDER BY v.id, s.id LIMIT 1",
            {"error": last_error, "now": time.time()},
        )


async def throttle_uploads(cdp: Any, bytes_per_second: float) -> None:
    """Slow the browser's uploads down (-1: full speed), so that one can be seen in progress."""
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second},
    )


@pytest.mark.parametrize("size", list(SIZES))
async def test_every_view_at_desktop_and_phone_width(
    size: str, api: Api, weed: WeedCluster, bucket: str, browser: Browser
) -> None:
    """A walk through every view, photographed into artifacts/screenshots/<size>-NN-<view>.png."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    context = await browser.new_context(accept_downloads=True, **SIZES[size])
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await page.goto(base(api) + "/")
        await page.get_by_label("Username").fill("root")
        await page.get_by_label("Password", exact=True).fill("not the password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#login-error")).not_to_be_empty()
        await shot(page, f"{size}-01-sign-in")
        await sign_in(page, api, "root")
        await expect(page.locator("#files-empty")).to_be_visible()
        await shot(page, f"{size}-02-files-empty")

        # An upload in progress, slowed down by the browser.
        cdp = await context.new_cdp_session(page)  # one session: a second one drops the phone's touch emulation
        await cdp.send("Network.enable")
        await throttle_uploads(cdp, 256 << 10)
        await page.set_input_files(
            "#file-input",
            files=[
                FilePayload(name="holiday photos.zip", mimeType="application/zip", buffer=os.urandom(3 << 19)),
                FilePayload(name="notes.txt", mimeType="text/plain", buffer=b"a few notes\n"),
            ],
        )
        big = page.locator(".upload", has_text="holiday photos.zip")
        await expect(big.locator(".pct")).to_have_text(re.compile(r"^[1-9]\d?%$"))
        await shot(page, f"{size}-03-upload-in-progress", full_page=False)
        await throttle_uploads(cdp, -1)
        for name in ("holiday photos.zip", "notes.txt"):  # the slowed upload takes a few seconds
            await expect(file_row(page, name).locator(".status-cell")).to_have_text("Stored", timeout=20_000)
        await expect(file_row(page, "notes.txt").locator(".copies-col")).to_contain_text("cop")
        await expect(page.locator("#dropzone .pointer-coarse")).to_be_visible(visible=size == "phone")
        await shot(page, f"{size}-04-files")

        # The details of a file, with its copies.
        await file_row(page, "holiday photos.zip").locator("button.file-name").click()
        details = page.locator("#details-dialog")
        await expect(details.get_by_role("heading", name="holiday photos.zip")).to_be_visible()
        await expect(details.locator("#details-copies li").first).to_be_visible()
        await shot(page, f"{size}-05-file-details", full_page=False)
        await details.press("Escape")
        await expect(details).to_be_hidden()

        # The share dialog with a new link, then the public page of that link.
        await page.get_by_role("button", name="Share holiday photos.zip").click()
        dialog = page.locator("#share-dialog")
        url = await link_made_in(dialog, {"Password": "open sesame", "Download limit": "2"})
        await shot(page, f"{size}-06-share-dialog", full_page=False)
        await dialog.get_by_role("button", name="Close").click()

        public = await context.new_page()
        await public.goto(url)
        await expect(public.get_by_label("Password")).to_be_visible()
        await shot(public, f"{size}-11-public-before")
        await public.get_by_label("Password").fill("not it")
        await public.get_by_role("button", name="Download").click()
        await expect(public.locator("#public-error")).to_contain_text("not right")
        await shot(public, f"{size}-12-public-wrong-password")
        await public.get_by_label("Password").fill("open sesame")
        async with public.expect_download() as got:
            await public.get_by_role("button", name="Download").click()
        await expect(public.locator("#public-status")).to_contain_text("Downloading from")
        await shot(public, f"{size}-13-public-during")
        await got.value
        await expect(public.locator("#public-status")).to_contain_text("has started")
        await shot(public, f"{size}-14-public-after")

        # A link whose only download is used up.
        notes_id = await file_row(page, "notes.txt").get_attribute("data-id")
        once = (await admin.post(f"/api/v1/files/{notes_id}/links", json={"max_downloads": 1})).expect(201)
        (await api.call("POST", f"/api/v1/public/links/{once['token']}/download", json={})).expect(200)
        await public.goto(once["url"])
        await expect(public.get_by_role("heading", name="This link has expired")).to_be_visible()
        await shot(public, f"{size}-15-public-expired")
        await public.close()

        await page.get_by_role("link", name="History").click()
        await expect(page.locator("#history-body")).to_contain_text("holiday photos.zip")
        await shot(page, f"{size}-07-history")

        # The servers and their map, then a failed job to retry.
        await fail_a_job(api, "the storage server answered 503: Service Unavailable")
        await page.get_by_role("link", name="Servers").click()
        await expect(page.locator("#worldmap g.server")).to_have_count(5)
        await expect(page.locator("#jobs-body tr")).to_have_count(1)
        await shot(page, f"{size}-08-servers", full_page=False)
        await shot(page, f"{size}-09-servers-all")
        await page.locator("#jobs-card").scroll_into_view_if_needed()
        await shot(page, f"{size}-10-jobs", full_page=False)

        await page.get_by_role("link", name="Users").click()
        await expect(user_row(page, "root").locator(".usage-cell")).to_contain_text("used")
        await shot(page, f"{size}-16-users")

        # Turning a server off asks first.
        await page.get_by_role("link", name="Servers").click()
        await page.get_by_role("switch", name="dallas on").click()
        await expect(page.locator("#confirm-dialog")).to_be_visible()
        await shot(page, f"{size}-17-turn-off-asks", full_page=False)
        await page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()

        # An upload a reload left unfinished (announced, never sent): offered to resume or discard.
        (await admin.post("/api/v1/files", json={"name": "left behind.iso", "size": 4096})).expect(201)
        await page.goto(base(api) + "/#files")
        await expect(page.locator(".upload.unfinished")).to_contain_text("left behind.iso")
        await shot(page, f"{size}-18-unfinished-upload", full_page=False)
    finally:
        await context.close()


# --- identity: single sign-on and API keys ------------------------------------------------------------


@pytest.fixture(scope="module")
async def cross_site_idp(tmp_path_factory: pytest.TempPathFactory, daemon_port: int) -> AsyncIterator[Any]:
    """A real OpenID provider at `localhost`: another site than the daemon's 127.0.0.1 for the browser, so that
    its way back to cdnstore is a cross-site navigation, as with a provider on a domain of its own."""
    from cdnstore.oidc import CALLBACK_PATH
    from testbed.oidc_provider import OidcProvider

    log = Path(tmp_path_factory.mktemp("oidc-web")) / "provider.log"
    provider = OidcProvider([f"http://127.0.0.1:{daemon_port}{CALLBACK_PATH}"], log, host="localhost")
    await provider.start()
    yield provider
    provider.stop()


async def test_a_user_signs_in_with_single_sign_on_and_lands_back_where_they_were(
    make_api: Any, cross_site_idp: Any, context: BrowserContext
) -> None:
    from testbed.oidc_provider import PASSWORDS, sso

    api = await make_api(oidc=sso(cross_site_idp))
    page = await context.new_page()
    await page.goto(base(api) + "/#history")
    sso_button = page.get_by_role("link", name="Sign in with Test IdP")
    await expect(sso_button).to_be_visible()
    await expect(page.get_by_label("Username")).to_be_visible()  # (passwords are still taken)
    await shot(page, "sign-in-with-sso")
    await sso_button.click()
    # The provider's own page, on its own site.
    await page.wait_for_url(re.compile(rf"^{re.escape(cross_site_idp.issuer)}/interaction/"))
    await page.locator("#username").fill("dave")
    await page.locator("#password").fill(PASSWORDS["dave"])
    await page.locator("#sign-in").click()
    # Back, signed in with the page's cookie session, on the view it left from.
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(page.locator("#whoami")).to_have_text("dave")
    await expect(page.locator("#history-view")).to_be_visible()
    assert page.url == base(api) + "/#history"
    mine = {c["name"]: c for c in await context.cookies() if c["name"].startswith("cdnstore_")}
    # The session and the hint that there is one (the sign-in's own cookie is gone).
    assert sorted(mine) == ["cdnstore_refresh", "cdnstore_session"]
    assert mine["cdnstore_refresh"]["httpOnly"] and mine["cdnstore_refresh"]["sameSite"] == "Strict"
    assert mine["cdnstore_session"]["value"] == "1" and not mine["cdnstore_session"]["httpOnly"]
    # A reload keeps the session (the hint says to resume it), as after a password sign-in.
    await page.reload()
    await expect(page.locator("#whoami")).to_have_text("dave")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#login-view")).to_be_visible()


async def test_with_password_login_off_the_page_offers_single_sign_on_only(
    make_api: Any, cross_site_idp: Any, context: BrowserContext
) -> None:
    from testbed.oidc_provider import PASSWORDS, sso

    api = await make_api(oidc=sso(cross_site_idp, name="Corp SSO", password_login=False))
    page = await context.new_page()
    await page.goto(base(api) + "/")
    await expect(page.get_by_role("link", name="Sign in with Corp SSO")).to_be_focused()
    await expect(page.get_by_label("Username")).to_be_hidden()
    await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_hidden()
    await page.get_by_role("link", name="Sign in with Corp SSO").click()
    await page.locator("#username").fill("carol")
    await page.locator("#password").fill(PASSWORDS["carol"])
    await page.locator("#sign-in").click()
    await expect(page.locator("#whoami")).to_have_text("carol")
    await expect(page.get_by_role("link", name="Users")).to_be_visible()  # (carol is in the admin group)
    await expect(page.get_by_role("button", name="Password", exact=True)).to_be_hidden()  # none to change


async def test_a_user_makes_copies_and_revokes_an_api_key_on_the_keys_screen(api: Api, context: BrowserContext) -> None:
    await api.user("alice")
    page = await context.new_page()
    await sign_in(page, api, "alice")
    await page.get_by_role("link", name="API keys").click()
    view = page.locator("#keys-view")
    await expect(view).to_be_visible()
    await expect(view.locator("#keys-empty")).to_be_visible()
    await expect(view.get_by_label("Administer: servers, users and jobs")).to_have_count(0)  # (not an admin)
    await view.get_by_label("Name", exact=True).fill("nightly backup")
    await view.get_by_label("Upload: upload and rename files").check()
    await view.get_by_role("button", name="Create key").click()
    secret_box = view.locator("#key-secret")
    await expect(secret_box).to_be_visible()
    secret = await secret_box.input_value()
    assert re.fullmatch(r"cdn_[\w-]{43}", secret), secret
    await shot(page, "api-keys")
    row = view.locator("#keys-body tr").filter(has_text="nightly backup")
    await expect(row).to_contain_text(secret[:12])
    await expect(row).to_contain_text("read")
    await expect(row).to_contain_text("upload")
    await expect(row).to_contain_text("Never")  # (never used yet)
    # The key works for what it was given, as alice.
    assert (await api.call("GET", "/api/v1/me", token=secret)).expect(200)["username"] == "alice"
    # Shown once: after a reload, only its first characters.
    await page.reload()
    await expect(view.locator("#keys-body tr")).to_have_count(1)
    await expect(view.locator("#key-made")).to_be_hidden()
    assert secret not in await page.content()
    await expect(row).not_to_contain_text("Never used")
    await row.get_by_role("button", name="Revoke nightly backup").click()
    await page.locator("#confirm-ok").click()
    await expect(view.locator("#keys-body tr")).to_have_count(0)
    (await api.call("GET", "/api/v1/me", token=secret)).problem(401, "unauthorized")
