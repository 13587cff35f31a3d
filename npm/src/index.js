// @natter/widget — the Natter chat widget (Rust → WebAssembly).
//
// `mount(options)` returns a handle at once; the WebAssembly loads in the background and the
// handle queues calls and listeners until it has. The script-tag loader (natter.js) uses this
// same module, so `window.natter` and an npm `mount()` behave identically.
import init, { mount as mountWasm } from './natter_widget.js';
import { Room } from './rooms.js';

let loading;
function load(wasm) {
  loading ??= init({ module_or_path: wasm ?? new URL('./natter_widget_bg.wasm', import.meta.url) });
  return loading;
}

function domReady() {
  if (document.readyState !== 'loading') return Promise.resolve();
  return new Promise((resolve) => document.addEventListener('DOMContentLoaded', () => resolve(), { once: true }));
}

/** An option that may be a boolean or a `data-*` string ("", "true", "1"). */
function flag(v) {
  return v === true || v === '' || v === 'true' || v === '1' || v === 1;
}

/**
 * The `sub` an identity token (a JWT) says it is for, read without verifying anything (the hub
 * verifies): only so the widget can tell a fresh token for the signed-in user (renewed on the
 * open connection) from a login as someone else (their conversation, from its start).
 * Undefined when it cannot be read.
 */
