// cdnstore's bundled page: sign in, files (upload, download, rename, share, delete), history and,
// for administrators, the storage servers. It uses the public API only (api.js).

import { ApiError, Session, describe } from "./api.js";
import { drawBase, drawServers, zoneColors } from "./map.js";
import { qrSvg } from "./qr.js";
import {
  $, badge, confirmDialog, copyText, fileKind, formatBytes, formatCount, formatTime, fullTime, h, plural, sentence,
  timeEl, toast,
} from "./ui.js";

const session = new Session(signedOut);
const PAGE = 50;
const UPLOADS_AT_ONCE = 3;
const ADMIN_REFRESH_MS = 4000;

/** An error shown on its own (a toast, a form's message) reads as a sentence. */
const say = (err) => sentence(describe(err));

// ---------------------------------------------------------------- sign in and out

function showLogin(message = "") {
  $("#app-view").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = message;
  $("#login-password").value = "";
  $("#login-username").focus();
}

function signedOut(message) {
  stopAdminRefresh();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  files.rows.clear();
  $("#files-body").replaceChildren();
  $("#uploads").replaceChildren();
  $("#history-body").replaceChildren();
  $("#servers-body").replaceChildren();
  servers.rows.clear();
  showLogin(message);
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = $("#login-username").value.trim();
  const password = $("#login-password").value;
  const error = $("#login-error");
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    return;
  }
  const button = $("#login-form button[type=submit]");
  button.disabled = true;
  error.textContent = "";
  try {
    await session.login(username, password);
    showApp();
  } catch (err) {
    error.textContent = signInError(err);
    // Straight back to the password: the username is usually right.
    $("#login-password").value = "";
    $("#login-password").focus();
  } finally {
    button.disabled = false;
  }
});

/** What went wrong with a sign-in, in the page's words rather than the API's. */
function signInError(err) {
  if (err instanceof ApiError && err.code === "invalid_credentials") return "Wrong username or password. Try again.";
  if (err instanceof ApiError && err.code === "too_many_attempts") {
    return "Too many failed sign-ins. Wait a few minutes, then try again.";
  }
  return say(err);
}

$("#logout").addEventListener("click", () => session.logout());

function showApp() {
  const user = session.user;
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  $("#whoami").textContent = user.username;
  $("#avatar").textContent = user.username.slice(0, 1).toUpperCase();
  $('.tabs a[data-view="servers"]').hidden = !canSeeServers();
  $("#dropzone").hidden = !session.can("can_upload_file");
  for (const el of document.querySelectorAll(".copies-col")) el.hidden = !session.can("can_view_cdnserver");
  fillHistoryFilter();
  route();
}

function canSeeServers() {
  return session.can("can_view_cdnserver");
}

// ---------------------------------------------------------------- views

const VIEWS = ["files", "history", "servers"];

