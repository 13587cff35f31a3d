// A list every member of the room edits. Each edit is an operation sent with `update` (a
// `chain_update`, relayed to the others in order and never stored), applied the same way here
// and there. A newcomer starts empty and takes the first snapshot someone present sends.
import { useCallback, useMemo, useRef, useState } from 'react';

function applyOp(items, op) {
  switch (op?.op) {
    case 'add':
      return items.some((i) => i.id === op.id) ? items : [...items, { id: op.id, text: String(op.text), done: false }];
    case 'toggle':
      return items.map((i) => (i.id === op.id ? { ...i, done: Boolean(op.done) } : i));
    case 'remove':
      return items.filter((i) => i.id !== op.id);
    default:
      return items;
  }
}

/** The list's state and how to change it (from here or from an update of another member). */
export function useSharedList() {
  const [items, setItems] = useState([]);
  const current = useRef(items);
  current.current = items;
  // Whether this page has a list to share: it edited or received one.
  const known = useRef(false);
  const apply = useCallback((op) => {
    if (op?.op === 'snapshot') {
      if (known.current || !Array.isArray(op.items)) return;
      known.current = true;
      setItems(op.items.filter((i) => typeof i?.id === 'string').map((i) => ({ id: i.id, text: String(i.text), done: Boolean(i.done) })));
      return;
    }
    known.current = true;
    setItems((all) => applyOp(all, op));
  }, []);
  const share = useCallback((update) => {
    if (known.current) update({ op: 'snapshot', items: current.current });
  }, []);
  return useMemo(() => ({ items, apply, share }), [items, apply, share]);
}

export function SharedList({ list, update }) {
  const [draft, setDraft] = useState('');
  const edit = (op) => {
    list.apply(op);
    update(op);
  };
  return (
    <div className="list">
      <h3>Shared list</h3>
      <ul aria-label="Shared list">
        {list.items.map((i) => (
          <li key={i.id}>
            <label>
              <input type="checkbox" checked={i.done} onChange={(e) => edit({ op: 'toggle', id: i.id, done: e.target.checked })} />
              <span className={i.done ? 'done' : ''}>{i.text}</span>
            </label>
            <button type="button" aria-label={`Remove ${i.text}`} onClick={() => edit({ op: 'remove', id: i.id })}>×</button>
          </li>
        ))}
      </ul>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const text = draft.trim();
          if (!text) return;
          edit({ op: 'add', id: crypto.randomUUID(), text });
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
