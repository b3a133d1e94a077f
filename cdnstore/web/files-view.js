// @ts-check
// The files view: the caller's files, newest first, searchable by name, each row with its actions
// (details, download, share, rename, delete) and, for those who may see the servers, its copies. The
// copies come with the list (GET /files?include=servers): one call for the page, none per row.

import { expiryNote } from "./expiry.js";
import { say, toastError } from "./feedback.js";
import { $, badge, confirmDialog, fileKind, formatBytes, h, plural, timeEl, toast } from "./ui.js";

/** @typedef {import("./types.js").File} File */

const PAGE = 50;
const SEARCH_AFTER_MS = 250;

/** Start a file's download in the browser. @param {import("./api.js").Session} session @param {File} file */
export async function download(session, file) {
  try {
    const answer = await session.get(`/files/${file.id}/download`);
    toast(`Downloading “${file.name}” from ${answer.server.location}`);
    window.location.assign(answer.url);
  } catch (err) {
    toastError(err);
  }
}

/** @param {File} file */
function statusBadge(file) {
  return file.status === "stored" ? badge("Stored", "ok") : badge("Uploading", "warn");
}

/** The copies cell: how many servers hold the file, how many are still copying it. @param {File} file */
function copiesOf(file) {
  if (file.status !== "stored" || !file.servers) return h("span", { class: "muted" }, "—");
  const present = file.servers.filter((r) => r.status === "present");
  const pending = file.servers.length - present.length;
  const where = file.servers.map((r) => `${r.server.location} (${r.status})`).join(", ");
  return h("span", { title: where },
    plural(present.length, "copy", "copies"),
    pending ? h("span", { class: "muted" }, ` + ${pending} pending`) : null);
}

/** One file's row; it renders itself again when its file changes. */
class FileRow {
  /** @param {FilesView} view @param {File} file */
  constructor(view, file) {
    this.view = view;
    this.file = file;
    this.editing = false;
    this.tr = h("tr", { dataset: { id: file.id } });
    this.nameCell = h("td", { class: "primary-cell", "data-label": "Name" });
    this.sizeCell = h("td", { class: "num", "data-label": "Size" });
    this.statusCell = h("td", { class: "status-cell", "data-label": "Status" });
    this.copiesCell = h("td", { class: "copies-col", "data-label": "Copies", hidden: !view.seesCopies() });
    this.addedCell = h("td", { "data-label": "Added" });
    this.actions = h("td", { class: "actions" });
    this.tr.append(this.nameCell, this.sizeCell, this.statusCell, this.copiesCell, this.addedCell, this.actions);
    this.render();
  }

  render() {
    const f = this.file;
    const { session, on } = this.view;
    this.tr.dataset.status = f.status;
    if (!this.editing) {
      // The name opens the file's details (a button, so the keyboard reaches it too).
      const notes = [
        f.received_via ? badge("Received", "info", true) : null,
        expiryNote(f.expires_at),
      ].filter(Boolean);
      this.nameCell.replaceChildren(h("button", {
        type: "button", class: "file-name", title: `Details of ${f.name}`, onclick: () => on.details(this.file),
      }, h("span", { class: "file-icon", "aria-hidden": "true" }, fileKind(f.name)), h("span", { class: "name" }, f.name)),
      ...(notes.length ? [h("span", { class: "file-notes" }, notes)] : []));
    }
    this.sizeCell.textContent = formatBytes(f.size);
    this.statusCell.replaceChildren(statusBadge(f));
    this.addedCell.replaceChildren(timeEl(f.created_at));
    const ready = f.status === "stored";
    this.actions.replaceChildren(
      session.can("can_view_file") && h("button", {
        type: "button", class: "small", disabled: !ready, "aria-label": `Download ${f.name}`, onclick: () => download(session, f),
      }, "Download"),
      session.can("can_view_filesharelink") && h("button", {
        type: "button", class: "small", disabled: !ready, "aria-label": `Share ${f.name}`, onclick: () => on.share(this.file),
      }, "Share"),
      session.can("can_rename_file") && h("button", {
        type: "button", class: "small ghost", "aria-label": `Rename ${f.name}`, onclick: () => this.startRename(),
      }, "Rename"),
      session.can("can_delete_file") && h("button", {
        type: "button", class: "small ghost link-danger", "aria-label": `Delete ${f.name}`, onclick: () => this.view.remove(this),
      }, "Delete"),
    );
    if (this.view.seesCopies()) this.copiesCell.replaceChildren(copiesOf(f));
  }

