// @ts-check
// The files view: the caller's files, newest first, searchable by name, each row with its actions
// (details, download, share, rename, delete) and, for those who may see the servers, its copies. The
// copies come with the list (GET /files?include=servers): one call for the page, none per row. Files
// shared by an active link are marked; ticked files can be shared in one link or deleted together.
// What can still change by itself (an upload not stored yet, copies still pending, a SHA-256 not yet
// known) is looked at again, row by row, sooner at first and then less often, until it settles or a few
// minutes have passed without a change; a row changes in place (what has the focus keeps it).

import { ApiError } from "./api.js";
import { expiryNote } from "./expiry.js";
import { say, toastError } from "./feedback.js";
import { $, badge, confirmDialog, fileKind, formatBytes, h, plural, timeEl, toast } from "./ui.js";

/** @typedef {import("./types.js").File} File */

const PAGE = 50;
const SEARCH_AFTER_MS = 250;
const LOOK_FIRST_MS = 1000; // the first look again at what can still change; each next one waits twice as long
const LOOK_AT_MOST_MS = 30000; // ... up to this
const LOOK_FOR_MS = 5 * 60 * 1000; // and none after this long without a change
const LOOK_AT_ONCE = 20; // rows looked at again in one round (the newest)
const HASH_SOON_MS = 60 * 60 * 1000; // a SHA-256 still unknown this long after the last change waits for a scrub

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

/** Whether a file may still change by itself: not stored yet, copies still being made, or its SHA-256 not
 * known yet (cdnstore learns it with the first copy, or one read of the bytes).
 * @param {File} file @param {boolean} seesCopies */
function unsettled(file, seesCopies) {
  if (file.status !== "stored") return true;
  if (!file.sha256 && Date.now() - Date.parse(file.updated_at) < HASH_SOON_MS) return true;
  return seesCopies && !!file.servers && file.servers.some((r) => r.status !== "present");
}

/** What a row shows of its file: the row is drawn again only when this (or how many links share the
 * file) changed. @param {File} file */
function shown(file) {
  const copies = file.servers ? file.servers.map((r) => `${r.server.name}:${r.status}`).join(",") : null;
  return JSON.stringify([file.name, file.size, file.status, file.created_at, file.received_via, file.expires_at, copies]);
}

/** One file's row, built once; a change of its file updates the cells that show it, in place. */
class FileRow {
  /** @param {FilesView} view @param {File} file */
  constructor(view, file) {
    this.view = view;
    this.file = file;
    this.editing = false;
    this.drawn = "";
    const { session, on } = view;
    this.tr = h("tr", { dataset: { id: file.id } });
    this.tick = h("input", { type: "checkbox", onchange: () => view.select(this.file.id, this.tick.checked) });
    this.selectCell = h("td", { class: "select-col", "data-label": "Select", hidden: !view.selects() }, this.tick);
    this.nameCell = h("td", { class: "primary-cell", "data-label": "Name" });
    this.icon = h("span", { class: "file-icon", "aria-hidden": "true" });
    this.nameText = h("span", { class: "name" });
    // The name opens the file's details (a button, so the keyboard reaches it too).
    this.nameButton = h("button", { type: "button", class: "file-name", onclick: () => on.details(this.file) },
      this.icon, this.nameText);
    // Marked when an active link shares the file: a way to those links (in the row only then).
    this.sharedMark = h("a", { class: "badge info shared", href: "#links" }, "Shared");
    this.nameLine = h("div", { class: "name-line" }, this.nameButton);
    this.notes = h("span", { class: "file-notes" }); // "Received", "Expires in 3 days" (in the row only then)
    this.sizeCell = h("td", { class: "num", "data-label": "Size" });
    this.statusCell = h("td", { class: "status-cell", "data-label": "Status" });
    this.copiesCell = h("td", { class: "copies-col", "data-label": "Copies", hidden: !view.seesCopies() });
    this.addedCell = h("td", { "data-label": "Added" });
    this.download = session.can("can_view_file")
      ? h("button", { type: "button", class: "small", onclick: () => download(session, this.file) }, "Download") : null;
    this.share = session.can("can_view_filesharelink")
      ? h("button", { type: "button", class: "small", onclick: () => on.share(this.file) }, "Share") : null;
    this.rename = session.can("can_rename_file")
      ? h("button", { type: "button", class: "small", onclick: () => this.startRename() }, "Rename") : null;
    this.remove = session.can("can_delete_file")
      ? h("button", { type: "button", class: "small ghost link-danger", onclick: () => this.view.remove(this) }, "Delete") : null;
    const actions = h("td", { class: "actions" }, this.download, this.share, this.rename, this.remove);
    this.tr.append(this.selectCell, this.nameCell, this.sizeCell, this.statusCell, this.copiesCell, this.addedCell, actions);
    this.nameCell.append(this.nameLine);
    this.render();
  }

