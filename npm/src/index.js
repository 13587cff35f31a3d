// @natter/widget — the Natter chat widget (Rust → WebAssembly).
//
// `mount(options)` returns a handle at once; the WebAssembly loads in the background and the
// handle queues calls and listeners until it has. The script-tag loader (natter.js) uses this
// same module, so `window.natter` and an npm `mount()` behave identically.
import { Room, checkText } from './rooms.js';

/**
 * The widget comes in two builds: the support chat alone (`natter_widget.js` and its
 * `natter_widget_bg.wasm`) and with rooms (`natter_widget_rooms.js`, `natter_widget_rooms_bg.wasm`),
 * each module with the wasm-bindgen glue made for it. A page downloads one of them: the rooms
 * build only when its `rooms` option asks for rooms, so a page with the support chat alone never
 * downloads the room code; a page with the collaboration panel (`rooms: true`) gets the rooms
 * build's glue bundled with the panel (`natter_widget_rooms_panel.js`: one file compresses
 * better than the two). (Literal `import()`s, so that bundlers make each a chunk of its own and
 * copy its wasm, which the glue finds with `new URL(…, import.meta.url)`.)
 */
const builds = {};
function load(rooms, wasm) {
  builds[rooms] ??= (
    rooms === 'panel'
      ? import('./natter_widget_rooms_panel.js')
      : rooms
        ? import('./natter_widget_rooms.js')
        : import('./natter_widget.js')
  ).then((glue) => glue.default(wasm && { module_or_path: wasm }).then(() => glue));
  return builds[rooms];
}

/**
 * What a `rooms` option asks for: `'panel'` (true, or a `data-rooms` attribute without a value:
 * rooms and the collaboration panel), `'api'` (rooms for the page's own code, no panel), or
 * null (the support chat alone: no option, false, `data-rooms="false"`). The script-tag loader
 * (natter.js) reads `data-rooms` the same way, to fetch the right build early.
 */
function roomsOf(v) {
  if (v === 'api') return 'api';
  return flag(v) ? 'panel' : null;
}

/** The `rooms` values that mean none: absent, false, and their `data-*` spellings. */
const ROOMS_OFF = [undefined, null, false, 0, 'false', '0'];

/**
 * How a `rooms` value none of those `roomsOf` knows (`'yes'`, `'API'`, `'panel'`) was written,
 * for the console error at mount and joinRoom's (`tag`: a script tag's `data-rooms`); undefined
 * for a value it knows. Such a widget gets the support chat alone rather than a guess.
 */
function badRooms(v, tag) {
  if (v === 'api' || flag(v) || ROOMS_OFF.includes(v)) return undefined;
  try {
    return tag ? `data-rooms="${v}"` : `{ rooms: ${typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v)} }`;
  } catch {
    return `{ rooms: a ${typeof v} }`;
  }
}

// Languages with texts of their own besides the built-in English: one small JSON file each
// (locales/<lang>.json beside this module), downloaded only by a page that shows it; a page with
// the collaboration panel downloads locales/rooms-<lang>.json instead, which holds the panel's
// texts as well (one file of both is smaller than the two).
const LOCALES = ['de', 'es', 'fr', 'ja', 'pt', 'zh', 'zh-Hant', 'ar', 'he'];

/**
 * Which texts a BCP 47 tag reads: its language subtag (`pt-BR` → `pt`), except that Chinese is
 * written in two scripts: Traditional (`zh-Hant`, and Taiwan, Hong Kong and Macau without a
 * script) or Simplified (`zh`, `zh-Hans`, `zh-CN`, `zh-SG`).
 */
function textsOf(tag) {
  const parts = String(tag || '').toLowerCase().split(/[-_]/);
  if (parts[0] !== 'zh') return parts[0];
  const traditional = parts.includes('hant') || (!parts.includes('hans') && ['tw', 'hk', 'mo'].some((r) => parts.includes(r)));
  return traditional ? 'zh-Hant' : 'zh';
}

/** The page's language: the `locale` option, else the browser's, matched by language subtag. */
function pickLocale(asked) {
  const tags = asked ? [String(asked)] : [...(navigator.languages || []), navigator.language];
  for (const tag of tags) {
    const lang = textsOf(tag);
    if (lang === 'en' || LOCALES.includes(lang)) return { tag, lang };
  }
  // No texts for it: English texts, but times still in the asked locale.
  return { tag: tags[0] || 'en', lang: 'en' };
}

