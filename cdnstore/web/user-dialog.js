// @ts-check
// The dialog that creates a user or edits one (admins): username and password, the admin flag, the
// permissions, the quota and the zones their uploads may go to. An edit sends only what changed; a new
// password given here is a reset (the daemon ends every session of the user).

import { toastError, whileBusy } from "./feedback.js";
import { $, h, toast } from "./ui.js";

/** @typedef {import("./types.js").User} User */

/** @type {[string, [string, string][]][]} the permissions as the contract lists them, in groups, with their words on the page */
const GROUPS = [
  ["Files", [["can_view_file", "view"], ["can_upload_file", "upload"], ["can_rename_file", "rename"], ["can_delete_file", "delete"]]],
  ["Share links", [["can_view_filesharelink", "view"], ["can_add_filesharelink", "create"], ["can_delete_filesharelink", "revoke"]]],
  ["Servers", [["can_view_cdnserver", "view"], ["can_add_cdnserver", "add"], ["can_update_cdnserver", "change"], ["can_delete_cdnserver", "remove"]]],
];
/** What a new user holds unless told otherwise (the contract: the file and share-link ones). */
const DEFAULTS = new Set(GROUPS.slice(0, 2).flatMap(([, list]) => list.map(([permission]) => permission)));
const UNITS = { MB: 1e6, GB: 1e9, TB: 1e12 };
const MIN_PASSWORD = 8; // the daemon's rule (schemas.Password)

/** The quota as a number and the largest unit that shows it with at most three decimals.
 * @param {number} bytes @returns {[string, keyof typeof UNITS]} */
export function quotaParts(bytes) {
  for (const unit of /** @type {(keyof typeof UNITS)[]} */ (["TB", "GB"])) {
    const thousandths = (bytes / UNITS[unit]) * 1000;
    if (thousandths >= 1000 && Math.abs(thousandths - Math.round(thousandths)) < 1e-6) return [String(Math.round(thousandths) / 1000), unit];
  }
  return [String(Math.round((bytes / UNITS.MB) * 1000) / 1000), "MB"];
}

