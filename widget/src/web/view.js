// What the visitor sees and hears, in JavaScript beside the Rust that decides it: the panel's
// DOM (dom.rs), the message times in the visitor's language (clock.rs) and the notification
// chime (sound.rs). Made from Rust, each browser call here was an import in the wasm, its glue
// and a call site; the wasm passes plain values across one narrow boundary instead.
//
// The widget's JavaScript is three modules (this one, page.js and api.js), not one per Rust
// module: the glue imports each at once, and the wasm-bindgen test page, which loads them
// unbundled, hangs when its HTTP server (tiny_http) gets more than about four new connections at
// the same moment. The published build bundles them into one file either way.

// ---- The panel (dom.rs)

// The widget's DOM (see dom.rs), in JavaScript: building the panel, rendering the rows and
// the links in a message were a few hundred browser calls made from Rust, each an import in
// the wasm, its glue and a call site. Here the wasm passes plain values (texts, flags, ids)
// across one narrow boundary, and the decisions stay in Rust: the texts in the page's
// language, which part of a message is a link, what the model says.
//
// Message text only ever reaches the DOM through text nodes and `textContent`; links are `<a>`
// elements made with `createElement`. Markup is only ever the widget's own constant templates.

/** `e`'s `attr` set to `text`, or its text when `attr` is empty. */
const put = (e, attr, text) => (attr ? e.setAttribute(attr, text) : (e.textContent = text));

/** Sets each `name, value` pair of `list` on `e`. */
const attrs = (e, list) => {
  for (let i = 0; i < list.length; i += 2) e.setAttribute(list[i], list[i + 1]);
};

const flag = (v) => (v ? 'true' : 'false');

/** One mounted widget's elements, kept in step with the model by `render`, `row` and `end`. */
export class View {
  /**
   * Builds the host (not yet in the page), its shadow root with the stylesheets and the
   * markup (`widget`, through `trusted` when the page enforces Trusted Types), the row template
   * (`row`, with its `sending` / `failed` notes) and picks the elements (`picked`, in the
   * order of `markup::PICKED`). Throws a string when the page cannot hold the widget.
   */
  constructor(widget, row, picked, trusted, css, custom, theme, position, title, greeting, sending, failed, retry, clock) {
    const doc = document;
    if (!doc.body) throw 'natter: the page has no <body> yet';
    const markup = (target, html) => {
      target.innerHTML = trusted ? trusted(html) : html;
    };
    const sheet = (text) => {
      const s = new CSSStyleSheet();
      s.replaceSync(text);
      return s;
    };
    const host = doc.createElement('div');
    this.root = host.attachShadow({ mode: 'open' });
    this.tpl = doc.createElement('div');
    attrs(host, ['data-natter', '', 'data-theme', theme, 'data-position', position]);
    this.root.adoptedStyleSheets = [sheet(css), sheet(custom)];
    markup(this.root, widget);
    this.tpl.className = 'row';
    markup(this.tpl, row);
    put(this.tpl.querySelector('.pending'), '', sending);
    put(this.tpl.querySelector('.failed'), '', failed);
    const found = [...this.root.querySelectorAll(picked)];
    if (found.length !== 16) throw 'natter: the widget template lost an element';
    [
      this.panel, this.title, this.status, this.statusLabel, this.availability, this.mute, this.close, this.body,
      this.greeting, this.log, this.typing, this.closed, this.input, this.send, this.launcher, this.badge,
    ] = found;
    this.title.textContent = title;
    // The greeting's text follows (`text`, `link`) into its bubble.
    if (greeting) this.into = this.greeting.firstElementChild;
    else this.greeting.remove();
    this.doc = doc;
    this.host = host;
    this.retryText = retry;
    this.clock = clock;
    /** Rows by message id: `{el, state, time, retry}`. */
    this.rows = new Map();
    this.wasOpen = false;
    this.launcherLabel = null;
  }

  /** Sets the element `selector`'s `attr` (its text when empty) to `text`. */
  label(selector, attr, text) {
    const e = this.root.querySelector(selector);
    if (e) put(e, attr, text);
  }

  /** Gives the panel its language (mirrored for Arabic or Hebrew) and puts the widget in the page. */
  attach(lang, dir) {
    attrs(this.panel, ['lang', lang, 'dir', dir]);
    this.launcher.setAttribute('lang', lang);
    this.doc.body.appendChild(this.host);
  }