  startRename() {
    if (this.editing) return;
    this.editing = true;
    const file = this.file;
    const inputId = `rename-${file.id}`;
    const input = h("input", { id: inputId, value: file.name, autocomplete: "off", spellcheck: "false" });
    const error = h("p", { class: "error", role: "alert" });
    const stop = () => { this.editing = false; this.render(); };
    const form = h("form", { class: "rename-form", "aria-label": `Rename ${file.name}` },
      h("label", { for: inputId, class: "sr-only" }, `New name for ${file.name}`),
      input,
      h("button", { type: "submit", class: "small primary" }, "Save"),
      h("button", { type: "button", class: "small", onclick: stop }, "Cancel"),
      error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name || name === this.file.name) { stop(); return; }
      try {
        // A new name leaves the file where it was: it keeps the copies it came with.
        const renamed = await this.view.session.patch(`/files/${this.file.id}`, { name });
        this.file = { ...renamed, servers: this.file.servers };
        toast(`Renamed to “${name}”`);
        stop();
      } catch (err) {
        error.textContent = say(err);
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    });
    input.addEventListener("keydown", (event) => { if (event.key === "Escape") stop(); });
    this.nameCell.replaceChildren(form);
    input.focus();
    const dot = file.name.lastIndexOf(".");
    input.setSelectionRange(0, dot > 0 ? dot : file.name.length);
  }
}

export class FilesView {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ details: (file: File) => void, share: (file: File) => void, removed?: () => void,
   *   trashDays?: () => number | null }} on `trashDays`: how long deleted files are kept, when known
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {Map<string, FileRow>} */
    this.rows = new Map();
    /** @type {string | null} */
    this.cursor = null;
    this.q = "";
    this.loading = 0; // the ticket of the latest list call: an older answer is dropped
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.searchTimer = undefined;
    this.body = $("#files-body");
    this.empty = $("#files-empty");
    this.more = $("#files-more");
    $("#file-search", HTMLInputElement).addEventListener("input", (event) => {
      clearTimeout(this.searchTimer);
      const input = /** @type {HTMLInputElement} */ (event.target);
      this.searchTimer = setTimeout(() => {
        this.q = input.value.trim();
        this.load();
      }, SEARCH_AFTER_MS);
    });
    $("#files-more-button").addEventListener("click", () => this.load({ more: true }));
  }

  seesCopies() {
    return this.session.can("can_view_cdnserver");
  }

  /** Signed out: nothing of the last user stays. */
  reset() {
    clearTimeout(this.searchTimer);
    this.clear();
  }

  clear() {
    this.rows.clear();
    this.body.replaceChildren();
  }

  /** The first page (again), or with `more` the next one. */
  async load({ more = false } = {}) {
    const ticket = ++this.loading;
    try {
      const page = await this.session.get("/files", {
        limit: PAGE, q: this.q, cursor: more ? this.cursor : undefined, include: this.seesCopies() ? "servers" : undefined,
      });
      if (ticket !== this.loading) return; // a newer search answered first
      if (!more) this.clear();
      for (const file of page.items) this.upsert(file, { atEnd: true });
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.updateEmpty();
    } catch (err) {
      toastError(err);
    }
  }

  updateEmpty() {
    const empty = this.rows.size === 0;
    this.empty.hidden = !empty;
    $("#files-table").hidden = empty;
    this.empty.textContent = this.q
      ? `No file name contains “${this.q}”.`
      : this.session.can("can_upload_file") ? "No files yet. Upload some above to get started." : "No files yet.";
  }

  /**
   * Add a file's row, or refresh it in place. A stored file that comes without its copies (from an
   * upload) has them looked up, for its row alone.
   * @param {File} file
   */
  upsert(file, { atEnd = false } = {}) {
    const existing = this.rows.get(file.id);
    if (existing) {
      existing.file = file;
      existing.render();
    } else {
      const row = new FileRow(this, file);
      this.rows.set(file.id, row);
      if (atEnd) this.body.append(row.tr);
      else this.body.prepend(row.tr);
      this.updateEmpty();
    }
    if (file.status === "stored" && !file.servers && this.seesCopies()) this.loadCopies(file.id);
  }

  /** @param {string} id */
  async loadCopies(id) {
    try {
      const answer = await this.session.get(`/files/${id}/servers`);
      const row = this.rows.get(id);
      if (!row) return;
      row.file = { ...row.file, servers: answer.items };
      row.render();
    } catch {
      // The row keeps its "—": the copies are a hint, not the file.
    }
  }

  /** @param {FileRow} row */
  async remove(row) {
    const name = row.file.name;
    const days = this.on.trashDays ? this.on.trashDays() : null;
    const kept = row.file.status === "stored" && days !== 0; // (a file without content is removed at once)
    const text = !kept
      ? "It is removed from every server, and its share links stop working. This cannot be undone."
      : `It goes to the trash${days ? ` for ${days === 1 ? "a day" : `${days} days`}` : ""}, where you can restore it; `
        + "its share links stop working until then.";
    if (!(await confirmDialog(`Delete “${name}”?`, text))) return;
    try {
      await this.session.del(`/files/${row.file.id}`);
      row.tr.remove();
      this.rows.delete(row.file.id);
      this.updateEmpty();
      toast(kept ? `Moved “${name}” to the trash` : `Deleted “${name}”`);
      if (this.on.removed) this.on.removed();
    } catch (err) {
      toastError(err);
    }
  }
}
