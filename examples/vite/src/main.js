// An app that installs @natter/widget from npm and mounts it.
import { mount } from '@natter/widget';

// The hub to talk to: VITE_NATTER_SERVER at build time, else `cargo xtask demo`'s default.
// The hub: `?server=` in the page URL, else VITE_NATTER_SERVER at build time, else `cargo xtask demo`'s.
const server =
  new URLSearchParams(location.search).get('server') ?? import.meta.env.VITE_NATTER_SERVER ?? 'http://127.0.0.1:8080';

const chat = mount({
  server,
  title: 'Vite demo',
  greeting: 'Hello from the Vite example 👋',
  position: 'bottom-right',
  accent: '#7c3aed',
});

const status = document.getElementById('status');
const unread = document.getElementById('unread');
chat.on('status', (s) => (status.textContent = `${s.status} (${s.transport})`));
chat.on('unread', (n) => (unread.textContent = String(n)));
chat.on('message', (m) => console.log(`[natter] ${m.role}: ${m.text}`));

document.getElementById('open').addEventListener('click', () => chat.open());
document.getElementById('hello').addEventListener('click', () => {
  chat.open();
  chat.send('hello');
});
