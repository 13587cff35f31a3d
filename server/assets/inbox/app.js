// Natter inbox: the operators' web app, served by the hub at /inbox. Plain JavaScript without
// dependencies; everything a visitor wrote is put on the page as text (textContent), never as
// markup. It talks to the hub's /inbox/api (JSON, session cookie + X-Natter-Csrf on every
// change) and /inbox/ws (the live feed: conversation, message, typing, note, availability).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('aria-') || k === 'role' || k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  };

  const state = {
    me: null,
    csrf: '',
    filter: 'open',
    list: new Map(),     // id -> summary (every conversation heard of)
    open: null,          // id of the open conversation
    before: null,        // seq for "load earlier"
    next: null,          // cursor of the list's next page ("load more"), null on the last
    listGen: 0,          // bumped by every new list load, so an older answer is dropped
    seen: new Set(),     // message ids shown in the log
    canned: [],
    operators: [],
    online: 0,
    socket: null,
    backoff: 500,
    typingSent: 0,
    typingTimer: 0,
    peerTyping: 0,
  };

  // ---------- HTTP ----------
  async function api(path, { method = 'GET', body } = {}) {
    const headers = { 'accept': 'application/json' };
    if (method !== 'GET') {
      headers['content-type'] = 'application/json';
      headers['x-natter-csrf'] = state.csrf;
    }
    const r = await fetch('/inbox/api' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401 && path !== '/signin') { showSignin(); throw new Error('signed out'); }
    const text = await r.text();
    // The hub answers JSON; a proxy in front (nginx's 502 page while the hub restarts) may not.
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!r.ok) throw new Error((data && data.message) || ('the hub answered HTTP ' + r.status + ' ' + r.statusText).trim());
    return data;
  }

  // ---------- time ----------
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
  const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  function ago(ms) {
    const s = Math.round((ms - Date.now()) / 1000);
    if (s > -60) return rel.format(0, 'second');
    if (s > -3600) return rel.format(Math.round(s / 60), 'minute');
    if (s > -86400) return rel.format(Math.round(s / 3600), 'hour');
    return dayFmt.format(new Date(ms));
  }

  // ---------- sign-in ----------
  function showSignin() {
    $('app').hidden = true;
    $('signin').hidden = false;
    if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
    $('signin-name').focus();
  }

  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    try {
      const me = await api('/signin', { method: 'POST', body: { name: $('signin-name').value, password: $('signin-password').value } });
      $('signin-password').value = '';
      await start(me);
      // The form the focus was in is gone: a keyboard user goes on from the list's filters.
      document.querySelector('[data-filter][aria-selected="true"]').focus();
    } catch (e) {
      $('signin-error').textContent = e.message;
    }
  });

  $('signout').addEventListener('click', async () => {
    try { await api('/signout', { method: 'POST', body: {} }); } catch (_) { /* signed out either way */ }
    showSignin();
  });

  async function start(me) {
    state.me = me.operator;
    state.csrf = me.csrf;
    $('signin').hidden = true;
    $('app').hidden = false;
    $('whoami').textContent = 'Signed in as ' + me.operator.displayName;
    selectFilter(state.filter, false);
    await Promise.all([loadList(), loadCanned(), api('/operators').then((o) => { state.operators = o; })]);
    connect();
    updateTitle();
  }

  // ---------- list ----------
  function selectFilter(filter, focus) {
    state.filter = filter;
    for (const b of document.querySelectorAll('[data-filter]')) {
      const on = b.dataset.filter === filter;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on) { $('list-panel').setAttribute('aria-labelledby', b.id); if (focus) b.focus(); }
    }
  }
  const tabs = () => [...document.querySelectorAll('[data-filter]')];
  for (const b of tabs()) {
    b.addEventListener('click', () => { selectFilter(b.dataset.filter, false); loadList(); });
    b.addEventListener('keydown', (ev) => {
      const all = tabs(), i = all.indexOf(b);
      let j = null;
      if (ev.key === 'ArrowRight') j = (i + 1) % all.length;
      if (ev.key === 'ArrowLeft') j = (i + all.length - 1) % all.length;
      if (ev.key === 'Home') j = 0;
      if (ev.key === 'End') j = all.length - 1;
      if (j !== null) { ev.preventDefault(); selectFilter(all[j].dataset.filter, true); loadList(); }
    });
  }

  // The list comes in pages (newest activity first), each naming the cursor of the next:
  // "Load more" follows it, so every conversation can be reached however many there are.
  const PAGE = 50;
  async function loadList() {
    const gen = ++state.listGen;
    state.next = null;
    await loadPage(gen, null);
  }

  // Loads pages from `cursor` until one brings a conversation or there are no more (a page
  // may come back short, even empty, while a later one has some). Returns the first new id.
  async function loadPage(gen, cursor) {
    let first = null;
    for (;;) {
      const q = '/conversations?filter=' + state.filter + '&limit=' + PAGE + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
      const page = await api(q);
      if (gen !== state.listGen) return null;
      for (const c of page.conversations) state.list.set(c.id, c);
      if (first === null && page.conversations.length > 0) first = page.conversations[0].id;
      cursor = page.next ?? null;
      if (first !== null || cursor === null) break;
    }
    state.next = cursor;
    $('more').hidden = state.next === null;
    renderList();
    return first;
  }

  $('more').addEventListener('click', async () => {
    if (state.next === null) return;
    const more = $('more');
    more.disabled = true;
    try {
      const first = await loadPage(state.listGen, state.next);
      // The keyboard goes on from the first conversation just loaded (the button may be gone).
      const b = first && $('list').querySelector('[data-id="' + first + '"]');
      if (b) b.focus();
    } finally {
      more.disabled = false;
    }
  });

  function matches(c) {
    switch (state.filter) {
      case 'open': return c.status === 'open';
      case 'mine': return c.status === 'open' && c.assignee === state.me.name;
      case 'unassigned': return c.status === 'open' && !c.assignee;
      case 'closed': return c.status === 'closed';
    }
    return false;
  }

  function visitorName(c) {
    const u = c.context && c.context.user;
    if (u) return u.name || u.email || u.id;
    return 'Visitor ' + c.visitor.slice(2, 8);
  }

  function renderList() {
    // The hub's order: newest activity first, then the higher id.
    const shown = [...state.list.values()].filter(matches)
      .sort((a, b) => (b.lastActivityMs - a.lastActivityMs) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const list = $('list');
    // Re-rendering must not take the keyboard focus away from the conversation it was on.
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    list.replaceChildren(...shown.map((c) => {
      const unread = c.unread > 0 ? el('span', { class: 'badge', text: String(c.unread), 'aria-label': c.unread + ' unread' }) : null;
      const who = el('span', { class: 'who', text: visitorName(c) });
      if (c.context && c.context.user) who.append(el('span', { class: 'verified', text: ' ✓', 'aria-label': ' (verified)' }));
      const tags = [];
      if (c.wantsHuman) tags.push(el('span', { class: 'tag', text: 'wants a person' }));
      if (c.assignee) tags.push(el('span', { class: 'tag', text: '→ ' + operatorName(c.assignee) }));
      const b = el('button', { type: 'button', class: 'item', 'data-id': c.id },
        el('span', { class: 'row' }, who, el('time', { class: 'when muted', text: ago(c.lastActivityMs) }), unread),
        el('span', { class: 'preview muted', text: (c.lastRole === 'user' ? '' : roleLabel(c.lastRole) + ': ') + (c.preview || '') }),
        el('span', { class: 'row small muted' }, el('span', { class: 'page', text: (c.context && c.context.page) || '' }), ...tags));
      if (c.id === state.open) b.setAttribute('aria-current', 'true');
      b.addEventListener('click', () => openConversation(c.id));
      return el('li', {}, b);
    }));
    $('list-empty').hidden = shown.length > 0;
    if (focused) { const again = list.querySelector('[data-id="' + focused + '"]'); if (again) again.focus(); }
    updateTitle();
  }

  function roleLabel(role) {
    return role === 'agent' ? 'Operator' : role === 'bot' ? 'Bot' : role === 'user' ? 'Visitor' : '';
  }
  function operatorName(name) {
    const o = state.operators.find((o) => o.name === name);
    return o ? o.displayName : name;
  }

  function updateTitle() {
    const waiting = [...state.list.values()].filter((c) => c.status === 'open' && c.unread > 0).length;
    document.title = (waiting ? '(' + waiting + ') ' : '') + 'Natter inbox';
  }

  // ---------- sound: a short two-tone chime, synthesised (no audio file) ----------
  let audio = null;
  function chime() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const t = audio.currentTime;
      for (const [f, at] of [[880, 0], [1320, 0.12]]) {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = f;
        g.gain.setValueAtTime(0.0001, t + at);
        g.gain.exponentialRampToValueAtTime(0.15, t + at + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.25);
        o.connect(g).connect(audio.destination);
        o.start(t + at); o.stop(t + at + 0.3);
      }
    } catch (_) { /* no audio: the title still counts */ }
  }

  // ---------- one conversation ----------
  async function openConversation(id) {
    state.open = id;
    state.seen.clear();
    $('log').replaceChildren();
    $('typing').textContent = '';
    $('conversation').hidden = false;
    $('nothing').hidden = true;
    document.body.classList.add('reading');
    renderList();
    const detail = await api('/conversations/' + id);
    state.list.set(id, detail.conversation);
    renderHeader();
    renderNotes(detail.notes);
    const page = await api('/conversations/' + id + '/messages?limit=50');
    for (const m of page.messages) addMessage(m, false);
    state.before = page.before ?? null;
    $('earlier').hidden = state.before == null;
    scrollDown();
    markRead();
    $('composer-text').focus();
  }

  $('earlier').addEventListener('click', async () => {
    if (state.before == null) return;
    const page = await api('/conversations/' + state.open + '/messages?limit=50&before=' + state.before);
    const log = $('log'), first = log.firstChild;
    for (const m of page.messages) {
      if (state.seen.has(m.id)) continue;
      state.seen.add(m.id);
      log.insertBefore(messageItem(m), first);
    }
    state.before = page.before ?? null;
    $('earlier').hidden = state.before == null;
  });

  $('back').addEventListener('click', () => {
    document.body.classList.remove('reading');
    const b = document.querySelector('[data-id="' + state.open + '"]');
    if (b) b.focus();
  });

  function renderHeader() {
    const c = state.list.get(state.open);
    if (!c) return;
    $('conv-name').textContent = visitorName(c);
    const bits = [c.status === 'closed' ? 'Closed' : 'Open'];
    bits.push(c.assignee ? 'assigned to ' + operatorName(c.assignee) : 'unassigned');
    if (c.handoff) bits.push('bot paused');
    if (c.wantsHuman) bits.push('asked for a person');
    $('conv-meta').textContent = bits.join(' · ');
    $('assign').textContent = c.assignee === state.me.name ? 'Unassign' : 'Assign to me';
    $('close').textContent = c.status === 'closed' ? 'Reopen' : 'Close';
    const ctx = c.context || {};
    const rows = [];
    const row = (k, v) => { if (v) rows.push(el('dt', { text: k }), el('dd', { text: v })); };
    if (ctx.user) {
      row('Signed in as', ctx.user.name || ctx.user.id);
      row('E-mail', ctx.user.email);
      row('User id', ctx.user.id);
    } else {
      row('Identity', 'anonymous (not signed in)');
    }
    row('Page', ctx.page);
    row('Title', ctx.title);
    row('Browser', ctx.browser);
    row('First seen', new Date(c.createdMs).toLocaleString());
    $('visitor').replaceChildren(...rows);
  }

  function renderNotes(notes) {
    $('notes').replaceChildren(...notes.map(noteItem));
  }
  function noteItem(n) {
    return el('li', {}, el('p', { class: 'note-text', text: n.text }),
      el('p', { class: 'small muted', text: operatorName(n.author) + ' · ' + timeFmt.format(new Date(n.createdMs)) }));
  }

  function messageItem(m) {
    const c = m;
    const kind = m.type;
    const who = kind === 'user' ? (state.list.get(state.open) ? visitorName(state.list.get(state.open)) : 'Visitor')
      : (c.author || roleLabel(kind));
    const li = el('div', { class: 'msg ' + kind },
      el('p', { class: 'meta small muted' }, el('span', { text: who + (kind === 'bot' ? ' (bot)' : '') }), ' · ',
        el('time', { dateTime: c.timestamp, text: timeFmt.format(new Date(c.timestamp)) })),
      el('p', { class: 'text', text: c.message }));
    return li;
  }

  function addMessage(m, live) {
    if (state.seen.has(m.id)) return;
    state.seen.add(m.id);
    const log = $('log');
    const near = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    log.append(messageItem(m));
    if (!live || near) scrollDown();
  }
  function scrollDown() { const log = $('log'); log.scrollTop = log.scrollHeight; }

  let readTimer = 0;
  function markRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      const c = state.list.get(state.open);
      if (c && c.unread > 0 && document.visibilityState === 'visible') api('/conversations/' + c.id + '/read', { method: 'POST', body: {} }).catch(() => {});
    }, 300);
  }
  document.addEventListener('visibilitychange', () => { if (state.open) markRead(); });

  $('assign').addEventListener('click', async () => {
    const c = state.list.get(state.open);
    const assignee = c.assignee === state.me.name ? null : state.me.name;
    apply(await api('/conversations/' + c.id + '/assign', { method: 'POST', body: { assignee } }));
  });
  $('close').addEventListener('click', async () => {
    const c = state.list.get(state.open);
    apply(await api('/conversations/' + c.id + '/' + (c.status === 'closed' ? 'reopen' : 'close'), { method: 'POST', body: {} }));
  });

  function apply(c) {
    const before = state.list.get(c.id);
    state.list.set(c.id, c);
    renderList();
    if (c.id === state.open) renderHeader();
    return before;
  }

  // ---------- composer ----------
  const text = $('composer-text');
  const mode = () => document.querySelector('input[name="mode"]:checked').value;
  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener('change', () => {
      $('composer').classList.toggle('noting', mode() === 'note');
      text.placeholder = mode() === 'note' ? 'Private note (visitors never see it)…' : 'Reply… (type / for canned replies)';
    });
  }

  $('composer').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = text.value.trim();
    if (!value || !state.open) return;
    $('composer-error').textContent = '';
    try {
      if (mode() === 'note') {
        await api('/conversations/' + state.open + '/notes', { method: 'POST', body: { text: value } });
      } else {
        const id = 'op-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 8);
        await api('/conversations/' + state.open + '/reply', { method: 'POST', body: { text: value, id } });
        sendTyping(false);
      }
      text.value = '';
    } catch (e) {
      $('composer-error').textContent = 'Not sent: ' + e.message;
    }
  });

  text.addEventListener('keydown', (ev) => {
    if (!$('canned').hidden && cannedKey(ev)) return;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('composer').requestSubmit();
    }
  });
  text.addEventListener('input', () => {
    updateCanned();
    if (mode() === 'reply' && text.value.trim()) sendTyping(true);
  });

  function sendTyping(active) {
    if (!state.socket || state.socket.readyState !== 1 || !state.open) return;
    const now = Date.now();
    clearTimeout(state.typingTimer);
    if (active) {
      state.typingTimer = setTimeout(() => sendTyping(false), 4000);
      if (now - state.typingSent < 3000) return;
      state.typingSent = now;
    } else {
      state.typingSent = 0;
    }
    state.socket.send(JSON.stringify({ type: 'typing', conversation: state.open, active }));
  }

  // ---------- canned replies with "/" ----------
  let cannedIndex = 0;
  async function loadCanned() { state.canned = await api('/canned'); renderCannedList(); }
  function cannedQuery() {
    const m = /(^|\s)\/([a-z0-9_-]*)$/.exec(text.value.slice(0, text.selectionStart));
    return m ? m[2] : null;
  }
  function updateCanned() {
    const q = cannedQuery();
    const box = $('canned');
    const hits = q === null ? [] : state.canned.filter((c) => c.shortcut.startsWith(q));
    if (!hits.length) { closeCanned(); return; }
    cannedIndex = Math.min(cannedIndex, hits.length - 1);
    box.replaceChildren(...hits.map((c, i) => {
      const li = el('li', { role: 'option', id: 'canned-' + c.shortcut, 'aria-selected': String(i === cannedIndex) },
        el('strong', { text: '/' + c.shortcut }), ' ', el('span', { class: 'muted', text: c.text }));
      li.addEventListener('mousedown', (ev) => { ev.preventDefault(); insertCanned(c); });
      return li;
    }));
    box.hidden = false;
    // The textarea keeps focus; the choice is announced (a textarea cannot be a combobox).
    const pick = hits[cannedIndex];
    $('canned-status').textContent = 'Canned reply ' + (cannedIndex + 1) + ' of ' + hits.length + ': /' + pick.shortcut +
      ', ' + pick.text + '. Up and down to choose, Enter to insert, Escape to close.';
  }
  function closeCanned() {
    $('canned').hidden = true;
    cannedIndex = 0;
    $('canned-status').textContent = '';
  }
  function cannedKey(ev) {
    const options = [...$('canned').children];
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      cannedIndex = (cannedIndex + (ev.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
      updateCanned();
      return true;
    }
    if (ev.key === 'Enter' || ev.key === 'Tab') {
      ev.preventDefault();
      const q = cannedQuery();
      const hits = state.canned.filter((c) => c.shortcut.startsWith(q || ''));
      if (hits[cannedIndex]) insertCanned(hits[cannedIndex]);
      return true;
    }
    if (ev.key === 'Escape') { ev.preventDefault(); closeCanned(); return true; }
    return false;
  }
  function insertCanned(c) {
    const at = text.selectionStart;
    const head = text.value.slice(0, at).replace(/\/[a-z0-9_-]*$/, c.text);
    text.value = head + text.value.slice(at);
    text.selectionStart = text.selectionEnd = head.length;
    closeCanned();
    text.focus();
  }

  // ---------- managing canned replies: list, edit, delete ----------
  let editing = null;   // the shortcut being edited, or null for a new one
  function renderCannedList() {
    $('canned-list').replaceChildren(...state.canned.map((c) => el('li', { 'data-shortcut': c.shortcut },
      el('strong', { text: '/' + c.shortcut }),
      el('span', { class: 'canned-text muted', text: c.text, title: c.text }),
      el('button', { type: 'button', class: 'edit', text: 'Edit', 'aria-label': 'Edit /' + c.shortcut, onclick: () => editCanned(c) }),
      el('button', { type: 'button', class: 'delete', text: 'Delete', 'aria-label': 'Delete /' + c.shortcut, onclick: () => deleteCanned(c) }))));
    $('canned-none').hidden = state.canned.length > 0;
  }
  function editCanned(c) {
    editing = c.shortcut;
    $('canned-shortcut').value = c.shortcut;
    $('canned-text').value = c.text;
    $('canned-legend').textContent = 'Editing /' + c.shortcut;
    $('canned-save').textContent = 'Save changes';
    $('canned-cancel').hidden = false;
    $('canned-error').textContent = '';
    $('canned-text').focus();
  }
  function resetCannedForm() {
    editing = null;
    $('canned-shortcut').value = ''; $('canned-text').value = '';
    $('canned-legend').textContent = 'New canned reply';
    $('canned-save').textContent = 'Save canned reply';
    $('canned-cancel').hidden = true;
  }
  // Where the keyboard goes after a change: the changed entry's button, else the form.
  function focusCanned(shortcut, which) {
    const li = [...$('canned-list').children].find((li) => li.dataset.shortcut === shortcut);
    (li ? li.querySelector('.' + which) : $('canned-shortcut')).focus();
  }
  async function deleteCanned(c) {
    $('canned-error').textContent = '';
    const i = state.canned.indexOf(c);
    try {
      await api('/canned/' + encodeURIComponent(c.shortcut), { method: 'DELETE' });
      if (editing === c.shortcut) resetCannedForm();
      await loadCanned();
      $('canned-done').textContent = 'Deleted /' + c.shortcut;
      const next = state.canned[Math.min(i, state.canned.length - 1)];
      focusCanned(next && next.shortcut, 'delete');
    } catch (e) { $('canned-error').textContent = e.message; }
  }
  $('canned-cancel').addEventListener('click', () => { const was = editing; resetCannedForm(); focusCanned(was, 'edit'); });
  $('canned-admin').addEventListener('toggle', () => { if ($('canned-admin').open) loadCanned().catch(() => {}); });

  $('canned-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('canned-error').textContent = '';
    const shortcut = $('canned-shortcut').value.trim();
    try {
      await api('/canned', { method: 'POST', body: { shortcut, text: $('canned-text').value } });
      // A new shortcut for an edited reply replaces the old one rather than adding a second.
      if (editing && editing !== shortcut) await api('/canned/' + encodeURIComponent(editing), { method: 'DELETE' });
      const edited = editing !== null;
      resetCannedForm();
      await loadCanned();
      $('canned-done').textContent = 'Saved /' + shortcut;
      if (edited) focusCanned(shortcut, 'edit');
    } catch (e) { $('canned-error').textContent = e.message; }
  });

  // ---------- live feed ----------
  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(scheme + '//' + location.host + '/inbox/ws');
    state.socket = ws;
    $('connection').textContent = 'Connecting…';
    ws.onopen = () => { state.backoff = 500; $('connection').textContent = 'Live'; };
    ws.onmessage = (ev) => { try { onEvent(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
    ws.onclose = (ev) => {
      state.socket = null;
      if (ev.code === 4401) { showSignin(); return; }
      $('connection').textContent = 'Reconnecting…';
      const wait = Math.random() * Math.min(15000, state.backoff);
      state.backoff = Math.min(15000, state.backoff * 2);
      setTimeout(async () => {
        try { await api('/me'); await loadList(); connect(); } catch (_) { /* signed out, or try again */ if ($('signin').hidden) setTimeout(connect, 1000); }
      }, wait);
    };
  }

  function onEvent(e) {
    switch (e.type) {
      case 'hello':
      case 'availability':
        state.online = e.online;
        $('online').textContent = e.online === 1 ? '1 operator online' : e.online + ' operators online';
        break;
      case 'conversation': {
        const before = apply(e.conversation);
        const fresh = !before || (e.conversation.unread > (before.unread || 0));
        if (!before || (fresh && e.conversation.lastRole === 'user' && e.conversation.id !== state.open)) chime();
        if (e.conversation.id === state.open && e.conversation.unread > 0) markRead();
        break;
      }
      case 'message':
        if (e.conversation === state.open) {
          addMessage(e.message, true);
          if (e.message.type === 'user') $('typing').textContent = '';
        }
        break;
      case 'typing':
        if (e.conversation === state.open) {
          clearTimeout(state.peerTyping);
          const who = e.role === 'user' ? 'The visitor' : (e.name || 'An operator');
          $('typing').textContent = e.active ? who + ' is typing…' : '';
          if (e.active) state.peerTyping = setTimeout(() => { $('typing').textContent = ''; }, 8000);
        }
        break;
      case 'note':
        if (e.conversation === state.open) $('notes').append(noteItem(e.note));
        break;
    }
  }

  // ---------- skip link: to the reply box when a conversation shows, else to the list ----------
  function skipTarget() {
    const box = $('composer-text');
    // offsetParent is null while the box (or a pane around it) is not displayed.
    return state.open && box.offsetParent !== null ? box : $('list-panel');
  }
  $('skip').addEventListener('focus', () => {
    const to = skipTarget();
    $('skip').href = '#' + to.id;
    $('skip').textContent = to.id === 'composer-text' ? 'Skip to the reply box' : 'Skip to the conversations';
  });
  $('skip').addEventListener('click', (ev) => { ev.preventDefault(); skipTarget().focus(); });

  setInterval(() => { if (!$('app').hidden) renderList(); }, 60000);

  // ---------- start ----------
  api('/me').then(start).catch(() => showSignin());
})();
