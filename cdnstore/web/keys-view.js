// @ts-check
// The API keys view: the signed-in user's keys for scripts and tools. Make one (a name, what it may do, when
// it expires), copy its secret (shown once: the daemon keeps only its hash), see when each was last used,
// revoke one (it stops working at once).

import { say, toastError, whileBusy } from "./feedback.js";
import { $, badge, confirmDialog, copyText, fullTime, h, timeEl, toast } from "./ui.js";

/** @typedef {import("./types.js").ApiKey} ApiKey */

const PAGE = 50;
/** @type {[string, string][]} the scopes, each with what it allows */
const SCOPES = [
  ["read", "Read: list and download files, see links"],
  ["upload", "Upload: upload and rename files"],
  ["delete", "Delete files"],
  ["share", "Share: make and revoke links"],
  ["admin", "Administer: servers, users and jobs"],
];

export class KeysView {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    /** @type {string | null} */
    this.cursor = null;
    this.body = $("#keys-body");
    this.empty = $("#keys-empty");
    this.form = $("#key-form", HTMLFormElement);
    this.name = $("#key-name", HTMLInputElement);
    this.expiry = $("#key-expiry", HTMLSelectElement);
    this.scopes = $("#key-scopes");
    this.error = $("#key-error");
    this.made = $("#key-made");
    this.secret = $("#key-secret", HTMLInputElement);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    $("#key-copy").addEventListener("click", async () => {
      const ok = await copyText(this.secret.value, this.secret);
      $("#key-copied").textContent = ok ? "Copied to the clipboard." : "Select the key and copy it.";
    });
    $("#keys-more-button").addEventListener("click", () => this.load({ more: true }));
  }

  /** Signed in: the scopes this user may give (administrators also `admin`), `read` ticked. */
  signedIn() {
    const admin = !!this.session.user && this.session.user.is_admin;
    this.scopes.replaceChildren(
      ...SCOPES.filter(([scope]) => scope !== "admin" || admin).map(([scope, label]) =>
        h("label", {}, h("input", { type: "checkbox", name: "scope", value: scope, checked: scope === "read" }), label)),
    );
  }

  reset() {
    this.body.replaceChildren();
    this.hideSecret();
  }

  hideSecret() {
    this.made.hidden = true;
    this.secret.value = "";
    $("#key-copied").textContent = "";
  }

  async load({ more = false } = {}) {
    try {
      const page = await this.session.get("/me/keys", { limit: PAGE, cursor: more ? this.cursor : undefined });
      if (!more) this.body.replaceChildren();
      this.body.append(...page.items.map((/** @type {ApiKey} */ key) => this.row(key)));
      this.cursor = page.next_cursor;
      $("#keys-more").hidden = !this.cursor;
      this.empty.hidden = this.body.children.length > 0;
    } catch (err) {
      toastError(err);
    }
  }

  /** @param {ApiKey} key */
  row(key) {
    const revoke = h("button", { type: "button", class: "small link-danger", "aria-label": `Revoke ${key.name}` }, "Revoke");
    revoke.addEventListener("click", () => this.revoke(key));
    const expired = key.expires_at !== null && new Date(key.expires_at).getTime() <= Date.now();
    return h("tr", { dataset: { key: key.id } },
      h("td", { "data-label": "Name", class: "primary-cell" }, h("strong", {}, key.name)),
      h("td", { "data-label": "Scopes" }, h("span", { class: "scopes" }, key.scopes.map((s) => badge(s, s === "admin" ? "danger" : "info")))),
      h("td", { "data-label": "Key", class: "mono" }, `${key.prefix}…`),
      h("td", { "data-label": "Last used" }, key.last_used_at ? timeEl(key.last_used_at) : h("span", { class: "muted" }, "Never")),
      h("td", { "data-label": "Expires", title: fullTime(key.expires_at) },
        key.expires_at === null ? h("span", { class: "muted" }, "Never") : expired ? badge("Expired", "danger") : timeEl(key.expires_at)),
      h("td", { class: "actions" }, revoke));
  }

  async create() {
    this.error.textContent = "";
    this.hideSecret();
    const name = this.name.value.trim();
    const scopes = [...this.scopes.querySelectorAll("input:checked")].map((el) => /** @type {HTMLInputElement} */ (el).value);
    if (!name) return this.invalid("Give the key a name, to tell it apart later.", this.name);
    if (!scopes.length) return this.invalid("Tick at least one thing the key may do.");
    const body = { name, scopes, ...(this.expiry.value ? { expires_in: Number(this.expiry.value) } : {}) };
    try {
      /** @type {import("./types.js").ApiKeyCreated} */
      const key = await whileBusy($("#key-create", HTMLButtonElement), () => this.session.post("/me/keys", body), { label: "Creating…" });
      this.secret.value = key.secret;
      $("#key-made-name").textContent = key.name;
      this.made.hidden = false;
      this.secret.select();
      this.form.reset();
      this.signedIn();
      this.body.prepend(this.row(key));
      this.empty.hidden = true;
    } catch (err) {
      this.invalid(say(err));
    }
  }

  /** @param {string} message @param {HTMLElement} [field] */
  invalid(message, field) {
    this.error.textContent = message;
    if (field) field.focus();
  }

  /** @param {ApiKey} key */
  async revoke(key) {
    const sure = await confirmDialog("Revoke this key?", `“${key.name}” stops working at once, for every script that uses it.`, "Revoke");
    if (!sure) return;
    try {
      await this.session.del(`/me/keys/${key.id}`);
      this.body.querySelector(`tr[data-key="${key.id}"]`)?.remove();
      this.empty.hidden = this.body.children.length > 0;
      toast(`Key “${key.name}” revoked`);
    } catch (err) {
      toastError(err);
    }
  }
}
