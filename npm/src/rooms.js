// Rooms on the widget's one connection: the `Room` objects `natter.joinRoom(id, { name })`
// returns. The room model itself (joins confirmed before calls go out, rejoin and resume after a
// drop, de-duplication by id, presence, typing, unread, the outbox) is the WebAssembly's; this
// file only gives each room an object with listeners, queues calls until the wasm has loaded,
// and coalesces cursor moves to one frame per animation frame.

const EMPTY = Object.freeze({
  status: 'joining',
  title: null,
  messages: Object.freeze([]),
  members: Object.freeze([]),
  memberCount: 0,
  typing: Object.freeze([]),
  unread: 0,
});

// The calls of the wasm's `room` export go by number (a name would be a string to copy into the
// wasm and compare there, on every call): 0 snapshot, 1 join, 2 leave, 3 send, 4 retry,
// 5 typing, 6 cursor, 7 update, 8 read, 9 watch, 10 the panel's stylesheet, 11 the message-time
// formatters, 12 whether the hub takes a member's name (see `Natter::room` in widget/src/web/api.rs).

const EVENTS = ['message', 'delivery', 'presence', 'members', 'history', 'typing', 'cursor', 'update', 'status', 'unread', 'error', 'change'];

/** 128 random bits in hex, like the widget's own message ids. */
function messageId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The most bytes of JSON a page's text or data may take in one message: the largest frame every
 * hub accepts (64 KiB: `MAX_FRAME_BYTES` of the protocol; a hub's `--max-frame` may only raise
 * it), less 10 KiB for the frame's other fields (ids, the time, the room, a support message's
 * page context: the app's fields, at most 2,048 characters of JSON, and 300 characters each of
 * page and title, 9.6 KiB at the very most). A
 * hub closes the connection on a larger frame, so it is refused here, at the page's own call,
 * rather than there for every room and the support chat at once (and again on every reconnect,
 * from the outbox).
 */
const MAX_JSON = 65536 - 10240;

/**
 * The deepest nesting of arrays and objects in a page's data that every hub reads: the hub's
 * JSON reader stops at 128 levels (serde_json's recursion limit), and the frame's own object is
 * one, its `data` another before the page's: deeper data was dropped there with an error about
 * the frame that names no room. Refused here, at the page's call, like oversized data.
 */
const MAX_DEPTH = 126;