export class UserDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ saved: (user: User) => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {User | null} the user being edited; null while creating one */
    this.editing = null;
    this.shownQuota = ""; // the quota as the form showed it: left as it was, it is not sent again rounded
    this.dialog = $("#user-dialog", HTMLDialogElement);
    this.form = $("#user-form", HTMLFormElement);
    this.error = $("#user-error");
    this.username = $("#usr-username", HTMLInputElement);
    this.password = $("#usr-password", HTMLInputElement);
    this.admin = $("#usr-is_admin", HTMLInputElement);
    this.quota = $("#usr-quota", HTMLInputElement);
    this.unit = $("#usr-quota-unit", HTMLSelectElement);
    this.permissionsBox = $("#usr-permissions");
    this.zonesBox = $("#usr-zones");
    this.buildPermissions();
    this.admin.addEventListener("change", () => this.adminChanged());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  buildPermissions() {
    this.permissionsBox.replaceChildren(...GROUPS.map(([group, list]) => h("fieldset", { class: "perm-group" },
      h("legend", {}, group),
      list.map(([permission, word]) => h("label", {},
        h("input", { type: "checkbox", name: "permissions", value: permission, "aria-label": `${group}: ${word}` }), word)))));
  }

  /** @returns {HTMLInputElement[]} */
  permissionInputs() {
    return [...this.permissionsBox.querySelectorAll("input")];
  }

  /** @returns {HTMLInputElement[]} */
  zoneInputs() {
    return [...this.zonesBox.querySelectorAll("input")];
  }

  /** An admin holds every permission: the boxes say so and cannot be unticked. */
  adminChanged() {
    const admin = this.admin.checked;
    for (const input of this.permissionInputs()) {
      input.disabled = admin;
      if (admin) input.checked = true;
      else input.checked = this.editing ? this.editing.permissions.includes(input.value) : DEFAULTS.has(input.value);
    }
    $("#usr-admin-hint").hidden = !admin;
  }

  /** @param {User | null} user @param {string[]} zones the zones of the registered servers */
  open(user, zones) {
    this.editing = user;
    this.form.reset();
    this.error.textContent = "";
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    $("#user-title").textContent = user ? `Edit ${user.username}` : "Add a user";
    $("#usr-username-field").hidden = !!user;
    // Not "Password" alone: the sign-in form's field keeps that name to itself.
    $("#usr-password-label").textContent = user ? "New password" : "Initial password";
    $("#usr-password-hint").textContent = user
      ? "Leave empty to keep the current one. A new password signs them out everywhere."
      : `At least ${MIN_PASSWORD} characters; they can change it once signed in.`;
    this.admin.checked = user ? user.is_admin : false;
    for (const input of this.permissionInputs()) input.checked = user ? user.permissions.includes(input.value) : DEFAULTS.has(input.value);
    this.adminChanged();
    if (user && user.quota_bytes !== null) [this.quota.value, this.unit.value] = quotaParts(user.quota_bytes);
    else this.unit.value = "GB";
    this.shownQuota = `${this.quota.value} ${this.unit.value}`;
    const chosen = new Set(user && user.zones ? user.zones : []);
    const all = [...new Set([...zones, ...chosen])].sort();
    this.zonesBox.replaceChildren(...all.map((zone) => h("label", {},
      h("input", { type: "checkbox", name: "zones", value: zone, checked: chosen.has(zone) }), zone)));
    $("#usr-zones-empty").hidden = all.length > 0;
    $("#usr-zones-hint").hidden = !user;
    $("#usr-quota-hint").textContent = user ? "Leave empty for no quota." : "Leave empty for the default quota of new users (none unless the daemon sets one).";
    if (!this.dialog.open) this.dialog.showModal();
    (user ? this.password : this.username).focus();
  }

  /** What the form says, in the API's terms. */
  values() {
    const quota = this.quota.value.trim();
    const zones = this.zoneInputs().filter((i) => i.checked).map((i) => i.value);
    return {
      username: this.username.value.trim(),
      password: this.password.value,
      is_admin: this.admin.checked,
      permissions: this.permissionInputs().filter((i) => i.checked).map((i) => i.value),
      quota_bytes: this.editing && `${quota} ${this.unit.value}` === this.shownQuota ? this.editing.quota_bytes
        : quota === "" ? null : Math.round(Number(quota) * UNITS[/** @type {keyof typeof UNITS} */ (this.unit.value)]),
      zones: zones.length ? zones : null,
    };
  }

  /** The first thing the form cannot be saved with, as [input, sentence], or null. @param {ReturnType<UserDialog["values"]>} v */
  problem(v) {
    if (!this.editing && !v.username) return [this.username, "Fill in a user name."];
    if ((!this.editing || v.password) && v.password.length < MIN_PASSWORD) {
      return [this.password, `The password needs at least ${MIN_PASSWORD} characters.`];
    }
    const quota = this.quota.value.trim();
    if (quota !== "" && !(Number.isFinite(Number(quota)) && Number(quota) >= 0)) {
      return [this.quota, "The quota is a size of zero or more; leave it empty for no quota."];
    }
    return null;
  }

  async submit() {
    this.error.textContent = "";
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const v = this.values();
    const wrong = this.problem(v);
    if (wrong) {
      const [input, message] = /** @type {[HTMLInputElement, string]} */ (wrong);
      this.error.textContent = message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const editing = this.editing;
    try {
      const user = await whileBusy($("#user-save", HTMLButtonElement),
        () => (editing ? this.update(editing, v) : this.create(v)), { label: "Saving…" });
      this.dialog.close();
      toast(editing ? `${user.username} saved` : `${user.username} added`);
      this.on.saved(user);
    } catch (err) {
      toastError(err, { ms: 8000 });
      this.markFields(err);
    }
  }

  /** A new user. Without a quota given, the daemon gives them its default one (users.default_quota_bytes).
   * @param {ReturnType<UserDialog["values"]>} v @returns {Promise<User>} */
  create(v) {
    /** @type {Record<string, any>} */
    const body = { username: v.username, password: v.password, is_admin: v.is_admin, zones: v.zones };
    if (!v.is_admin) body.permissions = v.permissions;
    if (v.quota_bytes !== null) body.quota_bytes = v.quota_bytes;
    return this.session.post("/users", body);
  }

  /** Only what changed. @param {User} user @param {ReturnType<UserDialog["values"]>} v @returns {Promise<User>} */
  update(user, v) {
    /** @type {Record<string, any>} */
    const body = {};
    if (v.password) body.password = v.password;
    if (v.is_admin !== user.is_admin) body.is_admin = v.is_admin;
    if (!v.is_admin && !sameSet(v.permissions, user.permissions)) body.permissions = v.permissions;
    if (v.quota_bytes !== user.quota_bytes) body.quota_bytes = v.quota_bytes;
    if (!sameSet(v.zones || [], user.zones || []) || (v.zones === null) !== (user.zones === null)) body.zones = v.zones;
    if (!Object.keys(body).length) return Promise.resolve(user);
    return this.session.patch(`/users/${user.id}`, body);
  }

  /** The fields a 422 names are marked. @param {unknown} err */
  markFields(err) {
    const problem = /** @type {any} */ (err).problem || {};
    const fields = (problem.errors || []).map((/** @type {any} */ e) => String(e.field).split(".")[0]);
    const inputs = /** @type {Record<string, HTMLElement>} */ ({
      username: this.username, password: this.password, quota_bytes: this.quota, zones: this.zonesBox, permissions: this.permissionsBox,
    });
    for (const field of fields) if (inputs[field]) inputs[field].setAttribute("aria-invalid", "true");
  }
}

/** @param {string[]} a @param {string[]} b */
function sameSet(a, b) {
  return a.length === b.length && a.every((x) => b.includes(x));
}
