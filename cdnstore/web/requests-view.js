// @ts-check
// The upload requests view: the user's requests (links through which anyone sends them files), newest
// first, each with its state, what it received of its limits and when it closes; make one, copy its link,
// see what arrived, change, close or reopen, and delete it.

import { toastError } from "./feedback.js";
import { PagedList } from "./paged-list.js";
import { ReceivedDialog } from "./received-dialog.js";
import { RequestDialog } from "./request-dialog.js";
import { $, badge, confirmDialog, copyText, formatBytes, formatCount, formatTime, h, plural, toast } from "./ui.js";

/** @typedef {import("./types.js").UploadRequest} UploadRequest */

const PAGE = 50;

/** Its state in a badge: what a sender would meet. @param {UploadRequest} r */
function stateBadge(r) {
  if (r.closed_at) return badge("Closed", "");
  if (!r.is_open) return badge("Expired", "danger");
  if (r.max_files !== null && r.files >= r.max_files) return badge("Full", "warn");
  if (r.max_bytes !== null && r.bytes >= r.max_bytes) return badge("Full", "warn");
  return badge("Open", "ok");
}

/** "2 of 10 files · 4.1 MB of 100 MB". @param {UploadRequest} r */
function receivedText(r) {
  const files = r.max_files === null ? plural(r.files, "file") : `${formatCount(r.files)} of ${plural(r.max_files, "file")}`;
  const bytes = r.max_bytes === null ? formatBytes(r.bytes) : `${formatBytes(r.bytes)} of ${formatBytes(r.max_bytes)}`;
  return `${files} · ${bytes}`;
}

export class RequestsView {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ details: (file: import("./types.js").File) => void }} on
   */
  constructor(session, on) {
    this.session = session;
    /** @type {PagedList<UploadRequest>} */
    this.list = new PagedList("requests", (cursor) => session.get("/upload-requests", { limit: PAGE, cursor }), (r) => this.row(r));
    this.dialog = new RequestDialog(session, {
      saved: (request, created) => {
        toast(created ? "Upload request made: send its link to whoever has files for you" : "Upload request saved");
        this.load();
        if (created) this.received.open(request);
      },
    });
    this.received = new ReceivedDialog(session, on);
    $("#new-request").addEventListener("click", () => this.dialog.open(null));
  }

  /** Signed in: only those who may upload make requests. */
  show() {
    $("#new-request").hidden = !this.session.can("can_upload_file");
  }

  /** Signed out: nothing of the list stays. */
  reset() {
    this.list.reset();
  }

  load() {
    return this.list.load();
  }

  /** @param {UploadRequest} r */
  row(r) {
    const title = r.message || "Upload request";
    const copy = h("button", { type: "button", class: "small", "aria-label": `Copy the link of ${title}` }, "Copy link");
    copy.addEventListener("click", async () => {
      if (await copyText(r.url)) toast("Link copied");
    });
    const closes = r.closed_at ? `Closed ${formatTime(r.closed_at)}` : r.expires_at
      ? `${r.is_open ? "Closes" : "Closed"} ${formatTime(r.expires_at)}` : "When you close it";
    return h("tr", { dataset: { id: r.id } },
      h("td", { class: "primary-cell", "data-label": "Request" },
        h("span", { class: "request-title" },
          h("button", { type: "button", class: "file-name", onclick: () => this.received.open(r) }, h("span", { class: "name" }, title)),
          r.has_password ? badge("Password", "info", true) : null)),
      h("td", { "data-label": "State" }, stateBadge(r)),
      h("td", { "data-label": "Received" }, receivedText(r)),
      h("td", { class: "when", "data-label": "Closes" }, closes),
      h("td", { class: "actions" },
        copy,
        h("button", { type: "button", class: "small", "aria-label": `What ${title} received`, onclick: () => this.received.open(r) }, "Received"),
        h("button", { type: "button", class: "small ghost", "aria-label": `Change ${title}`, onclick: () => this.dialog.open(r) }, "Change"),
        h("button", {
          type: "button", class: "small ghost", "aria-label": `${r.closed_at ? "Reopen" : "Close"} ${title}`,
          onclick: () => this.setOpen(r, !!r.closed_at),
        }, r.closed_at ? "Reopen" : "Close"),
        h("button", {
          type: "button", class: "small ghost link-danger", "aria-label": `Delete ${title}`, onclick: () => this.remove(r),
        }, "Delete")));
  }

  /** @param {UploadRequest} r @param {boolean} open */
  async setOpen(r, open) {
    try {
      await this.session.patch(`/upload-requests/${r.id}`, { is_open: open });
      toast(open ? "Reopened: its link takes files again" : "Closed: its link takes no more files");
      this.load();
    } catch (err) {
      toastError(err);
    }
  }

  /** @param {UploadRequest} r */
  async remove(r) {
    const title = r.message ? `“${r.message}”` : "this upload request";
    if (!(await confirmDialog(`Delete ${title}?`, "Its link stops working at once. The files it received stay in your files."))) return;
    try {
      await this.session.del(`/upload-requests/${r.id}`);
      toast("Upload request deleted");
      this.load();
    } catch (err) {
      toastError(err);
    }
  }
}
