// @ts-check
// The dialog that makes an upload request or changes one: a message, a password (set, kept or removed),
// how long it stays open, and the most files and bytes it takes.

import { say, whileBusy } from "./feedback.js";
import { $ } from "./ui.js";

/** @typedef {import("./types.js").UploadRequest} UploadRequest */

const MB = 1000 * 1000;

export class RequestDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ saved: (request: UploadRequest, created: boolean) => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {UploadRequest | null} the request being changed; null: a new one */
    this.editing = null;
    this.dialog = $("#request-dialog", HTMLDialogElement);
    this.form = $("#request-form", HTMLFormElement);
    this.error = $("#request-error");
    this.message = $("#req-message", HTMLTextAreaElement);
    this.password = $("#req-password", HTMLInputElement);
    this.noPassword = $("#req-no-password", HTMLInputElement);
    this.expiry = $("#req-expiry", HTMLSelectElement);
    this.maxFiles = $("#req-max-files", HTMLInputElement);
    this.maxMb = $("#req-max-mb", HTMLInputElement);
    this.noPassword.addEventListener("change", () => { this.password.disabled = this.noPassword.checked; });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  /** @param {UploadRequest | null} request null: a new one */
  open(request) {
    this.editing = request;
    this.form.reset();
    this.error.textContent = "";
    this.password.disabled = false;
    const keep = /** @type {HTMLOptionElement} */ (this.expiry.options[0]);
    keep.hidden = !request;
    $("#request-title").textContent = request ? "Change the upload request" : "New upload request";
    $("#request-save").textContent = request ? "Save" : "Create request";
    $("#req-password-hint").hidden = !(request && request.has_password);
    $("#req-no-password-line").hidden = !(request && request.has_password);
    if (request) {
      this.message.value = request.message || "";
      this.maxFiles.value = request.max_files === null ? "" : String(request.max_files);
      this.maxMb.value = request.max_bytes === null ? "" : String(request.max_bytes / MB);
      this.expiry.value = "";
    } else {
      this.expiry.value = "604800";
    }
    this.dialog.showModal();
    this.message.focus();
  }

  /** The request's fields, or a sentence saying what is wrong with them. @returns {Record<string, any> | string} */
  fields() {
    const editing = this.editing;
    /** @type {Record<string, any>} */
    const body = {};
    const message = this.message.value.trim();
    if (message || (editing && editing.message)) body.message = message || null;
    if (this.noPassword.checked) body.password = null;
    else if (this.password.value) body.password = this.password.value;
    const expiry = this.expiry.value;
    if (expiry === "never") body.expires_in = null;
    else if (expiry) body.expires_in = Number(expiry);
    const files = this.maxFiles.value.trim();
    if (files) {
      const n = Number(files);
      if (!Number.isInteger(n) || n < 1) return "The most files must be a whole number of at least 1.";
      body.max_files = n;
    } else if (editing && editing.max_files !== null) body.max_files = null;
    const mb = this.maxMb.value.trim();
    if (mb) {
      const bytes = Math.round(Number(mb) * MB);
      if (!Number.isFinite(bytes) || bytes < 1) return "The most megabytes must be a positive number.";
      body.max_bytes = bytes;
    } else if (editing && editing.max_bytes !== null) body.max_bytes = null;
    return body;
  }

  async save() {
    this.error.textContent = "";
    const body = this.fields();
    if (typeof body === "string") {
      this.error.textContent = body;
      return;
    }
    const editing = this.editing;
    if (editing && !Object.keys(body).length) {
      this.dialog.close();
      return;
    }
    try {
      /** @type {UploadRequest} */
      const saved = await whileBusy($("#request-save", HTMLButtonElement), () => (editing
        ? this.session.patch(`/upload-requests/${editing.id}`, body)
        : this.session.post("/upload-requests", body)));
      this.dialog.close();
      this.on.saved(saved, !editing);
    } catch (err) {
      this.error.textContent = say(err);
    }
  }
}
