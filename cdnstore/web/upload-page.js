// @ts-check
// The public upload page of an upload request (/u/{token}): who asks for files and why, what the request
// still takes, a password when it has one, and the same upload box as the owner's page (uploads.js and
// multipart.js: straight to the storage server nearest to the sender, big files in parts). It needs no
// login; the token comes from the page's own address, and nothing of it is stored.

import { ApiError, anonymous, describe } from "./api.js";
import { $, badge, formatBytes, formatTime, h, plural, sentence } from "./ui.js";
import { Uploads } from "./uploads.js";

/** @typedef {import("./types.js").PublicRequest} PublicRequest */

const token = decodeURIComponent(location.pathname.replace(/^\/u\//, "").replace(/\/$/, ""));
const path = `/public/upload-requests/${encodeURIComponent(token)}`;

/** @type {Record<string, [string, string]>} */
const GONE = {
  request_not_found: ["Request not found", "This link does not exist or was deleted. Ask the person who sent it for a new one."],
  request_closed: ["This request is closed", "It was closed or it expired: it takes no more files. Ask the person who sent it to reopen it."],
};

/** @type {PublicRequest | null} the request as last read; null while unknown or gone */
let request = null;
const password = $("#request-password", HTMLInputElement);
const error = $("#request-error");

/** @param {string} code @param {string} [detail] */
function gone(code, detail = "") {
  const [title, text] = GONE[code] || ["This request cannot be used", detail];
  request = null;
  $("#request-loading").hidden = true;
  $("#request-open").hidden = true;
  $("#request-gone").hidden = false;
  $("#request-gone-title").textContent = title;
  $("#request-gone-text").textContent = text;
  document.title = `${title} · cdnstore`;
}

/** "Up to 3 more files · up to 40 MB more · closes in 6 days". @param {PublicRequest} info */
function metaText(info) {
  const parts = [];
  if (info.files_left !== null) parts.push(info.files_left ? `up to ${plural(info.files_left, "more file")}` : "no more files");
  if (info.bytes_left !== null) parts.push(`up to ${formatBytes(info.bytes_left)} more`);
  parts.push(info.expires_at ? `closes ${formatTime(info.expires_at)}` : "open until its owner closes it");
  return sentence(parts.join(" · "));
}

/** Read the request (again): what it still takes. */
async function load() {
  if (!token) {
    gone("request_not_found");
    return;
  }
  try {
    /** @type {PublicRequest} */
    const info = await anonymous.get(path);
    const first = request === null;
    request = info;
    $("#request-loading").hidden = true;
    $("#request-open").hidden = false;
    $("#request-heading").textContent = `Send files to ${info.owner}`;
    $("#request-message").textContent = info.message || "";
    $("#request-meta").textContent = metaText(info);
    $("#request-password-field").hidden = !info.has_password;
    document.title = `Send files to ${info.owner} · cdnstore`;
    uploads.show();
    if (first && info.has_password) password.focus();
  } catch (err) {
    if (err instanceof ApiError && err.code in GONE) gone(err.code);
    else gone("", sentence(describe(err)));
  }
}

/** An announcement refused: the page says why where it matters (the password, the request itself).
 * @param {unknown} err */
function refused(err) {
  if (!(err instanceof ApiError)) return;
  if (err.code in GONE) gone(err.code);
  else if (err.code === "password_required" || err.code === "invalid_password") {
    error.textContent = err.code === "invalid_password" ? "That password is not right. Try again." : "Enter the password first.";
    password.setAttribute("aria-invalid", "true");
    password.select();
  } else if (err.code === "too_many_attempts") {
    error.textContent = "Too many wrong passwords. Wait a few minutes, then try again.";
  } else if (err.code === "request_limit") {
    load();
  }
}

/** @type {import("./uploads.js").Destination} */
const toRequest = {
  caller: anonymous,
  resumable: false, // (a sender cannot list the owner's files to find an unfinished upload)
  allowed: () => request !== null,
  async announce(file, sha256) {
    /** @type {Record<string, any>} */
    const body = { name: file.name, size: file.size, content_type: file.type || "application/octet-stream" };
    if (sha256) body.sha256 = sha256;
    if (request && request.has_password && password.value) body.password = password.value;
    error.textContent = "";
    try {
      const answer = await anonymous.post(`${path}/files`, body);
      password.removeAttribute("aria-invalid");
      return { ...answer, base: `/public/uploads/${encodeURIComponent(answer.upload_token)}` };
    } catch (err) {
      refused(err);
      throw err;
    }
  },
};

const uploads = new Uploads(toRequest, {
  changed: (file) => {
    if (file.status !== "stored") return;
    $("#sent-section").hidden = false;
    $("#sent").prepend(h("li", {}, h("span", { class: "name" }, file.name), badge(formatBytes(file.size), "ok", true)));
    load();
  },
  cancelled: () => load(),
});

load();
