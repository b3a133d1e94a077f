// @ts-check
// The trash view: deleted files the daemon keeps for files.trash_days, each with when it goes for good;
// restore one (it comes back with its share links) or delete it for good at once.

import { ApiError } from "./api.js";
import { say, toastError } from "./feedback.js";
import { PagedList } from "./paged-list.js";
import { $, confirmDialog, fileKind, formatBytes, formatTime, fullTime, h, timeEl, toast } from "./ui.js";

/** @typedef {import("./types.js").TrashedFile} TrashedFile */

const PAGE = 50;

export class TrashView {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ changed: () => void }} on told when a file is back among the files, or gone for good
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {number | null} files.trash_days, as the last list said (null: not asked yet) */
    this.days = null;
    /** @type {PagedList<TrashedFile>} */
    this.list = new PagedList("trash", async (cursor) => {
      const page = await session.get("/trash", { limit: PAGE, cursor });
      this.learnDays(page.trash_days);
      return page;
    }, (file) => this.row(file));
  }

  /** Signed out: nothing of the list stays. */
  reset() {
    this.list.reset();
  }

  load() {
    return this.list.load();
  }

  /** How long the daemon keeps deleted files (the files view words its confirmation with it). */
  async loadDays() {
    try {
      this.learnDays((await this.session.get("/trash", { limit: 1 })).trash_days);
    } catch {
      // The confirmation then speaks of the trash without a number of days.
    }
  }

  /** @param {number} days */
  learnDays(days) {
    this.days = days;
    $("#trash-summary").textContent = days
      ? `Deleted files stay here ${days === 1 ? "a day" : `${days} days`}: restore them, or delete them for good.`
      : "Deleted files are removed at once: nothing waits here.";
  }

  /** @param {TrashedFile} file */
  row(file) {
    const tr = h("tr", { dataset: { id: file.id } },
      h("td", { class: "primary-cell", "data-label": "Name" },
        h("span", { class: "file-name" },
          h("span", { class: "file-icon", "aria-hidden": "true" }, fileKind(file.name)), h("span", { class: "name" }, file.name))),
      h("td", { class: "num", "data-label": "Size" }, formatBytes(file.size)),
      h("td", { class: "when", "data-label": "Deleted" }, timeEl(file.deleted_at)),
      h("td", { class: "when", "data-label": "Gone for good" },
        h("time", { datetime: file.purge_at, title: fullTime(file.purge_at) }, formatTime(file.purge_at))),
      h("td", { class: "actions" }));
    const actions = /** @type {HTMLElement} */ (tr.lastElementChild);
    const error = h("p", { class: "error", role: "alert" });
    actions.append(
      this.session.can("can_delete_file") && h("button", {
        type: "button", class: "small", "aria-label": `Restore ${file.name}`, onclick: () => this.restore(file, tr, error),
      }, "Restore"),
      this.session.can("can_delete_file") && h("button", {
        type: "button", class: "small ghost link-danger", "aria-label": `Delete ${file.name} for good`, onclick: () => this.purge(file, tr),
      }, "Delete for good"),
      error);
    return tr;
  }

  /** @param {TrashedFile} file @param {HTMLElement} tr @param {HTMLElement} error */
  async restore(file, tr, error) {
    error.textContent = "";
    try {
      await this.session.post(`/trash/${file.id}/restore`);
      tr.remove();
      this.list.updateEmpty();
      toast(`Restored “${file.name}”`);
      this.on.changed();
    } catch (err) {
      if (err instanceof ApiError && err.code === "name_taken") {
        error.textContent = `You have another file named “${file.name}” now: rename or delete it first.`;
      } else {
        error.textContent = say(err);
      }
    }
  }

  /** @param {TrashedFile} file @param {HTMLElement} tr */
  async purge(file, tr) {
    if (!(await confirmDialog(`Delete “${file.name}” for good?`, "It is removed from every server now. This cannot be undone."))) return;
    try {
      await this.session.del(`/trash/${file.id}`);
      tr.remove();
      this.list.updateEmpty();
      toast(`Deleted “${file.name}” for good`);
      this.on.changed(); // (the usage goes down)
    } catch (err) {
      toastError(err);
    }
  }
}
