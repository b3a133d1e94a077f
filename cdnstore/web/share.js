// @ts-check
// The public page of a share link (/s/{token}): what is shared, a password when the link has one,
// and a download button. It needs no login; the token comes from the page's own address.

import { ApiError, describe, publicApi } from "./api.js";
import { $, fileKind, formatBytes, formatTime, sentence } from "./ui.js";

// The page cannot see a download finish (it leaves through a navigation the browser turns into a file):
// after this long the status says it has started and where to find it, rather than "Downloading…" forever.
const STARTED_AFTER_MS = 1500;

const token = decodeURIComponent(location.pathname.replace(/^\/s\//, "").replace(/\/$/, ""));

/** @type {Record<string, [string, string]>} */
const GONE = {
  link_not_found: ["Link not found", "This link does not exist or was revoked. Ask the person who shared it for a new one."],
  link_expired: ["This link has expired", "It reached its expiry date or its download limit, or the file was deleted."],
};

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
    const info = await publicApi.link(token);
    $("#public-loading").hidden = true;
    $("#public-file").hidden = false;
    $("#public-name").textContent = info.name;
    $("#public-kind").textContent = fileKind(info.name);
    $("#public-meta").textContent = formatBytes(info.size) + (info.expires_at ? ` · link expires ${formatTime(info.expires_at)}` : "");
    $("#public-password-field").hidden = !info.has_password;
    document.title = `${info.name} · cdnstore`;
    if (info.has_password) $("#public-password").focus();
  } catch (err) {
    if (err instanceof ApiError && err.code in GONE) gone(err.code);
    else gone("", sentence(describe(err)));
  }
}

$("#public-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#public-error");
  const button = $("#public-download", HTMLButtonElement);
  const passwordField = !$("#public-password-field").hidden;
  const input = $("#public-password", HTMLInputElement);
  const password = input.value;
  error.textContent = "";
  $("#public-status").textContent = "";
  $("#public-status").classList.remove("done");
  if (passwordField && !password) {
    error.textContent = "Enter the password to download this file.";
    $("#public-password").focus();
    return;
  }
  button.disabled = true;
  let started = false; // the button stays off until the page says the download has started
  try {
    const answer = await publicApi.download(token, passwordField ? password : undefined);
    const status = $("#public-status");
    status.textContent = `Downloading from ${answer.server.location}…`;
    $("#public-password").removeAttribute("aria-invalid");
    window.location.assign(answer.url);
    started = true;
    setTimeout(() => {
      button.disabled = false;
      status.textContent = `Your download from ${answer.server.location} has started. Find the file in your browser's downloads.`;
      status.classList.add("done");
      button.textContent = "Download again";
    }, STARTED_AFTER_MS);
  } catch (err) {
    if (err instanceof ApiError && err.code in GONE) {
      gone(err.code);
    } else if (err instanceof ApiError && (err.code === "invalid_password" || err.code === "password_required")) {
      error.textContent = err.code === "invalid_password" ? "That password is not right. Try again." : "Enter the password to download this file.";
      $("#public-password-field").hidden = false;
      $("#public-password").setAttribute("aria-invalid", "true");
      input.select();
    } else if (err instanceof ApiError && err.code === "too_many_attempts") {
      error.textContent = "Too many wrong passwords. Wait a few minutes, then try again.";
    } else {
      error.textContent = sentence(describe(err));
    }
  } finally {
    if (!started) button.disabled = false;
  }
});

load();
