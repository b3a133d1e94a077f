// @ts-check
// Uploads: files chosen or dropped go, three at a time, straight from the browser to the presigned URL
// of the storage server the daemon picked, each with its own progress item (bytes, speed, time left) and
// a Cancel button. Big files go in parts (multipart.js), which can also be paused and resumed. Uploads a
// reload (a closed tab, a crash) left unfinished are offered on sign-in: choose the file again to resume,
// or discard.
// Where they go is a Destination: the signed-in owner's files (`ownFiles`, the main page), or an upload
// request's public side (upload-page.js, for senders without an account): the same code sends both.

import { ApiError, describe } from "./api.js";
import { toastError } from "./feedback.js";
import { Cancelled, MultipartUpload, NOT_YET, putBytes } from "./multipart.js";
import { $, formatBytes, h, plural, sentence, toast } from "./ui.js";

/** @typedef {import("./types.js").File} File */
/** @typedef {ReturnType<typeof makeItem>} Item */
/** @typedef {{ file: globalThis.File, item: Item, resuming?: string }} Queued `resuming`: the unfinished upload (file id) it goes on with */
/** @typedef {import("./multipart.js").Plan & { uploaded: { number: number, size: number }[] }} UploadView GET /upload */
/**
 * An upload under way: its file, its calls' base path, where it goes, and how its bytes are sent (`sent`
 * marks the end of the sending, before the confirmation).
 * @typedef {{ id: string, base: string, location: string, send: (sent: () => void) => Promise<File> }} Started
 */
