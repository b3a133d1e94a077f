"""Sharing in the bundled page, driven in Chromium: ticked files shared in one link and deleted together,
links edited in place, the "My links" view, the public page of a link to several files with "download all",
and previews (an image renders, a video seeks, an .html file downloads rather than runs).

Screenshots land in artifacts/screenshots/<size>-sharing-NN-<what>.png (git-ignored)."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from typing import Any

import pytest
from apihelp import Api, Session, png
from test_web import (  # the browser, its contexts and the page helpers of the page's other tests
    DESKTOP,
    SIZES,
    base,
    browser,
    context,
    downloaded,
    file_row,
    link_made_in,
    shot,
    sign_in,
)

from cdnstore import previews
from testbed.seaweed import WeedCluster

try:
    from playwright.async_api import Browser, BrowserContext, Page, expect
except ImportError:  # pragma: no cover - the browser fixture reports it
    pass

__all__ = ["browser", "context"]  # (fixtures of test_web, used here)

PHOTO = png(320, 200, (40, 110, 200))
NOTES = b"notes to share\n" * 200
REPORT = bytes(range(256)) * 400
HTML = b"<!doctype html><title>ran</title><script>document.title = 'ran'</script><h1>it ran</h1>"


async def alice_with_files(api: Api, weed: WeedCluster, bucket: str) -> tuple[Session, dict[str, str]]:
    """alice, with photo.png, notes.txt and report.bin stored (the original's five servers registered)."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    alice = await api.user("alice")
    ids = {}
    for name, data, kind in (
        ("report.bin", REPORT, "application/octet-stream"),
        ("notes.txt", NOTES, "text/plain"),
        ("photo.png", PHOTO, "image/png"),
    ):
        ids[name] = (await alice.upload_and_confirm(name, data, content_type=kind))["file"]["id"]
    return alice, ids


async def alice_signed_in(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> tuple[Session, dict[str, str], Page]:
    """alice_with_files, and alice signed in on a new page."""
    alice, ids = await alice_with_files(api, weed, bucket)
    page = await context.new_page()
    await sign_in(page, api, "alice")
    return alice, ids, page


def unzipped(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        return {name: zipped.read(name) for name in zipped.namelist()}


async def public_page(browser: Browser, url: str) -> tuple[BrowserContext, Page]:
    """The link opened by someone else, in a browser context of their own."""
    stranger = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    stranger.set_default_timeout(15_000)
    page = await stranger.new_page()
    await page.goto(url)
    return stranger, page


# ------------------------------------------------------------------------- several files, one link


async def test_ticked_files_are_shared_in_one_link_whose_page_lists_them_and_downloads_all(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext, browser: Browser
) -> None:
    alice, _, page = await alice_signed_in(api, weed, bucket, context)
    await expect(page.locator("#selection-bar")).to_be_hidden()
    await page.get_by_label("Select notes.txt").check()
    await page.get_by_label("Select photo.png").check()
    await expect(page.locator("#selection-count")).to_have_text("2 files selected")
    await expect(page.get_by_label("Select every file shown")).to_have_js_property("indeterminate", True)
    await page.get_by_role("button", name="Share in one link").click()
    dialog = page.locator("#share-dialog")
    await expect(dialog.get_by_role("heading", name="Share 2 files")).to_be_visible()
    await expect(dialog.locator(".share-file-list li")).to_have_count(2)
    url = await link_made_in(dialog, {"Password": "open sesame"})
    await dialog.get_by_role("button", name="Close").click()
    # Both files are marked as shared in the list; the third is not.
    for name, marked in (("notes.txt", 1), ("photo.png", 1), ("report.bin", 0)):
        await expect(file_row(page, name).locator(".badge.shared")).to_have_count(marked)
    made = (await alice.get("/api/v1/links")).expect(200)["items"]
    assert [(x["file_id"], [f["name"] for f in x["files"]]) for x in made] == [(None, ["photo.png", "notes.txt"])]

    stranger, public = await public_page(browser, url)
    try:
        await expect(public.get_by_role("heading", name="2 files")).to_be_visible()
        items = public.locator(".public-file-item")
        await expect(items).to_have_count(2)
        await expect(items.nth(0)).to_contain_text("photo.png")
        await expect(items.nth(1)).to_contain_text("notes.txt")
        # Without the password nothing is asked; with a wrong one, the daemon's refusal is told.
        await public.get_by_role("button", name="Download all (ZIP)").click()
        await expect(public.locator("#public-error")).to_contain_text("Enter the password")
        await public.get_by_label("Password").fill("not it")
        await public.get_by_role("button", name="Download all (ZIP)").click()
        await expect(public.locator("#public-error")).to_contain_text("not right")
        await public.get_by_label("Password").fill("open sesame")
        async with public.expect_download() as got:
            await public.get_by_role("button", name="Download notes.txt").click()
        assert await downloaded(await got.value) == NOTES
        async with public.expect_download() as got:
            await public.get_by_role("button", name="Download all (ZIP)").click()
        zipped = await got.value
        assert zipped.suggested_filename == "shared files.zip"
        assert unzipped(await downloaded(zipped)) == {"photo.png": PHOTO, "notes.txt": NOTES}
        await expect(public.locator("#public-status")).to_contain_text("has started")
        await shot(public, "sharing-public-several")
    finally:
        await stranger.close()
    assert (await alice.get(f"/api/v1/links/{made[0]['id']}")).expect(200)["downloads"] == 2


async def test_ticked_files_are_deleted_together_after_one_confirmation(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    alice, _, page = await alice_signed_in(api, weed, bucket, context)
    await expect(page.locator("#files-body tr")).to_have_count(3)
    await page.get_by_label("Select every file shown").check()
    await expect(page.locator("#selection-count")).to_have_text("3 files selected")
    await page.get_by_label("Select report.bin").uncheck()
    await page.locator("#selection-bar").get_by_role("button", name="Delete").click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm.get_by_role("heading", name="Delete 2 files?")).to_be_visible()
    await confirm.get_by_role("button", name="Delete").click()
    await expect(page.locator("#files-body tr")).to_have_count(1)
    await expect(file_row(page, "report.bin")).to_have_count(1)
    await expect(page.locator("#selection-bar")).to_be_hidden()
    assert [f["name"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == ["report.bin"]


# ------------------------------------------------------------------------- editing links, "My links"


async def test_a_link_is_edited_in_place_in_the_share_dialog(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    alice, ids, page = await alice_signed_in(api, weed, bucket, context)
    link = (await alice.post(f"/api/v1/files/{ids['notes.txt']}/links", json={"max_downloads": 1})).expect(201)
    (await api.call("POST", f"/api/v1/public/links/{link['token']}/download", json={})).expect(200)
    await page.get_by_role("button", name="Share notes.txt").click()
    item = page.locator(f'#share-dialog .link-item[data-id="{link["id"]}"]')
    await expect(item.locator(".badge").first).to_have_text("Used up")
    await item.get_by_role("button", name=re.compile("^Edit link")).click()
    await item.get_by_label("Download limit").fill("")  # no limit any more
    await item.get_by_label("Password", exact=True).fill("a new secret")
    await item.get_by_label("Expires").select_option(label="In 1 day")
    await item.get_by_label(re.compile("^Start the download count again")).check()
    await shot(page, "sharing-link-editor", full_page=False)
    await item.get_by_role("button", name="Save").click()
    await expect(item.locator(".badge").first).to_have_text("Password")
    await expect(item).to_contain_text("0 downloads")
    await expect(item).to_contain_text(re.compile(r"Expires in (24 hours|1 day)"))
    changed = (await alice.get(f"/api/v1/links/{link['id']}")).expect(200)
    assert (changed["max_downloads"], changed["downloads"], changed["has_password"], changed["state"]) == (
        None,
        0,
        True,
        "active",
    )
    assert changed["url"] == link["url"]  # the same link: edited, not replaced


async def test_my_links_lists_every_link_with_its_state_and_edits_and_revokes_them(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    alice, ids, page = await alice_signed_in(api, weed, bucket, context)
    several = (await alice.post("/api/v1/links", json={"file_ids": [ids["photo.png"], ids["notes.txt"]]})).expect(201)
    used = (await alice.post(f"/api/v1/files/{ids['report.bin']}/links", json={"max_downloads": 1})).expect(201)
    (await api.call("POST", f"/api/v1/public/links/{used['token']}/download", json={})).expect(200)
    await page.get_by_role("link", name="Links").click()
    rows = page.locator("#links-body tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("report.bin")
    await expect(rows.nth(0).locator('[data-label="State"]')).to_have_text("Used up")
    await expect(rows.nth(1)).to_contain_text("photo.png and 1 more")
    await expect(rows.nth(1).locator('[data-label="State"]')).to_have_text("Active")
    await page.get_by_label("Show links that are").select_option(label="Used up")
    await expect(rows).to_have_count(1)
    await page.get_by_label("Show links that are").select_option(label="Every state")
    await expect(rows).to_have_count(2)
    # Edit the used-up one back to life, then revoke the other.
    await page.get_by_role("button", name="Edit the link to report.bin").click()
    await page.locator("#links-body").get_by_label(re.compile("^Start the download count again")).check()
    await page.locator("#links-body").get_by_role("button", name="Save").click()
    await expect(rows.nth(0).locator('[data-label="State"]')).to_have_text("Active")
    await page.get_by_role("button", name="Revoke the link to photo.png and 1 more").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Revoke").click()
    await expect(rows).to_have_count(1)
    listed = (await alice.get("/api/v1/links")).expect(200)["items"]
    assert [(x["id"], x["state"]) for x in listed] == [(used["id"], "active")]
    (await api.call("GET", f"/api/v1/public/links/{several['token']}")).problem(404, "link_not_found")


# ------------------------------------------------------------------------- previews


async def test_the_pages_preview_types_are_the_daemons(api: Api, context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(base(api) + "/")
    listed = await page.evaluate("async () => (await import('/static/ui.js')).PREVIEW_TYPES")
    assert {t for types in listed.values() for t in types} == (
        previews.IMAGES | previews.AUDIO | previews.VIDEO | previews.DOCUMENTS
    )
    asked = ["image/svg+xml", "text/html", "application/xml", "TEXT/PLAIN; charset=utf-8", "image/PNG", "video/x-nope"]
    kinds = await page.evaluate(
        "async (types) => { const ui = await import('/static/ui.js'); return types.map(ui.previewKind); }", asked
    )
    assert [kind is not None for kind in kinds] == [previews.inline_type(t) is not None for t in asked]


async def rendered(page: Page, image: Any) -> int:
    """The width of the picture the browser decoded (0 when it could not show it)."""
    await expect(image).to_be_visible()
    await page.wait_for_function("(img) => img.complete", arg=await image.element_handle())
    return int(await image.evaluate("(img) => img.naturalWidth"))


async def test_an_image_previews_in_the_details_dialog_and_on_the_share_page(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext, browser: Browser
) -> None:
    alice, ids, page = await alice_signed_in(api, weed, bucket, context)
    await file_row(page, "photo.png").locator("button.file-name").click()
    details = page.locator("#details-dialog")
    assert await rendered(page, details.locator("#details-preview img")) == 320
    await shot(page, "sharing-details-preview", full_page=False)
    await details.press("Escape")
    await file_row(page, "report.bin").locator("button.file-name").click()  # nothing to preview there
    await expect(details.get_by_role("heading", name="report.bin")).to_be_visible()
    await expect(details.locator("#details-preview")).to_be_hidden()

    # A link that counts nothing shows its image at once; one with a limit waits to be asked.
    free = (await alice.post(f"/api/v1/files/{ids['photo.png']}/links", json={})).expect(201)
    limited = (await alice.post(f"/api/v1/files/{ids['photo.png']}/links", json={"max_downloads": 3})).expect(201)
    stranger, public = await public_page(browser, free["url"])
    try:
        assert await rendered(public, public.locator("#public-preview img")) == 320
        await public.goto(limited["url"])
        await expect(public.locator("#public-meta")).to_contain_text("3 downloads left")
        await expect(public.locator("#public-preview")).to_be_hidden()
        await public.get_by_role("button", name="Preview").click()
        assert await rendered(public, public.locator("#public-preview img")) == 320
        await expect(public.locator("#public-preview")).to_be_visible()
    finally:
        await stranger.close()
    assert (await alice.get(f"/api/v1/links/{limited['id']}")).expect(200)["downloads"] == 1


# A real WebM made by the browser itself (MediaRecorder on a canvas that changes colour every frame): the
# recording takes the video's own length of real time, the scenario rather than a wait.
RECORD_WEBM = """async (seconds) => {
  const canvas = Object.assign(document.createElement("canvas"), { width: 160, height: 90 });
  const ctx = canvas.getContext("2d");
  let frame = 0;
  const paint = () => { ctx.fillStyle = `hsl(${(frame++ * 37) % 360}, 70%, 50%)`; ctx.fillRect(0, 0, 160, 90); };
  paint();
  const recorder = new MediaRecorder(canvas.captureStream(10), { mimeType: "video/webm" });
  const parts = [];
  recorder.ondataavailable = (event) => parts.push(event.data);
  const timer = setInterval(paint, 100);
  recorder.start(200);
  await new Promise((done) => setTimeout(done, seconds * 1000));
  recorder.stop();
  await new Promise((done) => { recorder.onstop = done; });
  clearInterval(timer);
  const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}"""


async def test_a_video_previews_and_seeks(api: Api, weed: WeedCluster, bucket: str, context: BrowserContext) -> None:
    alice, _ = await alice_with_files(api, weed, bucket)
    page = await context.new_page()
    await page.goto(base(api) + "/")
    webm = base64.b64decode(await page.evaluate(RECORD_WEBM, 3))
    assert webm[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (WebM) header
    await alice.upload_and_confirm("clip.webm", webm, content_type="video/webm")
    await sign_in(page, api, "alice")
    media: list[Any] = []  # what the player got from the storage server
    page.on("response", lambda r: media.append(r) if r.request.resource_type == "media" else None)
    await file_row(page, "clip.webm").locator("button.file-name").click()
    video = page.locator("#details-preview video")
    await expect(video).to_be_visible()
    await page.wait_for_function("(v) => v.readyState >= 1", arg=await video.element_handle())
    # Seek: the player asks the storage server for the bytes from there (a ranged GET) and lands on it.
    seeked = await video.evaluate(
        """(v) => new Promise((done) => {
            v.addEventListener("seeked", () => done(v.currentTime), { once: true });
            v.currentTime = 2;
        })"""
    )
    assert 1.5 <= seeked <= 2.5
    # It was asked for in ranges, and the storage server answered them (206), as inline video.
    assert media and all(r.request.headers.get("range", "").startswith("bytes=") for r in media)
    assert {r.status for r in media} == {206} and {r.headers["content-type"] for r in media} == {"video/webm"}
    await shot(page, "sharing-video-preview", full_page=False)


async def test_an_html_file_downloads_rather_than_runs(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext, browser: Browser
) -> None:
    alice, _ = await alice_with_files(api, weed, bucket)
    html_id = (await alice.upload_and_confirm("page.html", HTML, content_type="text/html"))["file"]["id"]
    page = await context.new_page()
    await sign_in(page, api, "alice")
    await file_row(page, "page.html").locator("button.file-name").click()
    details = page.locator("#details-dialog")
    await expect(details.get_by_role("heading", name="page.html")).to_be_visible()
    await expect(details.locator("#details-preview")).to_be_hidden()  # no preview offered

    # Even asked inline, its URL is an attachment: the browser saves it, and nothing of it runs.
    asked = (await alice.get(f"/api/v1/files/{html_id}/download?inline=true")).expect(200)["url"]
    visitor = await context.new_page()
    async with visitor.expect_download() as got:
        with pytest.raises(Exception, match="Download is starting"):
            await visitor.goto(asked)
    assert await downloaded(await got.value) == HTML
    assert await visitor.title() != "ran"

    link = (await alice.post(f"/api/v1/files/{html_id}/links", json={})).expect(201)
    stranger, public = await public_page(browser, link["url"])
    try:
        await expect(public.get_by_role("heading", name="page.html")).to_be_visible()
        await expect(public.get_by_role("button", name="Preview")).to_be_hidden()
        await expect(public.locator("#public-preview")).to_be_hidden()
        async with public.expect_download() as got:
            await public.get_by_role("button", name="Download").click()
        assert await downloaded(await got.value) == HTML
        assert await public.title() != "ran"
    finally:
        await stranger.close()


# ------------------------------------------------------------------------- the views at both widths


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_sharing_views_at_desktop_and_phone_width(
    size: str, api: Api, weed: WeedCluster, bucket: str, browser: Browser
) -> None:
    """Photographed into artifacts/screenshots/<size>-sharing-NN-<view>.png."""
    alice, ids = await alice_with_files(api, weed, bucket)
    used = (await alice.post(f"/api/v1/files/{ids['notes.txt']}/links", json={"max_downloads": 1})).expect(201)
    (await api.call("POST", f"/api/v1/public/links/{used['token']}/download", json={})).expect(200)
    (await alice.post(f"/api/v1/files/{ids['report.bin']}/links", json={"password": "open sesame"})).expect(201)
    context = await browser.new_context(accept_downloads=True, **SIZES[size])
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await sign_in(page, api, "alice")
        await page.get_by_label("Select notes.txt").check()
        await page.get_by_label("Select photo.png").check()
        await expect(file_row(page, "report.bin").locator(".badge.shared")).to_have_count(1)
        await expect(file_row(page, "notes.txt").locator(".badge.shared")).to_have_count(0)  # its link is used up
        await shot(page, f"{size}-sharing-01-selection")
        await page.get_by_role("button", name="Share in one link").click()
        dialog = page.locator("#share-dialog")
        url = await link_made_in(dialog, {"Download limit": "5"})
        await shot(page, f"{size}-sharing-02-share-several", full_page=False)
        await dialog.get_by_role("button", name="Close").click()

        await page.get_by_role("link", name="Links").click()
        await expect(page.locator("#links-body tr")).to_have_count(3)
        await shot(page, f"{size}-sharing-03-my-links")
        await page.get_by_role("button", name="Edit the link to notes.txt").click()
        await expect(page.locator("#links-body form.link-editor")).to_be_visible()
        await shot(page, f"{size}-sharing-04-edit-link")
        await page.locator("#links-body").get_by_role("button", name="Cancel").click()

        await page.get_by_role("link", name="Files").click()
        await file_row(page, "photo.png").locator("button.file-name").click()
        assert await rendered(page, page.locator("#details-preview img")) == 320
        await shot(page, f"{size}-sharing-05-details-preview", full_page=False)
        await page.locator("#details-dialog").press("Escape")

        public = await context.new_page()
        await public.goto(url)
        await expect(public.locator(".public-file-item")).to_have_count(2)
        await shot(public, f"{size}-sharing-06-public-several")
        await public.get_by_role("button", name="Preview photo.png").click()
        assert await rendered(public, public.locator("#public-preview img")) == 320
        await shot(public, f"{size}-sharing-07-public-preview")
    finally:
        await context.close()