/** How deep `text` (JSON) nests, counted only when it could be too deep (a bracket per level, in and out). */
function tooDeep(text) {
  if (text.length <= 2 * MAX_DEPTH) return false;
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // 34 ", 92 \, 91 [, 123 {, 93 ], 125 }
    if (quoted) {
      if (c === 92) i++;
      else if (c === 34) quoted = false;
    } else if (c === 34) quoted = true;
    else if (c === 91 || c === 123) {
      if (++depth > MAX_DEPTH) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/** `text`'s size in a frame (JSON, UTF-8), or a RangeError naming `what` when it is too large. */
function fits(what, text) {
  // A UTF-16 unit is at most 3 bytes of UTF-8: counted only when that could matter.
  const size = text.length * 3 > MAX_JSON && new TextEncoder().encode(text).length;
  if (size > MAX_JSON) throw new RangeError(`natter: ${what} is ${size} bytes of JSON; a message carries at most ${MAX_JSON}`);
  return text;
}

/**
 * `text`, which the page passed to `what`, or a TypeError when it is not a string (`String(42)`
 * would send "42", `String(undefined)` "undefined") or a RangeError when it is too large.
 */
export function checkText(what, text) {
  checkType(what, text, 'string');
  fits(what, JSON.stringify(text));
  return text;
}

/**
 * A TypeError unless `value`, which the page passed to `what`, is of `type` (`typing('no')` would
 * say "typing", `retry({})` would look for a message "[object Object]").
 */
function checkType(what, value, type) {
  if (typeof value !== type) throw new TypeError(`natter: ${what} needs a ${type}, not ${typeof value}`);
}

/**
 * `data` as the JSON text the wasm sends (`undefined` as `null`), or a TypeError at the page's
 * own call when JSON cannot hold it (a cycle, a BigInt: stringify throws; a function, a
 * symbol: it gives no text), or a RangeError when it is too large.
 */
function json(id, data) {
  let text;
  try {
    text = JSON.stringify(data ?? null);
  } catch (err) {
    throw new TypeError(`natter: room "${id}": data is not JSON (${err.message})`);
  }
  if (text && tooDeep(text)) throw new RangeError(`natter: room "${id}": data nests deeper than a hub reads (${MAX_DEPTH} arrays or objects)`);
  if (text) return fits(`room "${id}": data`, text);
  throw new TypeError(`natter: room "${id}": data is not JSON`);
}

/** Schedules `fn` for the next animation frame, or soon when the tab is hidden (no frames). */
function nextFrame(fn) {
  if (typeof requestAnimationFrame === 'function' && typeof document !== 'undefined' && !document.hidden) {
    const id = requestAnimationFrame(fn);
    return () => cancelAnimationFrame(id);
  }
  const id = setTimeout(fn, 16);
  return () => clearTimeout(id);
}

/**
 * `snap` with its lists frozen, and their entries: the getters hand the same arrays to every
 * caller until the room changes, so a page's `room.messages.push(…)` or `sort()` would change
 * what the next caller (the panel, another component) reads.
 */
function frozen(snap) {
  for (const key of ['messages', 'members', 'typing']) {
    const list = snap?.[key];
    if (Array.isArray(list)) Object.freeze(list).forEach(Object.freeze);
  }
  return snap && Object.freeze(snap);
}

export class Room {
  #id;
  #call;
  #listeners = new Map();
  #snapshot = null;
  #cursor = undefined;
  #cancelFrame = null;
  #left = false;
  /** Why calls do nothing now (said once on the console): the room was left, or the widget destroyed. */
  #gonePhrase = 'was left';
  #told = false;
  /** Events of the join call itself (a refused id), held until the page can have listened. */
  #held = [];

  /** @internal — made by `natter.joinRoom`. `call(args)` reaches the wasm's `room` export, or queues. */
  constructor(id, call) {
    this.#id = id;
    this.#call = (op, arg, extra) => call([op, id, arg, extra]);
    queueMicrotask(() => {
      const held = this.#held;
      this.#held = null;
      for (const detail of held) this._dispatch(detail);
    });
  }

  /** The room id. */
  get id() {
    return this.#id;
  }

  #snap() {
    if (this.#left) return { ...EMPTY, status: 'left' };
    this.#snapshot ??= frozen(this.#call(0 /* snapshot */)) ?? null;
    return this.#snapshot ?? EMPTY;
  }

  /** `joining`, `joined`, `rejoining` (the link dropped), `refused` or `left`. */
  get status() {
    return this.#snap().status;
  }
  /** The room's display name from the hub, or null. */
  get title() {
    return this.#snap().title;
  }
  /** Messages so far (history, then live), oldest first; the visitor's pending ones last. */
  get messages() {
    return this.#snap().messages;
  }
  /** Members present: `{ id, name, verified }` (at most the hub's first 100). */
  get members() {
    return this.#snap().members;
  }
  /** How many members are present (the true number, also beyond the listed 100). */
  get memberCount() {
    return this.#snap().memberCount;
  }
  /** Members typing now. */
  get typingMembers() {
    return this.#snap().typing;
  }
  /** Messages of others that arrived while the room was not watched (see `markRead`). */
  get unread() {
    return this.#snap().unread;
  }

  /**
   * True (after saying so on the console, the first time) when the room was left or the widget
   * destroyed: `call` does nothing then, and a page that keeps calling should hear why once.
   */
  #dead(call) {
    if (!this.#left) return false;
    if (!this.#told) {
      this.#told = true;
      console.warn(`natter: room "${this.#id}" ${this.#gonePhrase}: room.${call}() and later calls do nothing`);
    }
    return true;
  }

  /** Sends `text`; returns the message id (undefined for blank text, or a room left or refused). */
  send(text) {
    checkText('room.send(text)', text);
    if (this.#dead('send') || !text.trim() || this.status === 'refused') return undefined;
    // The id is made here, so it is known at once even while the wasm is still loading.
    const id = messageId();
    this.#call(3 /* send */, text, id);
    return id;
  }
  /** Tries a failed message again. */
  retry(messageId) {
    checkType('room.retry(messageId)', messageId, 'string');
    if (!this.#dead('retry')) this.#call(4 /* retry */, undefined, messageId);
  }
  /** Says the visitor is (or stopped) typing. Call it again every few seconds while they type: others stop showing it 6 s after the last call. */
  typing(active = true) {
    checkType('room.typing(active)', active, 'boolean');
    if (!this.#dead('typing')) this.#call(5 /* typing */, active);
  }
  /** Shares the visitor's cursor (any JSON); at most one per animation frame goes out, the latest. */
  cursor(data) {
    if (this.#dead('cursor')) return;
    this.#cursor = json(this.#id, data);
    this.#cancelFrame ??= nextFrame(() => {
      this.#cancelFrame = null;
      const latest = this.#cursor;
      this.#cursor = undefined;
      if (!this.#left && latest !== undefined) this.#call(6 /* cursor */, latest);
    });
  }
  /** Sends an update of shared state (any JSON, a `chain_update`) to the other members, in order. */
  update(data) {
    if (!this.#dead('update')) this.#call(7 /* update */, json(this.#id, data));
  }
  /** The visitor has seen everything here: unread goes to 0. */
  markRead() {
    if (!this.#dead('markRead')) this.#call(8 /* read */);
  }
  /** Leaves the room; the object is dead afterwards. */
  leave() {
    if (this.#left) return;
    this.#cancelFrame?.();
    this.#call(2 /* leave */);
    this.#gone();
  }

  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('natter: room.on(event, fn) needs a function');
    if (!EVENTS.includes(event)) throw new TypeError(`natter: rooms have no "${event}" event (${EVENTS.join(', ')})`);
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return this;
  }
  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
    return this;
  }

  #emit(event, detail) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      try {
        fn(detail);
      } catch (err) {
        console.error(`natter: a room "${event}" listener threw`, err);
      }
    }
  }

  /** @internal — a room event from the wasm: `{ room, type, ... }`. */
  _dispatch(detail) {
    // Relays change nothing the snapshot holds: no need to read it again.
    if (detail.type !== 'cursor' && detail.type !== 'update') this.#snapshot = null;
    if (this.#held) return void this.#held.push(detail);
    const { type, room: _room, ...rest } = detail;
    switch (type) {
      case 'message':
        this.#emit('message', rest.message);
        break;
      case 'cursor':
      case 'update':
        this.#emit(type, { from: rest.from, data: rest.data });
        break;
      case 'status':
        this.#emit('status', rest.status);
        if (rest.status === 'left') this.#gone();
        break;
      case 'unread':
        this.#emit('unread', rest.unread);
        break;
      default:
        this.#emit(type, rest);
    }
    if (type !== 'cursor') this.#emit('change', this);
  }

  /** @internal — the widget was destroyed. */
  _dead() {
    if (!this.#left) this.#gonePhrase = 'is gone (the widget was destroyed)';
    this.#gone();
  }

  #gone() {
    this.#left = true;
    this.#snapshot = null;
  }

  /** The room was left (`leave()`, or the widget destroyed): calls on it do nothing. */
  get left() {
    return this.#left;
  }
}