function route() {
  if (!session.signedIn) return;
  let view = location.hash.replace(/^#/, "") || "files";
  if (!VIEWS.includes(view) || (view === "servers" && !canSeeServers())) view = "files";
  for (const name of VIEWS) $(`#${name}-view`).hidden = name !== view;
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view[0].toUpperCase()}${view.slice(1)} · cdnstore`;
  if (view === "files") loadFiles();
  if (view === "history") loadHistory();
  if (view === "servers") startAdminRefresh();
  else stopAdminRefresh();
}

window.addEventListener("hashchange", route);

// ---------------------------------------------------------------- files

const files = { rows: new Map(), cursor: null, q: "", loading: 0 };

function statusBadge(file) {
  return file.status === "stored" ? badge("Stored", "ok") : badge("Uploading", "warn");
}

async function loadFiles({ more = false } = {}) {
  const ticket = ++files.loading;
  try {
    const page = await session.get("/files", { limit: PAGE, q: files.q, cursor: more ? files.cursor : undefined });
    if (ticket !== files.loading) return; // a newer search answered first
    if (!more) {
      files.rows.clear();
      $("#files-body").replaceChildren();
    }
    for (const file of page.items) upsertFile(file, { atEnd: true });
    files.cursor = page.next_cursor;
    $("#files-more").hidden = !files.cursor;
    updateFilesEmpty();
  } catch (err) {
    toast(say(err), { error: true });
  }
}

function updateFilesEmpty() {
  const empty = files.rows.size === 0;
  $("#files-empty").hidden = !empty;
  $("#files-table").hidden = empty;
  $("#files-empty").textContent = files.q
    ? `No file name contains “${files.q}”.`
    : session.can("can_upload_file") ? "No files yet. Upload some above to get started." : "No files yet.";
}

let searchTimer = null;
$("#file-search").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    files.q = event.target.value.trim();
    loadFiles();
  }, 250);
});
$("#files-more-button").addEventListener("click", () => loadFiles({ more: true }));

/** Add a file's row, or refresh it in place. */
function upsertFile(file, { atEnd = false } = {}) {
  const existing = files.rows.get(file.id);
  if (existing) {
    existing.file = file;
    existing.render();
    return;
  }
  const row = makeFileRow(file);
  files.rows.set(file.id, row);
  const body = $("#files-body");
  if (atEnd) body.append(row.tr);
  else body.prepend(row.tr);
  updateFilesEmpty();
}

function makeFileRow(file) {
  const tr = h("tr", { dataset: { id: file.id } });
  const nameCell = h("td", { class: "primary-cell", "data-label": "Name" });
  const sizeCell = h("td", { class: "num", "data-label": "Size" });
  const statusCell = h("td", { class: "status-cell", "data-label": "Status" });
  const copiesCell = h("td", { class: "copies-col", "data-label": "Copies", hidden: !session.can("can_view_cdnserver") });
  const addedCell = h("td", { "data-label": "Added" });
  const actions = h("td", { class: "actions" });
  tr.append(nameCell, sizeCell, statusCell, copiesCell, addedCell, actions);
  const row = { tr, file, editing: false };

  row.render = () => {
    const f = row.file;
    tr.dataset.status = f.status;
    if (!row.editing) {
      // The name opens the file's details (a button, so the keyboard reaches it too).
      nameCell.replaceChildren(h("button", {
        type: "button", class: "file-name", title: `Details of ${f.name}`, onclick: () => openDetails(row.file),
      }, h("span", { class: "file-icon", "aria-hidden": "true" }, fileKind(f.name)), h("span", { class: "name" }, f.name)));
    }
    sizeCell.textContent = formatBytes(f.size);
    statusCell.replaceChildren(statusBadge(f));
    addedCell.replaceChildren(timeEl(f.created_at));
    const ready = f.status === "stored";
    actions.replaceChildren(
      session.can("can_view_file") && h("button", {
        type: "button", class: "small", disabled: !ready, "aria-label": `Download ${f.name}`, onclick: () => download(f),
      }, "Download"),
      session.can("can_view_filesharelink") && h("button", {
        type: "button", class: "small", disabled: !ready, "aria-label": `Share ${f.name}`, onclick: () => openShare(row.file),
      }, "Share"),
      session.can("can_rename_file") && h("button", {
        type: "button", class: "small ghost", "aria-label": `Rename ${f.name}`, onclick: () => startRename(row, nameCell),
      }, "Rename"),
      session.can("can_delete_file") && h("button", {
        type: "button", class: "small ghost link-danger", "aria-label": `Delete ${f.name}`, onclick: () => removeFile(row),
      }, "Delete"),
    );
    if (session.can("can_view_cdnserver")) loadCopies(f, copiesCell);
  };
  row.render();
  return row;
}

async function loadCopies(file, cell) {
  if (file.status !== "stored") {
    cell.replaceChildren(h("span", { class: "muted" }, "—"));
    return;
  }
  try {
    const answer = await session.get(`/files/${file.id}/servers`);
    const present = answer.items.filter((r) => r.status === "present");
    const pending = answer.items.length - present.length;
    const where = answer.items.map((r) => `${r.server.location} (${r.status})`).join(", ");
    cell.replaceChildren(h("span", { title: where },
      plural(present.length, "copy", "copies"),
      pending ? h("span", { class: "muted" }, ` + ${pending} pending`) : null));
  } catch {
    cell.textContent = "—";
  }
}

// ---------------------------------------------------------------- file details

const detailsDialog = $("#details-dialog");

function openDetails(file) {
  $("#details-title").textContent = file.name;
  const rows = [
    ["Size", `${formatBytes(file.size)}${file.size >= 1000 ? ` (${plural(file.size, "byte")})` : ""}`],
    ["Type", file.content_type || "—"],
    ["Status", file.status === "stored" ? "Stored" : "Uploading (not yet stored)"],
    ["Zone", file.zone || "—"],
    ["Added", fullTime(file.created_at)],
    ["Changed", fullTime(file.updated_at)],
    ["SHA-256", file.sha256 ? h("code", { class: "hash" }, file.sha256) : "Not known yet"],
  ];
  $("#details-list").replaceChildren(...rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
  const ready = file.status === "stored";
  $("#details-actions").replaceChildren(
    h("button", { type: "button", onclick: () => detailsDialog.close() }, "Close"),
    session.can("can_view_filesharelink") && h("button", {
      type: "button", disabled: !ready, onclick: () => { detailsDialog.close(); openShare(file); },
    }, "Share"),
    session.can("can_view_file") && h("button", {
      type: "button", class: "primary", disabled: !ready, onclick: () => download(file),
    }, "Download"));
  const canSeeCopies = session.can("can_view_cdnserver") && ready;
  $("#details-copies-section").hidden = !canSeeCopies;
  $("#details-copies").replaceChildren();
  detailsDialog.showModal();
  if (canSeeCopies) loadDetailCopies(file);
}

async function loadDetailCopies(file) {
  const list = $("#details-copies");
  try {
    const answer = await session.get(`/files/${file.id}/servers`);
    const tones = { present: "ok", pending: "warn", corrupt: "danger" };
    const words = { present: "Present", pending: "Copying", corrupt: "Being replaced" };
    list.replaceChildren(...answer.items.map((r) => h("li", {},
      h("span", {}, h("strong", {}, r.server.name), h("span", { class: "muted" }, ` · ${r.server.location} (${r.server.zone})`)),
      badge(words[r.status] || r.status, tones[r.status] || ""))));
    if (!answer.items.length) list.replaceChildren(h("li", { class: "muted" }, "No server holds this file."));
  } catch (err) {
    list.replaceChildren(h("li", { class: "error" }, say(err)));
  }
}

async function download(file) {
  try {
    const answer = await session.get(`/files/${file.id}/download`);
    toast(`Downloading “${file.name}” from ${answer.server.location}`);
    window.location.assign(answer.url);
  } catch (err) {
    toast(say(err), { error: true });
  }
}

function startRename(row, cell) {
  if (row.editing) return;
  row.editing = true;
  const inputId = `rename-${row.file.id}`;
  const input = h("input", { id: inputId, value: row.file.name, autocomplete: "off", spellcheck: "false" });
  const error = h("p", { class: "error", role: "alert" });
  const stop = () => { row.editing = false; row.render(); };
  const form = h("form", { class: "rename-form", "aria-label": `Rename ${row.file.name}` },
    h("label", { for: inputId, class: "sr-only" }, `New name for ${row.file.name}`),
    input,
    h("button", { type: "submit", class: "small primary" }, "Save"),
    h("button", { type: "button", class: "small", onclick: stop }, "Cancel"),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name || name === row.file.name) { stop(); return; }
    try {
      row.file = await session.patch(`/files/${row.file.id}`, { name });
      toast(`Renamed to “${name}”`);
      stop();
    } catch (err) {
      error.textContent = say(err);
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  });
  input.addEventListener("keydown", (event) => { if (event.key === "Escape") stop(); });
  cell.replaceChildren(form);
  input.focus();
  const dot = row.file.name.lastIndexOf(".");
  input.setSelectionRange(0, dot > 0 ? dot : row.file.name.length);
}

async function removeFile(row) {
  const name = row.file.name;
  if (!(await confirmDialog(`Delete “${name}”?`, "It is removed from every server, and its share links stop working. This cannot be undone."))) return;
  try {
    await session.del(`/files/${row.file.id}`);
    row.tr.remove();
    files.rows.delete(row.file.id);
    updateFilesEmpty();
    toast(`Deleted “${name}”`);
  } catch (err) {
    toast(say(err), { error: true });
  }
}

// ---------------------------------------------------------------- uploads

const queue = [];
let uploadsRunning = 0;

$("#file-input").addEventListener("change", (event) => {
  startUploads(event.target.files);
  event.target.value = "";
});

const dropzone = $("#dropzone");
let dragDepth = 0;
for (const target of [dropzone, $("#files-view")]) {
  target.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    dropzone.classList.add("dragging");
  });
  target.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  target.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropzone.classList.remove("dragging");
  });
  target.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.stopPropagation();
    dragDepth = 0;
    dropzone.classList.remove("dragging");
    if (session.can("can_upload_file")) startUploads(event.dataTransfer.files);
  });
}

function hasFiles(event) {
  return event.dataTransfer && [...event.dataTransfer.types].includes("Files");
}

function startUploads(list) {
  const items = [];
  for (const file of list) {
    const item = makeUploadItem(file);
    items.push(item.el);
    queue.push({ file, item });
  }
  $("#uploads").prepend(...items); // newest batch first, each batch in the order it was chosen
  pumpUploads();
}

function pumpUploads() {
  while (uploadsRunning < UPLOADS_AT_ONCE && queue.length) {
    const { file, item } = queue.shift();
    uploadsRunning += 1;
    uploadOne(file, item).finally(() => {
      uploadsRunning -= 1;
      pumpUploads();
    });
  }
}

function makeUploadItem(file) {
  const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload progress of ${file.name}` });
  const pct = h("span", { class: "pct" }, "0%");
  const status = h("p", { class: "status" }, "Waiting…");
  const dismiss = h("button", { type: "button", class: "small ghost", hidden: true, "aria-label": `Dismiss ${file.name}` }, "Dismiss");
  const el = h("div", { class: "upload", role: "group", "aria-label": `Upload of ${file.name}` },
    h("span", { class: "name", title: file.name }, file.name),
    h("span", {}, pct, " ", dismiss),
    progress, status);
  dismiss.addEventListener("click", () => el.remove());
  return {
    el,
    progress(fraction) {
      const value = Math.round(fraction * 100);
      progress.value = value;
      pct.textContent = `${value}%`;
    },
    status(text) { status.textContent = text; },
    done(text) {
      el.classList.add("done");
      status.textContent = text;
      dismiss.hidden = false;
      setTimeout(() => el.remove(), 15000);
    },
    fail(text) {
      el.classList.add("failed");
      status.textContent = text;
      dismiss.hidden = false;
    },
  };
}

