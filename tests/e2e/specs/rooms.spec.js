// Rooms in real Chromium against a real hub, three browser profiles at once: join and presence
// (a closed tab leaves), chat both ways, typing, cursor and update relay, a hub restart with
// resume (nothing lost or doubled), and a profile that was offline catching up.
import { test, expect } from '@playwright/test';
import { Hub, startSite } from '../lib/hub.js';

let hub;
let site;
test.beforeAll(async () => {
  hub = await Hub.start();
  // The site's own page (another origin): the widget from npm's module, rooms through its API.
  site = await startSite({
    '/': `<!doctype html><html><body><h1>Project</h1><script type="module">
      import { mount } from '${hub.url}/index.js';
      window.natter = mount({ server: '${hub.url}', rooms: 'api' });
      window.events = [];
      window.join = (id, name) => {
        const room = window.natter.joinRoom(id, { name });
        for (const e of ['message', 'presence', 'typing', 'cursor', 'update', 'status', 'error']) {
          room.on(e, (detail) => window.events.push({ room: id, e, detail: JSON.parse(JSON.stringify(detail ?? null)) }));
        }
        return room.id;
      };
      window.room = (id) => window.natter.rooms.find((r) => r.id === id);
      /** What a call did: 'accepted', or the error it threw as "Name: message". */
      window.tryIt = (call) => {
        try {
          call();
          return 'accepted';
        } catch (e) {
          return e.name + ': ' + e.message;
        }
      };
      window.view = (id) => {
        const r = window.room(id);
        return r && { status: r.status, memberCount: r.memberCount, members: r.members.map((m) => m.name).sort(),
          typing: r.typingMembers.map((m) => m.name), messages: r.messages.map((m) => ({ id: m.id, text: m.text,
          from: m.from.name, mine: m.mine, state: m.state, seq: m.seq })), unread: r.unread };
      };
    </script></body></html>`,
  });
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

/** A new browser profile on the site, joined to `room` as `name`. */
async function member(browser, room, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(site.url);
  await page.waitForFunction(() => window.natter && window.join);
  await page.evaluate(([r, n]) => window.join(r, n), [room, name]);
  await expect.poll(() => page.evaluate((r) => window.view(r)?.status, room)).toBe('joined');
  return { context, page, view: () => page.evaluate((r) => window.view(r), room) };
}

const texts = (v) => v.messages.map((m) => m.text);

test('three members: presence, chat both ways, typing, cursors and updates; a closed tab leaves', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'design', 'Ada');
  const bob = await member(browser, 'design', 'Bob');
  const cy = await member(browser, 'design', 'Cy');
  try {
    await expect.poll(async () => (await ada.view()).members).toEqual(['Ada', 'Bob', 'Cy']);
    expect((await ada.view()).memberCount).toBe(3);
    // Ada heard Bob and Cy arrive.
    const joined = await ada.page.evaluate(() => window.events.filter((e) => e.e === 'presence' && e.detail.joined).map((e) => e.detail.member.name));
    expect(joined).toEqual(['Bob', 'Cy']);

    // Chat both ways, with author names; the sender's own message is hers and stored.
    const id = await ada.page.evaluate(() => window.room('design').send('Shall we ship it?'));
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    await expect.poll(async () => texts(await bob.view())).toContain('Shall we ship it?');
    await bob.page.evaluate(() => window.room('design').send('Yes, after the review'));
    for (const m of [ada, cy]) {
      await expect.poll(async () => texts(await m.view())).toEqual(['Shall we ship it?', 'Yes, after the review']);
    }
    const seen = await ada.view();
    expect(seen.messages.map((m) => [m.from, m.mine, m.state])).toEqual([['Ada', true, 'sent'], ['Bob', false, 'sent']]);
    expect(seen.unread).toBe(1);
    expect((await bob.view()).messages[0]).toMatchObject({ id, from: 'Ada', mine: false, seq: 1 });

    // Typing shows on the others, and stops.
    await bob.page.evaluate(() => window.room('design').typing(true));
    await expect.poll(async () => (await ada.view()).typing).toEqual(['Bob']);
    await bob.page.evaluate(() => window.room('design').typing(false));
    await expect.poll(async () => (await ada.view()).typing).toEqual([]);

    // Cursors: a burst within one frame goes out as one move, the latest.
    await cy.page.evaluate(() => {
      for (let i = 0; i <= 20; i++) window.room('design').cursor({ x: i, y: 2 * i });
    });
    await expect
      .poll(() => ada.page.evaluate(() => window.events.filter((e) => e.e === 'cursor').map((e) => [e.detail.from.name, e.detail.data])))
      .toEqual([['Cy', { x: 20, y: 40 }]]);
    // Data JSON cannot hold is refused at the page's own call (a cursor too, not later in its
    // animation frame), and nothing of it goes out: the others hear only the updates below.
    const refused = await cy.page.evaluate(() => {
      const room = window.room('design');
      const cycle = {};
      cycle.me = cycle;
      return [() => room.update(cycle), () => room.cursor(() => 1), () => room.update(1n)].map((call) => {
        try {
          call();
          return 'accepted';
        } catch (e) {
          return e instanceof TypeError ? 'TypeError' : String(e);
        }
      });
    });
    expect(refused).toEqual(['TypeError', 'TypeError', 'TypeError']);
    // Updates: every one, in order, to every other member — not back to the sender.
    await cy.page.evaluate(() => {
      const room = window.room('design');
      room.update({ op: 'add', id: 'a', text: 'Write tests' });
      room.update({ op: 'add', id: 'b', text: 'Ship' });
      room.update({ op: 'toggle', id: 'a', done: true });
    });
    for (const m of [ada, bob]) {
      await expect
        .poll(() => m.page.evaluate(() => window.events.filter((e) => e.e === 'update').map((e) => e.detail.data.op + ':' + e.detail.data.id)))
        .toEqual(['add:a', 'add:b', 'toggle:a']);
    }
    expect(await cy.page.evaluate(() => window.events.filter((e) => e.e === 'update').length)).toBe(0);
    expect(await ada.page.evaluate(() => window.events.filter((e) => e.e === 'cursor').length)).toBe(1);

    // Cy closes her tab: the others see her leave.
    await cy.context.close();
    await expect.poll(async () => (await ada.view()).members).toEqual(['Ada', 'Bob']);
    expect((await bob.view()).memberCount).toBe(2);
  } finally {
    for (const m of [ada, bob, cy]) await m.context.close().catch(() => {});
  }
});