  /** Show `file` (a newer answer about the same file): only what changed is drawn again. @param {File} file */
  update(file) {
    this.file = file;
    this.render();
  }

  render() {
    const f = this.file;
    this.tick.checked = this.view.selected.has(f.id);
    const links = this.view.shared.get(f.id) || 0;
    const now = shown(f) + links;
    if (now === this.drawn) return;
    this.drawn = now;
    this.tr.dataset.status = f.status;
    this.tick.setAttribute("aria-label", `Select ${f.name}`);
    this.nameButton.title = `Details of ${f.name}`;
    this.icon.textContent = fileKind(f.name);
    this.nameText.textContent = f.name;
    this.sharedMark.title = `Shared by ${plural(links, "active link")}`;
    if (links > 0) this.nameLine.append(this.sharedMark);
    else this.sharedMark.remove();
    const notes = [f.received_via ? badge("Received", "info", true) : null, expiryNote(f.expires_at)]
      .filter(/** @returns {n is HTMLElement} */ (n) => n !== null);
    this.notes.replaceChildren(...notes);
    if (notes.length) this.nameLine.after(this.notes);
    else this.notes.remove();
    this.sizeCell.textContent = formatBytes(f.size);
    this.statusCell.replaceChildren(statusBadge(f));
    this.addedCell.replaceChildren(timeEl(f.created_at));
    const ready = f.status === "stored";
    for (const [button, verb] of /** @type {[HTMLButtonElement | null, string][]} */ (
      [[this.download, "Download"], [this.share, "Share"], [this.rename, "Rename"], [this.remove, "Delete"]])) {
      if (!button) continue;
      button.setAttribute("aria-label", `${verb} ${f.name}`);
      if (verb === "Download" || verb === "Share") button.disabled = !ready;
    }
    if (this.view.seesCopies()) this.copiesCell.replaceChildren(copiesOf(f));
  }