async function uploadOne(file, item) {
  let stage = "prepare";
  try {
    item.status("Preparing…");
    const answer = await session.post("/files", {
      name: file.name, size: file.size, content_type: file.type || "application/octet-stream",
    });
    upsertFile(answer.file);
    stage = "put";
    const server = answer.upload.server;
    item.status(`Uploading to ${server.location} (${formatBytes(file.size)})…`);
    await putToStorage(answer.upload, file, (fraction) => item.progress(fraction));
    item.progress(1);
    stage = "complete";
    item.status("Confirming…");
    const stored = await confirmStored(answer.file.id);
    upsertFile(stored);
    item.done(`Stored in ${server.location}`);
  } catch (err) {
    const what = { prepare: "Could not start the upload", put: "The upload failed", complete: "The upload was not confirmed" }[stage];
    item.fail(sentence(`${what}: ${describe(err)}`));
  }
}

/** PUT the bytes to the presigned URL with exactly the headers it came with, except Content-Length,
 * which the browser sets itself (it is a forbidden header). */
function putToStorage(upload, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method || "PUT", upload.url);
    for (const [name, value] of Object.entries(upload.headers || {})) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => { if (event.lengthComputable && event.total) onProgress(event.loaded / event.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(`the storage server ${upload.server.name} answered ${xhr.status}${s3Message(xhr.responseText)}`));
    };
    xhr.onerror = () => reject(new Error(`the storage server ${upload.server.name} could not be reached`));
    xhr.ontimeout = () => reject(new Error(`the storage server ${upload.server.name} did not answer in time`));
    xhr.onabort = () => reject(new Error("the upload was cancelled"));
    xhr.send(file);
  });
}

