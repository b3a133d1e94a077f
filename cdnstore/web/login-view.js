// @ts-check
// The sign-in form: username and password, a sentence when they are wrong.

import { ApiError } from "./api.js";
import { say, whileBusy } from "./feedback.js";
import { $ } from "./ui.js";

/** What went wrong with a sign-in, in the page's words rather than the API's. @param {unknown} err */
function signInError(err) {
  if (err instanceof ApiError && err.code === "invalid_credentials") return "Wrong username or password. Try again.";
  if (err instanceof ApiError && err.code === "too_many_attempts") {
    return "Too many failed sign-ins. Wait a few minutes, then try again.";
  }
  return say(err);
}

export class LoginView {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ signedIn: () => void }} on
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    this.view = $("#login-view");
    this.form = $("#login-form", HTMLFormElement);
    this.username = $("#login-username", HTMLInputElement);
    this.password = $("#login-password", HTMLInputElement);
    this.error = $("#login-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** @param {string} [message] why the user is asked to sign in (a session that ended) */
  show(message = "") {
    this.view.hidden = false;
    this.error.textContent = message;
    this.password.value = "";
    this.username.focus();
  }

  hide() {
    this.view.hidden = true;
  }

  async submit() {
    const username = this.username.value.trim();
    const password = this.password.value;
    if (!username || !password) {
      this.error.textContent = "Enter your username and password.";
      return;
    }
    this.error.textContent = "";
    const button = $("#login-form button[type=submit]", HTMLButtonElement);
    try {
      await whileBusy(button, () => this.session.login(username, password));
    } catch (err) {
      this.error.textContent = signInError(err);
      // Straight back to the password: the username is usually right.
      this.password.value = "";
      this.password.focus();
      return;
    }
    this.on.signedIn();
  }
}
