// @ts-check
// The servers view (holders of can_view_cdnserver): the world map, the table of storage servers with
// their on/active switches (turning one off asks first, saying what it does), the GeoIP database the
// nearest servers are found with, and for administrators the failed jobs. It refreshes itself while shown.

import { ApiError, readiness } from "./api.js";
import { toastError, whileBusy } from "./feedback.js";
import { JobsCard } from "./jobs-card.js";
import { ImportDialog } from "./import-dialog.js";
import { drawBase, drawServers, zoneColors } from "./map.js";
import { ServerDialog } from "./server-dialog.js";
import { $, badge, confirmDialog, formatBytes, formatCount, fullTime, h, plural, toast } from "./ui.js";

/** @typedef {import("./types.js").Server} Server */
/** @typedef {Map<string, string>} Colors zone -> colour */

const REFRESH_MS = 4000;
const GEOIP_OLD_MS = 365 * 86400 * 1000;

/** What turning a switch off does, asked before it is done: [title, text, action].
 * @param {Server} s @param {"is_on" | "is_active"} field @returns {[string, string, string]} */
function turningOff(s, field) {
  if (field === "is_on") {
    return [`Turn ${s.name} off?`,
      `${s.name} (${s.location}) then takes part in nothing: no uploads, downloads or copies. Its files stay in its `
      + "bucket; those it holds alone cannot be downloaded until it is on again.", "Turn off"];
  }
  return [`Make ${s.name} inactive?`,
    `${s.name} (${s.location}) then takes no new uploads and no copies; it still serves downloads of the files it `
    + "holds. Made active again, it is filled with its zone's files.", "Make inactive"];
}

/** "In sync" only for a server that takes copies: one that is off or inactive says so instead.
 * @param {Server} s */
function syncBadge(s) {
  if (!s.is_on) return badge("Off", "", false);
  if (s.pending_jobs) return badge(`${formatCount(s.pending_jobs)} pending`, "warn");
  if (!s.is_active) {
    const tag = badge("Inactive", "");
    tag.title = "Takes no uploads or copies; still serves the files it holds.";
    return tag;
  }
  return badge("In sync", "ok");
}

/** What the deep scrub found there: replicas whose bytes differ from their SHA-256 (being replaced from a good
 * copy), in red when some have no good copy left anywhere. Nothing when it found none.
 * @param {Server} s */
function corruptBadge(s) {
  if (!s.corrupt) return null;
  const tag = badge(`${formatCount(s.corrupt)} corrupt`, s.unrecoverable ? "danger" : "warn");
  tag.title = s.unrecoverable
    ? `${formatCount(s.unrecoverable)} of them have no good copy on any server: they are not served; restore them from a backup or upload them again.`
    : "Their bytes differ from the file's SHA-256; a good copy is being written over them.";
  return tag;
}

/** Where the verification of the uploads to it stands: uploads rejected lately (their bytes were not their
 * declared SHA-256, or could never be read the same twice), else those still waiting for their verification
 * read. Nothing when there are none.
 * @param {Server} s */
function verifyBadge(s) {
  if (s.rejected_uploads) {
    const tag = badge(`${plural(s.rejected_uploads, "upload")} rejected`, "danger");
    tag.title = "Uploads to this server rejected in the last 7 days: their bytes were not their declared SHA-256, or "
      + "repeated reads of them never agreed. They are never served; the log says which.";
    return tag;
  }
  if (!s.awaiting_verification) return null;
  const tag = badge(`${formatCount(s.awaiting_verification)} awaiting verification`, "warn");
  tag.title = "Uploads whose bytes cdnstore has not read back yet; a count that keeps growing says the verifier is held up (see the log).";
  return tag;
}

/** What the capability probe proved, as badges: green where the server does it, amber where cdnstore does it
 * itself (or the page cannot upload there), with a title saying what that means.
 * @param {Server} s @returns {HTMLElement[]} */
