// @ts-check
// Uploads: files chosen or dropped go, three at a time, straight from the browser to the presigned URL
// of the storage server the daemon picked, each with its own progress item.

import { ApiError, describe } from "./api.js";
import { $, formatBytes, h, sentence } from "./ui.js";

/** @typedef {import("./types.js").File} File */
/** @typedef {ReturnType<typeof makeItem>} Item */

const AT_ONCE = 3;
const DONE_STAYS_MS = 15000;

/** @param {globalThis.File} file the browser's file */
function makeItem(file) {
  const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload progress of ${file.name}` });
  const pct = h("span", { class: "pct" }, "0%");
  const status = h("p", { class: "status" }, "Waiting…");
  const dismiss = h("button", { type: "button", class: "small ghost", hidden: true, "aria-label": `Dismiss ${file.name}` }, "Dismiss");
  const el = h("div", { class: "upload", role: "group", "aria-label": `Upload of ${file.name}` },
    h("span", { class: "name", title: file.name }, file.name),
    h("span", {}, pct, " ", dismiss),
    progress, status);
  dismiss.addEventListener("click", () => el.remove());
  return {
    el,
    /** @param {number} fraction */
    progress(fraction) {
      const value = Math.round(fraction * 100);
      progress.value = value;
      pct.textContent = `${value}%`;
    },
    /** @param {string} text */
    status(text) { status.textContent = text; },
    /** @param {string} text */
    done(text) {
      el.classList.add("done");
      status.textContent = text;
      dismiss.hidden = false;
      setTimeout(() => el.remove(), DONE_STAYS_MS);
    },
    /** @param {string} text */
    fail(text) {
      el.classList.add("failed");
      status.textContent = text;
      dismiss.hidden = false;
    },
  };
}

/** @param {DragEvent} event */
function hasFiles(event) {
  return !!event.dataTransfer && [...event.dataTransfer.types].includes("Files");
}

/** @param {string} text the storage server's answer @returns {string} */
function s3Message(text) {
  const match = /<Message>([^<]*)<\/Message>/.exec(text || "");
  return match ? `: ${match[1]}` : "";
}

/**
 * PUT the bytes to the presigned URL with exactly the headers it came with, except Content-Length,
 * which the browser sets itself (it is a forbidden header).
 * @param {import("./types.js").UploadTarget} upload
 * @param {globalThis.File} file
 * @param {(fraction: number) => void} onProgress
 * @returns {Promise<void>}
 */
function putToStorage(upload, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method || "PUT", upload.url);
    for (const [name, value] of Object.entries(upload.headers || {})) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => { if (event.lengthComputable && event.total) onProgress(event.loaded / event.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(`the storage server ${upload.server.name} answered ${xhr.status}${s3Message(xhr.responseText)}`));
    };
    xhr.onerror = () => reject(new Error(`the storage server ${upload.server.name} could not be reached`));
    xhr.ontimeout = () => reject(new Error(`the storage server ${upload.server.name} did not answer in time`));
    xhr.onabort = () => reject(new Error("the upload was cancelled"));
    xhr.send(file);
  });
}

export class Uploads {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ changed: (file: File) => void }} on told of each file announced, then stored
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    /** @type {{ file: globalThis.File, item: Item }[]} */
    this.queue = [];
    this.running = 0;
    this.dragDepth = 0;
    this.list = $("#uploads");
    this.dropzone = $("#dropzone");
    const input = $("#file-input", HTMLInputElement);
    input.addEventListener("change", () => {
      if (input.files) this.start(input.files);
      input.value = "";
    });
    for (const target of [this.dropzone, $("#files-view")]) this.acceptDrops(target);
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
      if (this.session.can("can_upload_file")) this.start(event.dataTransfer.files);
    });
  }

  /** Signed in: the drop zone only for those who may upload. */
  show() {
    this.dropzone.hidden = !this.session.can("can_upload_file");
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
    try {
      item.status("Preparing…");
      const answer = await this.session.post("/files", {
        name: file.name, size: file.size, content_type: file.type || "application/octet-stream",
      });
      this.on.changed(answer.file);
      stage = "put";
      const server = answer.upload.server;
      item.status(`Uploading to ${server.location} (${formatBytes(file.size)})…`);
      await putToStorage(answer.upload, file, (fraction) => item.progress(fraction));
      item.progress(1);
      stage = "complete";
      item.status("Confirming…");
      this.on.changed(await this.confirmStored(answer.file.id));
      item.done(`Stored in ${server.location}`);
    } catch (err) {
      const what = { prepare: "Could not start the upload", put: "The upload failed", complete: "The upload was not confirmed" }[stage];
      item.fail(sentence(`${what}: ${describe(err)}`));
    }
  }

  /** POST /complete until the daemon sees the object (it may also learn it from a storage event).
   * @param {string} id @returns {Promise<File>} */
  async confirmStored(id) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const file = await this.session.post(`/files/${id}/complete`);
        if (file.status === "stored") return file;
      } catch (err) {
        if (!(err instanceof ApiError) || err.code !== "upload_incomplete" || attempt >= 10) throw err;
      }
      await new Promise((r) => setTimeout(r, 300 + attempt * 200));
    }
  }
}
