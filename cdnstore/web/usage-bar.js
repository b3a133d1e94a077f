// @ts-check
// A user's storage usage: their used bytes of their quota as a bar, or just what they use when they have
// no quota. The bar is drawn for any user (the users screen) and shown to every user above their own
// files (MyUsage, from GET /me).

import { $, formatBytes, h } from "./ui.js";

/** @typedef {import("./types.js").User} User */

/** From this share of the quota on, the bar warns. */
const NEARLY_FULL = 0.9;

/** "1.2 GB of 5 GB used (24%)" (over 100% when a quota was lowered below it), or "1.2 GB used" without a
 * quota. @param {User} user */
export function usageText(user) {
  const used = formatBytes(user.used_bytes);
  if (user.quota_bytes === null) return `${used} used`;
  if (user.quota_bytes <= 0) return `${used} of 0 B used (full)`;
  return `${used} of ${formatBytes(user.quota_bytes)} used (${Math.round(share(user) * 100)}%)`;
}

/** The share of the quota in use: over 1 when a quota was lowered below what the user stores.
 * @param {User} user */
function share(user) {
  if (user.quota_bytes === null) return 0;
  if (user.quota_bytes <= 0) return 1;
  return user.used_bytes / user.quota_bytes;
}

/** The bar with its words. Its width is set through the CSSOM (the page's CSP forbids style attributes).
 * @param {User} user @returns {HTMLElement} */
export function usageBar(user) {
  const text = usageText(user);
  const limited = user.quota_bytes !== null;
  const fraction = Math.min(1, share(user));
  const tone = !limited ? "" : fraction >= 1 ? " full" : fraction >= NEARLY_FULL ? " nearly-full" : "";
  const fill = h("span", { class: "usage-fill" });
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  const track = limited ? h("span", {
    class: "usage-track", role: "meter", "aria-label": `Storage used by ${user.username}`,
    "aria-valuemin": 0, "aria-valuemax": user.quota_bytes, "aria-valuenow": user.used_bytes, "aria-valuetext": text,
  }, fill) : null;
  return h("span", { class: `usage${tone}`, title: text, dataset: { used: user.used_bytes } },
    track, h("span", { class: "usage-text" }, text));
}

/** The signed-in user's own usage, above their files; asked again after a change to their files. */
export class MyUsage {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    this.box = $("#usage");
    this.ticket = 0; // the latest ask: an older answer is dropped
  }

  async load() {
    const ticket = ++this.ticket;
    try {
      /** @type {User} */
      const me = await this.session.get("/me");
      if (ticket !== this.ticket || !this.session.signedIn) return;
      this.box.replaceChildren(usageBar(me));
      this.box.hidden = false;
    } catch {
      // The usage is a hint beside the files: the list itself tells of a lost connection.
    }
  }

  reset() {
    this.ticket += 1;
    this.box.hidden = true;
    this.box.replaceChildren();
  }
}