  /**
   * Hears the page and the widget: calls `report([n, data])` for each event the runtime
   * handles (`n` and `data` in runtime.rs, `Heard`) until `unlisten`. One callback for all of
   * them: each listener made in Rust was a closure and a registration of its own in the wasm.
   */
  listen(report) {
    const doc = this.doc;
    const input = this.input;
    const same = (e) => e;
    const key = (e) => (e instanceof KeyboardEvent ? e : undefined);
    this.off = [];
    [
      // Capture phase, so a page that stops keydown propagation cannot swallow the shortcut.
      [window, 'keydown', key, true],
      [window, 'online'],
      [window, 'offline'],
      [window, 'pageshow'],
      // A frozen page (Page Lifecycle) resumed: its socket may have died meanwhile.
      [doc, 'resume', null, false, 3],
      // Another tab of the session read up to a seq, or forgot the conversation.
      [window, 'storage', same],
      [doc, 'visibilitychange', () => doc.hidden],
      [this.launcher, 'click'],
      [this.close, 'click'],
      [this.mute, 'click'],
      [this.send, 'click'],
      [input, 'input'],
      [input, 'compositionstart'],
      [input, 'compositionend'],
      [input, 'keydown', key],
      [this.root, 'keydown', key],
      // A click on a Retry button: the id of its message.
      [this.log, 'click', (e) => this.#retried(e) ?? undefined],
    ].forEach(([target, type, data, capture = false, n], i) => {
      const f = (e) => {
        const d = data?.(e);
        if (d !== undefined || !data) report([n ?? i, d]);
      };
      target.addEventListener(type, f, capture);
      this.off.push(() => target.removeEventListener(type, f, capture));
    });
  }

  /** Removes every listener `listen` added. */
  unlisten() {
    this.off?.forEach((f) => f());
    this.off = [];
  }

  /** Plain text of a message (or the greeting) being filled. */
  text(t) {
    this.into.appendChild(this.doc.createTextNode(t));
  }

  /**
   * A link of the message being filled (see text.rs): shown exactly as its `href`, with a host
   * to be shown in ASCII (`ascii`) in the browser's own IDNA (UTS-46) ToASCII, the host it will
   * really connect to; a host it refuses makes no link. `dir="ltr"` isolates it, so a
   * right-to-left override in the text around it cannot reorder it.
   */
  link(scheme, host, ascii, rest) {
    let url = scheme + host;
    let ok = true;
    if (ascii) {
      try {
        url = scheme + new URL(url).hostname;
      } catch {
        ok = false;
      }
    }
    url += rest;
    if (!ok) return this.text(url);
    const a = this.doc.createElement('a');
    attrs(a, ['href', url, 'dir', 'ltr', 'rel', 'noopener noreferrer', 'target', '_blank']);
    a.textContent = url;
    this.into.appendChild(a);
  }

  /**
   * Brings the launcher, status and header in line with the model (`unread` messages,
   * `statusKey` and its text, `available`: the line under it, empty for none) and remembers,
   * for `end`, whether the log was scrolled to its bottom. Rows follow with `row`.
   */
  render(open, launcherLabel, unread, statusKey, statusText, muted, muteTitle, available, online, closed) {
    this.open = open;
    this.launcher.setAttribute('aria-expanded', flag(open));
    if (launcherLabel !== this.launcherLabel) {
      this.launcher.setAttribute('aria-label', launcherLabel);
      this.launcherLabel = launcherLabel;
    }
    this.host.toggleAttribute('data-open', open);
    this.panel.hidden = !open;
    const badge = unread ? (unread > 99 ? '99+' : String(unread)) : '';
    if (this.badge.textContent !== badge) this.badge.textContent = badge;
    this.badge.hidden = !unread;
    this.status.setAttribute('data-status', statusKey);
    if (this.statusLabel.textContent !== statusText) this.statusLabel.textContent = statusText;
    this.mute.setAttribute('aria-pressed', flag(muted));
    // The name stays "Mute …" (a toggle button's state is `aria-pressed`); the tooltip says
    // what a click does now.
    this.mute.setAttribute('title', muteTitle);
    const av = this.availability;
    if (av.textContent !== available) {
      av.textContent = available;
      av.setAttribute('data-online', flag(online));
    }
    av.hidden = !available;
    this.closedChanged = this.closed.hidden === closed;
    this.closed.hidden = !closed;
    const b = this.body;
    this.nearBottom = b.scrollHeight - b.scrollTop - b.clientHeight < 80 || !this.wasOpen;
    this.added = false;
    this.prev = null;
    this.seen = new Set();
  }

  /** A message's `<time>`: the time in the visitor's language, the full date as tooltip. */
  #time(t, iso) {
    attrs(t, ['datetime', iso, 'title', this.clock.full(iso)]);
    t.textContent = this.clock.label(iso);
  }