  startRename() {
    if (this.editing) return;
    this.editing = true;
    const file = this.file;
    const inputId = `rename-${file.id}`;
    const input = h("input", { id: inputId, value: file.name, autocomplete: "off", spellcheck: "false" });
    const error = h("p", { class: "error", role: "alert" });
    const stop = () => {
      this.editing = false;
      this.nameCell.replaceChildren(this.nameLine);
      this.drawn = ""; // (the notes come back with the drawing)
      this.render();
    };
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
   * @param {{ details: (file: File) => void, share: (file: File) => void, shareMany: (files: File[]) => void,
   *   removed?: () => void, trashDays?: () => number | null, listed?: (files: File[]) => void }} on
   *   `trashDays`: how long deleted files are kept, when known; `listed`: each page of the list as it arrives
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {Map<string, FileRow>} */
    this.rows = new Map();
    /** @type {Set<string>} the ids of the ticked files */
    this.selected = new Set();
    /** @type {Map<string, number>} file id -> how many active links share it */
    this.shared = new Map();
    this.sharedTicket = 0;
    /** @type {string | null} */
    this.cursor = null;
    this.q = "";
    this.loading = 0; // the ticket of the latest list call: an older answer is dropped
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.searchTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} the next look at what can still change */
    this.lookTimer = undefined;
    this.lookWait = LOOK_FIRST_MS;
    this.lastChange = 0;
    this.shown = false;
    this.body = $("#files-body");
    this.empty = $("#files-empty");
    this.more = $("#files-more");
    $("#file-search", HTMLInputElement).addEventListener("input", (event) => {
      clearTimeout(this.searchTimer);
      const input = /** @type {HTMLInputElement} */ (event.target);
      this.searchTimer = setTimeout(() => {
        this.q = input.value.trim();
        this.load({ marks: false }); // (which files are shared did not change)
      }, SEARCH_AFTER_MS);
    });
    $("#files-more-button").addEventListener("click", () => this.load({ more: true }));
    this.all = $("#select-all", HTMLInputElement);
    this.all.addEventListener("change", () => {
      for (const id of this.rows.keys()) this.select(id, this.all.checked, false);
      this.selectionChanged();
    });
    $("#share-selected").addEventListener("click", () => this.shareSelected());
    $("#delete-selected").addEventListener("click", () => this.deleteSelected());
    $("#clear-selection").addEventListener("click", () => {
      this.selected.clear();
      this.selectionChanged();
    });
  }

  /** Whether the user can do anything with ticked files (share them in one link, or delete them). */
  selects() {
    return this.session.can("can_add_filesharelink") || this.session.can("can_delete_file");
  }

  /** @param {string} id @param {boolean} on @param {boolean} [tell] */
  select(id, on, tell = true) {
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    if (tell) this.selectionChanged();
  }

  /** The ticks, the "select all" box and the bar of what can be done with the ticked files. */
  selectionChanged() {
    for (const row of this.rows.values()) row.tick.checked = this.selected.has(row.file.id);
    const n = this.selected.size;
    const shown = this.rows.size;
    this.all.checked = n > 0 && n === shown;
    this.all.indeterminate = n > 0 && n < shown;
    $("#selection-bar").hidden = n === 0;
    $("#selection-count").textContent = `${plural(n, "file")} selected`;
    $("#share-selected").hidden = !this.session.can("can_add_filesharelink");
    $("#delete-selected").hidden = !this.session.can("can_delete_file");
  }

  /** The ticked files that are stored (only those can be shared), in the list's order. */
  ticked() {
    return [...this.rows.values()].map((r) => r.file).filter((f) => this.selected.has(f.id));
  }

  shareSelected() {
    const files = this.ticked();
    const ready = files.filter((f) => f.status === "stored");
    if (ready.length < files.length) toast(`${plural(files.length - ready.length, "file is", "files are")} still uploading: shared without ${files.length - ready.length === 1 ? "it" : "them"}.`);
    if (!ready.length) return;
    if (ready.length === 1) this.on.share(ready[0]);
    else this.on.shareMany(ready);
  }

  async deleteSelected() {
    const files = this.ticked();
    if (!files.length) return;
    const title = files.length === 1 ? `Delete “${files[0].name}”?` : `Delete ${plural(files.length, "file")}?`;
    if (!(await confirmDialog(title, "They are removed from every server, and their share links stop working. This cannot be undone."))) return;
    let deleted = 0;
    for (const file of files) { // one at a time: a failure stops nothing else, and says which file
      try {
        await this.session.del(`/files/${file.id}`);
        this.forget(file.id);
        deleted += 1;
      } catch (err) {
        toastError(err);
      }
    }
    this.selectionChanged();
    this.updateEmpty();
    if (deleted) toast(`Deleted ${plural(deleted, "file")}`);
    if (this.on.removed) this.on.removed();
  }

  /** Its row goes (deleted, or gone meanwhile); the caller says so (updateEmpty, selectionChanged).
   * @param {string} id */
  forget(id) {
    const row = this.rows.get(id);
    if (row) row.tr.remove();
    this.rows.delete(id);
    this.selected.delete(id);
  }

  /** Which files an active link shares (every page of GET /links?state=active), to mark them. */
  async loadShared() {
    if (!this.session.can("can_view_filesharelink")) return;
    const ticket = ++this.sharedTicket;
    /** @type {Map<string, number>} */
    const found = new Map();
    try {
      /** @type {string | null} */
      let cursor = null;
      do {
        const page = await this.session.get("/links", { state: "active", limit: 1000, cursor: cursor || undefined });
        for (const link of page.items) for (const f of link.files) found.set(f.id, (found.get(f.id) || 0) + 1);
        cursor = page.next_cursor;
      } while (cursor && ticket === this.sharedTicket);
    } catch {
      return; // the marks are a hint: the list stands without them
    }
    if (ticket !== this.sharedTicket) return;
    this.shared = found;
    for (const row of this.rows.values()) row.render();
  }

  seesCopies() {
    return this.session.can("can_view_cdnserver");
  }

  /** Hidden (another view): nothing is looked at again until it shows. */
  stop() {
    this.shown = false;
    clearTimeout(this.lookTimer);
    this.lookTimer = undefined;
  }

  /** Signed out: nothing of the last user stays. */
  reset() {
    clearTimeout(this.searchTimer);
    this.stop();
    this.clear();
    this.shared.clear();
  }

  clear() {
    this.rows.clear();
    this.selected.clear();
    this.body.replaceChildren();
    this.selectionChanged();
  }

  /** The first page (again), or with `more` the next one; `marks`: which files are shared, asked again. */
  async load({ more = false, marks = true } = {}) {
    this.shown = true;
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
      this.selectionChanged();
      if (!more && marks) this.loadShared(); // (rows made meanwhile show the marks already known)
      if (this.on.listed) this.on.listed(page.items);
    } catch (err) {
      toastError(err);
    }
  }

  updateEmpty() {
    for (const el of document.querySelectorAll("#files-view .select-col")) /** @type {HTMLElement} */ (el).hidden = !this.selects();
    const empty = this.rows.size === 0;
    this.empty.hidden = !empty;
    $("#files-table").hidden = empty;
    this.empty.textContent = this.q
      ? `No file name contains “${this.q}”.`
      : this.session.can("can_upload_file") ? "No files yet. Upload some above to get started." : "No files yet.";
  }

  /**
   * Add a file's row, or update it in place. A stored file that comes without its copies (from an upload,
   * the details) keeps those it had until its own are looked up, for its row alone.
   * @param {File} file
   */
  upsert(file, { atEnd = false } = {}) {
    const existing = this.rows.get(file.id);
    if (existing) {
      existing.update({ ...file, servers: file.servers || existing.file.servers });
    } else {
      const row = new FileRow(this, file);
      this.rows.set(file.id, row);
      if (atEnd) this.body.append(row.tr);
      else this.body.prepend(row.tr);
      this.updateEmpty();
      if (!atEnd) this.selectionChanged(); // ("select all" no longer holds every file shown)
    }
    if (file.status === "stored" && !file.servers && this.seesCopies()) this.loadCopies(file.id);
    this.changed();
  }

  /** A file read or changed elsewhere (the details dialog): its row shows it, if the list has one.
   * @param {File} file */
  updated(file) {
    if (this.rows.has(file.id)) this.upsert(file);
  }

  /** @param {string} id */
  async loadCopies(id) {
    try {
      const answer = await this.session.get(`/files/${id}/servers`);
      const row = this.rows.get(id);
      if (!row) return;
      row.update({ ...row.file, servers: answer.items });
      this.changed();
    } catch {
      // The row keeps its "—": the copies are a hint, not the file.
    }
  }

  /** Something changed: what can still change is looked at again soon, then less and less often. */
  changed() {
    this.lastChange = Date.now();
    this.lookWait = LOOK_FIRST_MS;
    this.lookLater();
  }

  lookLater() {
    clearTimeout(this.lookTimer);
    this.lookTimer = undefined;
    if (!this.shown || !this.unsettledRows().length || Date.now() - this.lastChange > LOOK_FOR_MS) return;
    this.lookTimer = setTimeout(() => this.lookAgain(), this.lookWait);
  }

  /** @returns {FileRow[]} the rows whose file may still change (not one being renamed) */
  unsettledRows() {
    return [...this.rows.values()].filter((row) => !row.editing && unsettled(row.file, this.seesCopies()));
  }

  async lookAgain() {
    const rows = this.unsettledRows().slice(0, LOOK_AT_ONCE);
    const changes = await Promise.all(rows.map((row) => this.lookAt(row)));
    if (changes.some(Boolean)) {
      this.lastChange = Date.now();
      this.lookWait = LOOK_FIRST_MS;
    } else {
      this.lookWait = Math.min(2 * this.lookWait, LOOK_AT_MOST_MS);
    }
    this.lookLater();
  }

  /** The row's file as the daemon has it now; whether anything of it changed. @param {FileRow} row */
  async lookAt(row) {
    const { id } = row.file;
    const was = row.file;
    try {
      /** @type {File} */
      const file = await this.session.get(`/files/${id}`);
      if (this.seesCopies() && file.status === "stored") file.servers = (await this.session.get(`/files/${id}/servers`)).items;
      // (Told of something newer meanwhile, an expiry saved in the details say: this answer may be older.)
      if (this.rows.get(id) !== row || row.editing || row.file !== was) return false;
      const before = shown(row.file) + row.file.sha256;
      row.update(file);
      return shown(file) + file.sha256 !== before;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) return false; // the next round looks again
      this.forget(id); // deleted meanwhile, or an upload given up
      this.updateEmpty();
      this.selectionChanged();
      return true;
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
      this.forget(row.file.id);
      this.selectionChanged();
      this.updateEmpty();
      toast(kept ? `Moved “${name}” to the trash` : `Deleted “${name}”`);
      if (this.on.removed) this.on.removed();
    } catch (err) {
      toastError(err);
    }
  }
}
