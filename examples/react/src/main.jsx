// A React app that embeds Natter through a hook and drives it from its own UI.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { useNatter } from './useNatter.js';

// The hub: `?server=` in the page URL, else VITE_NATTER_SERVER at build time, else `cargo xtask demo`'s.
const server =
  new URLSearchParams(location.search).get('server') ?? import.meta.env.VITE_NATTER_SERVER ?? 'http://127.0.0.1:8080';

function App() {
  const { chat, state, messages } = useNatter({ server, title: 'React demo', accent: '#0891b2' });
  return (
    <main>
      <h1>Natter in a React app</h1>
      <p>
        Status: <strong>{state ? `${state.status} (${state.transport})` : 'loading…'}</strong>
        {state && state.unread > 0 ? `, ${state.unread} unread` : ''}
      </p>
      <p>
        <button type="button" onClick={() => chat.current?.toggle()}>Toggle chat</button>{' '}
        <button type="button" onClick={() => { chat.current?.open(); chat.current?.send('hello'); }}>
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
    <App />
  </StrictMode>,
);
