// @ts-check
// The failed-jobs card of the servers view (administrators): copies and removals that ran out of
// attempts, each to retry.

import { toastError, whileBusy } from "./feedback.js";
import { $, formatTime, h, toast } from "./ui.js";

/** @typedef {import("./types.js").Job} Job */

/** @type {Record<string, string>} */
const KINDS = { copy: "Copy", remove: "Removal" };

export class JobsCard {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ changed: () => void }} on told when a job was queued again
   */
  constructor(session, on) {
    this.session = session;
    this.on = on;
    this.card = $("#jobs-card");
    this.body = $("#jobs-body");
  }

  /** Only administrators see the jobs. */
  shown() {
    return !!this.session.user && this.session.user.is_admin;
  }

  show() {
    this.card.hidden = !this.shown();
  }

  async load() {
    const page = await this.session.get("/jobs", { status: "failed", limit: 100 });
    /** @type {Job[]} */
    const jobs = page.items;
    this.body.replaceChildren(...jobs.map((job) => this.row(job)));
    $("#jobs-empty").hidden = jobs.length > 0;
    $(".table-wrap", undefined, this.card).hidden = jobs.length === 0;
  }

  /** @param {Job} job */
  row(job) {
    const retry = h("button", { type: "button", class: "small", "aria-label": `Retry ${job.kind} of ${job.file_name || "a file"}` }, "Retry");
    retry.addEventListener("click", async () => {
      try {
        await whileBusy(retry, () => this.session.post(`/jobs/${job.id}/retry`));
        toast("Job queued again");
        this.on.changed();
      } catch (err) {
        toastError(err);
      }
    });
    return h("tr", { dataset: { id: job.id } },
      h("td", { class: "primary-cell" }, h("strong", {}, KINDS[job.kind] || job.kind), " ", h("span", { class: "muted small-text" }, formatTime(job.updated_at))),
      h("td", { "data-label": "File" }, job.file_name || "—"),
      h("td", { "data-label": "Server" }, job.server ? `${job.server.name} (${job.server.location})` : "—"),
      h("td", { class: "num", "data-label": "Attempts" }, String(job.attempts)),
      h("td", { "data-label": "Last error" }, h("span", { class: "job-error" }, job.last_error || "")),
      h("td", { class: "actions" }, retry));
  }
}
