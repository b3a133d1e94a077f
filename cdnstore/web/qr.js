// @ts-check
// A QR code as an SVG element, from the vendored qrcode-generator (MIT, see vendor/).

import qrcode from "./vendor/qrcode.mjs";
import { svg } from "./ui.js";

/** An <svg> QR code of `text` (error correction M, smallest version that fits, 4-module quiet zone).
 * @param {string} text */
export function qrSvg(text) {
  const qr = qrcode(0, "M");
  qr.addData(text, "Byte");
  qr.make();
  const count = qr.getModuleCount();
  const margin = 2;
  const size = count + margin * 2;
  let d = "";
  for (let row = 0; row < count; row += 1) {
    for (let col = 0; col < count; col += 1) {
      if (qr.isDark(row, col)) d += `M${col + margin} ${row + margin}h1v1h-1z`;
    }
  }
  return svg("svg", { viewBox: `0 0 ${size} ${size}`, "shape-rendering": "crispEdges", "aria-hidden": "true" },
    svg("rect", { width: size, height: size, fill: "#fff" }),
    svg("path", { d, fill: "#111827" }));
}
