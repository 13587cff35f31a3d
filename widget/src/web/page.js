// What the widget reads from the page and how it reaches the hub, in JavaScript beside the Rust
// that decides it: the page's state, storage and randomness (page.rs), a key press and where it
// was typed (keys.rs), and the WebSocket, `fetch` and the page's location (link.rs). See view.js
// for why these are one module.

// ---- The page (page.rs)

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

// ---- Key presses (keys.rs)

// Reading key presses (see keys.rs), in JavaScript: the dozen `KeyboardEvent` and element
// reads made from Rust were as many imports in the wasm and its glue.

/**
 * The parts of a `keydown` the rules look at: `[key, code, modifiers, keyCode]`, the
 * modifiers as bits: 1 Ctrl, 2 Shift, 4 Alt, 8 Meta, 16 AltGraph, 32 repeat, 64 isComposing.
 */
export function press(e) {
  const bits = [e.ctrlKey, e.shiftKey, e.altKey, e.metaKey, e.getModifierState('AltGraph'), e.repeat, e.isComposing];
  return [e.key, e.code, bits.reduce((sum, on, i) => sum | (on ? 1 << i : 0), 0), e.keyCode];
}

/** Input types that take no typed text (a key on them is not a character being written). */
const NOT_TEXT = ['button', 'checkbox', 'color', 'file', 'hidden', 'image', 'radio', 'range', 'reset', 'submit'];

const editable = (el) => {
  switch (el.tagName) {
    case 'TEXTAREA':
    case 'SELECT':
      return true;
    case 'INPUT':
      return !NOT_TEXT.includes((el.getAttribute('type') ?? '').toLowerCase());
    default:
      return (
        (el instanceof HTMLElement && el.isContentEditable) ||
        ['textbox', 'searchbox', 'combobox'].includes(el.getAttribute('role'))
      );
  }
};

/**
 * Whether the event's target is an editable place. `composedPath()` is read rather than
 * `target`, which a shadow root retargets to its host: an input inside another component's
 * (open) shadow root, or inside ours, is seen as what it is. A closed shadow root shows only its
 * host, a custom element that may hold an input: it counts as editable.
 */
export function inEditable(e) {
  const path = e.composedPath();
  const first = path[0];
  return path.some((n) => n instanceof Element && editable(n)) || (first.localName?.includes('-') && !first.shadowRoot);
}

// ---- The link to the hub (link.rs)

// The link's browser calls (see link.rs), in JavaScript: the WebSocket, fetch and where the
// page is were some thirty browser calls made from Rust, each an import in the wasm, its glue
// and a call site. Frames are still read into protocol types in Rust (frame.rs), and what to
// do with them is decided there.

/**
 * The hub's HTTP base (`https://hub.example`, no trailing slash) for `server` resolved against
 * the page: an http(s) URL, a ws(s) one (`wss://hub.example` is `https://hub.example`), or a
 * path. Anything else is named in a console error and returned as written (nothing reaches it).
 */
export function endpoint(server) {
  // `chat.example.com` is a path on this page's origin to a URL; the page meant the host.
  if (/^[\w-]+(\.[\w-]+)+(\/|$)/.test(server)) console.error('natter: the server option is a path on this page, not a host; write https://' + server + ', not', server);
  try {
    const u = new URL(server || '/', location.href);
    const scheme = u.protocol.replace(/^ws/, 'http');
    if (/^https?:$/.test(scheme)) return scheme + '//' + u.host + u.pathname.replace(/\/+$/, '');
  } catch {}
  console.error('natter: the server option is no http(s) or ws(s) URL or path:', server);
  return server;
}

/**
 * Where the page is now: the path, and the route of an app that routes by hash (`/app#/checkout`,
 * `#!/cart`), never a query or another fragment, which may hold private data (an OAuth token).
 */
export function pageNow() {
  const { pathname, hash } = location;
  return pathname + (hash.startsWith('#/') || hash.startsWith('#!/') ? hash.split('?')[0] : '');
}

/**
 * One HTTP call to the hub: a GET, or a POST of `body` (a frame's JSON text), with the header
 * `name: value` carrying who the widget is (none when `name` is empty). Always fulfils, with
 * `[the answer's JSON (null when the network failed or it was not JSON), whether its status
 * was 2xx, the session the hub issued in the header `issued`]`.
 */
export async function call(url, body, signal, name, value, issued) {
  const headers = {};
  if (body != null) headers['content-type'] = 'application/json';
  if (name) headers[name] = value;
  let resp;
  try {
    resp = await fetch(url, body == null ? { method: 'GET', signal, headers } : { method: 'POST', signal, body, headers });
  } catch {
    return [null, false, null];
  }
  const session = resp.headers.get(issued);
  let frame = null;
  try {
    frame = await resp.json();
  } catch {}
  return [frame, resp.ok, session];
}

/**
 * A WebSocket to `url` (throws where the browser refuses to open one) that calls `report`
 * with -1 when it opens, each frame that is a JSON object, and the close code when it closes.
 */
export class Socket {
  constructor(url, report) {
    const ws = (this.ws = new WebSocket(url));
    // The close is reported once, whether `error` or `close` says so first.
    const shut = (code) => {
      if (!this.done) {
        this.done = 1;
        report(code);
      }
    };
    ws.onopen = () => report(-1);
    ws.onmessage = (e) => {
      let v;
      try {
        v = typeof e.data === 'string' ? JSON.parse(e.data) : null;
      } catch {
        return;
      }
      // A frame this version does not understand (a newer hub) is skipped in Rust, and
      // anything that is not an object is skipped here.
      if (v !== null && typeof v === 'object') report(v);
      else if (typeof e.data === 'string') console.debug('natter: ignored an unknown frame');
    };
    ws.onclose = (e) => shut(e.code);
    // A socket the page's Content-Security-Policy refuses (`connect-src` without `wss:`) is
    // failed and closed but, in Chromium, never fires `close`: without this each attempt
    // would wait out the open timeout, and the HTTP fallback would take half a minute.
    ws.onerror = () => ws.readyState > 2 && shut(1006);
  }

  /** Sends a text frame; a failure shows up as a close. */
  send(text) {
    try {
      this.ws.send(text);
    } catch {}
  }

  /** Closes it with `code`, unheard: its close event, dispatched later, is never reported. */
  close(code) {
    const ws = this.ws;
    this.done = 1;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState <= WebSocket.OPEN) ws.close(code);
  }
}
