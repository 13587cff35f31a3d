// @natter/widget — the Natter chat widget (Rust → WebAssembly).
//
// `mount(options)` returns a handle at once; the WebAssembly loads in the background and the
// handle queues calls and listeners until it has. The script-tag loader (natter.js) uses this
// same module, so `window.natter` and an npm `mount()` behave identically.
import init, { mount as mountWasm } from './natter_widget.js';

let loading;
function load(wasm) {
  loading ??= init({ module_or_path: wasm ?? new URL('./natter_widget_bg.wasm', import.meta.url) });
  return loading;
}

function domReady() {
  if (document.readyState !== 'loading') return Promise.resolve();
  return new Promise((resolve) => document.addEventListener('DOMContentLoaded', () => resolve(), { once: true }));
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

  constructor(options, internal) {
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
              this.#inner?.identify(token);
            })
            .catch((err) => console.error('natter: tokenExpired failed; call natter.identify(token)', err)),
        );
      }
      for (const [event, fn] of this.#listeners) this.#inner.on(event, fn);
      this.#listeners = [];
      for (const [method, args] of this.#queue) this.#inner[method](...args);
      this.#queue = [];
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
  identify(token) { this.#call('identify', [String(token)]); }
  /** Forgets the conversation on this device and starts a new, empty anonymous one. */
  logout() { this.#call('logout', []); }

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
