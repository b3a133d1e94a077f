"""The page's upload requests (the owner's view, and the public upload page a sender uses), its trash and
files that expire, in a real headless Chromium against the test daemon and the real SeaweedFS servers.

The helpers and the Chromium fixtures are test_web.py's. Screenshots land in artifacts/screenshots/
(`<size>-2N-...`), at desktop and phone widths.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import test_web as web
from apihelp import Api, Session, wait_for
from test_web import SIZES, file_row, shot, sign_in, throttle_uploads

from cdnstore.seaweed import WeedCluster

try:
    from playwright.async_api import Browser, BrowserContext, FilePayload, Page, expect
except ImportError:  # pragma: no cover - reported by the browser fixture
    pass

# test_web.py's fixtures, under their own names (pytest finds fixtures by the name they have in a module).
browser = web.browser
context = web.context

MIB = 1 << 20


async def owner_on_the_page(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext, username: str = "alice"
) -> tuple[Session, Page]:
    """root registered the original's servers; `username` (an ordinary user) is signed in on a new page."""
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    user = await api.user(username)
    page = await context.new_page()
    await sign_in(page, api, username)
    return user, page


async def make_request(page: Page, message: str, *, max_files: str = "", password: str = "") -> str:
    """Make an upload request on the Requests view; the link its dialog shows."""
    await page.get_by_role("link", name="Requests").click()
    await page.get_by_role("button", name="New request").click()
    dialog = page.locator("#request-dialog")
    await dialog.get_by_label("Message").fill(message)
    if max_files:
        await dialog.get_by_label("Most files").fill(max_files)
    if password:
        await dialog.get_by_role("textbox", name="Password (optional)").fill(password)
    await dialog.get_by_role("button", name="Create request").click()
    received = page.locator("#received-dialog")
    await expect(received.locator("#received-qr svg")).to_be_visible()
    url = await received.locator("#received-url").input_value()
    assert "/u/" in url
    await received.get_by_role("button", name="Close").click()
    return url


def request_row(page: Page, message: str) -> Any:
    return page.locator("#requests-body tr").filter(has_text=message)


async def test_an_owner_asks_for_files_and_a_sender_sends_them_from_the_public_page(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext, browser: Browser
) -> None:
    api = await make_api(uploads={"multipart_threshold": 5 * MIB})
    alice, page = await owner_on_the_page(api, weed, bucket, context)
    url = await make_request(page, "The holiday photos, please", max_files="3")
    row = request_row(page, "The holiday photos, please")
    await expect(row).to_contain_text("Open")
    await expect(row).to_contain_text("0 of 3 files")

    # The sender: another browser context, no account.
    sender_context = await browser.new_context(viewport=web.DESKTOP)
    sender_context.set_default_timeout(15_000)
    try:
        sender = await sender_context.new_page()
        await sender.goto(url)
        await expect(sender.get_by_role("heading", name="Send files to alice")).to_be_visible()
        await expect(sender.locator("#request-message")).to_have_text("The holiday photos, please")
        await expect(sender.locator("#request-meta")).to_contain_text("Up to 3 more files")
        await expect(sender.get_by_label("Password")).to_be_hidden()
        big = os.urandom(6 * MIB)  # two parts under the 5 MiB threshold: the owner's multipart code, reused
        await sender.set_input_files(
            "#file-input",
            files=[
                FilePayload(name="beach.jpg", mimeType="image/jpeg", buffer=b"\xff\xd8 a small photo"),
                FilePayload(name="video.mp4", mimeType="video/mp4", buffer=big),
            ],
        )
        for name in ("beach.jpg", "video.mp4"):
            await expect(sender.locator(".upload", has_text=name).locator(".status")).to_contain_text(
                "Stored in", timeout=30_000
            )
        await expect(sender.locator("#sent li")).to_have_count(2)
        await expect(sender.locator("#request-meta")).to_contain_text("Up to 1 more file")
        await web.no_secret_stored(sender)
    finally:
        await sender_context.close()

    files = {f["name"]: f for f in (await alice.get("/api/v1/files")).expect(200)["items"]}
    assert set(files) == {"beach.jpg", "video.mp4"} and all(f["received_via"] for f in files.values())
    await web.assert_downloads_as(alice, files["video.mp4"]["id"], big)

    await page.reload()
    await expect(request_row(page, "The holiday photos, please")).to_contain_text("2 of 3 files")
    await request_row(page, "The holiday photos, please").get_by_role("button", name=re.compile("^What ")).click()
    received = page.locator("#received-dialog")
    await expect(received.locator("#received-files li")).to_have_count(2)
    await expect(received.get_by_role("button", name="Download video.mp4")).to_be_visible()
    await received.get_by_role("button", name="Close").click()
    await page.get_by_role("link", name="Files").click()
    await expect(file_row(page, "beach.jpg")).to_contain_text("Received")


