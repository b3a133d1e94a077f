// @ts-check
// A share link in words (its state, password, expiry, downloads and files as badges) and its editor: a
// form that changes the password (or removes it), the expiry, the download limit, and can start the count
// again, in place (PATCH /links/{id}: the token and the URL stay). The share dialog and the links view
// both show links this way.

import { say, whileBusy } from "./feedback.js";
import { badge, formatCount, formatTime, h, plural } from "./ui.js";

/** @typedef {import("./types.js").Link} Link */

/** @type {Record<string, [string, string]>} a link's state: its words and tone */
export const STATES = {
  active: ["Active", "ok"],
  expired: ["Expired", "danger"],
  used_up: ["Used up", "danger"],
  files_gone: ["Files deleted", "danger"],
};

/** @param {Link} link */
export function stateBadge(link) {
  const [words, tone] = STATES[link.state] || [link.state, ""];
  return badge(words, tone, true);
}

/** What the link shares, in a few words: its file's name, or the first one's and how many more. @param {Link} link */
export function linkFiles(link) {
  const files = link.files || [];
  if (!files.length) return "No files left";
  return files.length === 1 ? files[0].name : `${files[0].name} and ${files.length - 1} more`;
}

/**
 * Badges for a link: its state first when it no longer works, then password, expiry, downloads, and how
 * many files a link to several shares.
 * @param {Link} link @param {{ state?: boolean }} [options] state: the state badge even when active
 */
export function linkBadges(link, { state = false } = {}) {
  const tags = [];
  if (state || link.state !== "active") tags.push(stateBadge(link));
  if (link.file_id === null) tags.push(badge(plural(link.files.length, "file"), "info", true));
  if (link.has_password) tags.push(badge("Password", "info", true));
  const expired = link.state === "expired";
  tags.push(badge(link.expires_at ? `${expired ? "Expired" : "Expires"} ${formatTime(link.expires_at)}` : "No expiry", "", true));
  tags.push(badge(link.max_downloads
    ? `${formatCount(link.downloads)} / ${plural(link.max_downloads, "download")}`
    : plural(link.downloads, "download"), "", true));
  return tags;
}

const EXPIRIES = [["3600", "In 1 hour"], ["86400", "In 1 day"], ["604800", "In 7 days"], ["2592000", "In 30 days"]];

/**
 * The editor of a link: a form in place of the link's line. `saved` gets the link as the daemon answers
 * after the change; `cancel` when nothing changes.
 * @param {import("./api.js").Session} session
 * @param {Link} link
 * @param {{ saved: (link: Link) => void, cancel: () => void }} on
 */
export function linkEditor(session, link, on) {
  const id = (/** @type {string} */ name) => `edit-${link.id}-${name}`;
  const password = h("input", {
    id: id("password"), type: "password", autocomplete: "new-password",
    placeholder: link.has_password ? "Unchanged" : "None",
  });
  const remove = link.has_password && h("input", { id: id("remove"), type: "checkbox" });
  const expiry = h("select", { id: id("expiry") },
    h("option", { value: "keep" }, link.expires_at ? `Unchanged (${formatTime(link.expires_at)})` : "Unchanged (never)"),
    h("option", { value: "never" }, "Never"),
    EXPIRIES.map(([seconds, words]) => h("option", { value: seconds }, words)));
  const limit = h("input", {
    id: id("limit"), type: "number", min: "1", step: "1", inputmode: "numeric", placeholder: "No limit",
    value: link.max_downloads === null ? "" : String(link.max_downloads),
  });
  const reset = h("input", { id: id("reset"), type: "checkbox" });
  const error = h("p", { class: "error wide", role: "alert" });
  const save = h("button", { type: "submit", class: "small primary" }, "Save");
  const form = h("form", { class: "link-editor", "aria-label": "Edit the link", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: id("password") }, link.has_password ? "New password" : "Password"),
      password,
      remove && h("label", { class: "check" }, remove, "Remove the password")),
    h("div", { class: "field" }, h("label", { for: id("expiry") }, "Expires"), expiry),
    h("div", { class: "field" }, h("label", { for: id("limit") }, "Download limit"), limit),
    h("label", { class: "check wide" }, reset, `Start the download count again (${plural(link.downloads, "download")} so far)`),
    error,
    h("div", { class: "wide buttons" },
      save,
      h("button", { type: "button", class: "small", onclick: () => on.cancel() }, "Cancel")));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    /** @type {Record<string, any>} */
    const body = {};
    if (remove && remove.checked) body.password = null;
    else if (password.value) body.password = password.value;
    if (expiry.value === "never") body.expires_in = null;
    else if (expiry.value !== "keep") body.expires_in = Number(expiry.value);
    const wanted = limit.value.trim();
    const max = wanted ? Number(wanted) : null;
    if (max !== null && (!Number.isInteger(max) || max < 1)) {
      error.textContent = "The download limit must be a whole number of at least 1.";
      limit.setAttribute("aria-invalid", "true");
      return;
    }
    if (max !== link.max_downloads) body.max_downloads = max;
    if (reset.checked) body.reset_downloads = true;
    if (!Object.keys(body).length) {
      on.cancel();
      return;
    }
    try {
      on.saved(await whileBusy(save, () => session.patch(`/links/${link.id}`, body)));
    } catch (err) {
      error.textContent = say(err);
    }
  });
  return form;
}
