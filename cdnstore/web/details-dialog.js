// @ts-check
// A file's details: a preview of images, audio, video, PDF and plain text, then size, type, status, zone,
// times, when it expires (changed here), checksum and, for those who may see the servers, where its copies are;
// read afresh from the daemon when the dialog opens.

import { expiresAtOf, expiryOptions } from "./expiry.js";
import { say, whileBusy } from "./feedback.js";
import { download } from "./files-view.js";
import { previewOf } from "./preview.js";
import { $, badge, formatBytes, fullTime, h, plural, previewKind, toast } from "./ui.js";

/** @typedef {import("./types.js").File} File */

const TONES = { present: "ok", pending: "warn", corrupt: "danger" };
const WORDS = { present: "Present", pending: "Copying", corrupt: "Being replaced" };

export class DetailsDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ share: (file: File) => void, changed: (file: File) => void }} on `changed`: the file as the
   *   daemon has it now (read when the dialog opens, or with the expiry changed here), for the list to show it too
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    this.dialog = $("#details-dialog", HTMLDialogElement);
    this.copies = $("#details-copies");
    this.preview = $("#details-preview");
    this.opened = 0; // which opening an answer belongs to: a late one for another file is dropped
    this.touched = false; // the expiry changed or being changed here: the afresh read, older, is dropped
    // Closed: the preview goes (a video or audio stops playing).
    this.dialog.addEventListener("close", () => this.preview.replaceChildren());
  }

  /** Show the file as the list has it at once, then as the daemon has it now (the list may be behind:
   * a copy made, its SHA-256 learnt meanwhile). @param {File} file */
  open(file) {
    const opening = ++this.opened;
    this.touched = false;
    this.copies.replaceChildren();
    this.show(file);
    this.dialog.showModal();
    this.showPreview(file, opening);
    this.session.get(`/files/${file.id}`).then((fresh) => {
      // (Not over an expiry being chosen, nor after one saved: this answer was asked before it.)
      if (opening !== this.opened || !this.dialog.open || this.touched) return;
      this.show(fresh);
      if (!previewable(file) && previewable(fresh)) this.showPreview(fresh, opening); // stored meanwhile
      this.on.changed(fresh);
    }, (err) => {
      if (opening === this.opened) $("#details-list").append(h("dt", {}, "Now"), h("dd", { class: "error" }, say(err)));
    });
  }

  /** @param {File} file */
  show(file) {
    const { session, dialog } = this;
    $("#details-title").textContent = file.name;
    /** @type {[string, string | Node][]} */
    const rows = [
      ["Size", `${formatBytes(file.size)}${file.size >= 1000 ? ` (${plural(file.size, "byte")})` : ""}`],
      ["Type", file.content_type || "—"],
      ["Status", file.status === "stored" ? "Stored" : "Uploading (not yet stored)"],
      ["Zone", file.zone || "—"],
      ["Added", fullTime(file.created_at)],
      ["Changed", fullTime(file.updated_at)],
      ["Expires", this.expiry(file)],
      ["SHA-256", file.sha256 ? h("code", { class: "hash" }, file.sha256) : "Not known yet"],
    ];
    if (file.received_via) rows.splice(5, 0, ["Received", "Through one of your upload requests"]);
    $("#details-list").replaceChildren(...rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    const ready = file.status === "stored";
    $("#details-actions").replaceChildren(
      h("button", { type: "button", onclick: () => dialog.close() }, "Close"),
      session.can("can_view_filesharelink") && h("button", {
        type: "button", disabled: !ready, onclick: () => { dialog.close(); this.on.share(file); },
      }, "Share"),
      session.can("can_view_file") && h("button", {
        type: "button", class: "primary", disabled: !ready, onclick: () => download(session, file),
      }, "Download"));
    const canSeeCopies = session.can("can_view_cdnserver") && ready;
    $("#details-copies-section").hidden = !canSeeCopies;
    if (canSeeCopies) this.loadCopies(file);
    else this.copies.replaceChildren();
  }

  /** A preview of a stored file the page can show (previewKind): a download asked inline, shown here. It
   * counts as a download, as what it shows is the file. @param {File} file @param {number} opening */
  async showPreview(file, opening) {
    const kind = this.session.can("can_view_file") ? previewable(file) : null;
    this.preview.hidden = !kind;
    this.preview.replaceChildren();
    if (!kind) return;
    this.preview.append(h("p", { class: "muted small-text" }, "Loading the preview…"));
    try {
      const answer = await this.session.get(`/files/${file.id}/download`, { inline: "true" });
      if (opening !== this.opened || !this.dialog.open) return; // another file's dialog, or closed, by now
      this.preview.replaceChildren(previewOf(kind, answer.url, file.name));
    } catch (err) {
      if (opening === this.opened) this.preview.replaceChildren(h("p", { class: "error" }, `No preview: ${say(err)}`));
    }
  }

  /** When the file expires, with a choice of another expiry for those who may change files.
   * @param {File} file @returns {Node} */
  expiry(file) {
    const when = () => (file.expires_at ? `${fullTime(file.expires_at)} (then into the trash)` : "Never");
    const text = h("span", { class: "expiry-now" }, when());
    if (!this.session.can("can_rename_file")) return text;
    const select = h("select", { "aria-label": `When ${file.name} expires` }, expiryOptions(this.session.user, "Change…"));
    const save = h("button", { type: "submit", class: "small" }, "Save");
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "expiry-form" }, text, select, save, error);
    select.addEventListener("change", () => { this.touched = true; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const asked = expiresAtOf(select.value);
      if (asked === undefined) return;
      error.textContent = "";
      try {
        const changed = await whileBusy(save, () => this.session.patch(`/files/${file.id}`, { expires_at: asked }));
        file = { ...file, ...changed };
        text.textContent = when();
        select.value = "";
        toast(changed.expires_at ? `“${file.name}” expires ${fullTime(changed.expires_at)}` : `“${file.name}” no longer expires`);
        this.on.changed(changed);
      } catch (err) {
        error.textContent = say(err);
      }
    });
    return form;
  }

  /** Asked afresh (not the list's): the dialog is where one looks at the copies closely. @param {File} file */
  async loadCopies(file) {
    const list = this.copies;
    try {
      const answer = await this.session.get(`/files/${file.id}/servers`);
      /** @type {import("./types.js").Replica[]} */
      const items = answer.items;
      list.replaceChildren(...items.map((r) => h("li", {},
        h("span", {}, h("strong", {}, r.server.name), h("span", { class: "muted" }, ` · ${r.server.location} (${r.server.zone})`)),
        badge(WORDS[r.status] || r.status, TONES[r.status] || ""))));
      if (!items.length) list.replaceChildren(h("li", { class: "muted" }, "No server holds this file."));
    } catch (err) {
      list.replaceChildren(h("li", { class: "error" }, say(err)));
    }
  }
}

/** The kind of preview a file can have once stored (previewKind), else null. @param {File} file */
function previewable(file) {
  return file.status === "stored" ? previewKind(file.content_type) : null;
}