async def test_the_public_page_asks_for_the_password_and_says_when_the_request_closes(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    alice, page = await owner_on_the_page(api, weed, bucket, context)
    url = await make_request(page, "Signed forms", password="paper trail")
    sender = await context.new_page()
    await sender.goto(url)
    await expect(sender.get_by_label("Password")).to_be_visible()
    one = FilePayload(name="form.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4 signed")
    await sender.set_input_files("#file-input", files=[one])
    await expect(sender.locator("#request-error")).to_have_text("Enter the password first.")
    await expect(sender.locator(".upload", has_text="form.pdf")).to_contain_text("needs a password")
    await sender.get_by_label("Password").fill("paper trial")
    await sender.set_input_files("#file-input", files=[one])
    await expect(sender.locator("#request-error")).to_contain_text("not right")
    await sender.get_by_label("Password").fill("paper trail")
    await sender.set_input_files("#file-input", files=[one])
    await expect(sender.locator("#sent li")).to_have_count(1)
    assert [f["name"] for f in (await alice.get("/api/v1/files")).expect(200)["items"]] == ["form.pdf"]

    await request_row(page, "Signed forms").get_by_role("button", name="Close Signed forms").click()
    await expect(request_row(page, "Signed forms")).to_contain_text("Closed")
    await sender.reload()
    await expect(sender.get_by_role("heading", name="This request is closed")).to_be_visible()
    await request_row(page, "Signed forms").get_by_role("button", name="Reopen Signed forms").click()
    await expect(request_row(page, "Signed forms")).to_contain_text("Open")
    await request_row(page, "Signed forms").get_by_role("button", name="Delete Signed forms").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#requests-empty")).to_be_visible()
    await sender.reload()
    await expect(sender.get_by_role("heading", name="Request not found")).to_be_visible()


async def test_a_deleted_file_waits_in_the_trash_view_and_comes_back(
    make_api: Any, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    api = await make_api(files={"trash_days": 7})
    alice, page = await owner_on_the_page(api, weed, bucket, context)
    await alice.upload_and_confirm("draft.txt", b"first draft")
    await alice.upload_and_confirm("old.txt", b"old things")
    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()
    for name in ("draft.txt", "old.txt"):
        await page.get_by_role("button", name=f"Delete {name}").click()
        await expect(page.locator("#confirm-text")).to_contain_text("goes to the trash for 7 days")
        await page.locator("#confirm-ok").click()
        await expect(file_row(page, name)).to_have_count(0)
    await expect(page.locator("#files-empty")).to_be_visible()

    await page.get_by_role("link", name="Trash").click()
    await expect(page.locator("#trash-summary")).to_contain_text("7 days")
    await expect(page.locator("#trash-body tr")).to_have_count(2)
    await page.get_by_role("button", name="Restore draft.txt").click()
    await expect(page.locator("#trash-body tr")).to_have_count(1)
    await page.get_by_role("button", name="Delete old.txt for good").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#trash-empty")).to_be_visible()
    await page.get_by_role("link", name="Files").click()
    await expect(file_row(page, "draft.txt")).to_have_count(1)
    assert (await alice.get("/api/v1/trash")).expect(200)["items"] == []


async def test_expiry_is_chosen_beside_the_upload_box_and_changed_in_the_details(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    alice, page = await owner_on_the_page(api, weed, bucket, context)
    await page.get_by_label("How long new uploads are kept").select_option(label="1 week")
    await page.set_input_files(
        "#file-input", files=[FilePayload(name="ticket.pdf", mimeType="application/pdf", buffer=b"x")]
    )
    await expect(file_row(page, "ticket.pdf").locator(".status-cell")).to_have_text("Stored")
    await expect(file_row(page, "ticket.pdf").locator(".expiry-note")).to_have_text("Expires in 7 days")
    [file] = (await alice.get("/api/v1/files")).expect(200)["items"]
    assert file["expires_at"] is not None

    await file_row(page, "ticket.pdf").locator("button.file-name").click()
    details = page.locator("#details-dialog")
    await details.get_by_label("When ticket.pdf expires").select_option(label="Never")
    await details.get_by_role("button", name="Save").click()
    await expect(details.locator(".expiry-now")).to_have_text("Never")
    await details.press("Escape")
    await expect(file_row(page, "ticket.pdf").locator(".expiry-note")).to_have_count(0)

    async def no_expiry() -> bool:
        return (await alice.get(f"/api/v1/files/{file['id']}")).expect(200)["expires_at"] is None

    await wait_for(no_expiry, "the expiry to be gone")


async def test_the_details_read_afresh_that_answers_after_an_expiry_was_saved_brings_back_nothing_old(
    api: Api, weed: WeedCluster, bucket: str, context: BrowserContext
) -> None:
    """The details ask for the file when they open; an answer that comes only once a new expiry is saved
    (asked before it) changes neither the dialog nor the list back."""
    alice, page = await owner_on_the_page(api, weed, bucket, context)
    answer = await alice.upload_and_confirm("ticket.txt", b"x")
    file_path = f"/api/v1/files/{answer['file']['id']}"
    (await alice.patch(file_path, json={"expires_at": "2099-01-01T00:00:00Z"})).expect(200)
    await page.reload()
    row = file_row(page, "ticket.txt")
    await expect(row.locator(".expiry-note")).to_have_count(1)
    saved = asyncio.Event()

    async def held(route: Any) -> None:  # the details' own read of the file: read now, answered after the save
        if route.request.method != "GET":
            await route.continue_()
            return
        before = await route.fetch()
        await saved.wait()
        await route.fulfill(response=before)

    await page.route(lambda url: urlsplit(url).path == file_path, held)
    async with page.expect_response(lambda r: urlsplit(r.url).path == file_path and r.request.method == "GET") as read:
        await row.locator("button.file-name").click()
        details = page.locator("#details-dialog")
        await details.get_by_label("When ticket.txt expires").select_option(label="Never")
        async with page.expect_response(lambda r: urlsplit(r.url).path == file_path and r.request.method == "PATCH"):
            await details.get_by_role("button", name="Save").click()
        saved.set()
    assert (await (await read.value).json())["expires_at"] is not None  # (what the held read says: the old one)
    await expect(details.locator(".expiry-now")).to_have_text("Never")
    await details.press("Escape")
    await expect(row.locator(".expiry-note")).to_have_count(0)


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_requests_public_upload_page_and_trash_at_desktop_and_phone_width(
    size: str, make_api: Any, weed: WeedCluster, bucket: str, browser: Browser, tmp_path: Path
) -> None:
    """Photographed into artifacts/screenshots/<size>-2N-<view>.png."""
    api = await make_api(files={"trash_days": 7})
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    alice = await api.user("alice")
    context = await browser.new_context(accept_downloads=True, **SIZES[size])
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await sign_in(page, api, "alice")
        await page.get_by_role("link", name="Requests").click()
        await expect(page.locator("#requests-empty")).to_be_visible()
        await shot(page, f"{size}-21-requests-empty")
        await page.get_by_role("button", name="New request").click()
        dialog = page.locator("#request-dialog")
        await dialog.get_by_label("Message").fill("Scans of the signed contract and the two annexes, please.")
        await dialog.get_by_label("Most files").fill("5")
        await dialog.get_by_label("Most megabytes in all").fill("200")
        await shot(page, f"{size}-22-request-dialog", full_page=False)
        await dialog.get_by_role("button", name="Create request").click()
        await expect(page.locator("#received-qr svg")).to_be_visible()
        url = await page.locator("#received-url").input_value()
        await shot(page, f"{size}-23-request-made", full_page=False)
        await page.locator("#received-dialog").get_by_role("button", name="Close").click()

        sender = await context.new_page()
        await sender.goto(url)
        await expect(sender.get_by_role("heading", name="Send files to alice")).to_be_visible()
        await shot(sender, f"{size}-24-upload-page")
        cdp = await context.new_cdp_session(sender)
        await cdp.send("Network.enable")
        await throttle_uploads(cdp, 256 << 10)
        await sender.set_input_files(
            "#file-input",
            files=[
                FilePayload(name="contract scan.pdf", mimeType="application/pdf", buffer=os.urandom(3 << 19)),
                FilePayload(name="annex A.pdf", mimeType="application/pdf", buffer=b"%PDF annex A"),
            ],
        )
        slow = sender.locator(".upload", has_text="contract scan.pdf")
        await expect(slow.locator(".pct")).to_have_text(re.compile(r"^[1-9]\d?%$"))
        await shot(sender, f"{size}-25-upload-page-sending", full_page=False)
        await throttle_uploads(cdp, -1)
        await expect(sender.locator("#sent li")).to_have_count(2, timeout=30_000)
        await shot(sender, f"{size}-26-upload-page-sent")

        await page.reload()
        await expect(request_row(page, "Scans of the signed contract")).to_contain_text("2 of 5 files")
        await shot(page, f"{size}-27-requests")
        await request_row(page, "Scans of the signed contract").get_by_role("button", name=re.compile("^What ")).click()
        await expect(page.locator("#received-files li")).to_have_count(2)
        await shot(page, f"{size}-28-received", full_page=False)
        await page.locator("#received-dialog").get_by_role("button", name="Close").click()
        (
            await alice.patch(f"/api/v1/upload-requests/{(await first_request(alice))['id']}", json={"is_open": False})
        ).expect(200)
        await sender.reload()
        await expect(sender.get_by_role("heading", name="This request is closed")).to_be_visible()
        await shot(sender, f"{size}-29-upload-page-closed")

        await page.get_by_role("link", name="Files").click()
        await expect(file_row(page, "annex A.pdf")).to_contain_text("Received")
        (
            await alice.patch(
                f"/api/v1/files/{await file_row(page, 'annex A.pdf').get_attribute('data-id')}",
                json={"expires_at": "2099-01-01T00:00:00Z"},
            )
        ).expect(200)
        await page.reload()
        await expect(file_row(page, "annex A.pdf").locator(".expiry-note")).to_be_visible()
        await shot(page, f"{size}-20-files-received-and-expiring")
        await file_row(page, "annex A.pdf").locator("button.file-name").click()
        await expect(page.locator("#details-dialog .expiry-form")).to_be_visible()
        await shot(page, f"{size}-30-details-expiry", full_page=False)
        await page.locator("#details-dialog").press("Escape")
        await page.get_by_role("button", name="Delete annex A.pdf").click()
        await page.locator("#confirm-ok").click()
        await expect(file_row(page, "annex A.pdf")).to_have_count(0)
        await page.get_by_role("link", name="Trash").click()
        await expect(page.locator("#trash-body tr")).to_have_count(1)
        await shot(page, f"{size}-31-trash")
    finally:
        await context.close()


async def first_request(user: Session) -> dict[str, Any]:
    return dict((await user.get("/api/v1/upload-requests")).expect(200)["items"][0])
