// @ts-check
// The links view ("My links"): every share link of the user, to one file or several, newest first, with
// its state (active, expired, used up, files deleted), downloads and expiry; filtered by state; each to
// copy, edit in place or revoke.

import { toastError } from "./feedback.js";
import { STATES, linkBadges, linkEditor, linkFiles, stateBadge } from "./link-editor.js";
import { $, confirmDialog, copyText, h, timeEl, toast } from "./ui.js";

/** @typedef {import("./types.js").Link} Link */

const PAGE = 50;

export class LinksView {
  /**
   * @param {import("./api.js").Session} session
   * @param {{ changed?: () => void }} [on] changed: a link was edited or revoked here
   */
  constructor(session, on = {}) {
    this.session = session;
    this.on = on;
    /** @type {string | null} */
    this.cursor = null;
    this.state = "";
    this.loading = 0; // the ticket of the latest list call: an older answer is dropped
    this.body = $("#links-body");
    this.empty = $("#links-empty");
    this.filter = $("#links-filter", HTMLSelectElement);
    this.filter.replaceChildren(h("option", { value: "" }, "Every state"),
      ...Object.entries(STATES).map(([value, [words]]) => h("option", { value }, words)));
    this.filter.addEventListener("change", () => {
      this.state = this.filter.value;
      this.load();
    });
    $("#links-more-button").addEventListener("click", () => this.load({ more: true }));
  }

  reset() {
    this.body.replaceChildren();
    this.cursor = null;
  }

  async load({ more = false } = {}) {
    const ticket = ++this.loading;
    try {
      const page = await this.session.get("/links", { limit: PAGE, state: this.state, cursor: more ? this.cursor : undefined });
      if (ticket !== this.loading) return;
      if (!more) this.body.replaceChildren();
      this.body.append(...page.items.map((/** @type {Link} */ link) => this.row(link)));
      this.cursor = page.next_cursor;
      $("#links-more").hidden = !this.cursor;
      const none = this.body.children.length === 0;
      this.empty.hidden = !none;
      $("#links-table").hidden = none;
      this.empty.textContent = this.state
        ? `No link is “${STATES[this.state][0].toLowerCase()}”.`
        : "No share links yet. Share a file from the Files view, or several at once by ticking them.";
    } catch (err) {
      toastError(err);
    }
  }

  /** @param {Link} link */
  row(link) {
    const tr = h("tr", { dataset: { id: link.id, state: link.state } });
    this.render(tr, link);
    return tr;
  }

  /** @param {HTMLTableRowElement} tr @param {Link} link */
  render(tr, link) {
    const what = linkFiles(link);
    const names = link.files.map((f) => f.name).join(", ");
    const copy = h("button", { type: "button", class: "small", "aria-label": `Copy the link to ${what}` }, "Copy");
    copy.addEventListener("click", async () => {
      if (await copyText(link.url)) toast("Link copied");
    });
    tr.replaceChildren(
      h("td", { class: "primary-cell", "data-label": "Shares" },
        h("div", { class: "link-what" },
          h("span", { class: "name", title: names }, what),
          h("a", { class: "url", href: link.url, target: "_blank", rel: "noopener noreferrer" }, link.url))),
      h("td", { "data-label": "State" }, stateBadge(link)),
      h("td", { "data-label": "Details" }, h("div", { class: "tags" }, linkBadges(link).slice(link.state === "active" ? 0 : 1))),
      h("td", { "data-label": "Created", class: "when" }, timeEl(link.created_at)),
      h("td", { class: "actions" },
        copy,
        this.session.can("can_add_filesharelink") && h("button", {
          type: "button", class: "small ghost", "aria-label": `Edit the link to ${what}`, onclick: () => this.edit(tr, link),
        }, "Edit"),
        this.session.can("can_delete_filesharelink") && h("button", {
          type: "button", class: "small ghost link-danger", "aria-label": `Revoke the link to ${what}`, onclick: () => this.revoke(tr, link),
        }, "Revoke")));
  }

  /** @param {HTMLTableRowElement} tr @param {Link} link */
  edit(tr, link) {
    const editor = linkEditor(this.session, link, {
      saved: (changed) => {
        toast("Link changed");
        tr.dataset.state = changed.state;
        this.render(tr, changed);
        if (this.on.changed) this.on.changed();
      },
      cancel: () => this.render(tr, link),
    });
    tr.replaceChildren(h("td", { colspan: 5, class: "editing" }, h("p", { class: "link-what" }, h("span", { class: "name" }, linkFiles(link))), editor));
    /** @type {HTMLElement | null} */ (editor.querySelector("input, select"))?.focus();
  }

  /** @param {HTMLTableRowElement} tr @param {Link} link */
  async revoke(tr, link) {
    if (!(await confirmDialog("Revoke this link?", `The link to ${linkFiles(link)} stops working at once. The files stay.`, "Revoke"))) return;
    try {
      await this.session.del(`/links/${link.id}`);
      tr.remove();
      toast("Link revoked");
      if (this.on.changed) this.on.changed();
      if (!this.body.children.length) this.load();
    } catch (err) {
      toastError(err);
    }
  }
}