function s3Message(text) {
  const match = /<Message>([^<]*)<\/Message>/.exec(text || "");
  return match ? `: ${match[1]}` : "";
}

/** POST /complete until the daemon sees the object (it may also learn it from a storage event). */
async function confirmStored(id) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const file = await session.post(`/files/${id}/complete`);
      if (file.status === "stored") return file;
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== "upload_incomplete" || attempt >= 10) throw err;
    }
    await new Promise((r) => setTimeout(r, 300 + attempt * 200));
  }
}

// ---------------------------------------------------------------- share dialog

const share = { file: null };
const shareDialog = $("#share-dialog");

function openShare(file) {
  share.file = file;
  $("#share-title").textContent = `Share “${file.name}”`;
  $("#share-form").reset();
  $("#share-form").hidden = !session.can("can_add_filesharelink");
  $("#share-error").textContent = "";
  $("#share-result").hidden = true;
  $("#share-copied").textContent = "";
  $("#share-links").replaceChildren();
  shareDialog.showModal();
  loadLinks();
}

for (const button of document.querySelectorAll("dialog [data-close]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}

async function loadLinks() {
  const file = share.file;
  try {
    const answer = await session.get(`/files/${file.id}/links`);
    if (share.file !== file) return;
    const items = answer.items || [];
    $("#share-links").replaceChildren(...items.map(linkItem));
    $("#share-links-empty").hidden = items.length > 0;
  } catch (err) {
    $("#share-links").replaceChildren(h("li", { class: "error" }, say(err)));
  }
}

function linkItem(link) {
  const tags = [];
  // A link that no longer works says so first: the owner may want to revoke it or make a new one.
  const expired = link.expires_at && new Date(link.expires_at) <= new Date();
  if (link.max_downloads && link.downloads >= link.max_downloads) tags.push(badge("Used up", "danger", true));
  else if (expired) tags.push(badge("Expired", "danger", true));
  if (link.has_password) tags.push(badge("Password", "info", true));
  tags.push(badge(link.expires_at ? `${expired ? "Expired" : "Expires"} ${formatTime(link.expires_at)}` : "No expiry", "", true));
  tags.push(badge(link.max_downloads
    ? `${formatCount(link.downloads)} / ${plural(link.max_downloads, "download")}`
    : plural(link.downloads, "download"), "", true));
  const copy = h("button", { type: "button", class: "small", "aria-label": `Copy link created ${fullTime(link.created_at)}` }, "Copy");
  copy.addEventListener("click", async () => {
    if (await copyText(link.url)) toast("Link copied");
  });
  const revoke = session.can("can_delete_filesharelink") && h("button", {
    type: "button", class: "small ghost link-danger", "aria-label": `Revoke link created ${fullTime(link.created_at)}`,
    onclick: () => revokeLink(link),
  }, "Revoke");
  return h("li", { class: "link-item", dataset: { id: link.id } },
    h("div", { class: "meta" }, h("span", { class: "url", title: link.url }, link.url), h("div", { class: "tags" }, tags)),
    copy, revoke);
}

async function revokeLink(link) {
  try {
    await session.del(`/files/${link.file_id}/links/${link.id}`);
    toast("Link revoked");
    if ($("#share-url").value === link.url) $("#share-result").hidden = true;
    loadLinks();
  } catch (err) {
    toast(say(err), { error: true });
  }
}

$("#share-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#share-error");
  error.textContent = "";
  const body = {};
  const password = $("#share-password").value;
  if (password) body.password = password;
  const expiry = $("#share-expiry").value;
  if (expiry) body.expires_in = Number(expiry);
  const limit = $("#share-limit").value.trim();
  if (limit) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1) {
      error.textContent = "The download limit must be a whole number of at least 1.";
      return;
    }
    body.max_downloads = n;
  }
  const button = $("#share-create");
  button.disabled = true;
  try {
    const link = await session.post(`/files/${share.file.id}/links`, body);
    $("#share-url").value = link.url;
    $("#share-qr").replaceChildren(qrSvg(link.url));
    $("#share-result").hidden = false;
    $("#share-copied").textContent = link.has_password
      ? "Link created. Anyone with it and the password can download the file."
      : "Link created. Anyone with it can download the file.";
    $("#share-password").value = "";
    loadLinks();
  } catch (err) {
    error.textContent = say(err);
  } finally {
    button.disabled = false;
  }
});