  /** The Retry button of a row whose message failed, and no other. */
  #retry(r) {
    if (r.state === 'failed' && !r.retry) {
      const b = (r.retry = this.doc.createElement('button'));
      attrs(b, ['class', 'retry', 'type', 'button', 'part', 'retry']);
      b.textContent = this.retryText;
      r.el.querySelector('.meta')?.appendChild(b);
    } else if (r.state !== 'failed' && r.retry) {
      r.retry.remove();
      r.retry = null;
    }
  }

  /**
   * The next message of the log, in order: its row is made (returns true: its text follows,
   * with `text` and `link`) or brought up to date (`state`: its delivery, `time`), and put in
   * its place.
   */
  row(id, role, state, time, author) {
    let r = this.rows.get(id);
    const made = !r;
    if (made) {
      const el = this.tpl.cloneNode(true);
      const [text, t, who] = el.querySelectorAll('[part=text],time,.author');
      if (author == null) who.remove();
      else who.textContent = author;
      attrs(el, ['part', 'message ' + role, 'data-role', role, 'data-id', id, 'data-state', state]);
      this.#time(t, time);
      r = { el, state, time, retry: null };
      this.#retry(r);
      this.rows.set(id, r);
      this.into = text;
      this.added = true;
    } else {
      if (r.state !== state) {
        r.el.setAttribute('data-state', state);
        r.state = state;
        this.#retry(r);
      }
      if (r.time !== time) {
        const t = r.el.querySelector('time');
        if (t) this.#time(t, time);
        r.time = time;
      }
    }
    const expected = this.prev ? this.prev.nextSibling : this.log.firstChild;
    if (expected !== r.el) this.log.insertBefore(r.el, expected);
    this.prev = r.el;
    this.seen.add(id);
    return made;
  }

  /**
   * After the rows: drops those of messages the log no longer has (the conversation was
   * replaced: a login, a logout), shows the typing dots, and keeps the newest message in view
   * when it was (or is the visitor's own, `ownLast`), and on opening.
   */
  end(typing, ownLast) {
    if (this.rows.size > this.seen.size) {
      for (const [id, r] of this.rows) {
        if (!this.seen.has(id)) {
          r.el.remove();
          this.rows.delete(id);
        }
      }
    }
    const typingChanged = this.typing.hidden === typing;
    this.typing.hidden = !typing;
    const own = this.added && ownLast;
    if (this.open && (((this.added || typingChanged || this.closedChanged) && this.nearBottom) || own || !this.wasOpen)) {
      this.body.scrollTop = this.body.scrollHeight;
    }
    this.wasOpen = this.open;
  }

  /** The element focused on the page, unless it is the widget itself (or nothing). */
  #pageFocus() {
    const a = this.doc.activeElement;
    return a && a !== this.host && a !== this.doc.body && a instanceof HTMLElement ? a : null;
  }

  /**
   * On opening: remembers where focus was and focuses the chat box — or, on a touch screen, the
   * dialog (focusing the text box pops the keyboard over half the conversation; it comes with
   * the visitor's own tap on the text box).
   */
  focusIn() {
    this.before = this.#pageFocus();
    const touch = window.matchMedia?.('(hover: none) and (pointer: coarse)')?.matches;
    (touch ? this.panel : this.input).focus();
  }

  /** On closing: gives focus back to where it was, only if it is still ours. */
  focusOut() {
    const before = this.before;
    this.before = null;
    const ours = this.doc.activeElement === this.host;
    if (before && (ours || !this.#pageFocus()) && before.isConnected) before.focus();
    else if (ours) this.launcher.focus();
  }

  /** What the chat box holds. */
  value() {
    return this.input.value;
  }

  /** Empties the chat box (the send button follows). */
  clear() {
    this.input.value = '';
    this.send.disabled = true;
  }

  /** Enables the send button when there is something to send. */
  sendable(yes) {
    this.send.disabled = !yes;
  }

  /** The id of the message whose Retry button a click in the log hit, if it hit one. */
  #retried(e) {
    const t = e.target;
    return t instanceof Element ? t.closest('[part=retry]')?.closest('[data-id]')?.getAttribute('data-id') : null;
  }

  /** Removes the widget from the page; an open panel first gives focus back, as closing does. */
  remove() {
    if (this.open) this.focusOut();
    this.host.remove();
  }
}

