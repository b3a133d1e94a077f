// @ts-check
// The public page of a share link (/s/{token}): what is shared (one file, or several listed with their
// sizes), a password when the link has one, a download button per file, "Download all" as one ZIP for a
// link to several, and previews of images, audio, video, PDF and text. It needs no login; the token comes
// from the page's own address.

import { ApiError, describe, publicApi } from "./api.js";
import { previewOf } from "./preview.js";
import { $, fileKind, formatBytes, formatTime, h, plural, previewKind, sentence } from "./ui.js";

/** @typedef {import("./types.js").PublicLink} PublicLink */
/** @typedef {PublicLink["files"][number]} SharedFile */

// The page cannot see a download finish (it leaves through a navigation the browser turns into a file):
// after this long the status says it has started and where to find it, rather than "Downloading…" forever.
const STARTED_AFTER_MS = 1500;

const token = decodeURIComponent(location.pathname.replace(/^\/s\//, "").replace(/\/$/, ""));

/** @type {Record<string, [string, string]>} */
const GONE = {
  link_not_found: ["Link not found", "This link does not exist or was revoked. Ask the person who shared it for a new one."],
  link_expired: ["This link has expired", "It reached its expiry date or its download limit, or its files were deleted."],
};

/** @type {PublicLink | null} */
let shared = null;
const button = $("#public-download", HTMLButtonElement);
const status = $("#public-status");
const error = $("#public-error");
const passwordInput = $("#public-password", HTMLInputElement);

/** @param {string} code @param {string} [detail] */
function gone(code, detail = "") {
  const [title, text] = GONE[code] || ["This link cannot be used", detail];
  $("#public-loading").hidden = true;
  $("#public-file").hidden = true;
  $("#public-gone").hidden = false;
  $("#public-gone-title").textContent = title;
  $("#public-gone-text").textContent = text;
  document.title = `${title} · cdnstore`;
}

async function load() {
  if (!token) {
    gone("link_not_found");
    return;
  }
  try {
    show(await publicApi.link(token));
  } catch (err) {
    if (err instanceof ApiError && err.code in GONE) gone(err.code);
    else gone("", sentence(describe(err)));
  }
}

/** @param {PublicLink} info */
function show(info) {
  shared = info;
  const many = info.files.length > 1;
  const [first] = info.files;
  $("#public-loading").hidden = true;
  $("#public-file").hidden = false;
  $("#public-name").textContent = many ? plural(info.files.length, "file") : first.name;
  $("#public-kind").textContent = many ? "ZIP" : fileKind(first.name);
  showMeta();
  $("#public-password-field").hidden = !info.has_password;
  $("#public-password-hint").textContent = `The person who shared ${many ? "these files" : "this file"} protected them with a password.`;
  button.textContent = many ? "Download all (ZIP)" : "Download";
  const list = $("#public-files");
  list.hidden = !many;
  list.replaceChildren(...(many ? info.files.map(fileItem) : []));
  const kind = many ? null : previewKind(first.content_type);
  $("#public-preview-button").hidden = !kind;
  document.title = `${many ? plural(info.files.length, "file") : first.name} · cdnstore`;
  if (info.has_password) passwordInput.focus();
  // A link that counts nothing and asks nothing shows its one file at once; any other waits to be asked
  // (a preview counts as a download).
  if (kind && !info.has_password && info.downloads_left === null) preview(first);
}

/** Its size, when it expires, how many downloads it has left. */
function showMeta() {
  if (!shared) return;
  const left = shared.downloads_left === null ? "" : ` · ${plural(shared.downloads_left, "download")} left`;
  $("#public-meta").textContent = formatBytes(shared.size) + (shared.expires_at ? ` · link expires ${formatTime(shared.expires_at)}` : "") + left;
}

/** A download (or a preview, or the ZIP) was counted (-1 when the ZIP was refused after all). @param {number} [n] */
function counted(n = 1) {
  if (shared && shared.downloads_left !== null) {
    shared.downloads_left = Math.max(0, shared.downloads_left - n);
    showMeta();
  }
}

/** One file of a link to several: its name and size, to preview or download alone. @param {SharedFile} file */
function fileItem(file) {
  const kind = previewKind(file.content_type);
  return h("li", { class: "public-file-item", dataset: { id: file.id } },
    h("span", { class: "file-icon", "aria-hidden": "true" }, fileKind(file.name)),
    h("span", { class: "meta" }, h("span", { class: "name" }, file.name), h("span", { class: "muted small-text" }, formatBytes(file.size))),
    kind && h("button", { type: "button", class: "small ghost", "aria-label": `Preview ${file.name}`, onclick: () => preview(file) }, "Preview"),
    h("button", { type: "button", class: "small", "aria-label": `Download ${file.name}`, onclick: () => downloadOne(file) }, "Download"));
}

/** The password typed, or undefined when the link has none; null (and a message) when one is missing. */
function password() {
  if ($("#public-password-field").hidden) return undefined;
  if (passwordInput.value) return passwordInput.value;
  error.textContent = "Enter the password first.";
  passwordInput.focus();
  return null;
}

/** Say why an action was refused. @param {unknown} err */
function refused(err) {
  if (err instanceof ApiError && err.code in GONE) {
    gone(err.code);
  } else if (err instanceof ApiError && (err.code === "invalid_password" || err.code === "password_required")) {
    error.textContent = err.code === "invalid_password" ? "That password is not right. Try again." : "Enter the password first.";
    $("#public-password-field").hidden = false;
    passwordInput.setAttribute("aria-invalid", "true");
    passwordInput.select();
  } else if (err instanceof ApiError && err.code === "too_many_attempts") {
    error.textContent = "Too many wrong passwords. Wait a few minutes, then try again.";
  } else if (err instanceof ApiError && err.code === "archive_busy") {
    error.textContent = "Many downloads are running right now. Try again in a few seconds.";
  } else {
    error.textContent = sentence(describe(err));
  }
}

function clearMessages() {
  error.textContent = "";
  status.textContent = "";
  status.classList.remove("done");
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let startedTimer;

/** A download has left the page: say so, and after a moment that it has started. @param {string} where */
function started(where) {
  passwordInput.removeAttribute("aria-invalid");
  status.textContent = `Downloading${where}…`;
  clearTimeout(startedTimer);
  startedTimer = setTimeout(() => {
    button.disabled = false;
    status.textContent = `Your download${where} has started. Find it in your browser's downloads.`;
    status.classList.add("done");
    if (shared && shared.files.length === 1) button.textContent = "Download again";
  }, STARTED_AFTER_MS);
}

/** @param {SharedFile} file */
async function downloadOne(file) {
  clearMessages();
  const secret = password();
  if (secret === null) return;
  button.disabled = true;
  let left = false; // the button stays off until the page says the download has started
  try {
    const answer = await publicApi.download(token, secret, file.id);
    counted();
    window.location.assign(answer.url);
    left = true;
    started(` from ${answer.server.location}`);
  } catch (err) {
    refused(err);
  } finally {
    if (!left) button.disabled = false;
  }
}

/** @param {SharedFile} file */
async function preview(file) {
  const kind = previewKind(file.content_type);
  const box = $("#public-preview");
  if (!kind) return;
  clearMessages();
  const secret = password();
  if (secret === null) return;
  box.hidden = false;
  box.replaceChildren(h("p", { class: "muted small-text" }, `Loading the preview of ${file.name}…`));
  try {
    const answer = await publicApi.download(token, secret, file.id, true);
    counted();
    passwordInput.removeAttribute("aria-invalid");
    const many = !!shared && shared.files.length > 1;
    box.replaceChildren(previewOf(kind, answer.url, file.name));
    if (many) box.prepend(h("p", { class: "preview-name" }, file.name));
  } catch (err) {
    box.hidden = true;
    refused(err);
  }
}

/** Every file as one ZIP: the hidden form posts into the hidden frame (the browser saves what streams). */
function downloadAll() {
  clearMessages();
  const secret = password();
  if (secret === null) return;
  const form = $("#archive-form", HTMLFormElement);
  const field = $("#archive-password", HTMLInputElement);
  field.disabled = secret === undefined;
  field.value = secret || "";
  form.action = publicApi.archiveUrl(token);
  button.disabled = true;
  waitingForArchive = true;
  form.submit();
  counted();
  started(" of the ZIP");
}

// A ZIP that streams never loads in the frame (it becomes a download); a refusal does, as problem+json.
let waitingForArchive = false;
$("#archive-frame", HTMLIFrameElement).addEventListener("load", () => {
  if (!waitingForArchive) return;
  waitingForArchive = false;
  const frame = $("#archive-frame", HTMLIFrameElement);
  const text = (frame.contentDocument && frame.contentDocument.body && frame.contentDocument.body.innerText) || "";
  /** @type {any} */
  let problem = null;
  try {
    problem = JSON.parse(text);
  } catch {
    // not a problem: nothing more to say than that it failed
  }
  clearTimeout(startedTimer);
  clearMessages();
  counted(-1);
  button.disabled = false;
  refused(new ApiError(problem && problem.status ? problem.status : 500, problem));
});

$("#public-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!shared) return;
  if (shared.files.length > 1) downloadAll();
  else downloadOne(shared.files[0]);
});
$("#public-preview-button").addEventListener("click", () => {
  if (shared) preview(shared.files[0]);
});

load();
