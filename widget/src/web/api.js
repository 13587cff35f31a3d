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
