// @ts-check
// Uploads: files chosen or dropped go, three at a time, straight from the browser to the presigned URL
// of the storage server the daemon picked, each with its own progress item (bytes, speed, time left) and
// a Cancel button. Big files go in parts (multipart.js), which can also be paused and resumed.
// Where they go is a Destination: the signed-in owner's files (`ownFiles`, the main page), or an upload
// request's public side (upload-page.js, for senders without an account): the same code sends both.

import { ApiError, describe } from "./api.js";
import { Cancelled, MultipartUpload, NOT_YET, putBytes } from "./multipart.js";
import { $, formatBytes, h, sentence } from "./ui.js";

/** @typedef {import("./types.js").File} File */
/** @typedef {ReturnType<typeof makeItem>} Item */
/** @typedef {import("./multipart.js").Plan & { uploaded: { number: number, size: number }[] }} UploadView GET /upload */
/**
 * An upload under way: its file, its calls' base path, where it goes, and how its bytes are sent (`sent`
 * marks the end of the sending, before the confirmation).
 * @typedef {{ id: string, base: string, location: string, send: (sent: () => void) => Promise<File> }} Started
 */
/**
 * Where uploads go. `announce` makes the file (POST) and names the base path of its upload's own calls
 * (`/upload`, `/upload/parts`, `/complete` under it), which `caller` makes; `resumable`: unfinished uploads
 * can be found by name after a reload (the owner's file list); `allowed`: whether uploads may start.
 * @typedef {object} Destination
 * @property {import("./api.js").Caller} caller
 * @property {(file: globalThis.File, sha256: string | null) => Promise<{ file: File, upload: any, base: string }>} announce
 *   (`sha256`: the file's, declared when known)
 * @property {boolean} resumable
 * @property {() => boolean} allowed
 */

/**
 * The signed-in user's own files: POST /files, with the expiry chosen beside the upload box (`expiresAt`:
 * undefined for the user's default, null for never).
 * @param {import("./api.js").Session} session @param {() => string | null | undefined} expiresAt
 * @returns {Destination}
 */
export function ownFiles(session, expiresAt) {
  return {
    caller: session,
    resumable: true,
    allowed: () => session.can("can_upload_file"),
    async announce(file, sha256) {
      /** @type {Record<string, any>} */
      const body = { name: file.name, size: file.size, content_type: file.type || "application/octet-stream" };
      if (sha256) body.sha256 = sha256;
      const expiry = expiresAt();
      if (expiry !== undefined) body.expires_at = expiry;
      const answer = await session.post("/files", body);
      return { ...answer, base: `/files/${answer.file.id}` };
    },
  };
}

const AT_ONCE = 3;
const MIN_PART = 5 << 20; // no file this small is ever uploaded in parts (the threshold is at least this)
// The most bytes read whole to hash a file before announcing it (WebCrypto has no streaming digest); with a
// multipart threshold above it (the default is 64 MiB), bigger single PUTs go undeclared.
const HASHED_AT_MOST = 256 << 20;