function provedBadges(s) {
  const c = s.capabilities;
  if (!c) return [badge("Not probed", "")];
  /** @param {string} text @param {string} tone @param {string} title */
  const tag = (text, tone, title) => {
    const made = badge(text, tone);
    made.title = title;
    return made;
  };
  const found = [
    c.checksum_enforced
      ? tag("Checksums", "ok", "Refuses bytes that differ from a declared SHA-256.")
      : tag("No checksums", "warn", "Does not refuse bytes that differ from a declared SHA-256: cdnstore reads such uploads back before storing them."),
    c.conditional_write
      ? tag("Writes once", "ok", "Refuses a second PUT to an upload's URL (If-None-Match): stored bytes cannot be swapped.")
      : tag("Rewritable", "warn", "Ignores If-None-Match: a second PUT to an upload's URL could replace the bytes until it expires; the deep scrub finds it."),
    c.cors
      ? tag("CORS", "ok", "This page may upload there.")
      : tag("No CORS", "danger", c.cors_rule ? `The page cannot upload there. Add this rule to the bucket's CORS configuration: ${JSON.stringify(c.cors_rule)}` : "The page cannot upload there (see the log)."),
    c.events === "seen"
      ? tag("Events", "ok", "Its storage events reach cdnstore: uploads are stored at once.")
      : tag(c.events === "none" ? "No events" : "Events unknown", c.events === "none" ? "warn" : "", "Uploads there are confirmed by the client, or looked for every few seconds."),
  ];
  if (c.versioning === "enabled" || c.versioning === "suspended") {
    found.push(tag("Versioned", "warn", "The bucket keeps versions: deletes leave delete markers and free no space. Add a lifecycle rule that expires noncurrent versions."));
  }
  return found;
}

/** The latest import of the server's bucket, while it runs and after: null when none ran.
 * @param {Server} s */
function importBadge(s) {
  const i = s.import_progress;
  if (!i) return null;
  const counts = `${formatCount(i.files_adopted)} of ${formatCount(i.objects_seen)} adopted`;
  const notAdopted = i.errors ? `; ${formatCount(i.errors)} not adopted (see GET /api/v1/servers/${s.id}/import)` : "";
  const tag = i.state === "running"
    ? badge(`Importing: ${counts}`, i.last_error ? "warn" : "info")
    : badge(`Imported ${plural(i.files_adopted, "file")}`, i.errors ? "warn" : "ok");
  tag.title = `Import for ${i.owner}${i.prefix ? ` of ${i.prefix}` : ""}: ${counts}${notAdopted}${i.last_error ? `. ${i.last_error}` : ""}`;
  return tag;
}

/** One server's row, updated in place on every refresh (so that a focused switch keeps its focus). */
class ServerRow {
  /** @param {ServersView} view @param {Server} server */
  constructor(view, server) {
    this.view = view;
    this.server = server;
    const { session } = view;
    this.tr = h("tr", { dataset: { id: server.id } });
    this.name = h("span", { class: "server-name" });
    this.endpoint = h("span", { class: "server-endpoint" });
    this.city = h("td", { "data-label": "City" });
    this.zone = h("td", { "data-label": "Zone" });
    this.on = h("input", { type: "checkbox", role: "switch" });
    this.active = h("input", { type: "checkbox", role: "switch" });
    this.health = h("td", { "data-label": "Health" });
    this.proved = h("div", { class: "proved", "aria-label": "Proved" }); // what the probe proved, under its address
    this.count = h("td", { class: "num", "data-label": "Files" });
    this.bytes = h("td", { class: "num", "data-label": "Bytes" });
    this.sync = h("td", { "data-label": "Sync" });
    this.canUpdate = session.can("can_update_cdnserver");
    this.edit = this.canUpdate ? h("button", { type: "button", class: "small" }, "Edit") : null;
    this.remove = session.can("can_delete_cdnserver") ? h("button", { type: "button", class: "small ghost link-danger" }, "Remove") : null;
    this.probe = this.canUpdate ? h("button", { type: "button", class: "small ghost" }, "Probe") : null;
    this.importing = session.user && session.user.is_admin ? h("button", { type: "button", class: "small ghost" }, "Import") : null;
    this.tr.append(
      h("td", { class: "primary-cell" }, h("div", { class: "field" }, this.name, this.endpoint), this.proved),
      this.city, this.zone,
      h("td", { "data-label": "On" }, h("label", { class: "switch" }, this.on)),
      h("td", { "data-label": "Active" }, h("label", { class: "switch" }, this.active)),
      this.health, this.count, this.bytes, this.sync,
      h("td", { class: "actions" }, this.edit, this.probe, this.importing, this.remove));
    if (this.probe) this.probe.addEventListener("click", () => view.probeServer(this.server, /** @type {HTMLButtonElement} */ (this.probe)));
    if (this.importing) this.importing.addEventListener("click", () => view.importer.open(this.server));
    this.on.addEventListener("change", () => this.toggle("is_on", this.on));
    this.active.addEventListener("change", () => this.toggle("is_active", this.active));
    if (this.edit) this.edit.addEventListener("click", () => view.dialog.open(this.server));
    if (this.remove) this.remove.addEventListener("click", () => view.removeServer(this.server));
  }

