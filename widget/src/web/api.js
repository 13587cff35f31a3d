// What the page sees of the widget, in JavaScript beside api.rs: the state and message objects,
// the options read in one call, and waiting for a promise the page hands over (promise.rs). See
// view.js for why these are one module.

// ---- The page-facing objects (api.rs)

// The JS shapes the widget hands the page (see api.rs), made in JavaScript: made from Rust,
// each property was a key string, a conversion and a `Reflect.set` call in the wasm.

/** `{connected, transport, open, unread, status, muted, user}` (`user`: `{id, name}` or null). */
export const state = (connected, transport, open, unread, status, muted, id, name) => ({
  connected,
  transport,
  open,
  unread,
  status,
  muted,
  user: id == null ? null : { id, name: name ?? null },
});

/** `{id, role, text, time, state, seq, author}`, and `retried` for a `delivery` event (not null). */
export function message(id, role, text, time, state, seq, author, retried) {
  const m = { id, role, text, time, state, seq: seq ?? null, author: author ?? null };
  if (retried != null) m.retried = retried;
  return m;
}

/**
 * The options object of `mount`, read (see options.rs for what each means): `[server,
 * position, zIndex, title, greeting, shortcut, theme, open, accent, colors, locale
 * (the browser's language without one), textsLocale, strings, identityToken, contextOf,
 * trustedHtml]`. A text option is a string or undefined; `zIndex`, `shortcut` and `open` a
 * boolean, number or string, or undefined; `colors` and `strings` `[name, text, …]` (the text
 * pairs of an object); the last two the npm facade's internal functions, or undefined.
 */
export function options(o) {
  const get = (k) => {
    try {
      return typeof o === 'object' && o !== null ? o[k] : undefined;
    } catch {}
  };
  const kind = (k, ...types) => {
    const v = get(k);
    return types.includes(typeof v) ? v : undefined;
  };
  const string = (k) => kind(k, 'string');
  const flex = (k) => kind(k, 'boolean', 'number', 'string');
  const pairs = (k) => {
    const v = get(k);
    // Not `instanceof Object`: an object made in another frame, or without a prototype, is one too.
    return v && typeof v === 'object' ? Object.entries(v).filter(([, text]) => typeof text === 'string').flat() : [];
  };
  const fn = (k) => {
    const f = get(k);
    return f instanceof Function ? f : undefined;
  };
  return [
    string('server'),
    string('position'),
    flex('zIndex'),
    string('title'),
    string('greeting'),
    flex('shortcut'),
    string('theme'),
    flex('open'),
    string('accent'),
    pairs('colors'),
    string('locale') ?? navigator.language,
    string('textsLocale'),
    pairs('strings'),
    string('identityToken'),
    fn('contextOf'),
    fn('trustedHtml'),
  ];
}

// ---- Promises (promise.rs)

// Waiting for a promise (see promise.rs), in JavaScript: `then` and reading the outcome made
// from Rust were half a dozen imports and `Reflect` calls.

/** Calls `then` once, in a later microtask, with `[true, value]` or `[false, reason]` when `value` (a promise, or any value) settles. */
export function settle(value, then) {
  Promise.resolve(value).then(
    (v) => then([true, v]),
    (e) => then([false, e]),
  );
}