$("#share-copy").addEventListener("click", async () => {
  const ok = await copyText($("#share-url").value, $("#share-url"));
  $("#share-copied").textContent = ok ? "Copied to the clipboard." : "Select the link and copy it.";
});

// ---------------------------------------------------------------- history

const EVENTS = {
  "file.uploaded": "Upload started",
  "file.stored": "Stored",
  "file.downloaded": "Downloaded",
  "file.renamed": "Renamed",
  "file.deleted": "Deleted",
  "link.created": "Link created",
  "link.deleted": "Link revoked",
  "link.downloaded": "Downloaded by link",
  "server.created": "Server added",
  "server.updated": "Server changed",
  "server.deleted": "Server removed",
};
const EVENT_TONES = { "file.stored": "ok", "file.deleted": "danger", "link.deleted": "danger", "server.deleted": "danger", "link.created": "info" };
const history = { cursor: null, event: "" };

/** The kinds of event the user can have: server events only for those who may change servers. */
function fillHistoryFilter() {
  const changesServers = ["can_add_cdnserver", "can_update_cdnserver", "can_delete_cdnserver"].some((p) => session.can(p));
  const kinds = Object.entries(EVENTS).filter(([value]) => changesServers || !value.startsWith("server."));
  history.event = "";
  $("#history-filter").replaceChildren(h("option", { value: "" }, "All events"),
    ...kinds.map(([value, label]) => h("option", { value }, label)));
}
$("#history-filter").addEventListener("change", (event) => {
  history.event = event.target.value;
  loadHistory();
});
$("#history-more-button").addEventListener("click", () => loadHistory({ more: true }));

async function loadHistory({ more = false } = {}) {
  try {
    const page = await session.get("/history", { limit: PAGE, event: history.event, cursor: more ? history.cursor : undefined });
    const body = $("#history-body");
    if (!more) body.replaceChildren();
    body.append(...page.items.map(historyRow));
    history.cursor = page.next_cursor;
    $("#history-more").hidden = !history.cursor;
    $("#history-empty").hidden = body.children.length > 0;
    $("#history-empty").textContent = history.event
      ? `No “${EVENTS[history.event]}” events yet.`
      : "Nothing has happened yet. Uploads, downloads and share links show up here.";
  } catch (err) {
    toast(say(err), { error: true });
  }
}

