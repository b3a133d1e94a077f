// @ts-check
// The dialog that adds a webhook: its address and the events it gets (the fleet's only for
// administrators); once added, it shows the webhook's signing secret, the one time the daemon gives it out.

import { ApiError } from "./api.js";
import { say, whileBusy } from "./feedback.js";
import { $, copyText, h } from "./ui.js";

/** @typedef {import("./types.js").Webhook} Webhook */

/** The events a webhook may subscribe to, in words: a user's own, then the fleet's (administrators). */
export const EVENTS = {
  own: {
    "file.stored": "File stored",
    "file.deleted": "File deleted",
    "link.downloaded": "Downloaded through a share link",
    "upload_request.received": "File received through an upload request",
  },
  fleet: {
    "server.down": "Server down",
    "server.up": "Server up again",
    "replica.corrupt": "Corrupt copy found",
    "job.failed": "Job out of attempts",
  },
};

/** An event's words ("webhook.test": the test event). @param {string} event */
export function eventName(event) {
  /** @type {Record<string, string>} */
  const all = { ...EVENTS.own, ...EVENTS.fleet, "webhook.test": "Test event" };
  return all[event] || event;
}

export class WebhookDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ added: (hook: Webhook) => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    this.dialog = $("#webhook-dialog", HTMLDialogElement);
    this.form = $("#webhook-form", HTMLFormElement);
    this.created = $("#webhook-created");
    this.error = $("#webhook-error");
    this.url = $("#wh-url", HTMLInputElement);
    this.events = $("#wh-events");
    this.secret = $("#wh-secret", HTMLInputElement);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("#wh-secret-copy").addEventListener("click", async () => {
      const ok = await copyText(this.secret.value, this.secret);
      $("#wh-copied").textContent = ok ? "Copied to the clipboard." : "Select the secret and copy it.";
    });
    // The secret leaves the page with the dialog: it is not kept anywhere.
    this.dialog.addEventListener("close", () => { this.secret.value = ""; });
  }

  open() {
    this.form.reset();
    this.form.hidden = false;
    this.created.hidden = true;
    this.error.textContent = "";
    this.url.removeAttribute("aria-invalid");
    this.events.removeAttribute("aria-invalid");
    const admin = !!this.session.user && this.session.user.is_admin;
    /** @type {[string, Record<string, string>][]} */
    const groups = admin ? [["Your files", EVENTS.own], ["The fleet", EVENTS.fleet]] : [["Your files", EVENTS.own]];
    this.events.replaceChildren(...groups.map(([group, events]) => h("fieldset", { class: "perm-group" },
      h("legend", {}, group),
      Object.entries(events).map(([value, words]) => h("label", {},
        h("input", { type: "checkbox", name: "events", value, checked: value === "file.stored" }), words)))));
    this.dialog.showModal();
    this.url.focus();
  }

  async submit() {
    const url = this.url.value.trim();
    const events = [...this.events.querySelectorAll("input:checked")].map((el) => /** @type {HTMLInputElement} */ (el).value);
    const badUrl = !/^https?:\/\/\S+$/.test(url);
    const missing = [];
    if (badUrl) missing.push("an address starting with https:// or http://");
    if (!events.length) missing.push("at least one event");
    invalid(this.url, badUrl);
    invalid(this.events, !events.length);
    if (missing.length) {
      this.error.textContent = `Give ${missing.join(" and ")}.`;
      return;
    }
    try {
      /** @type {Webhook & { secret: string }} */
      const made = await whileBusy($("#webhook-save", HTMLButtonElement), () => this.session.post("/webhooks", { url, events }), { label: "Checking the address…" });
      this.form.hidden = true;
      this.created.hidden = false;
      this.secret.value = made.secret;
      $("#wh-copied").textContent = "";
      this.secret.select();
      this.on.added(made);
    } catch (err) {
      this.error.textContent = say(err);
      const problem = err instanceof ApiError ? err.problem : {};
      invalid(this.url, names(problem, "url"));
      invalid(this.events, problem.code === "forbidden" || names(problem, "events"));
    }
  }
}

/** Does the daemon's problem name this field (its own, or one of its validation errors')?
 * @param {any} problem @param {string} field */
function names(problem, field) {
  const named = [problem.field, ...(problem.errors || []).map((/** @type {any} */ e) => e.field)];
  return named.some((f) => String(f).split(".")[0] === field);
}

/** Mark a field the daemon (or the form) refused, or clear the mark. @param {HTMLElement} el @param {boolean} bad */
function invalid(el, bad) {
  if (bad) el.setAttribute("aria-invalid", "true");
  else el.removeAttribute("aria-invalid");
}
