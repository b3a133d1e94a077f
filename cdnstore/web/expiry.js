// @ts-check
// Files that expire: the lives the page offers (within the user's max_file_lifetime), the expires_at a
// choice asks for, and how an expiry reads. Used beside the upload box, in the details dialog, in the file
// list and in the trash.

import { formatTime, fullTime, h } from "./ui.js";

const DAY = 86400;
/** @type {[string, number][]} the lives offered, shortest first */
const LIVES = [["1 day", DAY], ["1 week", 7 * DAY], ["30 days", 30 * DAY], ["1 year", 365 * DAY]];
export const NEVER = "never";

/** "3 days", "1 hour": a life in words. @param {number} seconds */
export function lifeText(seconds) {
  for (const [unit, size] of /** @type {[string, number][]} */ ([["year", 365 * DAY], ["day", DAY], ["hour", 3600], ["minute", 60]])) {
    if (seconds >= size) {
      const n = Math.round(seconds / size);
      return `${n} ${unit}${n === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} seconds`;
}

/**
 * The <option>s of an expiry select for `user`: first `first` (value "": leave it as it is, or the default),
 * then the lives within the user's max_file_lifetime (value: seconds), then "Never" unless a maximum is set.
 * @param {import("./types.js").User | null} user @param {string} first
 * @returns {HTMLOptionElement[]}
 */
export function expiryOptions(user, first) {
  const longest = user ? user.max_file_lifetime : null;
  const options = [h("option", { value: "" }, first)];
  for (const [label, seconds] of LIVES) {
    if (longest === null || seconds <= longest) options.push(h("option", { value: String(seconds) }, label));
  }
  if (longest !== null && !LIVES.some(([, seconds]) => seconds === longest)) {
    options.push(h("option", { value: String(longest) }, lifeText(longest)));
  }
  if (longest === null) options.push(h("option", { value: NEVER }, "Never"));
  return options;
}

/** The words of the first option beside the upload box: what a file gets when nothing is chosen.
 * @param {import("./types.js").User | null} user */
export function defaultLife(user) {
  if (!user || !user.default_file_lifetime) return "Keep until deleted";
  const seconds = user.max_file_lifetime === null ? user.default_file_lifetime : Math.min(user.default_file_lifetime, user.max_file_lifetime);
  return `Keep ${lifeText(seconds)} (your default)`;
}

/** The expires_at a select's value asks for: undefined (the field left out), null (never) or a time.
 * @param {string} value @returns {string | null | undefined} */
export function expiresAtOf(value) {
  if (!value) return undefined;
  if (value === NEVER) return null;
  return new Date(Date.now() + Number(value) * 1000).toISOString();
}

/** A file's expiry as a small note: "Expires in 3 days" (null when it never expires).
 * @param {string | null | undefined} expiresAt */
export function expiryNote(expiresAt) {
  if (!expiresAt) return null;
  return h("span", { class: "expiry-note", title: `Deleted ${fullTime(expiresAt)}` }, `Expires ${formatTime(expiresAt)}`);
}
