// @ts-check
// A big file in parts (issue 16): the daemon answered `upload.method == "multipart"`, so the page sends the
// file's slices straight to the storage server with presigned part URLs, three at a time, and asks the
// daemon to assemble them at the end. A dropped connection or a 5xx costs one part, sent again after a
// growing pause; an expired URL (403) is asked again. Each part's URL is bound to its MD5 (Content-MD5),
// so the storage server refuses a part damaged on the way (400 BadDigest), which is sent again. Pause
// stops starting new parts; resume asks the daemon which parts the server already holds (GET /upload)
// and sends only the others.
// The MD5s are computed in a Web Worker (md5-worker.js), a few parts ahead of the senders, so hashing
// overlaps the uploads and the page stays responsive; the part URLs are asked for in batches of the parts
// hashed so far.
// The upload's calls go through a Caller under a base path: `/files/{id}` with the owner's session, or
// `/public/uploads/{upload_token}` without one for a sender through an upload request (upload-page.js).

import { ApiError } from "./api.js";

const AT_ONCE = 3;
// Parts hashed ahead of those the senders have started: enough to batch the URL calls and keep the senders
// busy, bounded so a huge file is not read through (and its URLs asked for) long before its parts go.
const READ_AHEAD = 2 * AT_ONCE;
const BATCH = 100; // the most part URLs one call may ask for
const TRIES = 5;
const FIRST_WAIT_MS = 500;
const COMPLETE_ROUNDS = 5;
/** What /complete answers when it is worth asking again: parts still missing (or the object not there
 * yet), or the upload server did not answer in time. */
export const NOT_YET = new Set(["upload_incomplete", "storage_unavailable"]);

/** @typedef {{ number: number, url: string, method: string, headers: Record<string, string> }} PartTarget */
/** @typedef {{ part_size: number, parts: number, server: import("./types.js").ServerRef }} Plan */

/** The user cancelled: not a failure to report. */
export class Cancelled extends Error {
  constructor() { super("the upload was cancelled"); }
}

/** A part PUT that failed: `status` 0 when the connection dropped; `code` the storage server's. */
class PartError extends Error {
  /** @param {number} status @param {string} message @param {string} [code] */
  constructor(status, message, code = "") {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** Worth sending again: the connection dropped, the server failed, or the bytes arrived damaged. */
  get passing() {
    return this.status === 0 || this.status >= 500 || this.code === "BadDigest" || this.code === "InvalidDigest";
  }
}

/** @param {string} text the storage server's answer @returns {string} */
export function s3Message(text) {
  const match = /<Message>([^<]*)<\/Message>/.exec(text || "");
  return match ? `: ${match[1]}` : "";
}

/**
 * PUT `body` to a presigned URL with exactly the headers it came with, except Content-Length, which the
 * browser sets itself (a forbidden header).
 * @param {{ url: string, method?: string, headers?: Record<string, string> }} target
 * @param {Blob} body
 * @param {string} serverName
 * @param {(loaded: number) => void} onProgress bytes of `body` sent so far
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function putBytes(target, body, serverName, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method || "PUT", target.url);
    for (const [name, value] of Object.entries(target.headers || {})) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else {
        const code = (/<Code>([^<]*)<\/Code>/.exec(xhr.responseText || "") || ["", ""])[1];
        reject(new PartError(xhr.status, `the storage server ${serverName} answered ${xhr.status}${s3Message(xhr.responseText)}`, code));
      }
    };
    xhr.onerror = () => reject(new PartError(0, `the storage server ${serverName} could not be reached`));
    xhr.ontimeout = () => reject(new PartError(0, `the storage server ${serverName} did not answer in time`));
    xhr.onabort = () => reject(new Cancelled());
    if (signal) {
      if (signal.aborted) { reject(new Cancelled()); return; }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(body);
  });
}

/** Hashes parts in a module worker (md5-worker.js), started on the first part. */
class PartHasher {
  constructor() {
    /** @type {Worker | null} */
    this.worker = null;
    /** @type {Map<number, { resolve: (md5: string) => void, reject: (err: Error) => void }>} by request id */
    this.waiting = new Map();
    this.lastId = 0;
  }

