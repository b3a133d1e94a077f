// @ts-check
// The share dialog of a file: a new link (password, expiry, download limit) with its QR code, and the
// file's links, each to copy or revoke.

import { say, toastError, whileBusy } from "./feedback.js";
import { qrSvg } from "./qr.js";
import { $, badge, copyText, formatCount, formatTime, fullTime, h, plural, toast } from "./ui.js";

/** @typedef {import("./types.js").File} File */
/** @typedef {import("./types.js").Link} Link */

export class ShareDialog {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    /** @type {File | null} */
    this.file = null;
    this.dialog = $("#share-dialog", HTMLDialogElement);
    this.form = $("#share-form", HTMLFormElement);
    this.error = $("#share-error");
    this.result = $("#share-result");
    this.url = $("#share-url", HTMLInputElement);
    this.copied = $("#share-copied");
    this.links = $("#share-links");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    $("#share-copy").addEventListener("click", async () => {
      const ok = await copyText(this.url.value, this.url);
      this.copied.textContent = ok ? "Copied to the clipboard." : "Select the link and copy it.";
    });
  }

  /** @param {File} file */
  open(file) {
    this.file = file;
    $("#share-title").textContent = `Share “${file.name}”`;
    this.form.reset();
    this.form.hidden = !this.session.can("can_add_filesharelink");
    this.error.textContent = "";
    this.result.hidden = true;
    this.copied.textContent = "";
    this.links.replaceChildren();
    this.dialog.showModal();
    this.loadLinks();
  }

  async loadLinks() {
    const file = this.file;
    if (!file) return;
    try {
      const answer = await this.session.get(`/files/${file.id}/links`);
      if (this.file !== file) return; // another file's dialog by now
      /** @type {Link[]} */
      const items = answer.items || [];
      this.links.replaceChildren(...items.map((link) => this.linkItem(link)));
      $("#share-links-empty").hidden = items.length > 0;
    } catch (err) {
      this.links.replaceChildren(h("li", { class: "error" }, say(err)));
    }
  }

  /** @param {Link} link */
  linkItem(link) {
    const tags = [];
    // A link that no longer works says so first: the owner may want to revoke it or make a new one.
    const expired = !!link.expires_at && new Date(link.expires_at) <= new Date();
    if (link.max_downloads && link.downloads >= link.max_downloads) tags.push(badge("Used up", "danger", true));
    else if (expired) tags.push(badge("Expired", "danger", true));
    if (link.has_password) tags.push(badge("Password", "info", true));
    tags.push(badge(link.expires_at ? `${expired ? "Expired" : "Expires"} ${formatTime(link.expires_at)}` : "No expiry", "", true));
    tags.push(badge(link.max_downloads
      ? `${formatCount(link.downloads)} / ${plural(link.max_downloads, "download")}`
      : plural(link.downloads, "download"), "", true));
    const copy = h("button", { type: "button", class: "small", "aria-label": `Copy link created ${fullTime(link.created_at)}` }, "Copy");
    copy.addEventListener("click", async () => {
      if (await copyText(link.url)) toast("Link copied");
    });
    const revoke = this.session.can("can_delete_filesharelink") && h("button", {
      type: "button", class: "small ghost link-danger", "aria-label": `Revoke link created ${fullTime(link.created_at)}`,
      onclick: () => this.revoke(link),
    }, "Revoke");
    return h("li", { class: "link-item", dataset: { id: link.id } },
      h("div", { class: "meta" }, h("span", { class: "url", title: link.url }, link.url), h("div", { class: "tags" }, tags)),
      copy, revoke);
  }

  /** @param {Link} link */
  async revoke(link) {
    try {
      await this.session.del(`/files/${link.file_id}/links/${link.id}`);
      toast("Link revoked");
      if (this.url.value === link.url) this.result.hidden = true;
      this.loadLinks();
    } catch (err) {
      toastError(err);
    }
  }

  /** The new link's options, or a sentence saying what is wrong with them. */
  options() {
    /** @type {{ password?: string, expires_in?: number, max_downloads?: number }} */
    const body = {};
    const password = $("#share-password", HTMLInputElement).value;
    if (password) body.password = password;
    const expiry = $("#share-expiry", HTMLSelectElement).value;
    if (expiry) body.expires_in = Number(expiry);
    const limit = $("#share-limit", HTMLInputElement).value.trim();
    if (limit) {
      const n = Number(limit);
      if (!Number.isInteger(n) || n < 1) return "The download limit must be a whole number of at least 1.";
      body.max_downloads = n;
    }
    return body;
  }

  async create() {
    const file = this.file;
    if (!file) return;
    this.error.textContent = "";
    const body = this.options();
    if (typeof body === "string") {
      this.error.textContent = body;
      return;
    }
    try {
      /** @type {Link} */
      const link = await whileBusy($("#share-create", HTMLButtonElement), () => this.session.post(`/files/${file.id}/links`, body));
      this.url.value = link.url;
      $("#share-qr").replaceChildren(qrSvg(link.url));
      this.result.hidden = false;
      this.copied.textContent = link.has_password
        ? "Link created. Anyone with it and the password can download the file."
        : "Link created. Anyone with it can download the file.";
      $("#share-password", HTMLInputElement).value = "";
      this.loadLinks();
    } catch (err) {
      this.error.textContent = say(err);
    }
  }
}
