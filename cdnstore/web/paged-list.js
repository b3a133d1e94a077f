// @ts-check
// A list the API gives in pages ({items, next_cursor}) shown as table rows: the first page (again), or
// with "Load more" the next one; an empty state; an answer older than the latest call is dropped. The
// view makes the rows. Its elements are #<name>-body, -table, -empty, -more and -more-button.

import { toastError } from "./feedback.js";
import { $ } from "./ui.js";

/** @template T */
export class PagedList {
  /**
   * @param {string} name
   * @param {(cursor: string | undefined) => Promise<{ items: T[], next_cursor?: string | null }>} fetch
   * @param {(item: T) => HTMLElement} row
   */
  constructor(name, fetch, row) {
    this.name = name;
    this.fetch = fetch;
    this.row = row;
    this.body = $(`#${name}-body`);
    this.empty = $(`#${name}-empty`);
    this.more = $(`#${name}-more`);
    /** @type {string | null | undefined} */
    this.cursor = null;
    this.ticket = 0; // the latest call: an older answer is dropped
    $(`#${name}-more-button`).addEventListener("click", () => this.load({ more: true }));
  }

  /** Signed out: nothing of the list stays. */
  reset() {
    this.ticket += 1;
    this.body.replaceChildren();
  }

  /** The first page (again), or with `more` the next one; the page's answer, or null when dropped. */
  async load({ more = false } = {}) {
    const ticket = ++this.ticket;
    try {
      const page = await this.fetch(more && this.cursor ? this.cursor : undefined);
      if (ticket !== this.ticket) return null;
      const rows = page.items.map((item) => this.row(item));
      if (more) this.body.append(...rows);
      else this.body.replaceChildren(...rows);
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.updateEmpty();
      return page;
    } catch (err) {
      toastError(err);
      return null;
    }
  }

  /** After rows came or went: the table, or the empty state. */
  updateEmpty() {
    const none = !this.body.children.length;
    this.empty.hidden = !none;
    $(`#${this.name}-table`).hidden = none;
  }
}