  /** @param {"is_on" | "is_active"} field @param {HTMLInputElement} input */
  async toggle(field, input) {
    const value = input.checked;
    const view = this.view;
    input.disabled = true;
    if (!value && !(await confirmDialog(...turningOff(this.server, field)))) {
      input.checked = true;
      input.disabled = !this.canUpdate;
      return;
    }
    try {
      /** @type {Server} */
      const updated = await view.session.patch(`/servers/${this.server.id}`, { [field]: value });
      this.update(updated, zoneColors(view.list.map((s) => (s.id === updated.id ? updated : s))));
      $("#servers-status").textContent = `${updated.name} is now ${field === "is_on" ? (value ? "on" : "off") : (value ? "active" : "not active")}.`;
      view.refresh();
    } catch (err) {
      input.checked = !value;
      toastError(err);
    } finally {
      input.disabled = !this.canUpdate;
    }
  }

  /** @param {Server} s @param {Colors} colors */
  update(s, colors) {
    const { on, active, canUpdate } = this;
    this.server = s;
    this.name.textContent = s.name;
    this.endpoint.textContent = `${s.endpoint_url}/${s.bucket}` + (s.public_url ? ` (clients: ${s.public_url})` : "");
    this.city.textContent = s.location;
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = colors.get(s.zone) || "#999";
    this.zone.replaceChildren(h("span", { class: "zone-chip" }, swatch, s.zone));
    // A switch whose change is on its way keeps what the user set.
    if (!on.disabled || !canUpdate) on.checked = s.is_on;
    if (!active.disabled || !canUpdate) active.checked = s.is_active;
    on.disabled = active.disabled = !canUpdate;
    on.setAttribute("aria-label", `${s.name} on`);
    active.setAttribute("aria-label", `${s.name} active`);
    const tone = /** @type {Record<string, string>} */ ({ up: "ok", down: "danger" })[s.health] || "";
    this.health.replaceChildren(badge(s.health === "unknown" ? "Unknown" : s.health === "up" ? "Up" : "Down", tone));
    this.count.textContent = formatCount(s.files);
    this.bytes.textContent = formatBytes(s.bytes);
    this.proved.replaceChildren(...provedBadges(s));
    this.proved.title = s.capabilities ? `Probed ${fullTime(s.capabilities.checked_at)}` : "";
    this.sync.replaceChildren(h("span", { class: "sync" }, syncBadge(s), corruptBadge(s), verifyBadge(s), importBadge(s)));
    this.sync.title = s.verified_at ? `Deep scrub: every replica here read back and matched since ${fullTime(s.verified_at)}.`
      : s.files ? "Deep scrub: some replicas here were not read back yet." : "";
    if (this.edit) this.edit.setAttribute("aria-label", `Edit ${s.name}`);
    if (this.probe) this.probe.setAttribute("aria-label", `Probe ${s.name}`);
    if (this.importing) this.importing.setAttribute("aria-label", `Import the bucket of ${s.name}`);
    if (this.remove) this.remove.setAttribute("aria-label", `Remove ${s.name}`);
  }
}