function historyRow(item) {
  return h("tr", {},
    h("td", { "data-label": "When", class: "when" }, timeEl(item.created_at)),
    h("td", { "data-label": "Event" }, badge(EVENTS[item.event] || item.event, EVENT_TONES[item.event] || "")),
    h("td", { "data-label": "Details", class: "primary-cell" }, historyDetails(item)));
}

function detail(key, value) {
  if (key === "downloads") return `${plural(value, "download")} so far`;
  if (key === "max_downloads") return `limit ${plural(value, "download")}`;
  if (typeof value === "boolean") return value ? key.replace(/^(has|is)_/, "").replace(/_/g, " ") : `no ${key.replace(/^(has|is)_/, "").replace(/_/g, " ")}`;
  if (key === "size" || key === "bytes") return formatBytes(value);
  if (key.endsWith("_at")) return `${key.replace(/_at$/, "").replace(/_/g, " ")} ${formatTime(value)}`;
  return `${key.replace(/_/g, " ")} ${value}`;
}

function historyDetails(item) {
  const d = item.data || {};
  if (d.old_name !== undefined && d.new_name !== undefined) return `${d.old_name} → ${d.new_name}`;
  const parts = [];
  const main = d.name ?? d.file_name ?? d.server_name;
  if (main !== undefined) parts.push(h("strong", {}, String(main)));
  for (const [key, value] of Object.entries(d)) {
    if (value === main || value === null || typeof value === "object" || key.endsWith("_id") || key === "id") continue;
    parts.push(h("span", { class: "muted" }, ` · ${detail(key, value)}`));
  }
  return h("span", {}, parts);
}

// ---------------------------------------------------------------- servers (administrators)

const servers = { rows: new Map(), timer: null, busy: false, list: [], mapDrawn: false };

function startAdminRefresh() {
  if (!servers.mapDrawn) {
    drawBase($("#worldmap"));
    servers.mapDrawn = true;
  }
  $("#add-server").hidden = !session.can("can_add_cdnserver");
  $("#jobs-card").hidden = !session.user.is_admin;
  refreshAdmin();
  clearInterval(servers.timer);
  servers.timer = setInterval(refreshAdmin, ADMIN_REFRESH_MS);
}

function stopAdminRefresh() {
  clearInterval(servers.timer);
  servers.timer = null;
}

async function refreshAdmin() {
  if (servers.busy || !session.signedIn) return;
  servers.busy = true;
  try {
    const list = [];
    let cursor;
    do {
      const page = await session.get("/servers", { limit: 1000, cursor });
      list.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    renderServers(list);
    if (session.user && session.user.is_admin) await loadJobs();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) toast(say(err), { error: true });
  } finally {
    servers.busy = false;
  }
}

function renderServers(list) {
  servers.list = list;
  const colors = zoneColors(list);
  drawServers($("#worldmap"), list, colors);
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
  $("#zones").replaceChildren(...[...colors.keys()].map((zone) => h("option", { value: zone })));

  const up = list.filter((s) => s.health === "up").length;
  const off = list.filter((s) => !s.is_on).length;
  const inactive = list.filter((s) => s.is_on && !s.is_active).length;
  const resting = [off && `${off} off`, inactive && `${inactive} inactive`].filter(Boolean).map((t) => `, ${t}`).join("");
  const pending = list.reduce((n, s) => n + s.pending_jobs, 0);
  $("#servers-summary").textContent = `${plural(list.length, "server")} in ${plural(colors.size, "zone")}, ${up} up${resting}` +
    (pending ? `, ${plural(pending, "copy", "copies")} in progress.` : ", all in sync.");

  const body = $("#servers-body");
  const seen = new Set();
  for (const server of list) {
    seen.add(server.id);
    let row = servers.rows.get(server.id);
    if (!row) {
      row = makeServerRow(server);
      servers.rows.set(server.id, row);
    }
    row.update(server, colors);
    body.append(row.tr); // keeps the order of the answer; moving a row keeps its focus
  }
  for (const [id, row] of servers.rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      servers.rows.delete(id);
    }
  }
  $("#servers-empty").hidden = list.length > 0;
}

