// @ts-check
// The share dialog: a new link (password, expiry, download limit) with its QR code, to one file or to
// several chosen in the file list (one link, one page listing them, "download all" as a ZIP); and, for one
// file, the links that share it, each to copy, edit in place or revoke.

import { say, toastError, whileBusy } from "./feedback.js";
import { linkBadges, linkEditor, linkFiles } from "./link-editor.js";
import { qrSvg } from "./qr.js";
import { $, copyText, formatBytes, fullTime, h, plural, toast } from "./ui.js";

/** @typedef {import("./types.js").File} File */
/** @typedef {import("./types.js").Link} Link */

export class ShareDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ changed?: () => void }} [on] changed: a link was made, edited or revoked
   */
  constructor(session, on = {}) {
    this.session = session;
    this.on = on;
    /** @type {File[]} the files the new link is for */
    this.files = [];
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

  /** One file: a new link to it, and the links that share it. @param {File} file */
  open(file) {
    this.show([file], `Share “${file.name}”`);
    this.loadLinks();
  }

  /** Several files (a selection in the file list): one new link to all of them. @param {File[]} files */
  openMany(files) {
    const total = files.reduce((sum, f) => sum + f.size, 0);
    this.show(files, `Share ${plural(files.length, "file")}`);
    $("#share-many").replaceChildren(
      h("p", { class: "muted small-text" }, `${formatBytes(total)} in all. The link's page lists them, each to download alone, or all as one ZIP.`),
      h("ul", { class: "share-file-list" }, files.map((f) => h("li", {}, h("span", { class: "name" }, f.name), h("span", { class: "muted" }, formatBytes(f.size))))));
  }

  /** @param {File[]} files @param {string} title */
  show(files, title) {
    this.files = files;
    const many = files.length > 1;
    $("#share-title").textContent = title;
    this.form.reset();
    this.form.hidden = !this.session.can("can_add_filesharelink");
    this.error.textContent = "";
    this.result.hidden = true;
    this.copied.textContent = "";
    this.links.replaceChildren();
    $("#share-many").hidden = !many;
    $("#share-links-section").hidden = many;
    $("#share-links-empty").hidden = true;
    this.dialog.showModal();
  }

  async loadLinks() {
    const [file] = this.files;
    if (!file || this.files.length > 1) return;
    try {
      const answer = await this.session.get(`/files/${file.id}/links`);
      if (this.files[0] !== file) return; // another file's dialog by now
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
    const when = fullTime(link.created_at);
    const copy = h("button", { type: "button", class: "small", "aria-label": `Copy link created ${when}` }, "Copy");
    copy.addEventListener("click", async () => {
      if (await copyText(link.url)) toast("Link copied");
    });
    const item = h("li", { class: "link-item", dataset: { id: link.id } });
    const edit = this.session.can("can_add_filesharelink") && h("button", {
      type: "button", class: "small ghost", "aria-label": `Edit link created ${when}`,
      onclick: () => this.edit(item, link),
    }, "Edit");
    const revoke = this.session.can("can_delete_filesharelink") && h("button", {
      type: "button", class: "small ghost link-danger", "aria-label": `Revoke link created ${when}`,
      onclick: () => this.revoke(link),
    }, "Revoke");
    const many = link.file_id === null && h("span", { class: "muted small-text" }, linkFiles(link));
    item.replaceChildren(
      h("div", { class: "meta" }, h("span", { class: "url", title: link.url }, link.url), many, h("div", { class: "tags" }, linkBadges(link))),
      copy, edit, revoke);
    return item;
  }

  /** The link's line becomes its editor until saved or cancelled. @param {HTMLElement} item @param {Link} link */
  edit(item, link) {
    const editing = h("li", { class: "link-item editing", dataset: { id: link.id } });
    const editor = linkEditor(this.session, link, {
      saved: (changed) => {
        toast("Link changed");
        editing.replaceWith(this.linkItem(changed));
        this.changed();
      },
      cancel: () => editing.replaceWith(this.linkItem(link)),
    });
    editing.append(h("span", { class: "url", title: link.url }, link.url), editor);
    item.replaceWith(editing);
    /** @type {HTMLElement | null} */ (editor.querySelector("input, select"))?.focus();
  }

  /** @param {Link} link */
  async revoke(link) {
    try {
      await this.session.del(`/links/${link.id}`);
      toast("Link revoked");
      if (this.url.value === link.url) this.result.hidden = true;
      this.loadLinks();
      this.changed();
    } catch (err) {
      toastError(err);
    }
  }

  changed() {
    if (this.on.changed) this.on.changed();
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
    const files = this.files;
    if (!files.length) return;
    this.error.textContent = "";
    const body = this.options();
    if (typeof body === "string") {
      this.error.textContent = body;
      return;
    }
    try {
      const made = () => (files.length === 1
        ? this.session.post(`/files/${files[0].id}/links`, body)
        : this.session.post("/links", { ...body, file_ids: files.map((f) => f.id) }));
      /** @type {Link} */
      const link = await whileBusy($("#share-create", HTMLButtonElement), made);
      this.url.value = link.url;
      $("#share-qr").replaceChildren(qrSvg(link.url));
      this.result.hidden = false;
      const what = files.length === 1 ? "the file" : "the files";
      this.copied.textContent = link.has_password
        ? `Link created. Anyone with it and the password can download ${what}.`
        : `Link created. Anyone with it can download ${what}.`;
      $("#share-password", HTMLInputElement).value = "";
      this.loadLinks();
      this.changed();
    } catch (err) {
      this.error.textContent = say(err);
    }
  }
}
