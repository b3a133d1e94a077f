// @ts-check
// What an upload request received: its link (to copy, with its QR code) and the files that came through
// it (GET /files?received_via=<id>), each to download or open in the file's details.

import { say } from "./feedback.js";
import { download } from "./files-view.js";
import { qrSvg } from "./qr.js";
import { $, badge, copyText, formatBytes, h, timeEl } from "./ui.js";

/** @typedef {import("./types.js").File} File */
/** @typedef {import("./types.js").UploadRequest} UploadRequest */

export class ReceivedDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ details: (file: File) => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {UploadRequest | null} */
    this.request = null;
    this.dialog = $("#received-dialog", HTMLDialogElement);
    this.list = $("#received-files");
    this.url = $("#received-url", HTMLInputElement);
    $("#received-copy").addEventListener("click", async () => {
      const ok = await copyText(this.url.value, this.url);
      $("#received-copied").textContent = ok ? "Copied to the clipboard." : "Select the link and copy it.";
    });
  }

  /** @param {UploadRequest} request */
  open(request) {
    this.request = request;
    $("#received-title").textContent = request.message ? `“${request.message}”` : "Upload request";
    this.url.value = request.url;
    $("#received-qr").replaceChildren(qrSvg(request.url));
    $("#received-copied").textContent = "";
    this.list.replaceChildren(h("li", { class: "muted" }, "Looking…"));
    this.dialog.showModal();
    this.load();
  }

  async load() {
    const request = this.request;
    if (!request) return;
    try {
      const page = await this.session.get("/files", { received_via: request.id, limit: 1000 });
      if (this.request !== request) return; // another request's dialog by now
      /** @type {File[]} */
      const files = page.items;
      this.list.replaceChildren(...files.map((file) => this.item(file)));
      if (!files.length) this.list.replaceChildren(h("li", { class: "muted" }, "Nothing yet (or what came was deleted)."));
    } catch (err) {
      this.list.replaceChildren(h("li", { class: "error" }, say(err)));
    }
  }

  /** @param {File} file */
  item(file) {
    const ready = file.status === "stored";
    return h("li", { dataset: { id: file.id } },
      h("span", { class: "received-file" },
        h("button", { type: "button", class: "file-name", onclick: () => { this.dialog.close(); this.on.details(file); } },
          h("span", { class: "name" }, file.name)),
        h("span", { class: "muted small-text" }, formatBytes(file.size), " · ", timeEl(file.created_at))),
      ready
        ? h("button", { type: "button", class: "small", "aria-label": `Download ${file.name}`, onclick: () => download(this.session, file) }, "Download")
        : badge("Arriving", "warn"));
  }
}
