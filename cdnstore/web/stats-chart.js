// @ts-check
// Download statistics (administrators), beside the map in the servers view: per storage server a small
// chart of the downloads handed out each UTC day of the last 30 (GET /stats/downloads), with the bytes
// behind them as a lighter strip underneath. Plain SVG built with DOM calls (no library, nothing the
// page's CSP would refuse); every day's column says its numbers on hover (<title>), every chart its totals.

import { ApiError } from "./api.js";
import { toastError } from "./feedback.js";
import { $, formatBytes, h, plural, svg } from "./ui.js";

/** @typedef {import("./types.js").DownloadStat} DownloadStat */

export const DAYS = 30;
const REFRESH_MS = 60_000; // the daemon batches its counters: a minute is fresh enough for a chart of days
const WIDTH = 300;
const BARS_HEIGHT = 48;
const BYTES_HEIGHT = 14;
const GAP = 4; // between the downloads and the bytes
const HEIGHT = BARS_HEIGHT + GAP + BYTES_HEIGHT;

/** The last `n` UTC days, oldest first, as YYYY-MM-DD. @param {number} n @param {Date} [now] */
export function lastDays(n, now = new Date()) {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: n }, (_, i) => new Date(today - (n - 1 - i) * 86_400_000).toISOString().slice(0, 10));
}

const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
/** "Nov 28" for 2026-11-28 (a UTC day). @param {string} day */
const dayName = (day) => dayFormat.format(new Date(`${day}T00:00:00Z`));

/** @param {DownloadStat[]} items @returns {Map<string, Map<string, DownloadStat>>} server -> day -> stat */
function byServer(items) {
  /** @type {Map<string, Map<string, DownloadStat>>} */
  const servers = new Map();
  for (const item of items) {
    if (!servers.has(item.server)) servers.set(item.server, new Map());
    const days = /** @type {Map<string, DownloadStat>} */ (servers.get(item.server));
    days.set(item.day, item);
  }
  return servers;
}

/** One server's chart: a figure with its totals, the SVG, and the first and last day under it.
 * @param {string} server @param {Map<string, DownloadStat>} stats @param {string[]} days */
export function serverChart(server, stats, days) {
  const counts = days.map((d) => (stats.get(d) || { downloads: 0, bytes: 0 }));
  const downloads = counts.reduce((n, s) => n + s.downloads, 0);
  const bytes = counts.reduce((n, s) => n + s.bytes, 0);
  const top = Math.max(0, ...counts.map((s) => s.downloads));
  const peak = Math.max(1, top);
  const peakBytes = Math.max(1, ...counts.map((s) => s.bytes));
  const step = WIDTH / days.length;
  const columns = days.map((day, i) => {
    const { downloads: n, bytes: b } = counts[i];
    const tall = n ? Math.max(1.5, (n / peak) * BARS_HEIGHT) : 0;
    const deep = b ? Math.max(1, (b / peakBytes) * BYTES_HEIGHT) : 0;
    return svg("g", { class: `day${n ? "" : " none"}`, "data-day": day, "data-downloads": n, "data-bytes": b },
      svg("title", {}, `${dayName(day)} (${day}, UTC): ${plural(n, "download")}, ${formatBytes(b)}`),
      svg("rect", { class: "hit", x: i * step, y: 0, width: step, height: HEIGHT }),
      n ? svg("rect", { class: "bar", x: i * step + 1, y: BARS_HEIGHT - tall, width: step - 2, height: tall, rx: 1 }) : null,
      b ? svg("rect", { class: "bytes", x: i * step + 1, y: BARS_HEIGHT + GAP, width: step - 2, height: deep, rx: 1 }) : null);
  });
  const label = `${server}: ${plural(downloads, "download")}, ${formatBytes(bytes)} in the last ${days.length} days`;
  return h("figure", { class: "stats-chart", dataset: { server, downloads, bytes } },
    h("figcaption", {},
      h("span", { class: "stats-server" }, server),
      h("span", { class: "stats-total" }, `${plural(downloads, "download")} · ${formatBytes(bytes)}`)),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label, preserveAspectRatio: "none" },
      svg("line", { class: "base", x1: 0, x2: WIDTH, y1: BARS_HEIGHT + 0.25, y2: BARS_HEIGHT + 0.25 }),
      ...columns),
    h("div", { class: "stats-axis" },
      h("span", {}, dayName(days[0])),
      h("span", { class: "muted" }, `at most ${plural(top, "download")} a day`),
      h("span", {}, "today")));
}

export class StatsChart {
  /** @param {import("./api.js").Session} session */
  constructor(session) {
    this.session = session;
    this.card = $("#stats-card");
    this.box = $("#stats-charts");
    this.empty = $("#stats-empty");
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
    this.ticket = 0;
  }

  /** Shown with the servers view, to administrators only (the statistics are theirs). */
  start() {
    const admin = !!this.session.user && this.session.user.is_admin;
    this.card.hidden = !admin;
    clearInterval(this.timer);
    this.timer = undefined;
    if (!admin) return;
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  reset() {
    this.stop();
    this.ticket += 1;
    this.box.replaceChildren();
  }

  async load() {
    const ticket = ++this.ticket;
    try {
      /** @type {{ items: DownloadStat[] }} */
      const answer = await this.session.get("/stats/downloads", { days: DAYS });
      if (ticket !== this.ticket) return;
      this.render(answer.items);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) toastError(err);
    }
  }

  /** @param {DownloadStat[]} items */
  render(items) {
    const days = lastDays(DAYS);
    const servers = [...byServer(items)].sort(([a], [b]) => a.localeCompare(b));
    this.box.replaceChildren(...servers.map(([server, stats]) => serverChart(server, stats, days)));
    this.empty.hidden = servers.length > 0;
  }
}
