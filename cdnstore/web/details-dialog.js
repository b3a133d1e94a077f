// @ts-check
// A file's details: size, type, status, zone, times, checksum and, for those who may see the servers,
// where its copies are; read afresh from the daemon when the dialog opens.

import { say } from "./feedback.js";
import { download } from "./files-view.js";
import { $, badge, formatBytes, fullTime, h, plural } from "./ui.js";

/** @typedef {import("./types.js").File} File */

const TONES = { present: "ok", pending: "warn", corrupt: "danger" };
const WORDS = { present: "Present", pending: "Copying", corrupt: "Being replaced" };

export class DetailsDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ share: (file: File) => void, fresh: (file: File) => void }} on `fresh`: the file as the
   *   daemon has it now (read when the dialog opens), for the list to show it too
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    this.dialog = $("#details-dialog", HTMLDialogElement);
    this.copies = $("#details-copies");
    this.opened = 0; // which opening an answer belongs to: a late one for another file is dropped
  }

  /** Show the file as the list has it at once, then as the daemon has it now (the list may be behind:
   * a copy made, its SHA-256 learnt meanwhile). @param {File} file */
  open(file) {
    const opening = ++this.opened;
    this.copies.replaceChildren();
    this.show(file);
    this.dialog.showModal();
    this.session.get(`/files/${file.id}`).then((fresh) => {
      if (opening !== this.opened || !this.dialog.open) return;
      this.show(fresh);
      this.on.fresh(fresh);
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
      ["SHA-256", file.sha256 ? h("code", { class: "hash" }, file.sha256) : "Not known yet"],
    ];
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