function makeServerRow(server) {
  const tr = h("tr", { dataset: { id: server.id } });
  const name = h("span", { class: "server-name" });
  const endpoint = h("span", { class: "server-endpoint" });
  const city = h("td", { "data-label": "City" });
  const zone = h("td", { "data-label": "Zone" });
  const on = h("input", { type: "checkbox", role: "switch" });
  const active = h("input", { type: "checkbox", role: "switch" });
  const health = h("td", { "data-label": "Health" });
  const count = h("td", { class: "num", "data-label": "Files" });
  const bytes = h("td", { class: "num", "data-label": "Bytes" });
  const sync = h("td", { "data-label": "Sync" });
  const canUpdate = session.can("can_update_cdnserver");
  const edit = canUpdate && h("button", { type: "button", class: "small" }, "Edit");
  const remove = session.can("can_delete_cdnserver") && h("button", { type: "button", class: "small ghost link-danger" }, "Remove");
  tr.append(
    h("td", { class: "primary-cell" }, h("div", { class: "field" }, name, endpoint)),
    city, zone,
    h("td", { "data-label": "On" }, h("label", { class: "switch" }, on)),
    h("td", { "data-label": "Active" }, h("label", { class: "switch" }, active)),
    health, count, bytes, sync,
    h("td", { class: "actions" }, edit, remove));
  const row = { tr, server };

  const toggle = (field, input) => async () => {
    const value = input.checked;
    input.disabled = true;
    try {
      const updated = await session.patch(`/servers/${row.server.id}`, { [field]: value });
      row.update(updated, zoneColors(servers.list.map((s) => (s.id === updated.id ? updated : s))));
      $("#servers-status").textContent = `${updated.name} is now ${field === "is_on" ? (value ? "on" : "off") : (value ? "active" : "not active")}.`;
      refreshAdmin();
    } catch (err) {
      input.checked = !value;
      toast(say(err), { error: true });
    } finally {
      input.disabled = !canUpdate;
    }
  };
  on.addEventListener("change", toggle("is_on", on));
  active.addEventListener("change", toggle("is_active", active));
  if (edit) edit.addEventListener("click", () => openServerForm(row.server));
  if (remove) remove.addEventListener("click", () => removeServer(row.server));

  row.update = (s, colors) => {
    row.server = s;
    name.textContent = s.name;
    endpoint.textContent = `${s.endpoint_url}/${s.bucket}`;
    city.textContent = s.location;
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = colors.get(s.zone) || "#999";
    zone.replaceChildren(h("span", { class: "zone-chip" }, swatch, s.zone));
    if (!on.disabled || !canUpdate) on.checked = s.is_on;
    if (!active.disabled || !canUpdate) active.checked = s.is_active;
    on.disabled = active.disabled = !canUpdate;
    on.setAttribute("aria-label", `${s.name} on`);
    active.setAttribute("aria-label", `${s.name} active`);
    const tone = { up: "ok", down: "danger" }[s.health] || "";
    health.replaceChildren(badge(s.health === "unknown" ? "Unknown" : s.health === "up" ? "Up" : "Down", tone));
    count.textContent = formatCount(s.files);
    bytes.textContent = formatBytes(s.bytes);
    sync.replaceChildren(h("span", { class: "sync" }, syncBadge(s)));
    if (edit) edit.setAttribute("aria-label", `Edit ${s.name}`);
    if (remove) remove.setAttribute("aria-label", `Remove ${s.name}`);
  };
  return row;
}

/** "In sync" only for a server that takes copies: one that is off or inactive says so instead. */
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

async function removeServer(server) {
  const ok = await confirmDialog(`Remove ${server.name}?`,
    `${server.name} (${server.location}) leaves the fleet. Its objects stay in its bucket; files whose only copy is there block the removal.`,
    "Remove");
  if (!ok) return;
  try {
    await session.del(`/servers/${server.id}`);
    toast(`${server.name} removed`);
    refreshAdmin();
  } catch (err) {
    toast(say(err), { error: true, ms: 8000 });
  }
}

// Add and edit.
const FIELDS = ["name", "location", "endpoint_url", "bucket", "region", "access_key", "secret_key", "zone", "latitude", "longitude"];
const serverDialog = $("#server-dialog");
let editing = null;

$("#add-server").addEventListener("click", () => openServerForm(null));

function openServerForm(server) {
  editing = server;
  const form = $("#server-form");
  form.reset();
  $("#server-error").textContent = "";
  $("#server-title").textContent = server ? `Edit ${server.name}` : "Add a storage server";
  $("#srv-secret-hint").hidden = !server;
  for (const field of FIELDS) {
    const input = $(`#srv-${field}`);
    input.removeAttribute("aria-invalid");
    input.value = server && server[field] !== undefined ? server[field] : "";
  }
  $("#srv-is_on").checked = server ? server.is_on : true;
  $("#srv-is_active").checked = server ? server.is_active : true;
  serverDialog.showModal();
  $("#srv-name").focus();
}

