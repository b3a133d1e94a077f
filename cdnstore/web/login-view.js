// @ts-check
// The sign-in form: username and password, a sentence when they are wrong; and "Sign in with <name>" when
// the daemon has single sign-on (GET /auth/methods), which leaves for the provider and comes back signed in
// (the same cookie session: the shell's restore() finds it).

import { ApiError, publicApi } from "./api.js";
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
    this.passwordLogin = $("#password-login");
    this.sso = $("#sso-login");
    this.ssoButton = $("#sso-button", HTMLAnchorElement);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!this.passwordLogin.hidden) this.submit();
    });
    /** whether this daemon takes passwords (else the app offers no password change either) */
    this.passwords = true;
    this.methods = this.loadMethods();
  }

  /** How this daemon signs in: the password form, single sign-on's button, or both. */
  async loadMethods() {
    try {
      /** @type {import("./types.js").AuthMethods} */
      const methods = await publicApi.methods();
      this.passwords = methods.password;
      this.passwordLogin.hidden = !methods.password;
      this.sso.hidden = !methods.oidc;
      if (methods.oidc) this.ssoButton.textContent = `Sign in with ${methods.oidc.name}`;
    } catch {
      // The password form stays: the daemon says why it fails when the form is sent.
    }
  }

  /** @param {string} [message] why the user is asked to sign in (a session that ended) */
  show(message = "") {
    this.view.hidden = false;
    this.error.textContent = message;
    this.password.value = "";
    // Back from the provider, the page lands where it was (a path and view of this site: return_to).
    const here = `${location.pathname}${location.hash}`;
    this.ssoButton.href = `/api/v1/auth/oidc/login?${new URLSearchParams({ return_to: here })}`;
    this.methods.then(() => (this.passwordLogin.hidden ? this.ssoButton : this.username).focus());
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
