"""The page's webhooks view in a real headless Chromium, against the test daemon and a real receiver in a
child process (tests/webhook_receiver.py): add a webhook and see its secret once, send a test event and
watch it delivered, delete it; the fleet's events offered to administrators only; a refused address said.

The helpers and the Chromium fixtures are test_web.py's. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
import test_web as web
import test_webhooks as hooks
from apihelp import Api, wait_for
from conftest import MakeApi
from test_web import SIZES, shot, sign_in
from test_webhooks import WEBHOOKS, verify
from webhook_receiver import Receiver

try:
    from playwright.async_api import Browser, BrowserContext, Page, expect
except ImportError:  # pragma: no cover - reported by the browser fixture
    pass

# test_web.py's and test_webhooks.py's fixtures, under their own names (pytest finds fixtures by the name they
# have in a module).
browser = web.browser
context = web.context
receiver = hooks.receiver


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api(webhooks=WEBHOOKS)


async def on_the_webhooks_view(api: Api, context: BrowserContext, username: str, *, admin: bool = False) -> Page:
    await api.user(username, admin=admin)
    page = await context.new_page()
    await sign_in(page, api, username)
    await page.get_by_role("link", name="Webhooks").click()
    await expect(page.locator("#webhooks-view")).to_be_visible()
    return page


async def test_a_user_adds_a_webhook_sees_its_secret_once_sends_a_test_event_and_deletes_it(
    api: Api, context: BrowserContext, receiver: Receiver
) -> None:
    page = await on_the_webhooks_view(api, context, "alice")
    await expect(page.locator("#webhooks-empty")).to_be_visible()
    await page.get_by_role("button", name="Add webhook").click()
    dialog = page.locator("#webhook-dialog")
    await expect(dialog.locator("legend")).to_have_text(["Your files"])  # no fleet events for her
    await dialog.get_by_label("Address").fill(receiver.url)
    await dialog.get_by_label("File deleted").check()
    await dialog.get_by_role("button", name="Add webhook").click()
    secret_box = dialog.get_by_label("Signing secret")
    await expect(secret_box).to_be_visible()
    secret = await secret_box.input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)
    await shot(page, "desktop-30-webhook-secret", full_page=False)
    await dialog.get_by_role("button", name="Done").click()
    await expect(secret_box).to_have_value("")  # not kept on the page once the dialog closes

    row = page.locator("#webhooks-body tr")
    await expect(row).to_have_count(1)
    await expect(row.locator(".webhook-url")).to_have_text(receiver.url)
    await expect(row.locator(".zone-tag")).to_have_text(["File deleted", "File stored"])
    await row.get_by_role("button", name=f"Send a test event to {receiver.url}").click()
    log = page.locator("#deliveries-body tr")
    await expect(log).to_have_count(1)
    await expect(log.first.locator(".badge")).to_have_text("Delivered", timeout=20_000)  # (read again while pending)
    await expect(log.first).to_contain_text("Test event")
    await shot(page, "desktop-31-webhook-deliveries", full_page=False)
    calls = receiver.taken()
    assert len(calls) == 1 and verify(secret, calls[0]["headers"], calls[0]["body"])["type"] == "webhook.test"
    await page.locator("#deliveries-dialog .dialog-foot").get_by_role("button", name="Close").click()

    await row.get_by_role("button", name=f"Delete the webhook to {receiver.url}").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#webhooks-empty")).to_be_visible()
    alice = await api.login("alice")
    assert (await alice.get("/api/v1/webhooks")).expect(200)["items"] == []


async def test_an_administrator_is_offered_the_fleets_events_and_a_refused_address_is_said(
    api: Api, context: BrowserContext
) -> None:
    page = await on_the_webhooks_view(api, context, "root", admin=True)
    await page.get_by_role("button", name="Add webhook").click()
    dialog = page.locator("#webhook-dialog")
    await expect(dialog.locator("legend")).to_have_text(["Your files", "The fleet"])
    await dialog.get_by_label("Server down").check()
    await dialog.get_by_label("Address").fill("http://169.254.169.254/latest/meta-data/")
    await dialog.get_by_role("button", name="Add webhook").click()
    await expect(dialog.locator("#webhook-error")).to_contain_text("link-local or cloud metadata address")
    await expect(dialog.get_by_label("Address")).to_have_attribute("aria-invalid", "true")
    await dialog.get_by_label("Address").fill("")
    await dialog.get_by_label("File stored").uncheck()
    await dialog.get_by_label("Server down").uncheck()
    await dialog.get_by_role("button", name="Add webhook").click()
    await expect(dialog.locator("#webhook-error")).to_have_text(
        "Give an address starting with https:// or http:// and at least one event."
    )
    root = await api.login("root")
    assert (await root.get("/api/v1/webhooks")).expect(200)["items"] == []


async def test_the_webhooks_view_at_desktop_and_phone_width(api: Api, browser: Browser, receiver: Receiver) -> None:
    alice = await api.user("alice")
    for events in (["file.stored", "link.downloaded"], ["file.deleted"]):
        made = (await alice.post("/api/v1/webhooks", json={"url": receiver.url, "events": events})).expect(201)
        (await alice.post(f"/api/v1/webhooks/{made['id']}/test")).expect(202)

    async def both_taken() -> bool:
        return len(receiver.taken()) == 2

    await wait_for(both_taken, "both test events delivered")
    for size, options in SIZES.items():
        ctx = await browser.new_context(**options)
        try:
            page = await ctx.new_page()
            await sign_in(page, api, "alice")
            await page.get_by_role("link", name="Webhooks").click()
            await expect(page.locator("#webhooks-body tr")).to_have_count(2)
            await shot(page, f"{size}-32-webhooks")
            await page.locator("#webhooks-body tr").first.get_by_role("button", name=re.compile("^Deliveries")).click()
            await expect(page.locator("#deliveries-body .badge")).to_have_text(["Delivered"])
            await shot(page, f"{size}-33-webhook-deliveries", full_page=False)
        finally:
            await ctx.close()
