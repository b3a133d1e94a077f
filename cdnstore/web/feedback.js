// @ts-check
// The page's two repeated gestures, written once: an error told in a toast, and a button that is busy
// (disabled, maybe saying what it does) while its request runs.

import { describe } from "./api.js";
import { sentence, toast } from "./ui.js";

/** An error shown on its own (a toast, a form's message) reads as a sentence. @param {unknown} err */
export const say = (err) => sentence(describe(err));

/** Tell `err` in an error toast. @param {unknown} err @param {{ ms?: number }} [options] */
export function toastError(err, { ms } = {}) {
  toast(say(err), { error: true, ms });
}

/**
 * Run `task` with `button` disabled and, given a `label`, showing it; the button is back as it was
 * afterwards, whatever happened.
 * @template T
 * @param {HTMLButtonElement} button
 * @param {() => Promise<T>} task
 * @param {{ label?: string }} [options]
 * @returns {Promise<T>}
 */
export async function whileBusy(button, task, { label } = {}) {
  const idle = button.textContent;
  button.disabled = true;
  if (label) button.textContent = label;
  try {
    return await task();
  } finally {
    button.disabled = false;
    if (label) button.textContent = idle;
  }
}
