// @ts-check
// Changing one's own password (PATCH /me with the current one). The daemon ends the user's OTHER
// sessions; this one goes on, so the user stays signed in here.

import { say, whileBusy } from "./feedback.js";
import { $, toast } from "./ui.js";

const MIN_LENGTH = 8; // the daemon's rule (schemas.Password), told before asking it

export class PasswordDialog {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    this.dialog = $("#password-dialog", HTMLDialogElement);
    this.form = $("#password-form", HTMLFormElement);
    this.current = $("#pw-current", HTMLInputElement);
    this.next = $("#pw-new", HTMLInputElement);
    this.error = $("#password-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  open() {
    this.form.reset();
    this.error.textContent = "";
    for (const input of [this.current, this.next]) input.removeAttribute("aria-invalid");
    this.dialog.showModal();
    this.current.focus();
  }

  async submit() {
    this.error.textContent = "";
    for (const input of [this.current, this.next]) input.removeAttribute("aria-invalid");
    const current = this.current.value;
    const password = this.next.value;
    if (!current) return this.invalid(this.current, "Fill in your current password.");
    if (password.length < MIN_LENGTH) return this.invalid(this.next, `The new password needs at least ${MIN_LENGTH} characters.`);
    if (password === current) return this.invalid(this.next, "The new password is the one you have now.");
    try {
      const user = await whileBusy($("#password-save", HTMLButtonElement),
        () => this.session.patch("/me", { current_password: current, password }), { label: "Saving…" });
      this.session.user = user;
      this.dialog.close();
      toast("Password changed. Your other sessions are signed out; this one goes on.");
    } catch (err) {
      // A wrong current password is 403 invalid_credentials: it says which field to fix.
      const wrong = /** @type {any} */ (err).code === "invalid_credentials";
      this.invalid(wrong ? this.current : this.next, wrong ? "Your current password is not right." : say(err));
    }
  }

  /** @param {HTMLInputElement} input @param {string} message */
  invalid(input, message) {
    this.error.textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}