$("#server-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#server-error");
  error.textContent = "";
  for (const field of FIELDS) $(`#srv-${field}`).removeAttribute("aria-invalid");
  const values = {};
  for (const field of FIELDS) values[field] = $(`#srv-${field}`).value.trim();
  values.is_on = $("#srv-is_on").checked;
  values.is_active = $("#srv-is_active").checked;
  const problems = serverFormProblems(values);
  if (problems.length) {
    markInvalid(problems);
    return;
  }
  values.latitude = Number(values.latitude);
  values.longitude = Number(values.longitude);
  let body;
  if (editing) {
    body = {};
    for (const [key, value] of Object.entries(values)) {
      if (key === "access_key" || key === "secret_key") continue;
      if (value !== editing[key]) body[key] = value;
    }
    if (values.access_key || values.secret_key) {
      body.access_key = values.access_key;
      body.secret_key = values.secret_key;
    }
  } else {
    body = values;
    if (!body.region) delete body.region;
  }
  const save = $("#server-save");
  save.disabled = true;
  save.textContent = editing ? "Saving…" : "Checking the server…";
  try {
    const server = editing ? await session.patch(`/servers/${editing.id}`, body) : await session.post("/servers", body);
    serverDialog.close();
    toast(editing ? `${server.name} saved` : `${server.name} added`);
    refreshAdmin();
  } catch (err) {
    error.textContent = say(err);
    const fields = (err.problem && err.problem.errors) || [];
    for (const f of fields) {
      const input = document.getElementById(`srv-${String(f.field).split(".")[0]}`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
  } finally {
    save.disabled = false;
    save.textContent = "Save";
  }
});

const LABELS = {
  name: "Name", location: "City", endpoint_url: "S3 endpoint URL", bucket: "Bucket", access_key: "Access key",
  secret_key: "Secret key", zone: "Zone", latitude: "Latitude", longitude: "Longitude",
};
const RANGES = { latitude: 90, longitude: 180 };

/** Every field the form cannot be saved with, so that one try names them all: [field, reason]. */
function serverFormProblems(values) {
  const required = ["name", "location", "endpoint_url", "bucket", "zone", "latitude", "longitude"];
  // A new server needs its keys; an edit keeps the stored ones when both are left empty.
  if (!editing || values.access_key || values.secret_key) required.push("access_key", "secret_key");
  const problems = required.filter((f) => values[f] === "").map((f) => [f, "missing"]);
  for (const [field, limit] of Object.entries(RANGES)) {
    const n = Number(values[field]);
    if (values[field] !== "" && !(Number.isFinite(n) && Math.abs(n) <= limit)) problems.push([field, `range ${limit}`]);
  }
  return problems.sort((a, b) => FIELDS.indexOf(a[0]) - FIELDS.indexOf(b[0]));
}

function markInvalid(problems) {
  const missing = problems.filter(([, why]) => why === "missing").map(([f]) => LABELS[f]);
  const messages = missing.length ? [`Fill in ${listOf(missing)}.`] : [];
  for (const [field, why] of problems) {
    if (why !== "missing") {
      const limit = RANGES[field];
      messages.push(`${LABELS[field]} must be a number from -${limit} to ${limit}.`);
    }
  }
  $("#server-error").textContent = messages.join(" ");
  for (const [field] of problems) $(`#srv-${field}`).setAttribute("aria-invalid", "true");
  $(`#srv-${problems[0][0]}`).focus();
}

/** "a", "a and b", "a, b and c". */
function listOf(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

const JOB_KINDS = { copy: "Copy", remove: "Removal" };

async function loadJobs() {
  const page = await session.get("/jobs", { status: "failed", limit: 100 });
  const body = $("#jobs-body");
  body.replaceChildren(...page.items.map((job) => {
    const retry = h("button", { type: "button", class: "small", "aria-label": `Retry ${job.kind} of ${job.file_name || "a file"}` }, "Retry");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        await session.post(`/jobs/${job.id}/retry`);
        toast("Job queued again");
        refreshAdmin();
      } catch (err) {
        retry.disabled = false;
        toast(say(err), { error: true });
      }
    });
    return h("tr", { dataset: { id: job.id } },
      h("td", { class: "primary-cell" }, h("strong", {}, JOB_KINDS[job.kind] || job.kind), " ", h("span", { class: "muted small-text" }, formatTime(job.updated_at))),
      h("td", { "data-label": "File" }, job.file_name || "—"),
      h("td", { "data-label": "Server" }, job.server ? `${job.server.name} (${job.server.location})` : "—"),
      h("td", { class: "num", "data-label": "Attempts" }, String(job.attempts)),
      h("td", { "data-label": "Last error" }, h("span", { class: "job-error" }, job.last_error || "")),
      h("td", { class: "actions" }, retry));
  }));
  $("#jobs-empty").hidden = page.items.length > 0;
  body.closest(".table-wrap").hidden = page.items.length === 0;
}

// ---------------------------------------------------------------- start

// A session kept by the refresh cookie (a reload, another tab) resumes; otherwise, the sign-in form.
session.restore().then((resumed) => (resumed ? showApp() : showLogin()));
