// What the widget reads from the page (see page.rs), in JavaScript: made from Rust, each read
// went through the window object's lookup and a web-sys import of its own.

/** `[navigator.onLine, document.hidden]`. */
export const state = () => [navigator.onLine, document.hidden];

/** The page's origin (`https://shop.example`). */
export const origin = () => location.origin;

/** `localStorage`, or null where the page has none or may not use it (a sandboxed iframe). */
export function storage() {
  try {
    return localStorage;
  } catch {
    return null;
  }
}

/** Fills `buf` from `crypto.getRandomValues`; false where the page has no Web Crypto. */
export function random(buf) {
  try {
    crypto.getRandomValues(buf);
    return true;
  } catch {
    return false;
  }
}

/**
 * A stored message's context re-written by the browser's JSON: anything but a JSON object
 * (storage is the page's to change) becomes '', so that it can never break the frame it is
 * spliced into.
 */
export function context(text) {
  try {
    const v = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? JSON.stringify(v) : '';
  } catch {
    return '';
  }
}
