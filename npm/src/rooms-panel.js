// The collaboration panel: the rooms joined, join or create one by name, the room's messages
// with author names, members with presence dots and who is typing, unread per room.
//
// Loaded only when a page uses it (the `rooms` option or `natter.openRoom(id)`), so pages with
// the support chat alone never download it. It renders into its own open Shadow DOM with a
// constructable stylesheet (no inline <style>, no style attributes: a strict CSP needs no
// exception), and everything it shows comes from the public Room API. The stylesheet's rules
// come with the build with rooms (widget/src/panel_style.rs, beside the widget's own, where they
// compress to less); the theme's colours are here.

// The panel's texts, in English. Other languages come from the widget's locale files (the
// `room…` keys of widget/src/i18n/<lang>.json, shipped in locales/rooms-<lang>.json), and the
// page's `strings` option goes over them; both arrive as `options.strings`.
const STRINGS = {
  roomPanel: 'Rooms',
  roomClosePanel: 'Close rooms',
  roomJoined: 'Your rooms',
  roomJoinLabel: 'Join or create a room',
  roomNameLabel: 'Your name',
  roomJoin: 'Join',
  roomJoinPlaceholder: 'room name',
  roomBadName: 'A room name needs letters A–Z or digits 0–9 (at most 64).',
  roomBrowse: 'Other rooms',
  roomMembers: 'Members',
  roomHere: '{n} here',
  roomYou: 'You',
  roomSomeone: 'Someone',
  roomTypingOne: '{a} is typing…',
  roomTypingTwo: '{a} and {b} are typing…',
  roomTypingMany: '{a} and {n} more are typing…',
  roomMessage: 'Message',
  roomSend: 'Send',
  roomLeave: 'Leave',
  roomRetry: 'Retry',
  roomPending: 'sending…',
  roomFailed: 'not sent',
  roomUnread: '{n} unread',
  roomNone: 'Join a room to start.',
  roomJoining: 'Joining…',
  roomRejoining: 'Reconnecting…',
  roomRefused: 'You cannot join this room',
  roomHttp: 'Messages only (HTTP fallback)',
  roomVerified: 'verified',
  roomBadMember: 'Names cannot hold control or direction marks.',
  roomTooLong: 'Too long to send.',
  roomBusy: 'Too many at once: wait, then retry.',
  roomNotAccepted: 'Not allowed here.',
};

/**
 * What the panel says when the hub refuses something in a room, by the error's code (the hub's
 * own message is developer English: it goes to the console). A code not here: `roomNotAccepted`;
 * `unavailable` (some history could not be replayed) is for the console alone.
 */
const REASONS = { too_large: 'roomTooLong', rate_limited: 'roomBusy', unavailable: '' };

// Languages written right to left (by primary subtag), as the widget's own panel knows them.
const RTL = ['ar', 'he', 'fa', 'ur', 'ps', 'yi', 'dv', 'ckb'];

const THEME = {
  light: '--on-accent:#fff;--bg:#fff;--surface:#f4f4f6;--sel:#e8e7ff;--text:#1b1b1f;--muted:#5c5d66;--line:#dcdce2;--danger:#b42318;--online:#16a34a;',
  // The accent is the support launcher's in both themes (it stays dark enough for white text);
  // the focus ring is lighter, to stand out against the dark background.
  dark: '--ring:#8b93ff;--on-accent:#fff;--bg:#1c1c21;--surface:#26262c;--sel:#34345a;--text:#ececf1;--muted:#a6a7b1;--line:#3a3a42;--danger:#ff8a80;--online:#4ade80;',
};

const ROOM_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** "Design review" → "design-review". */
function roomIdFrom(name) {
  return name.trim().toLowerCase().replace(/[^a-z0-9_.:-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c != null) node.append(c);
  return node;
}

const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));

