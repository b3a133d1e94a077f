// @ts-check
// cdnstore's bundled page: sign in, files (upload, download, rename, share, delete), share links,
// history and, for administrators, the storage servers. It uses the public API only (api.js).
//
// This module is the shell: the session, the tabs and which view shows. Each view and dialog is a
// module of its own that owns its state, listeners and timers (login-view.js, files-view.js,
// uploads.js, details-dialog.js, share-dialog.js, links-view.js, requests-view.js with request-dialog.js and
// received-dialog.js, trash-view.js (both with paged-list.js), history-view.js, servers-view.js with
// server-dialog.js and jobs-card.js, stats-chart.js, users-view.js with user-dialog.js, password-dialog.js,
// usage-bar.js, keys-view.js, webhooks-view.js with webhook-dialog.js and deliveries-dialog.js).

import { Session } from "./api.js";
import { DetailsDialog } from "./details-dialog.js";
import { defaultLife, expiresAtOf, expiryOptions } from "./expiry.js";
import { FilesView } from "./files-view.js";
import { HistoryView } from "./history-view.js";
import { LinksView } from "./links-view.js";
import { KeysView } from "./keys-view.js";
import { LoginView } from "./login-view.js";
import { PasswordDialog } from "./password-dialog.js";
import { RequestsView } from "./requests-view.js";
import { ServersView } from "./servers-view.js";
import { ShareDialog } from "./share-dialog.js";
import { StatsChart } from "./stats-chart.js";
import { TrashView } from "./trash-view.js";
import { $ } from "./ui.js";
import { ownFiles, Uploads } from "./uploads.js";
import { MyUsage } from "./usage-bar.js";
import { UsersView } from "./users-view.js";
import { WebhooksView } from "./webhooks-view.js";

const VIEWS = ["files", "links", "requests", "trash", "history", "webhooks", "servers", "users", "keys"];

const session = new Session(signedOut);
const login = new LoginView(session, { signedIn: showApp });
// A link made, edited or revoked: the files it shares are marked again.
const share = new ShareDialog(session, { changed: () => files.loadShared() });
const usage = new MyUsage(session);
/** @type {FilesView} */
let files; // (the details dialog tells it of the file read afresh, or a new expiry; it opens the details)
const details = new DetailsDialog(session, { share: (file) => share.open(file), changed: (file) => files.updated(file) });
const trash = new TrashView(session, { changed: () => usage.load() });
files = new FilesView(session, {
  details: (file) => details.open(file),
  share: (file) => share.open(file),
  shareMany: (chosen) => share.openMany(chosen),
  removed: () => usage.load(),
  trashDays: () => trash.days,
  listed: (items) => uploads.offerUnfinished(items), // what a reload left unfinished, offered to resume
});
const links = new LinksView(session, { changed: () => files.loadShared() });
const uploadExpiry = $("#upload-expiry", HTMLSelectElement);
const uploads = new Uploads(ownFiles(session, () => expiresAtOf(uploadExpiry.value)), {
  changed: (file) => {
    files.upsert(file);
    if (file.status === "stored") usage.load();
  },
  cancelled: () => files.load(),
}, { dropTargets: ["#files-view"] });
const requests = new RequestsView(session, { details: (file) => details.open(file) });
const history = new HistoryView(session);
const servers = new ServersView(session);
const stats = new StatsChart(session);
const users = new UsersView(session);
const keys = new KeysView(session);
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
  links.reset();
  uploads.reset();
  requests.reset();
  trash.reset();
  history.reset();
  keys.reset();
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
  $('.tabs a[data-view="links"]').hidden = !session.can("can_view_filesharelink");
  $('.tabs a[data-view="requests"]').hidden = !session.can("can_upload_file");
  uploadExpiry.replaceChildren(...expiryOptions(user, defaultLife(user)));
  $("#change-password").hidden = !login.passwords; // (single sign-on only: nobody has a password here)
  uploads.show();
  requests.show();
  trash.loadDays();
  for (const el of document.querySelectorAll(".copies-col")) /** @type {HTMLElement} */ (el).hidden = !canSeeServers();
  history.signedIn();
  keys.signedIn();
  route();
}

/** Show the view the address names (#files, #links, #requests, #trash, #history, #webhooks, #servers, #users,
 * #keys), the files when it names none. */
function route() {
  if (!session.signedIn) return;
  let view = location.hash.replace(/^#/, "") || "files";
  const allowed = {
    servers: canSeeServers(),
    users: isAdmin(),
    requests: session.can("can_upload_file"),
    links: session.can("can_view_filesharelink"),
  };
  if (!VIEWS.includes(view) || /** @type {Record<string, boolean>} */ (allowed)[view] === false) view = "files";
  for (const name of VIEWS) $(`#${name}-view`).hidden = name !== view;
  for (const link of document.querySelectorAll(".tabs a")) {
    if (/** @type {HTMLElement} */ (link).dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view[0].toUpperCase()}${view.slice(1)} · cdnstore`;
  if (view === "files") {
    files.load();
    usage.load();
  } else {
    files.stop();
  }
  if (view === "links") links.load();
  if (view === "requests") requests.load();
  if (view === "trash") trash.load();
  if (view === "history") history.load();
  if (view === "servers") {
    servers.start();
    stats.start();
  } else {
    servers.stop();
    stats.stop();
  }
  if (view === "users") users.load();
  if (view === "keys") keys.load();
  else keys.hideSecret(); // (a secret shown once is not left on the page)
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