// ---- Message times (clock.rs)

// Message times in the visitor's language (see clock.rs), in JavaScript: made from Rust, each
// `Intl` and `Date` call was an import of its own in the wasm and in its glue.

/** A formatter in `locale` with `options`; the browser's default locale for a tag `Intl` rejects; null without `Intl`. */
function make(Kind, locale, options) {
  for (const tag of [locale, undefined]) {
    try {
      return new Intl[Kind](tag, options);
    } catch {}
  }
  return null;
}

const sameDay = (a, b) =>
  a.getDate() === b.getDate() && a.getMonth() === b.getMonth() && a.getFullYear() === b.getFullYear();

/** The `Intl` formatters of one widget. */
export class Clock {
  constructor(locale) {
    const format = (options) => {
      const f = make('DateTimeFormat', locale, options);
      return (d) => {
        try {
          return f ? String(f.format(d)) : '';
        } catch {
          return '';
        }
      };
    };
    this.time = format({ hour: 'numeric', minute: '2-digit' });
    this.day = format({ month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
    this.long = format({ dateStyle: 'full', timeStyle: 'short' });
    try {
      this.yesterday = String(make('RelativeTimeFormat', locale, { numeric: 'auto' })?.format(-1, 'day') ?? '');
    } catch {
      this.yesterday = '';
    }
  }

  /** The date of an RFC 3339 time, or null for an empty or unreadable one. */
  #date(iso) {
    const d = new Date(iso);
    return iso && !Number.isNaN(d.getTime()) ? d : null;
  }

  /** `iso` as shown under a message: the time today, "yesterday" and the time, else a short date and time. */
  label(iso) {
    const d = this.#date(iso);
    if (!d) return '';
    const now = new Date();
    if (sameDay(d, now)) return this.time(d);
    if (sameDay(d, new Date(now.getTime() - 86400000)) && this.yesterday) return `${this.yesterday} ${this.time(d)}`;
    return this.day(d);
  }

  /** `iso` in full (the tooltip). */
  full(iso) {
    const d = this.#date(iso);
    return d ? this.long(d) : '';
  }
}

// ---- The chime (sound.rs)

// The notification chime (see sound.rs), written in JavaScript: the Web Audio graph and the
// audio context's life are a few dozen calls, and made from Rust each was an import of its own
// in the wasm and in its glue.

/** Plays two short sine notes (A5, then F♯6) on `ctx`, a running AudioContext; throws if the browser refuses. */
function chime(ctx) {
  const t0 = ctx.currentTime + 0.01;
  [880, 1479.98].forEach((freq, i) => {
    const start = t0 + i * 0.11;
    const osc = ctx.createOscillator();
    osc.type = 'sine';
    osc.frequency.setValueAtTime(freq, start);
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.14, start + 0.012);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.32);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(start);
    osc.stop(start + 0.34);
  });
}

/** The page's AudioContext for the widget, made (or resumed) inside a user gesture. */
export class Sound {
  /** Called inside a user gesture: makes sure a running context exists. */
  unlock() {
    const ctx = this.ctx;
    if (!ctx) {
      try {
        this.ctx = new AudioContext();
      } catch {}
    } else if (ctx.state === 'suspended') {
      ctx.resume();
    }
  }

  /** Plays the chime on a running context; whether it played. */
  #play() {
    try {
      chime(this.ctx);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Plays the chime if the browser allows sound: 1 when it plays, 0 when it cannot (before any
   * gesture on the page, the browser refuses), or the promise of a suspended context resuming.
   */
  chime() {
    if (!this.ctx) {
      if (!navigator.userActivation?.hasBeenActive) return 0;
      this.unlock();
    }
    const state = this.ctx?.state;
    if (state === 'running') return this.#play() ? 1 : 0;
    if (state === 'suspended') {
      try {
        return this.ctx.resume();
      } catch {}
    }
    return 0;
  }

  /** After a resume: plays if the context runs now; whether it played. */
  playIfRunning() {
    return this.ctx?.state === 'running' && this.#play();
  }

  /** Releases the audio hardware. */
  close() {
    this.ctx?.close();
    this.ctx = null;
  }
}