/**
 * Where uploads go. `announce` makes the file (POST) and names the base path of its upload's own calls
 * (`/upload`, `/upload/parts`, `/complete` under it), which `caller` makes; `resumable`: unfinished uploads
 * can be found after a reload (the owner's file list: offered, or found by name when a file is chosen
 * again); `allowed`: whether uploads may start.
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
    /** @type {Queued[]} */
    this.queue = [];
    this.running = 0;
    /** @type {Set<string>} files uploading from this page (not offered for resuming) */
    this.active = new Set();
    /** @type {Map<string, HTMLElement>} the unfinished uploads offered, by file id */
    this.offered = new Map();
    this.looking = 0; // the latest look for unfinished uploads: an older one's answer is dropped
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
    this.looking += 1;
    this.offered.clear();
    this.list.replaceChildren();
  }

  /** @param {Iterable<globalThis.File>} files @param {string} [resuming] the unfinished upload they go on with */
  start(files, resuming) {
    const items = [];
    for (const file of files) {
      const item = makeItem(file);
      items.push(item.el);
      this.queue.push({ file, item, resuming });
    }
    this.list.prepend(...items); // newest batch first, each batch in the order it was chosen
    this.pump();
  }

  pump() {
    while (this.running < AT_ONCE && this.queue.length) {
      const next = /** @type {Queued} */ (this.queue.shift());
      this.running += 1;
      this.uploadOne(next).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  /** @param {Queued} queued */
  async uploadOne({ file, item, resuming }) {
    let stage = /** @type {"prepare" | "put" | "complete"} */ ("prepare");
    /** @type {Started | null} */
    let started = null;
    try {
      item.status("Preparing…");
      started = (resuming && (await this.resumeNow(file, item, resuming)))
        || (await this.resumeOffered(file, item)) || (await this.announce(file, item));
      this.active.add(started.id);
      this.dropOffer(started.id);
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
    return this.resumed(file, item, id, view);
  }

  /** The unfinished upload of `id` goes on, with the file chosen again for it (no question asked: that is
   * what choosing it again said); null when it is no longer unfinished (then a new upload starts).
   * @param {globalThis.File} file @param {Item} item @param {string} id @returns {Promise<Started | null>} */
  async resumeNow(file, item, id) {
    const view = await this.uploadView(id);
    if (!view || view.method !== "multipart") return null;
    return this.resumed(file, item, id, view);
  }

  /** The unfinished upload in parts of `id`, going on: only the parts its server lacks are sent.
   * @param {globalThis.File} file @param {Item} item @param {string} id @param {UploadView} view
   * @returns {Started} */
  resumed(file, item, id, view) {
    const location = view.server.location;
    const base = `/files/${id}`;
    return {
      id, base, location,
      send: () => {
        item.status(`Resuming the upload to ${location}…`);
        return this.inParts(file, item, base, view, view);
      },
    };
  }

  /** GET /upload: the upload in progress of file `id`, null when there is none (it ended, or was given up).
   * @param {string} id @returns {Promise<UploadView & { method: string } | null>} */
  async uploadView(id) {
    try {
      return await this.to.caller.get(`/files/${id}/upload`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  /**
   * Of the files the list shows, the uploads left unfinished on their servers (a reload, a closed tab, a
   * crash), none running in this page: each offered in the uploads list, to resume by choosing its file
   * again (only the parts the server lacks are sent; a file sent in one PUT is sent again) or to discard
   * (DELETE /upload: the server drops what it holds of it; a file with no content yet goes).
   * @param {File[]} files
   */
  async offerUnfinished(files) {
    if (!this.to.resumable || !this.to.allowed()) return;
    const looking = ++this.looking;
    try {
      for (const file of files) {
        if (file.status !== "uploading" || this.active.has(file.id) || this.offered.has(file.id)) continue;
        const view = await this.uploadView(file.id);
        if (looking !== this.looking) return; // signed out, or looked again meanwhile
        if (view && !this.active.has(file.id) && !this.offered.has(file.id)) this.offer(file, view);
      }
    } catch {
      // Nothing offered: the uploads themselves are still there, and the files list shows them uploading.
    }
  }

  /** @param {File} file @param {UploadView & { method: string }} view */
  offer(file, view) {
    const where = view.server.location;
    const inParts = view.method === "multipart";
    const held = inParts ? view.uploaded.reduce((sum, p) => sum + p.size, 0) : 0;
    const picker = h("input", { type: "file", class: "sr-only", tabindex: -1, "aria-label": `Choose ${file.name} again` });
    const choose = h("button", { type: "button", class: "small" }, "Choose the file again…");
    const discard = h("button", { type: "button", class: "small ghost" }, "Discard");
    const status = h("p", { class: "status" }, inParts
      ? `Not finished: ${plural(view.uploaded.length, "part")} of ${view.parts} (${formatBytes(held)} of `
        + `${formatBytes(file.size)}) are in ${where}. Choose the file again to resume, or discard it.`
      : `Not finished: it was being sent to ${where}. Choose the file again to send it again, or discard it.`);
    const el = h("div", { class: "upload unfinished", role: "group", "aria-label": `Unfinished upload of ${file.name}` },
      h("span", { class: "name", title: file.name }, file.name),
      h("span", {}, choose, " ", discard),
      h("progress", { max: 100, value: file.size ? Math.round(100 * held / file.size) : 0, "aria-label": `Share of ${file.name} on ${where}` }),
      status, picker);
    choose.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      const chosen = picker.files && picker.files[0];
      picker.value = "";
      if (!chosen) return;
      if (chosen.name !== file.name || chosen.size !== file.size) {
        status.textContent = `That is “${chosen.name}” (${formatBytes(chosen.size)}): choose “${file.name}” `
          + `(${formatBytes(file.size)}) to resume it, or discard it.`;
        return;
      }
      this.dropOffer(file.id);
      this.start([chosen], file.id);
    });
    discard.addEventListener("click", async () => {
      discard.disabled = choose.disabled = true;
      try {
        await this.to.caller.del(`/files/${file.id}/upload`);
        toast(`Discarded the unfinished upload of “${file.name}”`);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) { // (already gone: as asked)
          discard.disabled = choose.disabled = false;
          toastError(err);
          return;
        }
      }
      this.dropOffer(file.id);
      this.on.cancelled();
    });
    this.offered.set(file.id, el);
    this.list.append(el);
  }

  /** @param {string} id */
  dropOffer(id) {
    const offered = this.offered.get(id);
    if (offered) offered.remove();
    this.offered.delete(id);
  }

  /** The caller's upload in parts of this file's name and size, not running in this page.
   * @param {globalThis.File} file @returns {Promise<{ id: string, view: UploadView } | null>} */
  async findUnfinished(file) {
    if (file.size <= MIN_PART || !this.to.resumable) return null; // never in parts: no need to look
    const page = await this.to.caller.get("/files", { q: file.name, limit: 100 });
    for (const found of /** @type {File[]} */ (page.items)) {
      if (found.name !== file.name || found.size !== file.size || found.status !== "uploading") continue;
      if (this.active.has(found.id)) continue;
      const view = await this.uploadView(found.id); // (null: it just finished or was given up)
      if (view && view.method === "multipart") return { id: found.id, view };
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
