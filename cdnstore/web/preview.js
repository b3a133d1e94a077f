// @ts-check
// A file shown in the page from a preview URL (a presigned GET with an inline disposition, whose
// Content-Type the daemon chose among safe ones): an image, a player for audio or video (it asks the
// storage server for ranges, so a video seeks), a PDF in the browser's viewer, plain text in a frame that
// may run nothing. Used by the owner's details dialog and the public share page.

import { h } from "./ui.js";

/** @param {import("./ui.js").PreviewKind} kind @param {string} url @param {string} name */
export function previewOf(kind, url, name) {
  if (kind === "image") return h("img", { src: url, alt: name, class: "preview-media" });
  if (kind === "video") {
    return h("video", { src: url, controls: true, preload: "metadata", playsInline: true, class: "preview-media", "aria-label": name });
  }
  if (kind === "audio") return h("audio", { src: url, controls: true, preload: "metadata", class: "preview-audio", "aria-label": name });
  // Plain text in a sandboxed frame (nothing in it may run); a PDF needs the browser's own viewer, which a
  // sandboxed frame refuses: its URL is served as application/pdf, never as a document that runs.
  return h("iframe", { src: url, title: name, class: `preview-frame ${kind}`, ...(kind === "text" ? { sandbox: "" } : {}) });
}
