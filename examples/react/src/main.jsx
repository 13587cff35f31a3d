// A React app that embeds Natter's support chat through the package's provider and hooks and
// drives it from its own UI.
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { NatterProvider, useNatter, useNatterState } from '@natter/widget/react';

// The hub: `?server=` in the page URL, else VITE_NATTER_SERVER at build time, else `cargo xtask demo`'s.
const server =
  new URLSearchParams(location.search).get('server') ?? import.meta.env.VITE_NATTER_SERVER ?? 'http://127.0.0.1:8080';

/** The last five messages, from the widget's events. */
function useLastMessages(natter) {
  const [messages, setMessages] = useState([]);
  useEffect(() => {
    if (!natter) return undefined;
    // `message` adds a message; `delivery` follows one of the visitor's own through pending,
    // sent (with its seq), failed and retried — so the list never shows a stale "pending".
    const onMessage = (m) => setMessages((all) => [...all.filter((x) => x.id !== m.id), m].slice(-5));
    const onDelivery = (d) => setMessages((all) => all.map((x) => (x.id === d.id ? { ...x, state: d.state, seq: d.seq } : x)));
    natter.on('message', onMessage).on('delivery', onDelivery);
    return () => {
      natter.off('message', onMessage).off('delivery', onDelivery);
    };
  }, [natter]);
  return messages;
}

function App() {
  const natter = useNatter();
  const state = useNatterState();
  const messages = useLastMessages(natter);
  return (
    <main>
      <h1>Natter in a React app</h1>
      <p>
        Status: <strong>{state ? `${state.status} (${state.transport})` : 'loading…'}</strong>
        {state && state.unread > 0 ? `, ${state.unread} unread` : ''}
      </p>
      <p>
        <button type="button" onClick={() => natter?.toggle()}>Toggle chat</button>{' '}
        <button type="button" onClick={() => { natter?.open(); natter?.send('hello'); }}>
          Say hello
        </button>
      </p>
      <h2>Last messages (from the widget's events)</h2>
      <ul>
        {messages.map((m) => (
          <li key={m.id} data-state={m.state}>
            <em>{m.role}</em>: {m.text} <small>({m.state})</small>
          </li>
        ))}
      </ul>
    </main>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    {/* The support chat alone: `rooms: false`, so the page downloads no room code. */}
    <NatterProvider options={{ server, title: 'React demo', accent: '#0891b2', rooms: false }}>
      <App />
    </NatterProvider>
  </StrictMode>,
);