/** Sets `node`'s text only when it changes: a live region hears every write as news. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Mounts the collaboration panel for `natter` (the widget handle). `options` (the page's mount
 * options, with `locale`, `strings` and `css` as below): `name` (the name to join with),
 * `server` (for the hub's room list; this page's origin without it), `theme`, `zIndex`,
 * `accent` (else `colors.accent`), `locale` (a BCP 47 tag: the panel's `lang`, and right to
 * left for Arabic, Hebrew…), `strings` (texts over the English ones: the locale's `room…` keys,
 * then the page's own; keys of the widget's support panel are ignored here, unknown `room…`
 * keys are named in a warning), `css` (the panel's stylesheet, from the build with rooms),
 * `clock` (the widget's message-time formatters, `{ label(iso), full(iso) }`: room times read
 * as the support chat's). Returns `{ open(roomId?, { name }?), close(), toggle(), refresh(),
 * forget(), destroy() }`.
 */
export function createRoomsPanel(natter, options = {}) {
  const t = { ...STRINGS };
  for (const [key, text] of Object.entries(options.strings ?? {})) {
    if (!key.startsWith('room')) continue;
    if (!(key in STRINGS)) console.warn(`natter: "${key}" in the strings option is not a text of the rooms panel`);
    else if (typeof text === 'string' && text.trim()) t[key] = text;
  }
  const locale = String(options.locale || 'en');
  const dir = RTL.includes(locale.toLowerCase().split(/[-_]/)[0]) ? 'rtl' : 'ltr';
  // On the widget's side of the page (`position`, read as the widget reads it).
  const left = /^(bottom-)?left$/.test(String(options.position ?? '').trim());
  const host = el('div', { 'data-natter-rooms': '', 'data-position': left ? 'bottom-left' : 'bottom-right' });
  const root = host.attachShadow({ mode: 'open' });
  const sheet = new CSSStyleSheet();
  const media = matchMedia('(prefers-color-scheme: dark)');
  const themeSheet = new CSSStyleSheet();
  const paintTheme = () => {
    const dark = options.theme === 'dark' || (options.theme !== 'light' && media.matches);
    const given = options.accent ?? options.colors?.accent;
    const accent = /^#[0-9a-fA-F]{3,8}$|^[a-z]+$/.test(given ?? '') ? given : '#4f46e5';
    const z = Number.isFinite(Number(options.zIndex)) ? Number(options.zIndex) : 2147483000;
    themeSheet.replaceSync(`:host{${dark ? THEME.dark : THEME.light}--accent:${accent};--z:${z};}`);
  };
  sheet.replaceSync(options.css ?? '');
  paintTheme();
  media.addEventListener('change', paintTheme);
  root.adoptedStyleSheets = [sheet, themeSheet];

  let current = null;
  let isOpen = false;
  let returnFocus = null;
  let hubRooms = [];
  // The log's rows of the room shown, by message id: `{ node, meta }` (`meta`: what its time
  // and delivery line was made from).
  let rows = new Map();
  // The last thing the hub refused in each room (a join, a message), shown above its log.
  const errors = new Map();
  // The name to join with: the option, else what the visitor typed here last time.
  const NAME_KEY = 'natter.rooms.name';
  const remembered = () => {
    try {
      return localStorage.getItem(NAME_KEY) || null;
    } catch {
      return null;
    }
  };
  // (A remembered name the hub would refuse is not used: one stored before the panel checked.)
  const stored = remembered();
  let name = options.name ?? (stored && natter._nameOk(stored) ? stored : null);
  const clock = options.clock ?? null;

  const badge = el('span', { class: 'badge', hidden: true });
  const launch = el('button', { class: 'launch', type: 'button', lang: locale, dir, 'aria-expanded': 'false', 'aria-controls': 'rooms-panel' }, t.roomPanel, badge);
  const roomList = el('ul', { class: 'rooms', 'aria-label': t.roomJoined });
  const browseList = el('ul', { class: 'browse', 'aria-label': t.roomBrowse });
  const browse = el('section', { hidden: true }, el('h3', {}, t.roomBrowse), browseList);
  const joinInput = el('input', { id: 'join', autocomplete: 'off', placeholder: t.roomJoinPlaceholder, maxlength: 64, dir: 'auto' });
  const joinError = el('p', { class: 'error', role: 'alert' });
  const nameInput = el('input', { id: 'name', autocomplete: 'nickname', maxlength: 64, value: name ?? '', dir: 'auto' });
  // Not asked when the page gives the name, nor of a signed-in user (whose verified name is used).
  const nameField = el('div', { class: 'join' }, el('label', { for: 'name' }, t.roomNameLabel), nameInput);
  const joinForm = el('form', { class: 'join' },
    options.name ? null : nameField,
    el('label', { for: 'join' }, t.roomJoinLabel), joinInput,
    el('button', { class: 'primary', type: 'submit' }, t.roomJoin), joinError);
  const title = el('h2', { class: 'title', id: 'room-title', dir: 'auto' });
  // The room's connection, said politely when it changes (written only then: a live region
  // rewritten on every render would be read out again with each message).
  const state = el('p', { class: 'state', role: 'status' });
  const leaveButton = el('button', { class: 'quiet', type: 'button' }, t.roomLeave);
  // The panel covers the launcher on a phone: it closes from inside too.
  const closeButton = el('button', { class: 'quiet close', type: 'button', 'aria-label': t.roomClosePanel }, '×');
  // What the hub refused here: the panel's words, then why, in the visitor's language (the
  // hub's own words are on the console).
  const alertWhat = el('span', { class: 'what' });
  const alertWhy = el('span', { class: 'why' });
  const alert = el('p', { class: 'alert', role: 'alert', hidden: true }, alertWhat, alertWhy);
  const log = el('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-labelledby': 'room-title', tabindex: '0' });
  const people = el('ul', { 'aria-label': t.roomMembers });
  const aside = el('aside', { class: 'people', 'aria-label': t.roomMembers }, el('h3', {}), people);
  const peopleCount = aside.firstChild;
  const typingLine = el('p', { class: 'typing-line', 'aria-live': 'polite' });
  const input = el('textarea', { id: 'say', rows: 1, placeholder: t.roomMessage, dir: 'auto', maxlength: 4000 });
  const sayForm = el('form', { class: 'say' }, el('label', { for: 'say', class: 'sr' }, t.roomMessage), input,
    el('button', { class: 'primary', type: 'submit' }, t.roomSend));
  const empty = el('p', { class: 'empty' }, t.roomNone);
  // The title and the status share what the buttons leave, one above the other: a long room
  // id is cut (the full one is its tooltip) and a long status wraps, and neither pushes the
  // buttons out of the panel.
  const head = el('div', { class: 'head' }, el('div', { class: 'heading' }, title, state), leaveButton, closeButton);
  const main = el('section', { class: 'main', 'aria-labelledby': 'room-title' },
    head,
    alert,
    el('div', { class: 'body' }, log, aside),
    typingLine, sayForm);
  const panel = el('div', { class: 'panel', id: 'rooms-panel', role: 'dialog', 'aria-label': t.roomPanel, lang: locale, dir, hidden: true },
    el('nav', { class: 'side', 'aria-label': t.roomPanel }, el('h2', {}, t.roomJoined), roomList, joinForm, browse),
    main, empty);
  root.append(launch, panel);
  document.body.append(host);

  /** The joined room `id` (the one shown: `current`), or undefined. */
  const shown = (id = current) => natter.rooms.find((r) => r.id === id);
  const label = (m, mine) => (mine ? t.roomYou : m?.name || t.roomSomeone);
  const STATUS = { joining: t.roomJoining, rejoining: t.roomRejoining, refused: t.roomRefused, http: t.roomHttp };
  // A room id or title is shown as its own run of text, so "#" stays before it in either direction.
  const roomName = (r) => el('bdi', {}, `# ${r}`);

  /** Re-renders `list` with `render`, keeping the keyboard on the same room's button. */
  function keepFocus(list, render) {
    const focused = root.activeElement;
    const id = focused && list.contains(focused) ? focused.dataset.room : null;
    render();
    if (id) [...list.querySelectorAll('button')].find((b) => b.dataset.room === id)?.focus();
  }

  function renderRooms() {
    const rooms = natter.rooms;
    const unread = rooms.reduce((n, r) => n + (r.id === current && isOpen ? 0 : r.unread), 0);
    badge.hidden = unread === 0;
    badge.textContent = String(unread);
    launch.setAttribute('aria-label', isOpen ? t.roomClosePanel : unread ? `${t.roomPanel}, ${fill(t.roomUnread, { n: unread })}` : t.roomPanel);
    keepFocus(roomList, () => roomList.replaceChildren(...rooms.map((r) => el('li', {}, el('button', {
      type: 'button', 'aria-current': r.id === current ? 'true' : 'false', 'data-room': r.id, title: r.title ?? r.id,
      onclick: () => show(r.id),
    }, roomName(r.title ?? r.id), r.unread && r.id !== current ? el('span', { class: 'count', 'aria-label': fill(t.roomUnread, { n: r.unread }) }, String(r.unread)) : null)))));
    const joined = new Set(rooms.map((r) => r.id));
    const others = hubRooms.filter((r) => !joined.has(r.room));
    browse.hidden = others.length === 0;
    keepFocus(browseList, () => browseList.replaceChildren(...others.map((r) => el('li', {}, el('button', {
      type: 'button', 'data-room': r.room, title: r.name ?? r.room, onclick: () => join(r.room),
    }, roomName(r.name ?? r.room), el('span', { class: 'here' }, fill(t.roomHere, { n: r.memberCount })))))));
  }

  function renderRoom() {
    const room = shown();
    main.hidden = !room;
    empty.hidden = Boolean(room);
    // The close button goes where it is seen: without a room, over the "no room" line (on a
    // phone the panel covers the launcher, and a touch screen has no Escape).
    room ? head.append(closeButton) : empty.prepend(closeButton);
    if (!room) return;
    setText(title, `# ${room.title ?? room.id}`);
    title.title = title.textContent;
    const refused = room.status === 'refused';
    // (A refusal is said in the alert below.)
    setText(state, refused ? '' : STATUS[room.status] ?? '');
    const error = errors.get(room.id);
    // A refused join says so, and why only when there is more to say; a refused message, why.
    const why = REASONS[error] ?? (refused || error === undefined ? '' : 'roomNotAccepted');
    const reason = why && t[why];
    alertWhat.textContent = refused ? t.roomRefused : reason;
    alertWhy.textContent = refused ? reason : '';
    alert.hidden = !refused && !why;
    // Nothing can be said in a room the hub refused, and nobody is there.
    sayForm.hidden = refused;
    typingLine.hidden = refused;
    aside.hidden = refused;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    // The log is a live region: a message shown already keeps its node (brought up to date),
    // and only new ones are inserted, so a screen reader hears what is new, not the whole log
    // again on every change in the room.
    const kept = new Map();
    let prev = null;
    for (const m of room.messages) {
      const node = messageRow(room, m);
      kept.set(m.id, rows.get(m.id));
      const expected = prev ? prev.nextSibling : log.firstChild;
      if (expected !== node) log.insertBefore(node, expected);
      prev = node;
    }
    while (prev ? prev.nextSibling : log.firstChild) (prev ? prev.nextSibling : log.firstChild).remove();
    rows = kept;
    peopleCount.textContent = fill(t.roomHere, { n: room.memberCount });
    const typingIds = new Set(room.typingMembers.map((m) => m.id));
    people.replaceChildren(...room.members.map((m) => {
      // A long name is cut to the column: the whole of it is the item's tooltip and its name
      // for a screen reader (a list item is named by its label, not by its text).
      const who = m.name || t.roomSomeone;
      return el('li', { 'data-member': m.id, 'data-verified': m.verified ? 'true' : null, title: who, 'aria-label': m.verified ? `${who} (${t.roomVerified})` : who },
        el('span', { class: typingIds.has(m.id) ? 'dot typing' : 'dot', 'aria-hidden': 'true' }),
        el('bdi', { class: 'name' }, who), m.verified ? el('span', { class: 'sr' }, ` (${t.roomVerified})`) : null);
    }));
    const typing = room.typingMembers.map((m) => m.name || t.roomSomeone);
    // Two are named: "{a} and 1 more" would make every language agree a word with one.
    // (A live region too: rewritten only when it changes.)
    setText(typingLine, typing.length === 0 ? '' : typing.length === 1
      ? fill(t.roomTypingOne, { a: typing[0] }) : typing.length === 2 ? fill(t.roomTypingTwo, { a: typing[0], b: typing[1] })
        : fill(t.roomTypingMany, { a: typing[0], n: typing.length - 1 }));
    // (Last: a typing line that grows takes its height from the log.)
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  /**
   * The node of message `m` in `room`'s log: the one shown already, brought up to date (its
   * author's name, its delivery, its time once stored), or a new one.
   */
  function messageRow(room, m) {
    const who = label(m.from, m.mine);
    let r = rows.get(m.id);
    if (!r) {
      r = { node: el('div', { class: m.mine ? 'msg mine' : 'msg', 'data-id': m.id },
        el('span', { class: 'who', dir: 'auto' }), el('span', { class: 'text', dir: 'auto' }, m.text), el('span', { class: 'meta' })), meta: '' };
      rows.set(m.id, r);
    }
    const [whoNode, , meta] = r.node.children;
    setText(whoNode, who);
    r.node.setAttribute('data-state', m.state);
    if (r.meta !== m.state + m.time) {
      r.meta = m.state + m.time;
      // Under the text as in the support chat: the time in the visitor's language (the full
      // date as its tooltip), then how its delivery stands.
      meta.replaceChildren(...[
        clock ? el('time', { datetime: m.time, title: clock.full(m.time) || null }, clock.label(m.time)) : null,
        m.state === 'pending' ? el('span', { class: 'note' }, t.roomPending) : null,
        m.state === 'failed' ? el('span', { class: 'note' }, t.roomFailed, ' ', el('button', { class: 'quiet', type: 'button', onclick: () => retry(room, m.id) }, t.roomRetry)) : null,
      ].filter(Boolean));
    }
    return r.node;
  }

  /** The visitor tries a failed message again: the complaint about it is old news. */
  function retry(room, id) {
    errors.delete(room.id);
    room.retry(id);
  }

  const watched = new Map();
  function track() {
    for (const room of natter.rooms) {
      if (watched.has(room)) continue;
      const onChange = () => {
        // Left, by the page's code or the panel's Leave: the panel shows the next room, and the
        // keyboard that was in the panel stays there (rather than falling to the page's <body>).
        if (room.left && room.id === current) {
          const inside = root.activeElement;
          current = natter.rooms[0]?.id ?? null;
          render();
          if (inside) focusRoom();
          return;
        }
        if (room.id === current && isOpen && !document.hidden && room.unread) room.markRead();
        const typing = root.activeElement === input;
        if (room.id === current) renderRoom();
        renderRooms();
        // The hub refused the room being written in: its text box is gone, the keyboard goes
        // to the room in the list rather than to the page.
        if (typing && sayForm.hidden) focusRoom();
      };
      const onError = (e) => {
        console.warn(`natter: room "${room.id}": ${e.code}: ${e.message}`);
        errors.set(room.id, e.code);
        if (room.id === current) renderRoom();
      };
      // A fresh join (after a refusal, or a rejoin) starts without the old complaint.
      const onStatus = (status) => {
        if (status === 'joining' || status === 'joined') errors.delete(room.id);
      };
      room.on('status', onStatus).on('error', onError).on('change', onChange);
      watched.set(room, [['status', onStatus], ['error', onError], ['change', onChange]]);
    }
    for (const [room, listeners] of watched) {
      if (room.left) {
        for (const [event, fn] of listeners) room.off(event, fn);
        watched.delete(room);
        errors.delete(room.id);
      }
    }
  }

  /** Tells the widget which room is on screen, so what arrives there is not counted unread. */
  function watch() {
    natter._watchRoom?.(isOpen && !document.hidden ? current : null);
  }

  function render() {
    nameField.hidden = Boolean(natter.state?.user);
    watch();
    track();
    renderRooms();
    renderRoom();
  }

  /**
   * The room a typed name means. Room ids are case-sensitive: a room the panel knows (joined, or
   * in the hub's list) whose id or name is what was typed, in any case, is that room ("TeamA",
   * "teama", "Design review" for a room named so); any other name becomes a new id
   * ("Design review" → "design-review").
   */
  function roomFor(typed) {
    const text = typed.trim();
    const lower = text.toLowerCase();
    const known = [...natter.rooms.map((r) => ({ room: r.id, name: r.title })), ...hubRooms];
    const hit = known.find((r) => r.room === text)
      ?? known.find((r) => [r.room, r.name, roomIdFrom(r.room)].some((s) => s?.toLowerCase() === lower || s === roomIdFrom(text)));
    return hit ? hit.room : roomIdFrom(text);
  }

  async function loadHubRooms() {
    // The hub as the widget reaches it: `wss://hub.example` is `https://hub.example`, a path or
    // nothing is on this page's origin (`fetch` resolves it).
    const server = (options.server ?? '').replace(/^ws/, 'http').replace(/\/+$/, '');
    try {
      const res = await fetch(`${server}/api/rooms`, { credentials: 'omit' });
      // A hub that keeps its room list to signed-in users answers 401/403: no list, no fuss.
      if (!res.ok) return;
      const body = await res.json();
      hubRooms = Array.isArray(body?.rooms) ? body.rooms.slice(0, 50) : [];
      renderRooms();
    } catch {
      // Offline or blocked: the list is optional.
    }
  }

  /** Where the keyboard goes in room `id`: its text box, or (refused) the room list. */
  function focusRoom() {
    const room = shown();
    if (!room) return joinInput.focus();
    if (room.status === 'refused') return roomList.querySelector('[aria-current="true"]')?.focus();
    input.focus();
  }

  /**
   * Joins room `id` from the panel and shows it, as the page's name, else what the "Your name"
   * field says now (remembered for next time), else the last one known; unless the field holds
   * a name the hub would refuse (a control or direction mark): that is said under the form, in
   * the visitor's language, and neither joined with nor remembered.
   */
  function join(id) {
    const typed = !options.name && nameInput.value.trim();
    const bad = typed && !natter._nameOk(typed);
    nameInput.toggleAttribute('aria-invalid', Boolean(bad));
    joinError.textContent = bad ? t.roomBadMember : '';
    if (bad) return nameInput.focus();
    if (typed) {
      name = typed;
      try {
        localStorage.setItem(NAME_KEY, name);
      } catch {
        // Storage refused (private mode): the name lasts for this page.
      }
    }
    show(natter.joinRoom(id, { name }).id);
  }

  function show(id) {
    current = id;
    render();
    if (isOpen) shown(id)?.markRead();
    focusRoom();
  }

  /**
   * Opens the panel on room `id` (else the one shown last, else the first); `as.name`: the name
   * the page joined it with (`natter.openRoom(id, { name })`), which the "Your name" field shows
   * and later joins from the panel use.
   */
  function open(id, as = {}) {
    if (id) current = id;
    if (!options.name && typeof as.name === 'string' && as.name.trim()) {
      name = as.name.trim().slice(0, 64);
      nameInput.value = name;
    }
    current ??= natter.rooms[0]?.id ?? null;
    if (!isOpen) {
      isOpen = true;
      // Focus inside this panel's shadow root shows on the page as the host: keep the element.
      returnFocus = document.activeElement === host ? root.activeElement ?? launch : document.activeElement;
      panel.hidden = false;
      launch.setAttribute('aria-expanded', 'true');
      loadHubRooms();
    }
    render();
    shown()?.markRead();
    focusRoom();
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    panel.hidden = true;
    launch.setAttribute('aria-expanded', 'false');
    render();
    const back = returnFocus;
    returnFocus = null;
    (back && back.isConnected && back !== document.body && !panel.contains(back) ? back : launch).focus();
  }

  launch.addEventListener('click', () => (isOpen ? close() : open()));
  // The support chat's panel covers the corner this launcher sits in (all of a phone's screen):
  // the launcher steps aside while that panel is open.
  const besideSupport = (supportOpen) => (launch.hidden = supportOpen);
  natter.on('open', () => besideSupport(true));
  natter.on('close', () => besideSupport(false));
  besideSupport(Boolean(natter.state?.open));
  closeButton.addEventListener('click', () => close());
  // Full-screen (the stylesheet's narrow breakpoint) the panel covers the page: it is modal
  // there, and Tab goes round inside it rather than on to controls hidden under it. (Beside
  // the page on a wide screen it is not: the page stays usable, and Tab goes on to it.)
  const narrow = matchMedia('(max-width:640px)');
  const modal = () => panel.toggleAttribute('aria-modal', narrow.matches);
  modal();
  narrow.addEventListener('change', modal);
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      close();
    } else if (e.key === 'Tab' && narrow.matches) {
      const stops = [...panel.querySelectorAll('button,input,textarea,[tabindex]')].filter((n) => n.getClientRects().length);
      const [first, last] = [stops[0], stops[stops.length - 1]];
      const at = root.activeElement;
      if (e.shiftKey ? at === first : at === last) {
        e.preventDefault();
        (e.shiftKey ? last : first).focus();
      }
    }
  });
  joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = roomFor(joinInput.value);
    if (!ROOM_ID.test(id)) {
      joinError.textContent = t.roomBadName;
      return;
    }
    join(id);
    if (!joinError.textContent) joinInput.value = '';
  });
  let lastTyping = 0;
  input.addEventListener('input', () => {
    const room = shown();
    if (!room) return;
    const now = Date.now();
    if (!input.value) {
      lastTyping = 0;
      room.typing(false);
    } else if (now - lastTyping > 3000) {
      lastTyping = now;
      room.typing(true);
    }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sayForm.requestSubmit();
    }
  });
  sayForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = shown();
    if (!room || !input.value.trim()) return;
    // (Before the send, which re-renders the room at once.)
    errors.delete(room.id);
    if (room.send(input.value)) {
      input.value = '';
      lastTyping = 0;
      room.typing(false);
      log.scrollTop = log.scrollHeight;
    }
  });
  leaveButton.addEventListener('click', () => {
    const room = shown();
    room?.leave();
    current = natter.rooms[0]?.id ?? null;
    render();
    focusRoom();
  });
  /**
   * A logout (`natter.logout()` here, which calls this; in another tab of the site, which its
   * `storage` events tell: the widget removes the remembered name and marks `natter:forgotten`)
   * forgets who the visitor said they were: the next person on a shared computer starts with
   * the page's name or none. The widget has left the rooms already.
   */
  function forget() {
    name = options.name ?? null;
    nameInput.value = name ?? '';
    current = null;
    errors.clear();
    render();
  }
  const onStorage = (e) => {
    if (e.key === NAME_KEY ? e.newValue === null : e.key === 'natter:forgotten' && e.newValue) forget();
  };
  addEventListener('storage', onStorage);
  const onVisible = () => {
    watch();
    if (!document.hidden && isOpen) shown()?.markRead();
  };
  document.addEventListener('visibilitychange', onVisible);
  render();

  return {
    open,
    close,
    toggle: () => (isOpen ? close() : open()),
    /** Re-reads the joined rooms (after `natter.joinRoom` outside the panel). */
    refresh: render,
    /** @internal — the visitor logged out (see `forget`). */
    forget,
    destroy() {
      removeEventListener('storage', onStorage);
      for (const [room, listeners] of watched) for (const [event, fn] of listeners) room.off(event, fn);
      watched.clear();
      media.removeEventListener('change', paintTheme);
      narrow.removeEventListener('change', modal);
      document.removeEventListener('visibilitychange', onVisible);
      // Open with the keyboard in it, the panel gives focus back first, as closing does (and as
      // the support panel does on destroy): removing the host would leave it on the page's body.
      const back = isOpen && document.activeElement === host ? returnFocus : null;
      host.remove();
      if (back && back.isConnected && back !== document.body) back.focus();
    },
  };
}
