// @ts-check
// A webhook's delivery log, newest first: each event's status (pending, delivered, failed after a day of
// attempts), its attempts, and when it was delivered or what went wrong last; "Send a test event" queues one.
// While a delivery shown is pending the log is read again every few seconds, until the dialog closes.

import { toastError, whileBusy } from "./feedback.js";
import { $, badge, formatTime, fullTime, h, timeEl } from "./ui.js";
import { eventName } from "./webhook-dialog.js";

/** @typedef {import("./types.js").Webhook} Webhook */
/** @typedef {import("./types.js").Delivery} Delivery */

const PAGE = 50;
const REFRESH_MS = 2000;

/** @param {Delivery} d */
function statusBadge(d) {
  if (d.status === "delivered") return badge("Delivered", "ok");
  if (d.status === "failed") return badge("Failed", "danger");
  return badge(d.attempts ? "Retrying" : "Pending", d.attempts ? "warn" : "info");
}

/** When it was delivered, when it is tried next, and the last error. @param {Delivery} d */
function details(d) {
  const parts = [];
  if (d.delivered_at) parts.push(h("span", { title: fullTime(d.delivered_at) }, `Delivered ${formatTime(d.delivered_at)}`));
  if (d.status === "pending" && d.attempts && d.next_attempt_at) {
    parts.push(h("span", { title: fullTime(d.next_attempt_at) }, `Next attempt ${formatTime(d.next_attempt_at)}`));
  }
  if (d.status === "failed") parts.push(h("span", {}, "Given up after a day of attempts"));
  if (d.last_error) parts.push(h("span", { class: "job-error" }, d.last_error));
  return h("span", { class: "delivery-details" }, parts);
}

/** @param {Delivery} d */
function deliveryRow(d) {
  return h("tr", { dataset: { id: d.id, status: d.status } },
    h("td", { class: "when", "data-label": "When" }, timeEl(d.created_at)),
    h("td", { "data-label": "Event" }, eventName(d.event)),
    h("td", { "data-label": "Status" }, statusBadge(d)),
    h("td", { class: "num", "data-label": "Attempts" }, String(d.attempts)),
    h("td", { class: "primary-cell", "data-label": "Details" }, details(d)));
}

export class DeliveriesDialog {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    /** @type {Webhook | null} */
    this.hook = null;
    /** @type {string | null} */
    this.cursor = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.ticket = 0; // the latest read: an older answer (another webhook's, or a slow one) is dropped
    this.dialog = $("#deliveries-dialog", HTMLDialogElement);
    this.body = $("#deliveries-body");
    this.dialog.addEventListener("close", () => this.stop());
    $("#deliveries-more-button").addEventListener("click", () => this.load({ more: true }));
    const test = $("#deliveries-test", HTMLButtonElement);
    test.addEventListener("click", () => whileBusy(test, () => this.sendTest()));
  }

  /** @param {Webhook} hook @param {{ test?: boolean }} [options] test: send a test event at once */
  async open(hook, { test = false } = {}) {
    this.stop();
    this.hook = hook;
    this.cursor = null;
    this.body.replaceChildren();
    $("#deliveries-url").textContent = hook.url;
    $("#deliveries-empty").hidden = true;
    $("#deliveries-more").hidden = true;
    this.dialog.showModal();
    if (test) await this.sendTest();
    else await this.load();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
    this.stop();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.ticket += 1;
  }

  async sendTest() {
    const hook = this.hook;
    if (!hook) return;
    try {
      await this.session.post(`/webhooks/${hook.id}/test`);
      await this.load();
    } catch (err) {
      toastError(err);
    }
  }

  /** The newest page (or, with `more`, the next one); read again while one shown is pending. */
  async load({ more = false } = {}) {
    const hook = this.hook;
    if (!hook || !this.dialog.open) return;
    clearTimeout(this.timer);
    const ticket = ++this.ticket;
    try {
      const page = await this.session.get(`/webhooks/${hook.id}/deliveries`, { limit: PAGE, cursor: more ? this.cursor : undefined });
      if (ticket !== this.ticket) return;
      /** @type {Delivery[]} */
      const items = page.items;
      if (more) this.body.append(...items.map(deliveryRow));
      else this.body.replaceChildren(...items.map(deliveryRow));
      this.cursor = page.next_cursor;
      $("#deliveries-more").hidden = !this.cursor;
      $("#deliveries-empty").hidden = this.body.children.length > 0;
      // Only the newest page is watched (where pending deliveries are), and only until more are shown.
      if (!more && items.some((d) => d.status === "pending")) this.timer = setTimeout(() => this.load(), REFRESH_MS);
    } catch (err) {
      if (ticket === this.ticket) toastError(err);
    }
  }
}