/** @param {ArrayBuffer} digest @returns {string} lowercase hex */
function hex(digest) {
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
const DONE_STAYS_MS = 15000;

/** "12.0 MB of 16.0 MB · 4.1 MB/s · 3 s left" @param {number} done @param {number} total @param {number} rate bytes/s */
function progressText(done, total, rate) {
  const parts = [`${formatBytes(done)} of ${formatBytes(total)}`];
  if (rate > 0) {
    parts.push(`${formatBytes(rate)}/s`);
    const left = Math.ceil((total - done) / rate);
    parts.push(left < 90 ? `${left} s left` : `${Math.ceil(left / 60)} min left`);
  }
  return parts.join(" · ");
}

/** @param {globalThis.File} file the browser's file */
function makeItem(file) {
  const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload progress of ${file.name}` });
  const pct = h("span", { class: "pct" }, "0%");
  const status = h("p", { class: "status" }, "Waiting…");
  const dismiss = h("button", { type: "button", class: "small ghost", hidden: true, "aria-label": `Dismiss ${file.name}` }, "Dismiss");
  const pause = h("button", { type: "button", class: "small ghost", hidden: true, "aria-label": `Pause ${file.name}` }, "Pause");
  const cancel = h("button", { type: "button", class: "small ghost", hidden: true, "aria-label": `Cancel ${file.name}` }, "Cancel");
  const el = h("div", { class: "upload", role: "group", "aria-label": `Upload of ${file.name}` },
    h("span", { class: "name", title: file.name }, file.name),
    h("span", {}, pct, " ", pause, " ", cancel, " ", dismiss),
    progress, status);
  dismiss.addEventListener("click", () => el.remove());
  /** @type {{ at: number, bytes: number } | null} where the speed is measured from (a resume starts anew) */
  let since = null;
  const ended = () => { pause.hidden = true; cancel.hidden = true; dismiss.hidden = false; };
  return {
    el,
    pause,
    cancel,
    /** @param {number} fraction */
    progress(fraction) {
      const value = Math.round(fraction * 100);
      progress.value = value;
      pct.textContent = `${value}%`;
    },
    /** Bytes sent so far, with the speed and the time left. @param {number} done */
    bytes(done) {
      this.progress(file.size ? done / file.size : 1);
      const now = performance.now();
      if (!since) since = { at: now, bytes: done };
      const seconds = (now - since.at) / 1000;
      status.textContent = progressText(done, file.size, seconds > 0.5 ? (done - since.bytes) / seconds : 0);
    },
    restartClock() { since = null; },
    /** Ask in the item itself; resolves to true for `yes`.
     * @param {string} text @param {string} yes @param {string} no @returns {Promise<boolean>} */
    offer(text, yes, no) {
      status.textContent = text;
      return new Promise((resolve) => {
        const answer = (/** @type {boolean} */ value) => { choice.remove(); resolve(value); };
        const choice = h("span", { class: "offer" },
          h("button", { type: "button", class: "small", onclick: () => answer(true) }, yes), " ",
          h("button", { type: "button", class: "small ghost", onclick: () => answer(false) }, no));
        status.after(choice);
      });
    },
    /** @param {string} text */
    status(text) { status.textContent = text; },
    /** @param {string} text */
    done(text) {
      el.classList.add("done");
      status.textContent = text;
      ended();
      setTimeout(() => el.remove(), DONE_STAYS_MS);
    },
    /** @param {string} text */
    fail(text) {
      el.classList.add("failed");
      status.textContent = text;
      ended();
    },
  };
}

/** @param {DragEvent} event */
function hasFiles(event) {
  return !!event.dataTransfer && [...event.dataTransfer.types].includes("Files");
}

export class Uploads {
  /**
   * @param {Destination} to
   * @param {{ changed: (file: File) => void, cancelled: () => void }} on told of each file announced, then
   *   stored, and of an upload cancelled (its file may be gone)
   * @param {{ dropTargets?: string[] }} [options] more places files may be dropped on than the drop zone
   */
  constructor(to, on, { dropTargets = [] } = {}) {
    this.to = to;
    this.on = on;
    /** @type {{ file: globalThis.File, item: Item }[]} */
    this.queue = [];
    this.running = 0;
    /** @type {Set<string>} files uploading from this page (not offered for resuming) */
    this.active = new Set();
    /** @type {Promise<{ multipart_threshold: number } | null> | null} GET /uploads/settings, asked once */
    this.settings = null;
    this.dragDepth = 0;
    this.list = $("#uploads");
    this.dropzone = $("#dropzone");
    const input = $("#file-input", HTMLInputElement);
    input.addEventListener("change", () => {
      if (input.files) this.start(input.files);
      input.value = "";
    });
    for (const target of [this.dropzone, ...dropTargets.map((selector) => $(selector))]) this.acceptDrops(target);
  }

  /** @param {HTMLElement} target */
  acceptDrops(target) {
    target.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      this.dragDepth += 1;
      this.dropzone.classList.add("dragging");
    });
    target.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
    target.addEventListener("dragleave", () => {
      this.dragDepth = Math.max(0, this.dragDepth - 1);
      if (!this.dragDepth) this.dropzone.classList.remove("dragging");
    });
    target.addEventListener("drop", (event) => {
      if (!hasFiles(event) || !event.dataTransfer) return;
      event.preventDefault();
      event.stopPropagation();
      this.dragDepth = 0;
      this.dropzone.classList.remove("dragging");
      if (this.to.allowed()) this.start(event.dataTransfer.files);
    });
  }

  /** Signed in (or a request open): the drop zone only for those who may upload. */
  show() {
    this.dropzone.hidden = !this.to.allowed();
  }

  /** Signed out: the items go (uploads already running finish unseen). */
  reset() {
    this.list.replaceChildren();
  }

  /** @param {FileList} files */
  start(files) {
    const items = [];
    for (const file of files) {
      const item = makeItem(file);
      items.push(item.el);
      this.queue.push({ file, item });
    }
    this.list.prepend(...items); // newest batch first, each batch in the order it was chosen
    this.pump();
  }

  pump() {
    while (this.running < AT_ONCE && this.queue.length) {
      const { file, item } = /** @type {{ file: globalThis.File, item: Item }} */ (this.queue.shift());
      this.running += 1;
      this.uploadOne(file, item).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  /** @param {globalThis.File} file @param {Item} item */
  async uploadOne(file, item) {
    let stage = /** @type {"prepare" | "put" | "complete"} */ ("prepare");
    /** @type {Started | null} */
    let started = null;
    try {
      item.status("Preparing…");
      started = (await this.resumeOffered(file, item)) || (await this.announce(file, item));
      this.active.add(started.id);
      stage = "put";
      const stored = await started.send(() => { stage = "complete"; });
      item.progress(1);
      this.on.changed(stored);
      item.done(`Stored in ${started.location}`);
    } catch (err) {
      if (err instanceof Cancelled) {
        item.fail("Cancelled");
        return;
      }
      const what = { prepare: "Could not start the upload", put: "The upload failed", complete: "The upload was not confirmed" }[stage];
      item.fail(sentence(`${what}: ${describe(err)}`));
    } finally {
      if (started) this.active.delete(started.id);
    }
  }

  /** A new upload (or a new version): its announcement says whether in one PUT or in parts.
   * @param {globalThis.File} file @param {Item} item @returns {Promise<Started>} */
  async announce(file, item) {
    const answer = await this.to.announce(file, await this.sha256Of(file));
    this.on.changed(answer.file);
    const { id } = answer.file;
    const { upload, base } = answer;
    const location = upload.server.location;
    return {
      id, base, location,
      send: (sent) => {
        item.status(`Uploading to ${location} (${formatBytes(file.size)})…`);
        return upload.method === "multipart"
          ? this.inParts(file, item, base, upload)
          : this.inOnePut(file, item, base, upload, sent);
      },
    };
  }

  /**
   * The SHA-256 of a file that goes in one PUT, declared when it is announced: the presigned PUT is then bound
   * to it, and the storage server refuses any other bytes, sent then or later to the same URL. Null for files
   * sent in parts (their parts are bound to their MD5s), and where WebCrypto is missing (a page served over
   * plain http from another host than localhost). `crypto.subtle.digest` hashes off the main thread.
   * @param {globalThis.File} file @returns {Promise<string | null>}
   */
  async sha256Of(file) {
    if (!globalThis.crypto?.subtle || file.size > HASHED_AT_MOST) return null;
    this.settings ??= this.to.caller.get("/uploads/settings").catch(() => { this.settings = null; return null; });
    const settings = await this.settings;
    if (!settings || file.size > settings.multipart_threshold) return null;
    return hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  }

  /**
   * After a reload: the same file chosen again while an upload of that name and size is unfinished on
   * its server. The item offers to resume it, sending only the parts the server lacks.
   * @param {globalThis.File} file @param {Item} item @returns {Promise<Started | null>}
   */
  async resumeOffered(file, item) {
    const found = await this.findUnfinished(file);
    if (!found) return null;
    const { id, view } = found;
    const location = view.server.location;
    const question = `An unfinished upload of this file is on ${location}, ${view.uploaded.length} of ${view.parts} `
      + "parts there. Resume it, sending only the missing parts?";
    if (!(await item.offer(question, "Resume", "Start over"))) return null;
    const base = `/files/${id}`;
    return {
      id, base, location,
      send: () => {
        item.status(`Resuming the upload to ${location}…`);
        return this.inParts(file, item, base, view, view);
      },
    };
  }

  /** The caller's upload in parts of this file's name and size, not running in this page.
   * @param {globalThis.File} file @returns {Promise<{ id: string, view: UploadView } | null>} */
  async findUnfinished(file) {
    if (file.size <= MIN_PART || !this.to.resumable) return null; // never in parts: no need to look
    const page = await this.to.caller.get("/files", { q: file.name, limit: 100 });
    for (const found of /** @type {File[]} */ (page.items)) {
      if (found.name !== file.name || found.size !== file.size || found.status !== "uploading") continue;
      if (this.active.has(found.id)) continue;
      try {
        const view = await this.to.caller.get(`/files/${found.id}/upload`);
        if (view.method === "multipart") return { id: found.id, view };
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 404) throw err; // (it just finished or was given up)
      }
    }
    return null;
  }

  /** A small file: one PUT, then /complete.
   * @param {globalThis.File} file @param {Item} item @param {string} base
   * @param {import("./types.js").UploadTarget} target @param {() => void} sent
   * @returns {Promise<File>} */
  async inOnePut(file, item, base, target, sent) {
    const aborter = new AbortController();
    item.cancel.hidden = false;
    item.cancel.onclick = () => {
      item.cancel.disabled = true;
      aborter.abort();
      this.to.caller.del(`${base}/upload`).catch(() => {}) // nothing left to abort is fine
        .finally(() => this.on.cancelled());
    };
    try {
      await putBytes(target, file, target.server.name, (loaded) => item.bytes(loaded), aborter.signal);
    } catch (err) {
      // 412: the URL writes its key once (If-None-Match) and an earlier try of this upload already did (a
      // resume after the first PUT landed): the bytes are there, /complete says whether they are right.
      if (!(target.headers["If-None-Match"] && /** @type {any} */ (err).status === 412)) throw err;
    }
    item.cancel.hidden = true;
    sent();
    item.status("Confirming…");
    return this.confirmStored(base);
  }

  /** A big file: its parts, with Pause/Resume and Cancel; `resumed` lists the parts already there.
   * @param {globalThis.File} file @param {Item} item @param {string} base
   * @param {import("./multipart.js").Plan} plan @param {UploadView} [resumed] @returns {Promise<File>} */
  inParts(file, item, base, plan, resumed) {
    const upload = new MultipartUpload(this.to.caller, base, file, plan, (done) => {
      if (upload.paused) item.progress(done / file.size); // the status keeps saying "Paused"
      else item.bytes(done);
    });
    if (resumed) upload.adopt(resumed);
    item.pause.hidden = false;
    item.cancel.hidden = false;
    item.pause.onclick = () => {
      if (upload.paused) {
        upload.resume();
        item.restartClock();
        item.pause.textContent = "Pause";
        item.pause.setAttribute("aria-label", `Pause ${file.name}`);
      } else {
        upload.pause();
        item.status("Paused");
        item.pause.textContent = "Resume";
        item.pause.setAttribute("aria-label", `Resume ${file.name}`);
      }
    };
    item.cancel.onclick = () => {
      item.cancel.disabled = true;
      item.pause.hidden = true;
      upload.cancel().then(() => this.on.cancelled(),
        (err) => item.fail(sentence(`Could not cancel: ${describe(err)}`)));
    };
    return upload.run();
  }

  /** POST /complete until the daemon sees the object (it may also learn it from a storage event).
   * @param {string} base @returns {Promise<File>} */
  async confirmStored(base) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const file = await this.to.caller.post(`${base}/complete`);
        if (file.status === "stored") return file;
      } catch (err) {
        if (!(err instanceof ApiError) || !NOT_YET.has(err.code) || attempt >= 10) throw err;
      }
      await new Promise((r) => setTimeout(r, 300 + attempt * 200));
    }
  }
}
