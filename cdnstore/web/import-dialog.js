// @ts-check
// The dialog that imports a server's bucket (administrators): the objects cdnstore does not know become files
// of one user. The import runs in the daemon; its progress shows in the server's row.

import { say, whileBusy } from "./feedback.js";
import { $, h, toast } from "./ui.js";

/** @typedef {import("./types.js").Server} Server */

export class ImportDialog {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ started: () => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {Server | null} */
    this.server = null;
    this.dialog = $("#import-dialog", HTMLDialogElement);
    this.form = $("#import-form", HTMLFormElement);
    this.owner = $("#imp-owner", HTMLInputElement);
    this.prefix = $("#imp-prefix", HTMLInputElement);
    this.strip = $("#imp-strip_prefix", HTMLInputElement);
    this.error = $("#import-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** @param {Server} server */
  open(server) {
    this.server = server;
    this.form.reset();
    this.error.textContent = "";
    this.owner.removeAttribute("aria-invalid");
    $("#import-title").textContent = `Import ${server.bucket} on ${server.name}`;
    this.dialog.showModal();
    this.owner.focus();
    this.suggestOwners();
  }

  /** The usernames, offered as the owner (a failure only leaves the list empty). */
  async suggestOwners() {
    try {
      const page = await this.session.get("/users", { limit: 1000 });
      $("#import-users").replaceChildren(.../** @type {{ username: string }[]} */ (page.items).map((u) => h("option", { value: u.username })));
    } catch {
      // (the field takes any name; the daemon says when there is no such user)
    }
  }

  async submit() {
    const server = this.server;
    if (!server) return;
    this.error.textContent = "";
    this.owner.removeAttribute("aria-invalid");
    const owner = this.owner.value.trim();
    if (!owner) {
      this.error.textContent = "Fill in the owner: the user the files will belong to.";
      this.owner.setAttribute("aria-invalid", "true");
      this.owner.focus();
      return;
    }
    const body = { owner, prefix: this.prefix.value, strip_prefix: this.strip.checked };
    try {
      await whileBusy($("#import-start", HTMLButtonElement),
        () => this.session.post(`/servers/${server.id}/import`, body), { label: "Starting…" });
      this.dialog.close();
      toast(`Importing ${server.bucket} on ${server.name} for ${owner}: its progress shows in the list.`);
      this.on.started();
    } catch (err) {
      this.error.textContent = say(err);
      if (/** @type {any} */ (err).problem?.field === "owner") this.owner.setAttribute("aria-invalid", "true");
    }
  }
}
