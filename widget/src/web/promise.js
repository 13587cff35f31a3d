// Waiting for a promise (see promise.rs), in JavaScript: `then` and reading the outcome made
// from Rust were half a dozen imports and `Reflect` calls.

/** Calls `then` once, in a later microtask, with `[true, value]` or `[false, reason]` when `value` (a promise, or any value) settles. */
export function settle(value, then) {
  Promise.resolve(value).then(
    (v) => then([true, v]),
    (e) => then([false, e]),
  );
}
