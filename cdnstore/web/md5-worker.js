// @ts-check
// The MD5 of each part of a big file, off the page's main thread (a module worker started by
// multipart.js): hashing runs at a few tens of MB/s, which on the main thread would cap the upload speed
// and freeze the page. A request is `{ id, blob }` (a Blob is a handle: its bytes are not copied); the
// answer is `{ id, md5 }` (base64, as Content-MD5 wants it) or `{ id, error }`. Requests are hashed one
// after the other, so at most one part's bytes are in memory here at a time.

import { contentMd5 } from "./md5.js";

/** @typedef {{ id: number, blob: Blob }} HashRequest */
/** @typedef {{ id: number, md5?: string, error?: string }} HashAnswer */
/** @typedef {{ onmessage: ((event: MessageEvent<HashRequest>) => void) | null,
 *   postMessage: (answer: HashAnswer) => void, partsHashed: number }} WorkerScope */

// The DOM library types `self` as a Window; in this module it is a dedicated worker's global scope.
const scope = /** @type {WorkerScope} */ (/** @type {unknown} */ (self));
// How many parts this worker hashed: a fact the tests read to see the hashing happen here.
scope.partsHashed = 0;

/** @type {Promise<void>} the requests so far, in order */
let queue = Promise.resolve();

/** @param {HashRequest} request @returns {Promise<void>} */
async function answer({ id, blob }) {
  try {
    const md5 = await contentMd5(blob);
    scope.partsHashed += 1;
    scope.postMessage({ id, md5 });
  } catch (err) {
    scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
}

scope.onmessage = (/** @type {MessageEvent<HashRequest>} */ event) => {
  queue = queue.then(() => answer(event.data));
};