function tokenSubject(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    const sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

const INITIAL_STATE = Object.freeze({
  connected: false,
  transport: 'none',
  open: false,
  unread: 0,
  status: 'Connecting…',
  muted: false,
  user: null,
});

class NatterHandle {
  #inner = null;
  #queue = [];
  #listeners = [];
  #destroyed = false;
  #ready = false;
  #rooms = new Map();
  #options;
  #panel = null;

  constructor(options, internal) {
    this.#options = options ?? {};
    /** Resolves with this handle once the widget is on the page. */
    this.loaded = Promise.all([load(internal?.wasm), domReady()]).then(() => {
      if (this.#destroyed) return this;
      this.#inner = mountWasm(options ?? {});
      // Registered first, so it runs before any other `ready` listener.
      this.#inner.on('ready', () => (this.#ready = true));
      // The hub refused the identity token: the `tokenExpired` option gives a fresh one (or a
      // promise of one), and the widget reconnects with it.
      const renew = options?.tokenExpired;
      if (typeof renew === 'function') {
        this.#inner.on('tokenExpired', (reason) =>
          Promise.resolve()
            .then(() => renew(reason))
            .then((token) => {
              if (typeof token !== 'string' || !token.trim()) throw new Error('it gave no token');
              this.#inner?.identify(token, tokenSubject(token));
            })
            .catch((err) => console.error('natter: tokenExpired failed; call natter.identify(token)', err)),
        );
      }
      // Room events go to their Room object.
      this.#inner.on('room', (detail) => {
        const room = this.#rooms.get(detail.room);
        if (!room) return;
        room._dispatch(detail);
        if (room.left) this.#rooms.delete(detail.room);
      });
      for (const [event, fn] of this.#listeners) this.#inner.on(event, fn);
      this.#listeners = [];
      for (const [method, args] of this.#queue) this.#inner[method](...args);
      this.#queue = [];
      if (flag(this.#options.rooms)) this.#roomsPanel();
      return this;
    });
    this.loaded.catch((err) => console.error('natter: the widget could not be loaded', err));
  }

  #call(method, args) {
    if (this.#destroyed) return undefined;
    if (this.#inner) return this.#inner[method](...args);
    this.#queue.push([method, args]);
    return undefined;
  }

  open() { this.#call('open', []); }
  close() { this.#call('close', []); }
  toggle() { this.#call('toggle', []); }
  /** Sends `text` as the visitor; returns the message id (undefined until loaded or for blank text). */
  send(text) { return this.#call('send', [String(text)]); }
  /** Signs the visitor in with an identity token from the site's backend (after a login, or a fresh token). */
  identify(token) {
    // Not `String(token)`: `identify(undefined)` (a backend call that gave nothing) would sign in
    // with the token "undefined", which the hub refuses, ending a working signed-in connection.
    if (typeof token !== 'string' || !token.trim()) {
      throw new TypeError(`natter: identify(token) needs an identity token (a JWT string), not ${JSON.stringify(token) ?? typeof token}`);
    }
    this.#call('identify', [token, tokenSubject(token)]);
  }
  /** Forgets the conversation on this device and starts a new, empty anonymous one. */
  logout() { this.#call('logout', []); }

  /**
   * Joins room `id` as `options.name` (a signed-in user's verified name wins) and returns its
   * `Room` at once; calls on it wait until the hub has confirmed the join. Joining a room
   * already joined returns the same object.
   */
  joinRoom(id, options = {}) {
    if (this.#destroyed) throw new Error('natter: this widget was destroyed');
    const key = String(id);
    const name = options?.name == null ? undefined : String(options.name);
    let room = this.#rooms.get(key);
    if (!room || room.left) {
      room = new Room(key, (args) => this.#call('room', args));
      this.#rooms.set(key, room);
    }
    this.#call('room', ['join', key, { name }]);
    this.#panel?.then((panel) => panel?.refresh());
    return room;
  }

  /** @internal — the collaboration panel shows room `id` (null: none, or the tab is hidden): what arrives there is not unread. */
  _watchRoom(id) {
    this.#call('room', ['watch', id ?? '', undefined]);
  }

  /** The rooms joined (and not left), in join order. */
  get rooms() {
    return [...this.#rooms.values()].filter((r) => !r.left);
  }

  /** Joins room `id` (if needed) and shows it in the collaboration panel (loaded on first use). */
  openRoom(id, options = {}) {
    const room = this.joinRoom(id, options);
    this.#roomsPanel().then((panel) => panel?.open(room.id));
    return room;
  }

  /**
   * The collaboration panel, downloaded the first time a page uses it: pages with the support
   * chat alone never fetch it. (`new URL(…, import.meta.url)` lets bundlers copy it as an asset.)
   */
  #roomsPanel() {
    this.#panel ??= this.loaded
      .then(() => import(/* @vite-ignore */ new URL('./rooms-panel.js', import.meta.url).href))
      .then((m) => {
        if (this.#destroyed) return null;
        const o = this.#options;
        return m.createRoomsPanel(this, {
          name: o.name,
          server: o.server ?? location.origin,
          theme: o.theme,
          zIndex: o.zIndex,
          accent: o.accent ?? o.colors?.accent,
          strings: this.#inner?.roomStrings?.(),
        });
      });
    this.#panel.catch((err) => console.error('natter: the rooms panel could not be loaded', err));
    return this.#panel;
  }

  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('natter: on(event, fn) needs a function');
    if (this.#destroyed) return this;
    // `ready` has happened once and for all: a late listener hears it at once, like a
    // resolved promise, instead of never.
    if (event === 'ready' && this.#ready) {
      queueMicrotask(() => fn(this.state));
      return this;
    }
    if (this.#inner) this.#inner.on(String(event), fn);
    else this.#listeners.push([String(event), fn]);
    return this;
  }

  off(event, fn) {
    if (this.#inner) this.#inner.off(String(event), fn);
    else this.#listeners = this.#listeners.filter(([e, f]) => !(e === event && f === fn));
    return this;
  }

  get state() {
    return this.#inner ? this.#inner.state : { ...INITIAL_STATE };
  }

  /** The anonymous session the hub issued (one per browser profile and site), once it has. */
  get session() {
    return this.#inner ? this.#inner.session : undefined;
  }

  destroy() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#queue = [];
    this.#listeners = [];
    for (const room of this.#rooms.values()) room._dead();
    this.#panel?.then((panel) => panel?.destroy());
    this.#rooms.clear();
    if (this.#inner) this.#inner.destroy();
    this.#inner = null;
  }
}

/**
 * Mounts the chat widget on the page and returns its handle. (`internal.wasm`: a fetch of the
 * .wasm already under way, used by the script-tag loader to download it in parallel.)
 */
export function mount(options = {}, internal = undefined) {
  return new NatterHandle(options, internal);
}

export default mount;