/** The texts of `lang` from `locales/<file>.json` (`file`: `de`, or `rooms-de` for the widget's and the panel's). */
function localeTexts(lang, file = lang) {
  if (lang === 'en') return {};
  const url = new URL(`./locales/${file}.json`, import.meta.url);
  return fetch(url, { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .catch((err) => {
      console.warn(`natter: the ${lang} texts could not be loaded from ${url}; showing English`, err);
      return {};
    });
}

/**
 * The page's own `strings`: an object, or (a `data-strings` attribute) its JSON. A value that is
 * not a text would take the place of the page language's own text and then be dropped by the
 * widget, leaving English with nothing said: it is named in a warning and left out here.
 */
function ownTexts(strings) {
  let own = strings;
  try {
    if (typeof own === 'string') own = JSON.parse(own);
  } catch {
    // (`own` stays the string, which is not an object: nothing is taken from it.)
    console.warn('natter: the strings option is not a JSON object; it is ignored');
  }
  return Object.fromEntries(
    Object.entries(own && typeof own === 'object' ? own : {}).filter(
      ([key, text]) => typeof text === 'string' || console.warn(`natter: strings.${key} is not a text; it is ignored`),
    ),
  );
}

/**
 * Trusted Types: the widget parses its own markup (constants in the widget, never text from the
 * page or the visitor) into its shadow root. A page that enforces Trusted Types accepts that
 * only through a policy, named `natter` (a page that lists its policies adds it to
 * `trusted-types`). Made once per page and shared by every copy of this module, since a page may
 * refuse a second policy of the same name. Undefined where the browser has no Trusted Types or
 * the page refuses the name.
 */
const POLICY = Symbol.for('natter.trustedHtml');
function trustedHtml() {
  if (!(POLICY in globalThis)) {
    let policy;
    try {
      policy = globalThis.trustedTypes?.createPolicy('natter', { createHTML: (html) => html });
    } catch {}
    globalThis[POLICY] = policy && ((html) => policy.createHTML(html));
  }
  return globalThis[POLICY];
}

/**
 * The page the visitor is on: the path, and the route of an app that routes by hash
 * (`/app#/checkout`, `#!/cart`). Never a query, nor another fragment (an anchor, an OAuth
 * token): they may hold private data and say nothing about the page.
 */
function pageNow() {
  const route = /^#!?\//.test(location.hash) ? location.hash.split('?')[0] : '';
  return location.pathname + route;
}

function domReady() {
  if (document.readyState !== 'loading') return Promise.resolve();
  return new Promise((resolve) => document.addEventListener('DOMContentLoaded', () => resolve(), { once: true }));
}

/** An option that may be a boolean or a `data-*` string ("", "true", "1"). */
function flag(v) {
  return v === true || v === '' || v === 'true' || v === '1' || v === 1;
}
// The handle on this page, shared by every copy of this module (two script tags, a bundled copy
// and a script-tag copy): one widget and one socket per page, whoever asks.
const CURRENT = Symbol.for('natter.widget');
// The most JSON the app's setContext() fields may take; documented in README.md.
const MAX_CONTEXT_BYTES = 2048;

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
  #toldDestroyed = false;
  #ready = false;
  #rooms = new Map();
  /** `'panel'`, `'api'` or null: see roomsOf. */
  #roomsMode;
  /** A `rooms` option the widget does not take, as written (see badRooms), for joinRoom's error. */
  #roomsMistake;
  #options;
  #panel = null;
  #fields = {};
  #observer = null;
  #unfit = null;
  /** `{ tag, lang, texts, all }`: the page's language (see pickLocale), the texts' (BCP 47), and the promise of the texts fetched at mount. */
  #locale;
  /** The page's own `strings` (the widget's keys and the panel's `room…` keys). */
  #strings;

  constructor(options, internal) {
    this.#options = options ?? {};
    this.#roomsMode = roomsOf(this.#options.rooms);
    this.#roomsMistake = badRooms(this.#options.rooms, internal?.tag);
    if (this.#roomsMistake) {
      console.error(
        `natter: ${this.#roomsMistake} is not a rooms value (true or data-rooms: rooms and the collaboration panel; ` +
          `'api' or data-rooms="api": rooms without it); the widget is mounted with the support chat alone`,
      );
    }
    /** Resolves with this handle once the widget is on the page. */
    const { tag, lang } = pickLocale(options?.locale);
    this.#strings = ownTexts(options?.strings);
    // The panels' language and direction are their texts': a locale without texts (Persian,
    // Korean) shows English, left to right, unless the page wrote texts of its own.
    const english = lang === 'en' && !Object.keys(this.#strings ?? {}).length && !/^en(?:[-_]|$)/i.test(tag);
    // A page with the panel fetches the file with the panel's texts too, once.
    const texts = localeTexts(lang, this.#roomsMode === 'panel' ? `rooms-${lang}` : lang);
    this.#locale = { tag, lang, texts: english ? 'en' : tag, all: texts };
    this.loaded = Promise.all([load(this.#roomsMode, internal?.wasm), domReady(), texts]).then(([glue, , texts]) => {
      if (this.#destroyed) return this;
      const strings = { ...texts, ...this.#strings };
      const textsLocale = this.#locale.texts;
      this.#inner = glue.mount({
        ...options,
        locale: tag,
        textsLocale,
        strings,
        contextOf: () => this.#contextNow(),
        trustedHtml: trustedHtml(),
      });
      // The widget's host is the element the mount has just appended to <body>.
      const host = document.body.lastElementChild;
      this.#keepOnPage(host);
      this.#fitVisualViewport(host);
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
      if (this.#roomsMode === 'panel') this.#roomsPanel();
      return this;
    });
    this.loaded.catch((err) => console.error('natter: the widget could not be loaded', err));
  }

  /**
   * Puts the widget's host back when the page takes it away with its <body>: Turbo Drive, pjax
   * and htmx's boost replace the body on every navigation (and `body.innerHTML = …` empties it),
   * which would leave a connected widget nobody can see. The conversation, the open panel and
   * the text being typed stay. A stale copy of the host (Turbo keeps snapshots of the body to
   * show on "back": a copy without its shadow root) is removed.
   */
  #keepOnPage(host) {
    if (!host?.hasAttribute('data-natter') || typeof MutationObserver !== 'function') return;
    const watch = () => {
      this.#observer.observe(document.documentElement, { childList: true });
      if (document.body) this.#observer.observe(document.body, { childList: true });
    };
    this.#observer = new MutationObserver(() => {
      if (!document.body) return;
      if (!host.isConnected) {
        for (const copy of document.querySelectorAll('[data-natter]')) if (!copy.shadowRoot) copy.remove();
        document.body.append(host);
      }
      watch();
    });
    watch();
  }

  /**
   * Keeps the full-screen panel of a phone inside what the visitor sees while the on-screen
   * keyboard is up. iOS Safari and Chrome on Android leave the layout viewport as it is and
   * shrink only the visual viewport, so a panel the size of the screen had its text box behind
   * the keyboard or its header scrolled out of sight. At scale 1 the panel takes the visual
   * viewport's place; a pinch zoom (a larger scale) leaves it as it is. The breakpoint is the
   * full-screen one of the widget's stylesheet (style.rs).
   */
  #fitVisualViewport(host) {
    const vv = window.visualViewport;
    const root = host?.shadowRoot;
    if (!vv || !root || typeof CSSStyleSheet?.prototype?.replaceSync !== 'function') return;
    const sheet = new CSSStyleSheet();
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
    let css;
    const fit = () => {
      const next = Math.abs(vv.scale - 1) < 0.01
        ? `@media (max-width:480px){:host([data-open]) .panel{top:${vv.offsetTop}px;height:${vv.height}px;bottom:auto}}`
        : '';
      if (next !== css) sheet.replaceSync((css = next));
    };
    vv.addEventListener('resize', fit);
    vv.addEventListener('scroll', fit);
    this.#unfit = () => {
      vv.removeEventListener('resize', fit);
      vv.removeEventListener('scroll', fit);
    };
    fit();
  }

  #call(method, args) {
    if (this.#destroyed) {
      // Said once: a page that keeps a destroyed handle should hear why nothing happens.
      if (!this.#toldDestroyed) console.warn(`natter: this widget was destroyed: ${method}() and later calls do nothing`);
      this.#toldDestroyed = true;
      return undefined;
    }
    if (this.#inner) return this.#inner[method](...args);
    this.#queue.push([method, args]);
    return undefined;
  }

  open() { this.#call('open', []); }
  close() { this.#call('close', []); }
  toggle() { this.#call('toggle', []); }
  /** Sends `text` as the visitor; returns the message id (undefined until loaded or for blank text). */
  send(text) { return this.#call('send', [checkText('send(text)', text)]); }
  /** Signs the visitor in with an identity token from the site's backend (after a login, or a fresh token). */
  identify(token) {
    // Not `String(token)`: `identify(undefined)` (a backend call that gave nothing) would sign in
    // with the token "undefined", which the hub refuses, ending a working signed-in connection.
    if (typeof token !== 'string' || !token.trim()) {
      throw new TypeError(`natter: identify(token) needs an identity token (a JWT string), not ${JSON.stringify(token) ?? typeof token}`);
    }
    this.#call('identify', [token, tokenSubject(token)]);
  }
  /**
   * Forgets the conversation on this device and starts a new, empty anonymous one; leaves every
   * room (each `Room` ends `left`) and forgets the collaboration panel's remembered name, here
   * and in the site's other tabs.
   */
  logout() {
    this.#call('logout', []);
    this.#panel?.then((panel) => panel?.forget());
  }

  /**
   * Joins room `id` as `options.name` (a signed-in user's verified name wins) and returns its
   * `Room` at once; calls on it wait until the hub has confirmed the join. Joining a room
   * already joined returns the same object.
   */
  joinRoom(id, options) {
    this.#needRooms('joinRoom');
    // Not `String(id)`: `joinRoom(undefined)` would join the room "undefined", which every page
    // with the same bug shares.
    if (typeof id !== 'string') throw new TypeError(`natter: joinRoom(id) needs a string, not ${typeof id}`);
    const key = id;
    const name = joinName('joinRoom', options);
    let room = this.#rooms.get(key);
    if (!room || room.left) {
      room = new Room(key, (args) => this.#call('room', args));
      this.#rooms.set(key, room);
    }
    this.#call('room', [1 /* join */, key, name]);
    this.#panel?.then((panel) => panel?.refresh());
    return room;
  }

  /**
   * Throws unless this widget has rooms: a page that forgot the option hears which one, rather
   * than joining nothing in silence (the support-only build has no room code to do it with).
   */
  #needRooms(method) {
    if (this.#destroyed) throw new Error('natter: this widget was destroyed');
    if (!this.#roomsMode) {
      const why = this.#roomsMistake ? ` (${this.#roomsMistake} is not a rooms value)` : '';
      throw new Error(
        `natter.${method}: this widget was mounted without rooms${why}; pass { rooms: 'api' } to mount() ` +
          `({ rooms: true } adds the collaboration panel), or add data-rooms="api" (or data-rooms, ` +
          'with the panel) to the script tag',
      );
    }
  }

  /** @internal — the collaboration panel shows room `id` (null: none, or the tab is hidden): what arrives there is not unread. */
  _watchRoom(id) {
    if (!this.#destroyed) this.#call('room', [9 /* watch */, id ?? '', undefined]);
  }

  /** @internal — whether the hub takes `name` as a member's name (the panel checks its "Your name" field before joining). */
  _nameOk(name) {
    return this.#inner?.room(12, '', name) ?? true;
  }

  /**
   * Every `Room` this page joined and has not left (nor `left` since the widget was destroyed),
   * in join order, whatever its status: `joining`, `joined`, `rejoining`, `http`, or `refused`
   * (which stays listed, with its reason heard on `error`, until the page calls `leave()`).
   */
  get rooms() {
    return [...this.#rooms.values()].filter((r) => !r.left);
  }

  /**
   * Joins room `id` (if needed) and shows it in the collaboration panel (loaded on first use);
   * without `options.name`, as the `name` option says.
   */
  openRoom(id, options) {
    this.#needRooms('openRoom');
    const name = joinName('openRoom', options) ?? (this.#options.name || undefined);
    const room = this.joinRoom(id, { name });
    // The panel's "Your name" shows the name the room was joined with.
    this.#roomsPanel().then((panel) => panel?.open(room.id, { name }));
    return room;
  }

  /**
   * The collaboration panel: with the widget on a page with `rooms: true`, else downloaded the
   * first time the page opens a room in it; pages with the support chat alone never fetch it.
   * (`new URL(…, import.meta.url)` lets bundlers copy it as an asset.)
   */
  #roomsPanel() {
    const { texts: tag, lang, all } = this.#locale;
    this.#panel ??= this.loaded
      .then(() =>
        Promise.all([
          // Loaded with the glue on a page with the panel; fetched now on one with rooms only.
          this.#roomsMode === 'panel'
            ? builds.panel
            : import(/* @vite-ignore */ new URL('./rooms-panel.js', import.meta.url).href),
          this.#roomsMode === 'panel' ? all : localeTexts(lang, `rooms-${lang}`),
        ]),
      )
      .then(([m, texts]) => {
        if (this.#destroyed) return null;
        // The page's options as they are (the panel reads the ones it knows: `name`, `server`,
        // `theme`, `zIndex`, `accent`, `colors`), with its texts' locale and texts.
        return m.createRoomsPanel(this, {
          ...this.#options,
          locale: tag,
          strings: { ...texts, ...this.#strings },
          // The panel's stylesheet is in the build with rooms (op 10 of its `room` export).
          css: this.#inner.room(10, ''),
          // The widget's message-time formatters (op 11), so room times read as the support
          // chat's: the same `Intl` formats in the same locale.
          clock: this.#inner.room(11, ''),
        });
      });
    this.#panel.catch((err) => console.error('natter: the rooms panel could not be loaded', err));
    return this.#panel;
  }

  /**
   * Merges `fields` into the context every message carries from now on, besides the page and
   * its title (read when the message is written): a field set to null is removed, `null`
   * clears them all. Throws a TypeError for anything but a plain object of JSON values (or one
   * naming `page` or `title`, which are the widget's) and a RangeError past MAX_CONTEXT_BYTES
   * of JSON; a refused call changes nothing.
   */
  setContext(fields) {
    let next = {};
    if (fields !== null && fields !== undefined) {
      if (typeof fields !== 'object' || Array.isArray(fields)) {
        throw new TypeError(`natter.setContext: expected a plain object of JSON values, got ${Array.isArray(fields) ? 'an array' : typeof fields}`);
      }
      next = { ...this.#fields };
      for (const [key, value] of Object.entries(fields)) {
        if (key === 'page' || key === 'title') throw new TypeError(`natter.setContext: "${key}" is set by the widget`);
        if (value === null || value === undefined) delete next[key];
        else next[key] = value;
      }
    }
    let text;
    try {
      text = JSON.stringify(next);
    } catch (err) {
      throw new TypeError(`natter.setContext: the context cannot be written as JSON (${err.message})`);
    }
    if (text.length > MAX_CONTEXT_BYTES) {
      throw new RangeError(`natter.setContext: the context would be ${text.length} bytes of JSON, more than ${MAX_CONTEXT_BYTES}`);
    }
    this.#fields = next;
    return this;
  }

  /**
   * The context of a message written now (the widget asks when the visitor writes one): the
   * page and its title as they are now, and the app's fields. Cut by characters, never inside
   * one: a lone surrogate would make the hub refuse the message.
   */
  #contextNow() {
    const cut = (s) => Array.from(String(s)).slice(0, 300).join('');
    const context = { page: cut(pageNow()) };
    const title = cut(document.title).trim();
    if (title) context.title = title;
    return JSON.stringify({ ...context, ...this.#fields });
  }

  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('natter: on(event, fn) needs a function');
    // A misspelt event would never fire: said at the call, as `room.on` does.
    if (!EVENTS.includes(event)) throw new TypeError(`natter: the widget has no "${String(event)}" event (${EVENTS.join(', ')})`);
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
    if (globalThis[CURRENT] === this) delete globalThis[CURRENT];
    this.#queue = [];
    this.#listeners = [];
    this.#observer?.disconnect();
    this.#unfit?.();
    for (const room of this.#rooms.values()) room._dead();
    this.#panel?.then((panel) => panel?.destroy());
    this.#rooms.clear();
    if (this.#inner) this.#inner.destroy();
    this.#inner = null;
  }
}

/** The events of `natter.on` (the rooms' are `room.on`'s). */
const EVENTS = ['ready', 'open', 'close', 'message', 'delivery', 'unread', 'status', 'sound', 'tokenExpired'];

/**
 * The name `options` (of `joinRoom` or `openRoom`: `call`) joins with, or undefined for none: a
 * TypeError naming the call for options that are not an object (`joinRoom(id, 'Ada')` would
 * join without a name) and for a name that is not a string or is blank (`{ name: '' }`, the
 * value of an empty form field, would join as "Someone"; leave the name out for that).
 */
function joinName(call, options) {
  if (options == null) return undefined;
  if (typeof options !== 'object') {
    throw new TypeError(`natter: ${call}(id, options) needs an object like { name: 'Ada' }, not ${typeof options}`);
  }
  if (options.name == null) return undefined;
  const name = checkText(`${call}(id, { name })`, options.name);
  if (!name.trim()) throw new TypeError(`natter: ${call}(id, { name }) is blank (leave it out to join without a name)`);
  return name;
}

/**
 * Mounts the chat widget on the page and returns its handle. (`internal.wasm`: a fetch of the
 * .wasm already under way, used by the script-tag loader to download it in parallel;
 * `internal.tag`: the options are a script tag's `data-*` attributes, for the errors' wording.)
 *
 * One widget per page: while one is mounted (and not destroyed), mount() warns and returns its
 * handle, whatever the options; destroy() it first to mount it differently.
 */
export function mount(options = {}, internal = undefined) {
  const current = globalThis[CURRENT];
  if (current) {
    console.warn('natter: the widget is already on this page; mount() returns its handle and ignores these options (destroy() it first to mount it again)');
    return current;
  }
  const handle = new NatterHandle(options, internal);
  globalThis[CURRENT] = handle;
  return handle;
}

export { mount as default };
