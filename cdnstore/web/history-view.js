// @ts-check
// The history view: what happened to the caller's files, links and (for who changes them) servers,
// newest first, filtered by kind of event.

import { toastError } from "./feedback.js";
import { $, badge, formatBytes, formatTime, h, plural, timeEl } from "./ui.js";

/** @typedef {import("./types.js").HistoryItem} HistoryItem */

const PAGE = 50;
/** @type {Record<string, string>} */
const EVENTS = {
  "file.uploaded": "Upload started",
  "file.stored": "Stored",
  "file.downloaded": "Downloaded",
  "file.renamed": "Renamed",
  "file.deleted": "Deleted",
  "file.restored": "Restored from the trash",
  "file.purged": "Removed for good",
  "file.corrupt": "Corrupt content found",
  "link.created": "Link created",
  "link.updated": "Link changed",
  "link.deleted": "Link revoked",
  "link.downloaded": "Downloaded by link",
  "server.created": "Server added",
  "server.updated": "Server changed",
  "server.deleted": "Server removed",
  "upload_request.created": "Upload request made",
  "upload_request.received": "Received through a request",
  "upload_request.closed": "Upload request closed",
};
/** What `file.corrupt` found, by its `reason` (older rows have none: a rejected upload). @type {Record<string, string>} */
const CORRUPT_REASONS = {
  sha256_mismatch: "Upload rejected (SHA-256 did not match)",
  unverifiable: "Could not be verified (never served)",
  altered: "Altered copy found",
};
/** @type {Record<string, string>} */
const EVENT_TONES = {
  "file.stored": "ok", "file.deleted": "danger", "file.purged": "danger", "file.corrupt": "danger", "link.deleted": "danger",
  "server.deleted": "danger", "link.created": "info", "upload_request.received": "ok", "file.restored": "info",
};

/** One detail of an event, in words. @param {string} key @param {any} value */
function detail(key, value) {
  if (key === "downloads") return `${plural(value, "download")} so far`;
  if (key === "max_downloads") return `limit ${plural(value, "download")}`;
  if (typeof value === "boolean") return value ? key.replace(/^(has|is)_/, "").replace(/_/g, " ") : `no ${key.replace(/^(has|is)_/, "").replace(/_/g, " ")}`;
  if (key === "size" || key === "bytes") return formatBytes(value);
  if (key.endsWith("_at")) return `${key.replace(/_at$/, "").replace(/_/g, " ")} ${formatTime(value)}`;
  return `${key.replace(/_/g, " ")} ${value}`;
}

/** @param {HistoryItem} item */
function historyDetails(item) {
  const d = item.data || {};
  if (d.old_name !== undefined && d.new_name !== undefined) return `${d.old_name} → ${d.new_name}`;
  const parts = [];
  const main = d.name ?? d.file_name ?? d.server_name ?? d.message;
  if (main !== undefined) parts.push(h("strong", {}, String(main)));
  for (const [key, value] of Object.entries(d)) {
    if (value === main || value === null || typeof value === "object" || key.endsWith("_id") || key === "id") continue;
    parts.push(h("span", { class: "muted" }, ` · ${detail(key, value)}`));
  }
  return h("span", {}, parts);
}

/** @param {HistoryItem} item */
function eventName(item) {
  const reason = item.event === "file.corrupt" ? CORRUPT_REASONS[String(item.data?.reason ?? "sha256_mismatch")] : undefined;
  return reason || EVENTS[item.event] || item.event;
}

/** @param {HistoryItem} item */
function historyRow(item) {
  return h("tr", {},
    h("td", { "data-label": "When", class: "when" }, timeEl(item.created_at)),
    h("td", { "data-label": "Event" }, badge(eventName(item), EVENT_TONES[item.event] || "")),
    h("td", { "data-label": "Details", class: "primary-cell" }, historyDetails(item)));
}

export class HistoryView {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    /** @type {string | null} */
    this.cursor = null;
    this.event = "";
    this.body = $("#history-body");
    this.empty = $("#history-empty");
    this.filter = $("#history-filter", HTMLSelectElement);
    this.filter.addEventListener("change", () => {
      this.event = this.filter.value;
      this.load();
    });
    $("#history-more-button").addEventListener("click", () => this.load({ more: true }));
  }

  /** Signed in: the kinds of event the user can have, server events only for those who may change servers. */
  signedIn() {
    const changesServers = ["can_add_cdnserver", "can_update_cdnserver", "can_delete_cdnserver"].some((p) => this.session.can(p));
    const kinds = Object.entries(EVENTS).filter(([value]) => changesServers || !value.startsWith("server."));
    this.event = "";
    this.filter.replaceChildren(h("option", { value: "" }, "All events"),
      ...kinds.map(([value, label]) => h("option", { value }, label)));
  }

  reset() {
    this.body.replaceChildren();
  }

  async load({ more = false } = {}) {
    try {
      const page = await this.session.get("/history", { limit: PAGE, event: this.event, cursor: more ? this.cursor : undefined });
      if (!more) this.body.replaceChildren();
      this.body.append(...page.items.map(historyRow));
      this.cursor = page.next_cursor;
      $("#history-more").hidden = !this.cursor;
      this.empty.hidden = this.body.children.length > 0;
      this.empty.textContent = this.event
        ? `No “${EVENTS[this.event]}” events yet.`
        : "Nothing has happened yet. Uploads, downloads and share links show up here.";
    } catch (err) {
      toastError(err);
    }
  }
}