export class ServersView {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    /** @type {Map<string, ServerRow>} */
    this.rows = new Map();
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
    this.busy = false; // a refresh is on its way: the timer's next one is skipped
    /** @type {Server[]} */
    this.list = [];
    this.mapDrawn = false;
    this.map = $("#worldmap", SVGSVGElement);
    this.body = $("#servers-body");
    this.dialog = new ServerDialog(session, { saved: () => this.refresh() });
    this.importer = new ImportDialog(session, { started: () => this.refresh() });
    this.jobs = new JobsCard(session, { changed: () => this.refresh() });
    $("#add-server").addEventListener("click", () => this.dialog.open(null));
  }

  /** Shown: draw the map once, then refresh every few seconds until hidden. */
  start() {
    if (!this.mapDrawn) {
      drawBase(this.map);
      this.mapDrawn = true;
    }
    $("#add-server").hidden = !this.session.can("can_add_cdnserver");
    this.jobs.show();
    this.showGeoip();
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Signed out: stop, and forget the rows. */
  reset() {
    this.stop();
    this.body.replaceChildren();
    this.rows.clear();
  }

  async refresh() {
    if (this.busy || !this.session.signedIn) return;
    this.busy = true;
    try {
      /** @type {Server[]} */
      const list = [];
      /** @type {string | undefined} */
      let cursor;
      do {
        const page = await this.session.get("/servers", { limit: 1000, cursor });
        list.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      this.render(list);
      if (this.jobs.shown()) await this.jobs.load();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) toastError(err);
    } finally {
      this.busy = false;
    }
  }

  /** The GeoIP database clients are placed with (the readiness check's words), warned of when over a year old. */
  async showGeoip() {
    const note = $("#geoip-note");
    try {
      const check = (await readiness()).checks.geoip;
      if (!check) return;
      note.textContent = `GeoIP data: ${check.detail}.`;
      note.classList.toggle("warn", Date.now() - Date.parse(check.built_at) > GEOIP_OLD_MS);
      note.hidden = false;
    } catch {
      note.hidden = true; // (the map is the point here; the note is a hint)
    }
  }

  /** @param {Server[]} list */
  render(list) {
    this.list = list;
    const colors = zoneColors(list);
    drawServers(this.map, list, colors);
    this.renderLegend(colors);
    $("#zones").replaceChildren(...[...colors.keys()].map((zone) => h("option", { value: zone })));
    this.renderSummary(list, colors);
    const seen = new Set();
    for (const server of list) {
      seen.add(server.id);
      let row = this.rows.get(server.id);
      if (!row) {
        row = new ServerRow(this, server);
        this.rows.set(server.id, row);
      }
      row.update(server, colors);
      this.body.append(row.tr); // keeps the order of the answer; moving a row keeps its focus
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    $("#servers-empty").hidden = list.length > 0;
  }

  /** @param {Colors} colors */
  renderLegend(colors) {
    const legend = [...colors].map(([zone, color]) => {
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = color;
      return h("span", {}, swatch, zone);
    });
    legend.push(h("span", {}, h("span", { class: "swatch ring up" }), "up"),
      h("span", {}, h("span", { class: "swatch ring down" }), "down"),
      h("span", {}, h("span", { class: "swatch ring unknown" }), "unknown"),
      h("span", {}, h("span", { class: "swatch ring inactive" }), "inactive"),
      h("span", {}, h("span", { class: "swatch ring off" }), "off"));
    $("#map-legend").replaceChildren(...legend);
  }

  /** @param {Server[]} list @param {Colors} colors */
  renderSummary(list, colors) {
    const up = list.filter((s) => s.health === "up").length;
    const off = list.filter((s) => !s.is_on).length;
    const inactive = list.filter((s) => s.is_on && !s.is_active).length;
    const resting = [off && `${off} off`, inactive && `${inactive} inactive`].filter(Boolean).map((t) => `, ${t}`).join("");
    const pending = list.reduce((n, s) => n + s.pending_jobs, 0);
    const lost = list.reduce((n, s) => n + s.unrecoverable, 0);
    $("#servers-summary").textContent = `${plural(list.length, "server")} in ${plural(colors.size, "zone")}, ${up} up${resting}` +
      (pending ? `, ${plural(pending, "copy", "copies")} in progress.` : ", all in sync.") +
      (lost ? ` ${plural(lost, "corrupt replica")} with no good copy left: see the log.` : "");
  }

  /** Probe a server's capabilities now, and show what it proved.
   * @param {Server} server @param {HTMLButtonElement} button */
  async probeServer(server, button) {
    try {
      /** @type {Server} */
      const probed = await whileBusy(button, () => this.session.post(`/servers/${server.id}/probe`), { label: "Probing…" });
      this.rows.get(probed.id)?.update(probed, zoneColors(this.list.map((s) => (s.id === probed.id ? probed : s))));
      toast(`${probed.name} probed`);
    } catch (err) {
      toastError(err);
    }
  }

  /** @param {Server} server */
  async removeServer(server) {
    const ok = await confirmDialog(`Remove ${server.name}?`,
      `${server.name} (${server.location}) leaves the fleet. Its objects stay in its bucket; files whose only copy is there block the removal.`,
      "Remove");
    if (!ok) return;
    try {
      await this.session.del(`/servers/${server.id}`);
      toast(`${server.name} removed`);
      this.refresh();
    } catch (err) {
      toastError(err, { ms: 8000 });
    }
  }
}
