// @ts-check
// The dialog that adds a storage server or edits one: every field the form cannot be saved with is
// named at once, before the daemon is asked; the daemon's problem then names what it found.

import { say, whileBusy } from "./feedback.js";
import { $, toast } from "./ui.js";

/** @typedef {import("./types.js").Server} Server */

const FIELDS = ["name", "location", "endpoint_url", "public_url", "bucket", "addressing_style", "region", "access_key",
  "secret_key", "zone", "latitude", "longitude"];
/** @type {Record<string, string>} */
const LABELS = {
  name: "Name", location: "City", endpoint_url: "S3 endpoint URL", public_url: "Public URL", bucket: "Bucket",
  access_key: "Access key", secret_key: "Secret key", zone: "Zone", latitude: "Latitude", longitude: "Longitude",
};
/** @type {Record<string, number>} */
const RANGES = { latitude: 90, longitude: 180 };

/** "a", "a and b", "a, b and c". @param {string[]} items */
function listOf(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** @param {string} field */
const input = (field) => $(`#srv-${field}`, HTMLInputElement);
/** A field of FIELDS: an input, or for the addressing style a select. @param {string} field
 * @returns {HTMLInputElement | HTMLSelectElement} */
const control = (field) => (field === "addressing_style" ? $("#srv-addressing_style", HTMLSelectElement) : input(field));

export class ServerDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ saved: () => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {Server | null} the server being edited; null while adding one */
    this.editing = null;
    this.dialog = $("#server-dialog", HTMLDialogElement);
    this.form = $("#server-form", HTMLFormElement);
    this.error = $("#server-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** @param {Server | null} server */
  open(server) {
    this.editing = server;
    this.form.reset();
    this.error.textContent = "";
    $("#server-title").textContent = server ? `Edit ${server.name}` : "Add a storage server";
    $("#srv-secret-hint").hidden = !server;
    for (const field of FIELDS) {
      const el = control(field);
      el.removeAttribute("aria-invalid");
      const value = server ? /** @type {Record<string, any>} */ (server)[field] : undefined;
      el.value = value !== undefined && value !== null ? value : field === "addressing_style" ? "path" : "";
    }
    input("is_on").checked = server ? server.is_on : true;
    input("is_active").checked = server ? server.is_active : true;
    this.dialog.showModal();
    input("name").focus();
  }

  async submit() {
    this.error.textContent = "";
    for (const field of FIELDS) control(field).removeAttribute("aria-invalid");
    /** @type {Record<string, any>} */
    const values = {};
    for (const field of FIELDS) values[field] = control(field).value.trim();
    values.is_on = input("is_on").checked;
    values.is_active = input("is_active").checked;
    const problems = this.problems(values);
    if (problems.length) {
      this.markInvalid(problems);
      return;
    }
    values.latitude = Number(values.latitude);
    values.longitude = Number(values.longitude);
    values.public_url = values.public_url || null; // (null: presigned URLs go to the endpoint)
    const editing = this.editing;
    const body = editing ? this.changes(editing, values) : values;
    if (!editing && !body.region) delete body.region;
    if (!editing && !body.public_url) delete body.public_url;
    const save = $("#server-save", HTMLButtonElement);
    try {
      const server = await whileBusy(save, () => (editing
        ? this.session.patch(`/servers/${editing.id}`, body)
        : this.session.post("/servers", body)), { label: editing ? "Saving…" : "Checking the server…" });
      this.dialog.close();
      toast(editing ? `${server.name} saved` : `${server.name} added`);
      this.on.saved();
    } catch (err) {
      this.error.textContent = say(err);
      const fields = (err && /** @type {any} */ (err).problem && /** @type {any} */ (err).problem.errors) || [];
      for (const f of fields) {
        const el = document.getElementById(`srv-${String(f.field).split(".")[0]}`);
        if (el) el.setAttribute("aria-invalid", "true");
      }
    }
  }

  /** An edit sends only what changed, and the keys only when both are given again.
   * @param {Server} server @param {Record<string, any>} values */
  changes(server, values) {
    /** @type {Record<string, any>} */
    const body = {};
    for (const [key, value] of Object.entries(values)) {
      if (key === "access_key" || key === "secret_key") continue;
      if (value !== /** @type {Record<string, any>} */ (server)[key]) body[key] = value;
    }
    if (values.access_key || values.secret_key) {
      body.access_key = values.access_key;
      body.secret_key = values.secret_key;
    }
    return body;
  }

  /** Every field the form cannot be saved with, so that one try names them all: [field, reason].
   * @param {Record<string, any>} values @returns {[string, string][]} */
  problems(values) {
    const required = ["name", "location", "endpoint_url", "bucket", "zone", "latitude", "longitude"];
    // A new server needs its keys; an edit keeps the stored ones when both are left empty.
    if (!this.editing || values.access_key || values.secret_key) required.push("access_key", "secret_key");
    /** @type {[string, string][]} */
    const problems = required.filter((f) => values[f] === "").map((f) => [f, "missing"]);
    for (const [field, limit] of Object.entries(RANGES)) {
      const n = Number(values[field]);
      if (values[field] !== "" && !(Number.isFinite(n) && Math.abs(n) <= limit)) problems.push([field, `range ${limit}`]);
    }
    return problems.sort((a, b) => FIELDS.indexOf(a[0]) - FIELDS.indexOf(b[0]));
  }

  /** @param {[string, string][]} problems */
  markInvalid(problems) {
    const missing = problems.filter(([, why]) => why === "missing").map(([f]) => LABELS[f]);
    const messages = missing.length ? [`Fill in ${listOf(missing)}.`] : [];
    for (const [field, why] of problems) {
      if (why !== "missing") {
        const limit = RANGES[field];
        messages.push(`${LABELS[field]} must be a number from -${limit} to ${limit}.`);
      }
    }
    this.error.textContent = messages.join(" ");
    for (const [field] of problems) control(field).setAttribute("aria-invalid", "true");
    control(problems[0][0]).focus();
  }
}
