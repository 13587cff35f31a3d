// A list every member of the room edits, equal on every page without a server of its own.
//
// Updates (`room.update`, a `chain_update`) reach those present and are never stored, so a
// member whose network dropped for a moment misses some. So every item carries a version: a
// Lamport clock of the list (one more than the highest this page has seen) with the page's own
// id to break ties. A page merges whatever it hears by keeping, per item, the newer version; a
// removed item stays as a tombstone, so that an older copy cannot bring it back. A page that
// (re)joins sends its whole list and asks for the others' (`sync`); each present answers with
// theirs (`items`). Whatever was missed and in whatever order things arrive, every page ends
// with the same list.
import { useCallback, useMemo, useRef, useState } from 'react';

/** Whether version `a` is newer than `b` (none is oldest). */
const newer = (a, b) => !b || a.v > b.v || (a.v === b.v && a.by > b.by);

/** An item as another page sent it, or null when it is not one. */
function itemOf(i) {
  if (typeof i?.id !== 'string' || !Number.isSafeInteger(i.v) || typeof i.by !== 'string') return null;
  const made = Number.isSafeInteger(i.made) ? i.made : 0;
  return { id: i.id, text: String(i.text ?? ''), done: Boolean(i.done), removed: Boolean(i.removed), v: i.v, by: i.by, made };
}

/**
 * The list's state: `items` (shown, in the order they were added), `receive(data)` for the
 * others' updates, `connect(update)` with the room's `update` while it is joined (null while
 * not), and `add(text)`, `toggle(id, done)`, `remove(id)`.
 */
export function useSharedList() {
  const [all, setAll] = useState(() => new Map());
  const state = useRef({ items: new Map(), clock: 0, me: crypto.randomUUID(), send: null });

  /** Keeps the newer version of each of `list`; returns whether anything changed. */
  const merge = useCallback((list) => {
    const s = state.current;
    let next = null;
    for (const raw of Array.isArray(list) ? list : []) {
      const item = itemOf(raw);
      if (!item) continue;
      s.clock = Math.max(s.clock, item.v);
      if (newer(item, (next ?? s.items).get(item.id))) (next ??= new Map(s.items)).set(item.id, item);
    }
    if (next) setAll((s.items = next));
  }, []);

  const receive = useCallback((data) => {
    if (data?.op !== 'sync' && data?.op !== 'items') return;
    merge(data.items);
    // A page that (re)joined: it gets everything this page has (its own edits included).
    if (data.op === 'sync') state.current.send?.({ op: 'items', items: [...state.current.items.values()] });
  }, [merge]);

  const connect = useCallback((update) => {
    state.current.send = update;
    if (update) update({ op: 'sync', items: [...state.current.items.values()] });
  }, []);

  /** Changes item `id` here (a new version of it) and tells the others. */
  const change = useCallback((id, fields) => {
    const s = state.current;
    const old = s.items.get(id);
    s.clock += 1;
    const item = { ...(old ?? { id, text: '', done: false, removed: false, made: s.clock }), ...fields, v: s.clock, by: s.me };
    merge([item]);
    // (Offline, nothing is sent: the `sync` of the rejoin carries it.)
    s.send?.({ op: 'items', items: [item] });
  }, [merge]);

  const items = useMemo(
    () => [...all.values()].filter((i) => !i.removed).sort((a, b) => a.made - b.made || (a.id < b.id ? -1 : 1)),
    [all],
  );
  return useMemo(() => ({
    items,
    receive,
    connect,
    add: (text) => change(crypto.randomUUID(), { text }),
    toggle: (id, done) => change(id, { done }),
    remove: (id) => change(id, { removed: true }),
  }), [items, receive, connect, change]);
}

export function SharedList({ list }) {
  const [draft, setDraft] = useState('');
  return (
    <div className="list">
      <h3>Shared list</h3>
      <ul aria-label="Shared list">
        {list.items.map((i) => (
          <li key={i.id}>
            <label>
              <input type="checkbox" checked={i.done} onChange={(e) => list.toggle(i.id, e.target.checked)} />
              <span className={i.done ? 'done' : ''}>{i.text}</span>
            </label>
            <button type="button" aria-label={`Remove ${i.text}`} onClick={() => list.remove(i.id)}>×</button>
          </li>
        ))}
      </ul>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const text = draft.trim();
          if (!text) return;
          list.add(text);
          setDraft('');
        }}
      >
        <label htmlFor="item" className="sr-only">New item</label>
        <input id="item" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="Add an item" />
        <button type="submit">Add</button>
      </form>
    </div>
  );
}
