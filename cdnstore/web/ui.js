// @ts-check
// Small DOM helpers shared by the app and the public page. Text always goes in as text (no innerHTML).

/** @typedef {Node | string | number | null | undefined | false} Child */

/**
 * h("button", {class: "x", onclick: f}, "Label", child...)
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {(Child | Child[])[]} children
 */
function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/**
 * The first element `selector` matches, of class `type` when given (so that the checker knows it);
 * throws when there is none, which is a mistake in the page, not a state to handle.
 * @template {Element} [T=HTMLElement]
 * @param {string} selector
 * @param {{ new (): T, prototype: T }} [type]
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function $(selector, type, root = document) {
  const el = root.querySelector(selector);
  if (!el || !(el instanceof (type || HTMLElement))) throw new Error(`the page has no ${selector}${type ? ` (${type.name})` : ""}`);
  return /** @type {T} */ (el);
}

/** @param {number | null | undefined} n */
export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  let value = n;
  let i = -1;
  do { value /= 1000; i += 1; } while (value >= 1000 && i < units.length - 1);
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[i]}`;
}

/** @param {number} n */
export function formatCount(n) {
  return new Intl.NumberFormat().format(n);
}

/** "1 download", "3 downloads": the count with its noun in the right number.
 * @param {number} n @param {string} one @param {string} [many] */
export function plural(n, one, many = `${one}s`) {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/** The API's details are lowercase phrases ("wrong username or password"); on the page they read as
 * sentences.
 * @param {unknown} text */
export function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(first) ? first : `${first}.`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "3 minutes ago" for recent times, a date otherwise. @param {string | null | undefined} iso */
export function formatTime(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  const seconds = (t.getTime() - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds < 0 ? "just now" : "in a moment";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 7 * 86400) return relative.format(Math.round(seconds / 86400), "day");
  return absolute.format(t);
}

/** @param {string | null | undefined} iso */
export function fullTime(iso) {
  return iso ? absolute.format(new Date(iso)) : "";
}

/** A <time> element showing a friendly time, with the exact one on hover. @param {string} iso */
export function timeEl(iso) {
  return h("time", { datetime: iso, title: fullTime(iso) }, formatTime(iso));
}

/** The file's extension, for its icon ("PDF", "JPG"...). @param {string} name */
export function fileKind(name) {
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 ? name.slice(dot + 1) : "";
  return ext && ext.length <= 4 ? ext.toUpperCase() : "FILE";
}

/** @param {string} text @param {string} [tone] @param {boolean} [plain] */
export function badge(text, tone = "", plain = false) {
  return h("span", { class: `badge ${tone}${plain ? " plain" : ""}` }, text);
}

/** @param {string} message @param {{ error?: boolean, ms?: number }} [options] */
export function toast(message, { error = false, ms = 4500 } = {}) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast${error ? " error" : ""}`, role: error ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

/** Ask before something that cannot be undone; resolves to true when confirmed.
 * @param {string} title @param {string} text @param {string} [action] @returns {Promise<boolean>} */
export function confirmDialog(title, text, action = "Delete") {
  const dialog = $("#confirm-dialog", HTMLDialogElement);
  $("#confirm-title", undefined, dialog).textContent = title;
  $("#confirm-text", undefined, dialog).textContent = text;
  $("#confirm-ok", undefined, dialog).textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-ok", undefined, dialog).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** Copy text to the clipboard; falls back to selecting an input for older browsers.
 * @param {string} text @param {HTMLInputElement} [input] @returns {Promise<boolean>} */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.select();
      return !!document.execCommand && document.execCommand("copy");
    }
    return false;
  }
}

// The content types the daemon serves inline, by kind of preview: a copy of cdnstore/previews.py's lists
// (tests/test_web_sharing.py holds the two equal). Anything else is downloaded, never shown.
/** @typedef {"image" | "audio" | "video" | "pdf" | "text"} PreviewKind */
/** @type {Record<PreviewKind, string[]>} */
export const PREVIEW_TYPES = {
  image: ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"],
  audio: ["audio/mpeg", "audio/mp4", "audio/ogg", "audio/wav", "audio/webm", "audio/flac", "audio/aac"],
  video: ["video/mp4", "video/webm", "video/ogg"],
  pdf: ["application/pdf"],
  text: ["text/plain"],
};

/** How a file of `contentType` can be shown in the page, or null when it cannot (it is only downloaded).
 * @param {string | null | undefined} contentType @returns {PreviewKind | null} */
export function previewKind(contentType) {
  const essence = (contentType || "").split(";")[0].trim().toLowerCase();
  for (const [kind, types] of Object.entries(PREVIEW_TYPES)) {
    if (types.includes(essence)) return /** @type {PreviewKind} */ (kind);
  }
  return null;
}
