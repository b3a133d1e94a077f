// @ts-check
// cdnstore's bundled page: sign in, files (upload, download, rename, share, delete), history and,
// for administrators, the storage servers. It uses the public API only (api.js).
//
// This module is the shell: the session, the tabs and which view shows. Each view and dialog is a
// module of its own that owns its state, listeners and timers (login-view.js, files-view.js,
// uploads.js, details-dialog.js, share-dialog.js, history-view.js, servers-view.js with
// server-dialog.js and jobs-card.js, stats-chart.js, users-view.js with user-dialog.js, password-dialog.js,
// usage-bar.js, webhooks-view.js with webhook-dialog.js and deliveries-dialog.js).

import { Session } from "./api.js";
import { DetailsDialog } from "./details-dialog.js";
import { FilesView } from "./files-view.js";
import { HistoryView } from "./history-view.js";
import { LoginView } from "./login-view.js";
import { PasswordDialog } from "./password-dialog.js";
import { ServersView } from "./servers-view.js";
import { ShareDialog } from "./share-dialog.js";
import { StatsChart } from "./stats-chart.js";
import { $ } from "./ui.js";
import { Uploads } from "./uploads.js";
import { MyUsage } from "./usage-bar.js";
import { UsersView } from "./users-view.js";
import { WebhooksView } from "./webhooks-view.js";

const VIEWS = ["files", "history", "webhooks", "servers", "users"];

const session = new Session(signedOut);
const login = new LoginView(session, { signedIn: showApp });
const share = new ShareDialog(session);
const details = new DetailsDialog(session, { share: (file) => share.open(file) });
const usage = new MyUsage(session);
const files = new FilesView(session, {
  details: (file) => details.open(file), share: (file) => share.open(file), removed: () => usage.load(),
});
const uploads = new Uploads(session, {
  changed: (file) => {
    files.upsert(file);
    if (file.status === "stored") usage.load();
  },
  cancelled: () => files.load(),
});
const history = new HistoryView(session);
const servers = new ServersView(session);
const stats = new StatsChart(session);
const users = new UsersView(session);
const webhooks = new WebhooksView(session);
const password = new PasswordDialog(session);

const canSeeServers = () => session.can("can_view_cdnserver");
const isAdmin = () => !!session.user && session.user.is_admin;

/** The session ended (sign-out, or it could not be renewed): nothing of it stays on the page.
 * @param {string} [message] */
function signedOut(message) {
  servers.reset();
  stats.reset();
  users.reset();
  webhooks.reset();
  usage.reset();
  for (const dialog of document.querySelectorAll("dialog[open]")) /** @type {HTMLDialogElement} */ (dialog).close();
  files.reset();
  uploads.reset();
  history.reset();
  showLogin(message);
}

/** @param {string} [message] */
function showLogin(message) {
  $("#app-view").hidden = true;
  login.show(message);
}

function showApp() {
  const user = session.user;
  login.hide();
  $("#app-view").hidden = false;
  $("#whoami").textContent = user.username;
  $("#avatar").textContent = user.username.slice(0, 1).toUpperCase();
  $('.tabs a[data-view="servers"]').hidden = !canSeeServers();
  $('.tabs a[data-view="users"]').hidden = !isAdmin();
  uploads.show();
  for (const el of document.querySelectorAll(".copies-col")) /** @type {HTMLElement} */ (el).hidden = !canSeeServers();
  history.signedIn();
  route();
}

/** Show the view the address names (#files, #history, #webhooks, #servers, #users), the files when it names none. */
function route() {
  if (!session.signedIn) return;
  let view = location.hash.replace(/^#/, "") || "files";
  if (!VIEWS.includes(view) || (view === "servers" && !canSeeServers()) || (view === "users" && !isAdmin())) view = "files";
  for (const name of VIEWS) $(`#${name}-view`).hidden = name !== view;
  for (const link of document.querySelectorAll(".tabs a")) {
    if (/** @type {HTMLElement} */ (link).dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view[0].toUpperCase()}${view.slice(1)} · cdnstore`;
  if (view === "files") {
    files.load();
    usage.load();
  }
  if (view === "history") history.load();
  if (view === "servers") {
    servers.start();
    stats.start();
  } else {
    servers.stop();
    stats.stop();
  }
  if (view === "users") users.load();
  if (view === "webhooks") webhooks.load();
}

window.addEventListener("hashchange", route);
$("#logout").addEventListener("click", () => session.logout());
$("#change-password").addEventListener("click", () => password.open());
for (const button of document.querySelectorAll("dialog [data-close]")) {
  button.addEventListener("click", () => /** @type {HTMLDialogElement} */ (button.closest("dialog")).close());
}

// A session kept by the refresh cookie (a reload, another tab) resumes; otherwise, the sign-in form.
session.restore().then((resumed) => (resumed ? showApp() : showLogin()));
