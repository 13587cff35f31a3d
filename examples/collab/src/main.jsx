// A full-page collaboration chat built with @natter/widget/react: a room sidebar, the members
// present, the room's messages, a shared canvas where everyone sees the others' cursors move,
// and a shared list every member edits. One widget connection carries all of it.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { NatterProvider } from '@natter/widget/react';
import { App } from './App.jsx';
import './style.css';

const params = new URLSearchParams(location.search);
// The hub: `?server=` in the page URL, else VITE_NATTER_SERVER at build time, else `cargo xtask demo`'s.
const server = params.get('server') ?? import.meta.env.VITE_NATTER_SERVER ?? 'http://127.0.0.1:8080';

createRoot(document.getElementById('root')).render(
  <StrictMode>
    {/* The support launcher stays available (Ctrl+Shift+C); the rooms are this page's own UI. */}
    <NatterProvider options={{ server, title: 'Help' }}>
      <App initialRoom={params.get('room') ?? 'design-review'} initialName={params.get('name') ?? ''} />
    </NatterProvider>
  </StrictMode>,
);