  /** The base64 MD5 of `blob`'s bytes. @param {Blob} blob @returns {Promise<string>} */
  md5(blob) {
    const worker = this.start();
    this.lastId += 1;
    const id = this.lastId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, blob });
    });
  }

  /** @returns {Worker} */
  start() {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL("./md5-worker.js", import.meta.url), { type: "module" });
    worker.onmessage = (/** @type {MessageEvent<import("./md5-worker.js").HashAnswer>} */ event) => {
      const { id, md5, error } = event.data;
      const waiter = this.waiting.get(id);
      this.waiting.delete(id);
      if (!waiter) return;
      if (md5 !== undefined) waiter.resolve(md5);
      else waiter.reject(new Error(`a part could not be read: ${error}`));
    };
    worker.onerror = (event) => this.stop(new Error(`the page could not hash the parts: ${event.message || "its worker failed to start"}`));
    this.worker = worker;
    return worker;
  }

  /** End the worker; hashes still awaited fail with `reason`. @param {Error} reason */
  stop(reason) {
    for (const waiter of this.waiting.values()) waiter.reject(reason);
    this.waiting.clear();
    if (this.worker) this.worker.terminate();
    this.worker = null;
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class MultipartUpload {
  /**
   * @param {import("./api.js").Caller} caller
   * @param {string} base the upload's own path (its /upload, /upload/parts and /complete are under it)
   * @param {globalThis.File} file
   * @param {Plan} plan
   * @param {(bytesDone: number) => void} onProgress
   */
  constructor(caller, base, file, plan, onProgress) {
    this.caller = caller;
    this.base = base;
    this.file = file;
    this.plan = plan;
    this.onProgress = onProgress;
    /** @type {Set<number>} parts the server holds (as far as the page knows) */
    this.held = new Set();
    /** @type {Map<number, number>} bytes sent so far of each part on its way */
    this.sending = new Map();
    /** @type {Map<number, Promise<PartTarget>>} part URLs asked for, by number */
    this.urls = new Map();
    /** @type {Map<number, string>} each part's base64 MD5, bound into its URL */
    this.md5s = new Map();
    /** @type {Map<number, Promise<string>>} the MD5s asked of the worker, by part number */
    this.hashing = new Map();
    this.hasher = new PartHasher();
    /** @type {number[]} parts still to send, in order */
    this.todo = [];
    this.paused = false;
    this.aborter = new AbortController();
    /** @type {(() => void) | null} called by resume() */
    this.wake = null;
  }

  /** @param {number} n @returns {number} */
  partBytes(n) {
    const { part_size: size } = this.plan;
    return Math.min(size, this.file.size - (n - 1) * size);
  }

  get bytesDone() {
    let done = 0;
    for (const n of this.held) done += this.partBytes(n);
    for (const loaded of this.sending.values()) done += loaded;
    return Math.min(done, this.file.size);
  }

  get cancelled() { return this.aborter.signal.aborted; }

  /** Send every part the server lacks, then assemble. @returns {Promise<import("./types.js").File>} */
  async run() {
    try {
      return await this.sendAndAssemble();
    } finally {
      this.hasher.stop(new Cancelled());
    }
  }

  /** @returns {Promise<import("./types.js").File>} */
  async sendAndAssemble() {
    for (let refused = 0; ;) {
      await this.sendMissing();
      if (this.paused) {
        await new Promise((resolve) => { this.wake = () => resolve(undefined); });
        this.check();
        await this.learnHeld();
        continue;
      }
      try {
        return await this.caller.post(`${this.base}/complete`);
      } catch (err) {
        if (!(err instanceof ApiError) || !NOT_YET.has(err.code) || refused >= COMPLETE_ROUNDS) throw err;
        const missing = /** @type {number[]} */ (err.problem.missing || []);
        for (const n of missing) this.held.delete(n);
        if (!missing.length) await sleep(300 + refused * 200);
        refused += 1;
      }
    }
  }

  /** Stop starting new parts (those on their way finish). */
  pause() { this.paused = true; }

  /** Go on: the parts the server lacks, as it says, are sent. */
  resume() {
    this.paused = false;
    if (this.wake) { this.wake(); this.wake = null; }
  }

  /** Abort the parts on their way and the upload on its server (nothing is left behind). */
  async cancel() {
    this.aborter.abort();
    if (this.wake) this.wake();
    await this.caller.del(`${this.base}/upload`);
  }

  check() {
    if (this.cancelled) throw new Cancelled();
  }

  /** Ask the daemon which parts its server already holds. */
  async learnHeld() {
    this.adopt(await this.caller.get(`${this.base}/upload`));
  }

  /** Take GET /upload's answer: its parts of the right size need not be sent again.
   * @param {{ uploaded: { number: number, size: number }[] }} view */
  adopt(view) {
    this.held = new Set(view.uploaded.filter((p) => p.size === this.partBytes(p.number)).map((p) => p.number));
    this.onProgress(this.bytesDone);
  }

  async sendMissing() {
    this.todo = [];
    for (let n = 1; n <= this.plan.parts; n += 1) if (!this.held.has(n)) this.todo.push(n);
    this.hashAhead();
    const lanes = [];
    for (let i = 0; i < AT_ONCE; i += 1) lanes.push(this.lane());
    try {
      await Promise.all(lanes);
    } catch (err) {
      this.todo = []; // a part that failed for good: the other lanes start nothing more
      throw err;
    }
    this.check();
  }

  /** One of the parallel senders: takes the next part until none is left (or paused). */
  async lane() {
    while (this.todo.length && !this.paused && !this.cancelled) {
      const n = /** @type {number} */ (this.todo.shift());
      this.hashAhead();
      await this.sendPart(n);
    }
  }

  /** Have the worker hash the next parts to send (it takes them in order, one at a time). */
  hashAhead() {
    for (const n of this.todo.slice(0, READ_AHEAD)) this.md5Of(n);
  }

  /** The part's MD5, from the worker (asked once). @param {number} n @returns {Promise<string>} */
  md5Of(n) {
    const known = this.hashing.get(n);
    if (known) return known;
    const hashing = this.hasher.md5(this.slice(n)).then((md5) => {
      this.md5s.set(n, md5);
      return md5;
    });
    hashing.catch(() => this.hashing.delete(n)); // asked again by the part's sender
    this.hashing.set(n, hashing);
    return hashing;
  }

  /** @param {number} n @returns {Blob} the part's bytes */
  slice(n) {
    const start = (n - 1) * this.plan.part_size;
    return this.file.slice(start, start + this.partBytes(n));
  }

  /** @param {number} n */
  async sendPart(n) {
    const body = this.slice(n);
    if (!this.md5s.has(n)) await this.md5Of(n);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const target = await this.urlFor(n);
        await putBytes(target, body, this.plan.server.name, (loaded) => {
          this.sending.set(n, loaded);
          this.onProgress(this.bytesDone);
        }, this.aborter.signal);
        this.sending.delete(n);
        this.held.add(n);
        this.onProgress(this.bytesDone);
        return;
      } catch (err) {
        this.sending.delete(n);
        this.onProgress(this.bytesDone);
        if (this.cancelled) throw new Cancelled();
        if (!(err instanceof PartError) || attempt >= TRIES) throw err;
        if (err.status === 403) this.urls.clear(); // the URLs expired: ask again
        else if (!err.passing) throw err;
        else await sleep(FIRST_WAIT_MS * 2 ** (attempt - 1));
      }
    }
  }

  /** The part's URL, asked for in one call with the other parts whose MD5 is known and URL is not (up to
   * BATCH: after a 403, all the parts hashed so far).
   * @param {number} n @returns {Promise<PartTarget>} */
  urlFor(n) {
    const known = this.urls.get(n);
    if (known) return known;
    const numbers = [n, ...[...this.md5s.keys()].filter((m) => m !== n && !this.held.has(m) && !this.urls.has(m))]
      .slice(0, BATCH);
    const md5 = Object.fromEntries(numbers.map((m) => [String(m), this.md5s.get(m)]));
    const asked = this.caller.post(`${this.base}/upload/parts`, { numbers, md5 })
      .then((answer) => new Map(answer.items.map((/** @type {PartTarget} */ item) => [item.number, item])));
    for (const m of numbers) {
      const one = asked.then((found) => /** @type {PartTarget} */ (found.get(m)));
      one.catch(() => this.urls.delete(m));
      this.urls.set(m, one);
    }
    return /** @type {Promise<PartTarget>} */ (this.urls.get(n));
  }
}