test('a hub restart and an offline member: everything arrives once, in order', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'release', 'Ada');
  const bob = await member(browser, 'release', 'Bob');
  try {
    await ada.page.evaluate(() => window.room('release').send('one'));
    await expect.poll(async () => texts(await bob.view())).toEqual(['one']);

    // The hub restarts (going away): typed meanwhile, the message waits and goes out once.
    await hub.stop();
    await expect.poll(async () => (await ada.view()).status).toBe('rejoining');
    await ada.page.evaluate(() => window.room('release').send('two, typed while the hub was down'));
    expect((await ada.view()).messages.at(-1).state).toBe('pending');
    await hub.spawn();
    await expect.poll(async () => (await ada.view()).status, { timeout: 40_000 }).toBe('joined');
    await expect.poll(async () => texts(await bob.view()), { timeout: 40_000 }).toEqual(['one', 'two, typed while the hub was down']);
    await expect.poll(async () => (await ada.view()).messages.map((m) => m.state)).toEqual(['sent', 'sent']);

    // Bob goes offline; Ada writes; Bob comes back and resumes after his last seq.
    await bob.context.setOffline(true);
    await bob.page.evaluate(() => window.dispatchEvent(new Event('offline')));
    await expect.poll(async () => (await bob.view()).status).toBe('rejoining');
    for (const t of ['three', 'four']) await ada.page.evaluate((text) => window.room('release').send(text), t);
    await expect.poll(async () => (await ada.view()).messages.map((m) => m.state)).toEqual(['sent', 'sent', 'sent', 'sent']);
    await bob.context.setOffline(false);
    await bob.page.evaluate(() => window.dispatchEvent(new Event('online')));
    const all = ['one', 'two, typed while the hub was down', 'three', 'four'];
    await expect.poll(async () => texts(await bob.view()), { timeout: 40_000 }).toEqual(all);
    const bobs = await bob.view();
    expect(bobs.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    // Everything from Ada came after Bob joined (live, or resumed after his drop): all unread.
    expect(bobs.unread).toBe(4);
    // The hub stored each message once.
    const stored = await (await fetch(`${hub.url}/api/rooms/release`)).json();
    expect(stored.lastSeq).toBe(4);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('rooms over the HTTP fallback: messages both ways, then back on the WebSocket with nothing lost or doubled', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'fallback', 'Ada');
  // Bob's network lets no WebSocket through: his widget falls back to HTTP.
  const context = await browser.newContext();
  const page = await context.newPage();
  const gate = { blocked: true };
  await page.routeWebSocket(/\/ws\/chat/, (ws) => {
    if (gate.blocked) ws.close({ code: 1011, reason: 'blocked by the test proxy' });
    else ws.connectToServer();
  });
  await page.goto(site.url);
  await page.waitForFunction(() => window.natter && window.join);
  await page.evaluate(() => window.join('fallback', 'Bob'));
  const bob = { context, page, view: () => page.evaluate(() => window.view('fallback')) };
  try {
    await expect.poll(async () => (await bob.view()).status, { timeout: 60_000 }).toBe('http');
    expect(await page.evaluate(() => window.natter.state.transport)).toBe('http');
    await ada.page.evaluate(() => window.room('fallback').send('from the socket'));
    await expect.poll(async () => texts(await bob.view())).toEqual(['from the socket']);
    await bob.page.evaluate(() => window.room('fallback').send('from behind the proxy'));
    await expect.poll(async () => texts(await ada.view())).toEqual(['from the socket', 'from behind the proxy']);
    const own = (await ada.view()).messages[1];
    expect(own).toMatchObject({ from: 'Bob', mine: false, seq: 2 });
    await expect.poll(async () => (await bob.view()).messages.map((m) => m.state)).toEqual(['sent', 'sent']);

    // The WebSocket gets through again: Bob's room is joined on it, resuming, and relays flow.
    gate.blocked = false;
    await expect.poll(async () => (await bob.view()).status, { timeout: 60_000 }).toBe('joined');
    await ada.page.evaluate(() => window.room('fallback').send('and now live'));
    await expect.poll(async () => texts(await bob.view())).toEqual(['from the socket', 'from behind the proxy', 'and now live']);
    await expect.poll(async () => (await ada.view()).members).toEqual(['Ada', 'Bob']);
    const bobs = await bob.view();
    expect(bobs.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('a room message written while the hub is unreachable survives a reload and arrives once', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'notes', 'Ada');
  const bob = await member(browser, 'notes', 'Bob');
  try {
    // Bob's network stops reaching the hub (its socket and its HTTP fallback); the page is still there.
    const cut = { on: true };
    await bob.page.routeWebSocket(/\/ws\/chat/, (ws) => (cut.on ? ws.close({ code: 1011, reason: 'cut by the test' }) : ws.connectToServer()));
    await bob.page.route(/\/api\/chat\//, (route) => (cut.on ? route.abort('internetdisconnected') : route.continue()));
    await bob.page.evaluate(() => window.dispatchEvent(new Event('offline')));
    await expect.poll(async () => (await bob.view()).status).not.toBe('joined');
    const id = await bob.page.evaluate(() => window.room('notes').send('written offline, then the tab was reloaded'));
    expect((await bob.view()).messages.at(-1)).toMatchObject({ id, state: 'pending', mine: true });

    // Reloaded while still cut off: joining the room again shows the message, still waiting.
    await bob.page.reload();
    await bob.page.waitForFunction(() => window.natter && window.join);
    await bob.page.evaluate(() => window.join('notes', 'Bob'));
    await expect.poll(async () => (await bob.view())?.messages.map((m) => [m.id, m.state, m.mine])).toEqual([[id, 'pending', true]]);

    // The hub is reachable again: it goes out once, and Ada sees it once.
    cut.on = false;
    await bob.page.evaluate(() => window.dispatchEvent(new Event('online')));
    await expect.poll(async () => (await bob.view()).status, { timeout: 60_000 }).toBe('joined');
    await expect.poll(async () => (await bob.view()).messages.map((m) => [m.id, m.state])).toEqual([[id, 'sent']]);
    await expect.poll(async () => texts(await ada.view())).toEqual(['written offline, then the tab was reloaded']);
    // Nothing is left in storage to send again on the next page.
    await bob.page.reload();
    await bob.page.waitForFunction(() => window.natter && window.join);
    expect(await bob.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('natter:room-outbox:')))).toEqual([]);
    const stored = await (await fetch(`${hub.url}/api/rooms/notes`)).json();
    expect(stored.lastSeq).toBe(1);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('logout() leaves every room, in the site\'s other tabs too: the next person on a shared computer is in none of them, under no one\'s name', async ({ browser }) => {
  test.slow();
  const bob = await member(browser, 'shared-pc', 'Bob');
  // Ada's two tabs of the site (one browser profile): the second is in a room of its own too.
  const ada = await member(browser, 'shared-pc', 'Ada');
  const tab2 = await ada.context.newPage();
  await tab2.goto(site.url);
  await tab2.waitForFunction(() => window.natter && window.join);
  await tab2.evaluate(() => window.join('ada-only', 'Ada'));
  await expect.poll(() => tab2.evaluate(() => window.view('ada-only')?.status)).toBe('joined');
  try {
    await ada.page.evaluate(() => window.room('shared-pc').send('my private note to Bob'));
    await expect.poll(async () => texts(await bob.view())).toEqual(['my private note to Bob']);
    // The collaboration panel's remembered name (another page of the site may have one).
    await tab2.evaluate(() => localStorage.setItem('natter.rooms.name', 'Ada Private'));

    await ada.page.evaluate(() => window.natter.logout());
    for (const page of [ada.page, tab2]) {
      await expect.poll(() => page.evaluate(() => window.natter.rooms.length)).toBe(0);
    }
    expect(await ada.page.evaluate(() => window.events.filter((e) => e.e === 'status').map((e) => e.detail).at(-1))).toBe('left');
    expect(await tab2.evaluate(() => window.events.filter((e) => e.e === 'status' && e.room === 'ada-only').map((e) => e.detail).at(-1))).toBe('left');
    // Bob sees Ada leave, and Ada's profile keeps nothing of hers.
    await expect.poll(async () => (await bob.view()).members).toEqual(['Bob']);
    const left = await bob.page.evaluate(() => window.events.filter((e) => e.e === 'presence' && !e.detail.joined).map((e) => e.detail.member.name));
    expect(left).toEqual(['Ada']);
    expect(await ada.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('natter:room-outbox:') || k === 'natter.rooms.name'))).toEqual([]);

    // The next person joins the room as themselves: the previous visitor's message is not theirs.
    await ada.page.evaluate(() => window.join('shared-pc', 'Cy'));
    await expect.poll(async () => (await ada.view())?.messages.map((m) => [m.text, m.from, m.mine])).toEqual([['my private note to Bob', 'Ada', false]]);
    await expect.poll(async () => (await bob.view()).members).toEqual(['Bob', 'Cy']);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('a room message longer than the hub\'s --max-text ends failed with a too_large error; the room carries on', async ({ browser }) => {
  const ada = await member(browser, 'long-texts', 'Ada');
  try {
    const [long, fine] = await ada.page.evaluate(() => [window.room('long-texts').send('x'.repeat(4001)), window.room('long-texts').send('y'.repeat(4000))]);
    await expect.poll(async () => (await ada.view()).messages.map((m) => [m.id, m.state])).toEqual([[long, 'failed'], [fine, 'sent']]);
    const errors = await ada.page.evaluate(() => window.events.filter((e) => e.e === 'error').map((e) => e.detail));
    expect(errors).toEqual([{ code: 'too_large', message: '`message` is 4001 characters long; the limit is 4000' }]);
    expect((await ada.view()).status).toBe('joined');
  } finally {
    await ada.context.close().catch(() => {});
  }
});

test('room.messages and room.members are frozen: a page sorting or pushing into them changes nothing another reader sees', async ({ browser }) => {
  const ada = await member(browser, 'frozen', 'Ada');
  try {
    await ada.page.evaluate(() => window.room('frozen').send('hello'));
    await expect.poll(async () => (await ada.view()).messages.map((m) => m.state)).toEqual(['sent']);
    const tried = await ada.page.evaluate(() => {
      const r = window.room('frozen');
      return {
        frozen: [r.messages, r.members, r.typingMembers, r.messages[0], r.members[0]].map(Object.isFrozen),
        push: window.tryIt(() => r.messages.push({ text: 'forged' })),
        rename: window.tryIt(() => { 'use strict'; r.members[0].name = 'Eve'; }),
        after: [r.messages.length, r.members[0].name],
      };
    });
    expect(tried.frozen).toEqual([true, true, true, true, true]);
    expect(tried.push).toMatch(/^TypeError/);
    expect(tried.rename).toMatch(/^TypeError/);
    expect(tried.after).toEqual([1, 'Ada']);
  } finally {
    await ada.context.close().catch(() => {});
  }
});

test('a room id that is not a string is a TypeError, not a room named "undefined" that every such page shares', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(site.url);
    await page.waitForFunction(() => window.natter && window.join);
    const thrown = await page.evaluate(() =>
      [undefined, null, 42, { toString: () => 'sneaky' }].map((id) => {
        try {
          window.natter.joinRoom(id);
          return 'joined';
        } catch (e) {
          return e instanceof TypeError && /joinRoom\(id\)/.test(e.message) ? 'TypeError' : String(e);
        }
      }),
    );
    expect(thrown).toEqual(['TypeError', 'TypeError', 'TypeError', 'TypeError']);
    expect(await page.evaluate(() => window.natter.rooms.length)).toBe(0);
    // The widget carries on: a good id joins.
    await page.evaluate(() => window.join('after-bad-ids', 'Ada'));
    await expect.poll(() => page.evaluate(() => window.view('after-bad-ids')?.status)).toBe('joined');
  } finally {
    await context.close();
  }
});

test('bad input from the page is refused at its own call, and the connection, the room and the others carry on', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'limits', 'Ada');
  const bob = await member(browser, 'limits', 'Bob');
  try {
    const outcome = await ada.page.evaluate(() => {
      const room = window.room('limits');
      return {
        // Not coerced: send(42) would send "42", a name of 5 would join as "5".
        roomNumber: tryIt(() => room.send(42)),
        roomObject: tryIt(() => room.send({ text: 'hi' })),
        supportNumber: tryIt(() => window.natter.send(42)),
        name: tryIt(() => window.natter.joinRoom('named', { name: 5 })),
        // Larger than a frame every hub takes: refused here, not by a hub that closes the
        // connection for every room and the support chat (and again on each reconnect).
        roomText: tryIt(() => room.send('x'.repeat(70_000))),
        // UTF-8 is what counts: 30,000 "é" are 60,002 bytes of JSON, not 30,002.
        roomAccents: tryIt(() => room.send('é'.repeat(30_000))),
        supportText: tryIt(() => window.natter.send('x'.repeat(70_000))),
        update: tryIt(() => room.update({ list: 'x'.repeat(70_000) })),
        cursor: tryIt(() => room.cursor({ trail: Array(20_000).fill(1234) })),
        // `typing('no')` would say "typing"; `retry({})` would look for "[object Object]".
        typingText: tryIt(() => room.typing('no')),
        typingNumber: tryIt(() => room.typing(0)),
        retryObject: tryIt(() => room.retry({})),
        retryNumber: tryIt(() => room.retry(7)),
        typingDefault: tryIt(() => room.typing()),
        rooms: window.natter.rooms.map((r) => r.id),
      };
    });
    for (const key of ['typingText', 'typingNumber']) expect(outcome[key], key).toMatch(/^TypeError: natter: room\.typing\(active\) needs a boolean, not (string|number)$/);
    for (const key of ['retryObject', 'retryNumber']) expect(outcome[key], key).toMatch(/^TypeError: natter: room\.retry\(messageId\) needs a string, not (object|number)$/);
    expect(outcome.typingDefault, 'typing() means typing(true)').toBe('accepted');
    for (const key of ['roomNumber', 'roomObject', 'supportNumber']) expect(outcome[key], key).toMatch(/^TypeError: natter: .*send\(text\) needs a string, not (number|object)$/);
    expect(outcome.name).toMatch(/^TypeError: natter: joinRoom\(id, \{ name \}\) needs a string, not number$/);
    for (const key of ['roomText', 'roomAccents', 'supportText']) expect(outcome[key], key).toMatch(/^RangeError: natter: .*send\(text\) is \d+ bytes of JSON; a message carries at most 55296$/);
    expect(outcome.roomAccents).toContain('is 60002 bytes');
    for (const key of ['update', 'cursor']) expect(outcome[key], key).toMatch(/^RangeError: natter: room "limits": data is \d+ bytes of JSON/);
    expect(outcome.rooms).toEqual(['limits']);

    // The largest text the widget lets through reaches the hub, which refuses it as longer than
    // its --max-text (an `error` for that message) without closing anything.
    const largest = await ada.page.evaluate(() => window.room('limits').send('x'.repeat(55_294)));
    expect(largest).toMatch(/^[0-9a-f]{32}$/);
    await expect
      .poll(() => ada.page.evaluate((id) => window.view('limits').messages.find((m) => m.id === id)?.state, largest))
      .toBe('failed');

    // Nothing was lost on the way: the room never rejoined, and the next message arrives.
    await ada.page.evaluate(() => window.room('limits').send('still here'));
    await expect.poll(async () => texts(await bob.view())).toContain('still here');
    const statuses = await ada.page.evaluate(() => window.events.filter((e) => e.e === 'status').map((e) => e.detail));
    expect(statuses).not.toContain('rejoining');
    expect(await ada.page.evaluate(() => window.natter.state.connected)).toBe(true);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('a room id the hub would refuse: the page hears the error on the room joinRoom returned', async ({ page }) => {
  await page.goto(site.url);
  await page.waitForFunction(() => window.natter);
  await page.evaluate(() => window.natter.loaded);
  const heard = await page.evaluate(async () => {
    const room = window.natter.joinRoom('bad id!', { name: 'Ada' });
    const errors = [];
    room.on('error', (e) => errors.push(e));
    await new Promise((resolve) => setTimeout(resolve, 100));
    return { status: room.status, errors: JSON.parse(JSON.stringify(errors)) };
  });
  expect(heard.status).toBe('refused');
  expect(heard.errors).toHaveLength(1);
  expect(JSON.stringify(heard.errors[0])).toMatch(/bad id!/);
});

/** `[[…[leaf]…]]`, `depth` arrays deep. */
const nestedSource = 'let o = 1; for (let i = 0; i < depth; i++) o = [o]; return o;';

test('mistakes with rooms are said at the page’s call, or once on the console: deep data, bad options, unknown events, calls on a left room or a destroyed widget', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'mistakes', 'Ada');
  const bob = await member(browser, 'mistakes', 'Bob');
  const warnings = [];
  ada.page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  try {
    const outcome = await ada.page.evaluate((src) => {
      const nested = new Function('depth', src);
      const room = window.room('mistakes');
      return {
        // The deepest data every hub reads, and one level more (which the hub dropped, with an
        // error that names no room: nobody heard of it).
        deepest: tryIt(() => room.update({ deepest: nested(125) })),
        tooDeep: tryIt(() => room.update(nested(127))),
        tooDeepCursor: tryIt(() => room.cursor([nested(126)])),
        // Brackets inside strings are text, not depth.
        bracketText: tryIt(() => room.update({ text: '['.repeat(1000) + '{'.repeat(1000) })),
        // Options that are not an object would join without a name; a blank name as "Someone".
        nameString: tryIt(() => window.natter.joinRoom('other', 'Ada')),
        nameNumber: tryIt(() => window.natter.joinRoom('other', 5)),
        openString: tryIt(() => window.natter.openRoom('other', 'Ada')),
        empty: tryIt(() => window.natter.joinRoom('other', { name: '' })),
        blank: tryIt(() => window.natter.joinRoom('other', { name: '   ' })),
        noName: tryIt(() => window.natter.joinRoom('anonymous', {}).leave()),
        // A misspelt event would never fire.
        bogus: tryIt(() => window.natter.on('bogus', () => {})),
        roomBogus: tryIt(() => room.on('bogus', () => {})),
        rooms: window.natter.rooms.map((r) => r.id),
      };
    }, nestedSource);
    expect(outcome.deepest).toBe('accepted');
    expect(outcome.bracketText).toBe('accepted');
    expect(outcome.noName).toBe('accepted');
    for (const key of ['tooDeep', 'tooDeepCursor']) {
      expect(outcome[key], key).toBe('RangeError: natter: room "mistakes": data nests deeper than a hub reads (126 arrays or objects)');
    }
    for (const key of ['nameString', 'nameNumber']) {
      expect(outcome[key], key).toMatch(/^TypeError: natter: joinRoom\(id, options\) needs an object like \{ name: 'Ada' \}, not (string|number)$/);
    }
    expect(outcome.openString).toMatch(/^TypeError: natter: openRoom\(id, options\) needs an object like/);
    for (const key of ['empty', 'blank']) expect(outcome[key], key).toMatch(/^TypeError: natter: joinRoom\(id, \{ name \}\) is blank \(leave it out to join without a name\)$/);
    expect(outcome.bogus).toMatch(/^TypeError: natter: the widget has no "bogus" event \(ready, open, close, message, delivery, unread, status, sound, tokenExpired\)/);
    expect(outcome.roomBogus).toMatch(/^TypeError: natter: rooms have no "bogus" event/);
    expect(outcome.rooms).toEqual(['mistakes']);
    // The deepest data reached Bob whole; the brackets as text.
    await expect
      .poll(() => bob.page.evaluate(() => window.events.filter((e) => e.e === 'update').map((e) => JSON.stringify(e.detail.data).length)))
      .toEqual([JSON.stringify({ deepest: new Function('depth', nestedSource)(125) }).length, JSON.stringify({ text: '['.repeat(1000) + '{'.repeat(1000) }).length]);

    // natter.rooms lists a refused room too (as documented), until the page leaves it.
    await ada.page.evaluate(() => window.natter.joinRoom('bad id!', { name: 'Ada' }));
    await expect.poll(() => ada.page.evaluate(() => window.natter.rooms.map((r) => `${r.id} ${r.status}`))).toEqual(['mistakes joined', 'bad id! refused']);

    // Calls on a left room: nothing happens, and the console says why, once.
    const left = await ada.page.evaluate(() => {
      const room = window.natter.joinRoom('short-lived', { name: 'Ada' });
      room.leave();
      return [room.send('anyone?'), room.update({ a: 1 }), room.cursor({ x: 1 }), room.typing(true), room.markRead(), room.left];
    });
    expect(left).toEqual([undefined, undefined, undefined, undefined, undefined, true]);
    await expect.poll(() => warnings.filter((w) => w.includes('short-lived'))).toEqual([
      'natter: room "short-lived" was left: room.send() and later calls do nothing',
    ]);

    // A destroyed widget: its handle and its rooms say so once each.
    await ada.page.evaluate(() => {
      const room = window.room('mistakes');
      window.natter.destroy();
      window.natter.send('hello?');
      window.natter.open();
      room.send('still there?');
      room.update({});
    });
    await expect.poll(() => warnings.filter((w) => /destroyed/.test(w))).toEqual([
      'natter: this widget was destroyed: send() and later calls do nothing',
      'natter: room "mistakes" is gone (the widget was destroyed): room.send() and later calls do nothing',
    ]);
    // Bob heard nothing of them.
    expect(texts(await bob.view())).not.toContain('still there?');
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('a burst of joins and leaves of one room ends joined under the last name, and its message arrives', async ({ browser }) => {
  test.slow();
  const other = await member(browser, 'flip', 'Other');
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(site.url);
    await page.waitForFunction(() => window.natter && window.join);
    // Faster than the hub's rate allows joins (5 a second after 20): without pacing, some were
    // refused `rate_limited`, their leaves `not_in_room`, and the last room ended `refused`.
    await page.evaluate(() => {
      for (let i = 0; i < 25; i++) window.natter.joinRoom('flip', { name: 'C' }).leave();
      window.join('flip', 'Final');
    });
    await expect.poll(() => page.evaluate(() => window.view('flip')?.members), { timeout: 30_000 }).toEqual(['Final', 'Other']);
    await expect.poll(async () => (await other.view()).members, { timeout: 30_000 }).toEqual(['Final', 'Other']);
    expect((await page.evaluate(() => window.view('flip'))).status).toBe('joined');
    await page.evaluate(() => window.room('flip').send('final says hi'));
    await expect.poll(async () => texts(await other.view())).toContain('final says hi');
    const heard = await page.evaluate(() => window.events.filter((e) => e.room === 'flip' && (e.e === 'error' || e.e === 'status')).map((e) => e.e === 'error' ? `error ${e.detail.code}` : e.detail));
    expect(heard.filter((e) => e.startsWith?.('error'))).toEqual([]);
    expect(heard).not.toContain('refused');
    expect((await page.evaluate(() => window.view('flip'))).messages.map((m) => m.state)).toEqual(['sent']);
  } finally {
    await context.close();
    await other.context.close();
  }
});

test('300 joins at once: paced within the hub\'s budget, 100 joined, the rest refused naming the room cap, the chat connected throughout', async ({ page }) => {
  test.slow();
  await page.goto(site.url);
  await page.waitForFunction(() => window.natter && window.join);
  await page.evaluate(() => {
    window.statuses = [];
    window.natter.on('status', (s) => window.statuses.push(s.status));
  });
  await expect.poll(() => page.evaluate(() => window.natter.state.status)).toBe('Connected');
  await page.evaluate(() => {
    window.many = [];
    window.refusals = [];
    for (let i = 0; i < 300; i++) {
      const room = window.natter.joinRoom(`many-${i}`, { name: 'A' });
      room.on('error', (e) => window.refusals.push(e));
      window.many.push(room);
    }
  });
  const count = () => page.evaluate(() => {
    const by = {};
    for (const r of window.many) by[r.status] = (by[r.status] || 0) + 1;
    return by;
  });
  await expect.poll(count, { timeout: 90_000 }).toEqual({ joined: 100, refused: 200 });
  const refusals = await page.evaluate(() => window.refusals);
  expect(refusals.length).toBe(200);
  for (const e of refusals) expect(e.message).toContain('--max-rooms-per-connection');
  // Never refused for its rate, never cut: the support chat stayed connected.
  expect(refusals.filter((e) => e.code === 'rate_limited')).toEqual([]);
  expect(await page.evaluate(() => window.statuses.filter((s) => s !== 'Connected'))).toEqual([]);
  expect(await page.evaluate(() => window.natter.state.status)).toBe('Connected');
});

test('500 large updates in a loop reach every member, all in order, paced to the hub\'s frame budget instead of cut', async ({ browser }) => {
  test.slow();
  const ada = await member(browser, 'flood', 'Ada');
  const bob = await member(browser, 'flood', 'Bob');
  const cy = await member(browser, 'flood', 'Cy');
  try {
    await expect.poll(async () => (await ada.view()).memberCount).toBe(3);
    // Each costs ~10 KB times three members: 15 MB, fifteen seconds of the hub's default budget.
    await ada.page.evaluate(() => {
      window.statuses = [];
      window.natter.on('status', (s) => window.statuses.push(s.status));
      const room = window.room('flood');
      for (let i = 0; i < 500; i++) room.update({ i, pad: 'x'.repeat(10_000) });
    });
    const received = (m) => m.page.evaluate(() => window.events.filter((e) => e.e === 'update').map((e) => e.detail.data.i));
    const all = Array.from({ length: 500 }, (_, i) => i);
    for (const m of [bob, cy]) await expect.poll(() => received(m), { timeout: 90_000 }).toEqual(all);
    expect(await ada.page.evaluate(() => window.events.filter((e) => e.room === 'flood' && e.e === 'error'))).toEqual([]);
    expect(await ada.page.evaluate(() => window.statuses.filter((s) => s !== 'Connected'))).toEqual([]);
    expect((await ada.view()).status).toBe('joined');
  } finally {
    for (const m of [ada, bob, cy]) await m.context.close().catch(() => {});
  }
});

test('eight rooms over the HTTP fallback share one long-poll: sends are not stuck behind the polls', async ({ browser }) => {
  test.slow();
  // A browser holds six connections to a host over HTTP/1.1. With a poll a room, a member of five
  // rooms had six polls held and every send waited for one of them to end (the poll timeout: two
  // minutes here, so a stuck send is plain).
  const slow = await Hub.start(['--poll-timeout', '120s']);
  const page = `<!doctype html><html><body><script type="module">
    import { mount } from '${slow.url}/index.js';
    window.natter = mount({ server: '${slow.url}', rooms: 'api' });
  </script></body></html>`;
  const room8 = await startSite({ '/': page });
  const open = async (blockSockets) => {
    const context = await browser.newContext();
    const tab = await context.newPage();
    if (blockSockets) await tab.routeWebSocket(/\/ws\/chat/, (ws) => ws.close({ code: 1011, reason: 'blocked by the test proxy' }));
    await tab.goto(room8.url);
    await tab.waitForFunction(() => window.natter);
    return { context, tab };
  };
  const rooms = Array.from({ length: 8 }, (_, i) => `many-${i}`);
  const ada = await open(false);
  const bob = await open(true);
  // The polls Bob's page holds at once.
  const polls = { now: 0, most: 0 };
  const isPoll = (r) => r.url().includes('/api/chat/poll');
  bob.tab.on('request', (r) => isPoll(r) && (polls.most = Math.max(polls.most, ++polls.now)));
  for (const done of ['requestfinished', 'requestfailed']) bob.tab.on(done, (r) => isPoll(r) && polls.now--);
  const texts = (tab, id) => tab.evaluate((id) => window.natter.rooms.find((r) => r.id === id)?.messages.map((m) => m.text), id);
  try {
    await ada.tab.evaluate((ids) => ids.forEach((id) => window.natter.joinRoom(id, { name: 'Ada' })), rooms);
    await bob.tab.evaluate((ids) => ids.forEach((id) => window.natter.joinRoom(id, { name: 'Bob' })), rooms);
    await expect.poll(() => bob.tab.evaluate(() => window.natter.rooms.map((r) => r.status)), { timeout: 60_000 }).toEqual(Array(8).fill('http'));
    // Both ways, in the last room joined and the first, well within one poll timeout.
    for (const id of [rooms[7], rooms[0]]) {
      await ada.tab.evaluate((id) => window.natter.rooms.find((r) => r.id === id).send(`to ${id}`), id);
      await expect.poll(() => texts(bob.tab, id), { timeout: 30_000 }).toEqual([`to ${id}`]);
      await bob.tab.evaluate((id) => window.natter.rooms.find((r) => r.id === id).send(`from ${id}`), id);
      await expect.poll(() => texts(ada.tab, id), { timeout: 30_000 }).toEqual([`to ${id}`, `from ${id}`]);
    }
    // The support chat's poll and the rooms' one.
    expect(polls.most).toBeLessThanOrEqual(2);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
    await room8.close();
    await slow.dispose();
  }
});
