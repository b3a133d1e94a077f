// @ts-check
// The admin world map: plain SVG, equirectangular (x = longitude + 180, y = 90 - latitude), no tiles.

import { svg } from "./ui.js";
import { LAND } from "./world.js";

// Calm, distinguishable zone colours; a zone keeps its colour while the set of zones stays the same.
const PALETTE = ["#2f5bd3", "#d9822b", "#7a4fd1", "#159a9c", "#d14f86", "#6b8e23", "#b5651d", "#4a6fa5"];

/** @typedef {import("./types.js").Server} Server */

/** @param {Server[]} servers @returns {Map<string, string>} zone -> colour */
export function zoneColors(servers) {
  const zones = [...new Set(servers.map((s) => s.zone))].sort();
  return new Map(zones.map((zone, i) => [zone, PALETTE[i % PALETTE.length]]));
}

/** @param {number} lat @param {number} lon @returns {[number, number]} */
export function project(lat, lon) {
  return [lon + 180, 90 - lat];
}

/** Draw the land and graticule once into `root` (an <svg viewBox="0 0 360 150">). @param {SVGSVGElement} root */
export function drawBase(root) {
  root.append(svg("rect", { class: "ocean", x: 0, y: 0, width: 360, height: 150, rx: 3 }));
  let grid = "";
  for (let lon = 30; lon < 360; lon += 30) grid += `M${lon} 0V150`;
  for (let lat = 30; lat < 150; lat += 30) grid += `M0 ${lat}H360`;
  root.append(svg("path", { class: "grid", d: grid }));
  root.append(svg("path", { class: "land", d: LAND }));
  root.append(svg("g", { class: "servers" }));
}

/** Put the servers on the map: a dot in the zone's colour, ringed by health, hollow when inactive (it takes no
 * uploads or copies), faded when off.
 * @param {SVGSVGElement} root @param {Server[]} servers @param {Map<string, string>} colors */
export function drawServers(root, servers, colors) {
  const layer = /** @type {SVGGElement} */ (root.querySelector("g.servers"));
  layer.replaceChildren();
  // A phone shows the whole world in ~350 pixels: labels and dots grow to stay readable.
  const width = root.getBoundingClientRect().width;
  const k = width ? Math.min(2.2, Math.max(1, 700 / width)) : 1;
  // Servers close together (Dallas, Detroit, New York) get their labels nudged apart.
  const placed = [];
  const sorted = [...servers].sort((a, b) => a.latitude - b.latitude);
  for (const s of sorted) {
    const [x, y] = project(s.latitude, s.longitude);
    let ly = y - 4.5 * k;
    for (const p of placed) if (Math.abs(p.x - x) < 30 * k && Math.abs(p.ly - ly) < 4.5 * k) ly = p.ly - 4.8 * k;
    placed.push({ x, ly });
    // Labels go right of their dot, unless that covers a neighbour's dot (or runs off the map).
    const crowded = servers.some((o) => {
      const [ox, oy] = project(o.latitude, o.longitude);
      return o !== s && ox > x && ox - x < 30 * k && Math.abs(oy - y) < 6 * k;
    });
    const left = x > 300 || (crowded && x > 40 * k);
    const state = `${s.is_on ? "on" : "off"}, ${s.is_active ? "active" : "not active"}, health ${s.health}`;
    const rest = !s.is_on ? "off" : !s.is_active ? "inactive" : "";
    layer.append(svg("g", { class: `server${rest ? ` ${rest}` : ""}`, "data-name": s.name },
      svg("title", {}, `${s.name} — ${s.location} (${s.zone}): ${state}`),
      svg("circle", { class: `dot health-${s.health}`, cx: x, cy: y, r: 2.6 * Math.sqrt(k), fill: colors.get(s.zone) }),
      svg("text", {
        class: "label", x: left ? x - 3.5 * k : x + 3.5 * k, y: ly + 3.2 * k, "text-anchor": left ? "end" : "start",
        "font-size": 3.6 * k, "stroke-width": 0.9 * k,
      },
        s.location || s.name, rest && svg("tspan", { class: "state" }, ` · ${rest}`))));
  }
}
