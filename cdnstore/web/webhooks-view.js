// @ts-check
// The webhooks screen: the user's webhooks (address, events, when added), each with its deliveries, a
// test event and a delete; "Add webhook" opens the dialog that shows the new one's secret once.

import { ApiError } from "./api.js";
import { DeliveriesDialog } from "./deliveries-dialog.js";
import { toastError } from "./feedback.js";
import { $, confirmDialog, h, plural, timeEl, toast } from "./ui.js";
import { WebhookDialog, eventName } from "./webhook-dialog.js";

/** @typedef {import("./types.js").Webhook} Webhook */

export class WebhooksView {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    this.body = $("#webhooks-body");
    this.ticket = 0; // the latest list call: an older answer is dropped
    this.deliveries = new DeliveriesDialog(session);
    this.dialog = new WebhookDialog(session, { added: () => this.load() });
    $("#add-webhook").addEventListener("click", () => this.dialog.open());
  }

  /** Signed out: nothing of the list stays. */
  reset() {
    this.ticket += 1;
    this.body.replaceChildren();
    this.deliveries.close();
  }

  async load() {
    const ticket = ++this.ticket;
    try {
      /** @type {Webhook[]} */
      const hooks = [];
      /** @type {string | undefined} */
      let cursor;
      do {
        const page = await this.session.get("/webhooks", { limit: 1000, cursor });
        hooks.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      if (ticket !== this.ticket) return;
      this.body.replaceChildren(...hooks.map((hook) => this.row(hook)));
      $("#webhooks-empty").hidden = hooks.length > 0;
      $("#webhooks-summary").textContent = hooks.length
        ? `${plural(hooks.length, "webhook")}: each call is signed with its secret and tried again for a day until it is taken.`
        : "Addresses cdnstore calls when something happens, each call signed and retried for a day.";
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) toastError(err);
    }
  }

  /** @param {Webhook} hook */
  row(hook) {
    const url = hook.url;
    return h("tr", { dataset: { id: hook.id } },
      h("td", { class: "primary-cell", "data-label": "Address" }, h("span", { class: "webhook-url", title: url }, url)),
      h("td", { "data-label": "Events" }, h("span", { class: "event-list" },
        hook.events.map((event) => h("span", { class: "zone-tag" }, eventName(event))))),
      h("td", { class: "when", "data-label": "Added" }, timeEl(hook.created_at)),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "small", "aria-label": `Deliveries to ${url}`, onclick: () => this.deliveries.open(hook) }, "Deliveries"),
        h("button", { type: "button", class: "small", "aria-label": `Send a test event to ${url}`, onclick: () => this.deliveries.open(hook, { test: true }) }, "Test"),
        h("button", { type: "button", class: "small ghost link-danger", "aria-label": `Delete the webhook to ${url}`, onclick: () => this.remove(hook) }, "Delete")));
  }

  /** @param {Webhook} hook */
  async remove(hook) {
    const text = `${hook.url} gets no more calls, and its delivery log goes with it. This cannot be undone.`;
    if (!(await confirmDialog("Delete this webhook?", text))) return;
    try {
      await this.session.del(`/webhooks/${hook.id}`);
      toast("Webhook deleted");
      await this.load();
    } catch (err) {
      toastError(err);
    }
  }
}
