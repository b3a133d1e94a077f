// @ts-check
// The users screen (administrators): every user with their usage, permissions, zones and state; add a
// user, edit one (permissions, admin flag, quota, zones, a new password), disable or enable them, and
// delete them after a confirmation that says what goes with them.

import { ApiError } from "./api.js";
import { toastError } from "./feedback.js";
import { $, badge, confirmDialog, formatBytes, h, plural, toast } from "./ui.js";
import { usageBar } from "./usage-bar.js";
import { UserDialog } from "./user-dialog.js";

/** @typedef {import("./types.js").User} User */

/** @type {[string, Record<string, string>][]} the permission groups in a row's summary, and the verbs of each */
const SUMMARY = [
  ["Files", { can_view_file: "view", can_upload_file: "upload", can_rename_file: "rename", can_delete_file: "delete" }],
  ["Links", { can_view_filesharelink: "view", can_add_filesharelink: "create", can_delete_filesharelink: "revoke" }],
  ["Servers", { can_view_cdnserver: "view", can_add_cdnserver: "add", can_update_cdnserver: "change", can_delete_cdnserver: "remove" }],
];

/** "Files: view, upload · Links: view", or "Everything (admin)". @param {User} user */
export function permissionsText(user) {
  if (user.is_admin) return "Everything (administrator)";
  const parts = [];
  for (const [group, verbs] of SUMMARY) {
    const held = Object.entries(verbs).filter(([p]) => user.permissions.includes(p)).map(([, v]) => v);
    if (held.length) parts.push(`${group}: ${held.join(", ")}`);
  }
  return parts.length ? parts.join(" · ") : "Nothing";
}

/** What a delete takes with it, in words, for the confirmation. @param {User} user */
export function whatGoes(user) {
  const n = user.files; // in the admins' answers
  const size = user.used_bytes ? ` (${formatBytes(user.used_bytes)})` : "";
  const files = n === undefined ? `Their files${size} are` : n ? `Their ${plural(n, "file")}${size} ${n === 1 ? "is" : "are"}` : "";
  const removed = files ? `${files} removed from every server, their` : "They have no files. Their";
  return `${removed} share links stop working and their history is deleted with them. This cannot be undone.`;
}

export class UsersView {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    this.body = $("#users-body");
    this.ticket = 0; // the latest list call: an older answer is dropped
    /** @type {string[]} the zones of the registered servers, offered in the dialog */
    this.zones = [];
    this.dialog = new UserDialog(session, { saved: () => this.load() });
    $("#add-user").addEventListener("click", () => this.dialog.open(null, this.zones));
  }

  /** Signed out: nothing of the list stays. */
  reset() {
    this.ticket += 1;
    this.body.replaceChildren();
  }

  async load() {
    const ticket = ++this.ticket;
    try {
      const [users, zones] = await Promise.all([this.all("/users"), this.serverZones()]);
      if (ticket !== this.ticket) return;
      this.zones = zones;
      this.render(users);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) toastError(err);
    }
  }

  /** Every page of a list. @param {string} path @returns {Promise<any[]>} */
  async all(path) {
    const items = [];
    /** @type {string | undefined} */
    let cursor;
    do {
      const page = await this.session.get(path, { limit: 1000, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }

  /** The zones a user's uploads may be limited to: those of the registered servers. */
  async serverZones() {
    if (!this.session.can("can_view_cdnserver")) return [];
    const servers = await this.all("/servers");
    return [...new Set(servers.map((s) => String(s.zone)))].sort();
  }

  /** @param {User[]} users */
  render(users) {
    const me = this.session.user && this.session.user.id;
    this.body.replaceChildren(...users.map((user) => this.row(user, user.id === me)));
    $("#users-empty").hidden = users.length > 0;
    const disabled = users.filter((u) => u.is_disabled).length;
    const used = users.reduce((n, u) => n + (u.used_bytes || 0), 0);
    $("#users-summary").textContent = `${plural(users.length, "user")}${disabled ? `, ${disabled} disabled` : ""}, ${formatBytes(used)} stored.`;
  }

  /** @param {User} user @param {boolean} isMe */
  row(user, isMe) {
    const name = user.username;
    const outside = user.files_outside_zones || 0;
    const zones = user.zones === null
      ? h("span", { class: "muted" }, "Any zone")
      : h("span", { class: "zone-list" }, user.zones.map((z) => h("span", { class: "zone-tag" }, z)),
        outside > 0 && h("span", {
          class: "badge warn outside", title: "Stored before their zones were set: changing zones moves no file.",
        }, `${plural(outside, "file")} outside`));
    const verb = user.is_disabled ? "Enable" : "Disable";
    const toggle = h("button", { type: "button", class: "small", "aria-label": `${verb} ${name}` }, verb);
    toggle.addEventListener("click", () => this.setDisabled(user, !user.is_disabled, toggle));
    return h("tr", { dataset: { id: user.id, username: name }, class: user.is_disabled ? "disabled" : "" },
      h("td", { class: "primary-cell", "data-label": "User" }, h("span", { class: "user-head" },
        h("span", { class: "user-name" }, name),
        isMe && badge("You", "info", true),
        user.is_admin && badge("Admin", "info", true))),
      h("td", { class: "state-cell", "data-label": "State" }, user.is_disabled ? badge("Disabled", "danger") : badge("Enabled", "ok")),
      h("td", { class: "usage-cell", "data-label": "Usage" }, usageBar(user)),
      h("td", { class: "perm-cell", "data-label": "Permissions" }, permissionsText(user)),
      h("td", { class: "zones-cell", "data-label": "Zones" }, zones),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "small", "aria-label": `Edit ${name}`, onclick: () => this.dialog.open(user, this.zones) }, "Edit"),
        toggle,
        h("button", { type: "button", class: "small ghost link-danger", "aria-label": `Delete ${name}`, onclick: () => this.remove(user) }, "Delete")));
  }

  /** @param {User} user @param {boolean} disabled @param {HTMLButtonElement} button */
  async setDisabled(user, disabled, button) {
    button.disabled = true;
    try {
      await this.session.patch(`/users/${user.id}`, { is_disabled: disabled });
      toast(disabled ? `${user.username} is disabled: signed out everywhere, their links stop working` : `${user.username} is enabled again`);
      await this.load();
    } catch (err) {
      toastError(err, { ms: 8000 }); // 409 last_admin says why
      button.disabled = false;
    }
  }

  /** @param {User} user */
  async remove(user) {
    if (!(await confirmDialog(`Delete ${user.username}?`, whatGoes(user)))) return;
    try {
      await this.session.del(`/users/${user.id}`);
      toast(`${user.username} deleted`);
      await this.load();
    } catch (err) {
      toastError(err, { ms: 8000 });
    }
  }
}
