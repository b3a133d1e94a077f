// @ts-check
// MD5 (RFC 1321) of some bytes, for the Content-MD5 a part is sent with, so that the storage server
// refuses a part damaged on the way. WebCrypto has no MD5; this is for integrity, not security.

/** Left-rotation amounts, per step. */
const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
/** The sine-derived constants, per step. */
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

/** @param {Uint8Array} bytes @returns {Uint8Array} the 16-byte digest */
export function md5(bytes) {
  const blocks = Math.floor((bytes.length + 8) / 64) + 1;
  const padded = new Uint8Array(blocks * 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  const bits = bytes.length * 8;
  view.setUint32(padded.length - 8, bits >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bits / 2 ** 32), true);
  const state = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476];
  const words = new Int32Array(16);
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i += 1) words[i] = view.getInt32(offset + 4 * i, true);
    block(state, words);
  }
  const out = new Uint8Array(16);
  const outView = new DataView(out.buffer);
  state.forEach((word, i) => outView.setInt32(4 * i, word, true));
  return out;
}

/** One 64-byte block into the state. @param {number[]} state @param {Int32Array} words */
function block(state, words) {
  let [a, b, c, d] = state;
  for (let i = 0; i < 64; i += 1) {
    let f;
    let g;
    if (i < 16) { f = (b & c) | (~b & d); g = i; }
    else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
    else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
    else { f = c ^ (b | ~d); g = (7 * i) & 15; }
    f = (f + a + K[i] + words[g]) | 0;
    a = d;
    d = c;
    c = b;
    const s = SHIFTS[(i >> 4) * 4 + (i & 3)];
    b = (b + ((f << s) | (f >>> (32 - s)))) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
}

/** The base64 MD5 of a Blob's bytes, as Content-MD5 wants it. @param {Blob} blob @returns {Promise<string>} */
export async function contentMd5(blob) {
  const digest = md5(new Uint8Array(await blob.arrayBuffer()));
  return btoa(String.fromCharCode(...digest));
}
