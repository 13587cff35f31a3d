// Rooms for signed-in users, in real Chromium against a real hub with an identity secret (rooms
// are then for signed-in users only, within the `rooms` claim of their token): the others see a
// signed-in member's verified name, never the name the page gave; a room outside the claim is
// refused with an `error` event on its Room, shown in the collaboration panel, and the member's
// other rooms carry on; an anonymous visitor is refused without the widget asking for a token.
import { test, expect } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { Hub, startSite } from '../lib/hub.js';

const SECRET = 'e2e rooms identity secret - at least 32 bytes';

/** An HS256 JWT, signed the way a site's backend would (see docs/identity.md). */
function token(claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iat: now, exp: now + 3600, ...claims })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

let hub;
let site;
test.beforeAll(async () => {
  hub = await Hub.start(['--identity-secret', SECRET]);
  site = await startSite({
    '/': `<!doctype html><html><body><h1>Team</h1><script type="module">
      import { mount } from '${hub.url}/index.js';
      const token = new URLSearchParams(location.search).get('token') || undefined;
      window.tokenExpired = 0;
      window.natter = mount({ server: '${hub.url}', identityToken: token, rooms: true,
        tokenExpired: () => { window.tokenExpired++; return token; } });
      window.events = [];
      window.join = (id, name) => {
        const room = window.natter.joinRoom(id, { name });
        for (const e of ['message', 'presence', 'status', 'error']) {
          room.on(e, (detail) => window.events.push({ room: id, e, detail: JSON.parse(JSON.stringify(detail ?? null)) }));
        }
        return room.id;
      };
      window.view = (id) => {
        const r = window.natter.rooms.find((r) => r.id === id);
        return r && { status: r.status, members: r.members.map((m) => [m.name, m.verified]).sort(),
          messages: r.messages.map((m) => [m.from.name, m.from.verified, m.text, m.state]) };
      };
    </script></body></html>`,
  });
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

/** A browser profile on the site, signed in with `claims` (none: anonymous). */
async function visitor(browser, claims) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(claims ? `${site.url}/?token=${token(claims)}` : site.url);
  await page.waitForFunction(() => window.natter && window.join);
  const view = (room) => page.evaluate((r) => window.view(r), room);
  const events = (room, e) => page.evaluate(([r, e]) => window.events.filter((x) => x.room === r && x.e === e).map((x) => x.detail), [room, e]);
  return { context, page, view, events };
}

test('a signed-in member is shown to the others with the verified name from their token', async ({ browser }) => {
  test.slow();
  const ada = await visitor(browser, { sub: 'ada', name: 'Ada Lovelace', rooms: ['team-*'] });
  const bob = await visitor(browser, { sub: 'bob', name: 'Bob Byte' });
  try {
    await bob.page.evaluate(() => window.join('team-design', 'Bob'));
    await expect.poll(async () => (await bob.view('team-design'))?.status).toBe('joined');
    // The page asks for another name: a signed-in user's verified name is used instead.
    await ada.page.evaluate(() => window.join('team-design', 'Mallory'));
    await expect.poll(async () => (await ada.view('team-design'))?.status).toBe('joined');

    await expect.poll(async () => (await bob.view('team-design')).members).toEqual([['Ada Lovelace', true], ['Bob Byte', true]]);
    const arrived = await bob.events('team-design', 'presence');
    expect(arrived.map((p) => [p.member.name, p.member.verified, p.joined])).toEqual([['Ada Lovelace', true, true]]);
    expect(arrived[0].member.id).toMatch(/^u_[0-9a-f]{16}$/);

    await ada.page.evaluate(() => window.natter.rooms[0].send('Review at three?'));
    await expect.poll(async () => (await bob.view('team-design')).messages).toEqual([['Ada Lovelace', true, 'Review at three?', 'sent']]);
    // Ada's own copy, once stored, carries the name the hub gave it too.
    await expect.poll(async () => (await ada.view('team-design')).messages).toEqual([['Ada Lovelace', true, 'Review at three?', 'sent']]);

    // The collaboration panel says it as well: the name, and "verified" for a screen reader.
    await bob.page.evaluate(() => window.natter.openRoom('team-design'));
    const ada_ = bob.page.locator('[data-natter-rooms] .people li', { hasText: 'Ada Lovelace' });
    await expect(ada_).toHaveAttribute('data-verified', 'true');
    await expect(ada_.locator('.sr')).toHaveText(' (verified)');
    await expect(bob.page.locator('[data-natter-rooms] .msg .who')).toHaveText(['Ada Lovelace']);
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('a room outside the token’s rooms claim is refused with an error event, shown in the panel; other rooms carry on', async ({ browser }) => {
  test.slow();
  const ada = await visitor(browser, { sub: 'ada', name: 'Ada Lovelace', rooms: ['team-*'] });
  const bob = await visitor(browser, { sub: 'bob', name: 'Bob Byte' });
  const warnings = [];
  ada.page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  try {
    await bob.page.evaluate(() => window.join('team-launch', 'Bob'));
    await ada.page.evaluate(() => window.join('team-launch'));
    await ada.page.evaluate(() => window.join('board-room'));
    await expect.poll(async () => (await ada.view('board-room'))?.status).toBe('refused');
    const [error] = await ada.events('board-room', 'error');
    expect(error.code).toBe('forbidden');
    expect(error.message).toContain('"board-room"');
    expect(error.message).toContain('`rooms` claim');
    expect(await ada.events('board-room', 'status')).toEqual(['refused']);
    // Nothing can be said in a refused room.
    expect(await ada.page.evaluate(() => window.natter.rooms.find((r) => r.id === 'board-room').send('hello?'))).toBeUndefined();
    expect((await ada.view('board-room')).messages).toEqual([]);

    // The refusal is the room's: the connection, the identity and the other room carry on.
    expect(await ada.page.evaluate(() => window.tokenExpired)).toBe(0);
    expect(await ada.page.evaluate(() => window.natter.state.user)).toEqual({ id: 'ada', name: 'Ada Lovelace' });
    await expect.poll(async () => (await ada.view('team-launch'))?.status).toBe('joined');
    await bob.page.evaluate(() => window.natter.rooms[0].send('Launch is Friday'));
    await expect.poll(async () => (await ada.view('team-launch')).messages.map((m) => m[2])).toEqual(['Launch is Friday']);

    // The panel on the refused room: what happened, in its own words (the hub's, written for
    // developers in English, are on the console); no text box.
    await ada.page.evaluate(() => window.natter.openRoom('board-room'));
    const panel = ada.page.locator('[data-natter-rooms]');
    const alert = panel.locator('.main [role=alert]');
    await expect(alert).toBeVisible();
    await expect(alert.locator('.what')).toHaveText('You cannot join this room');
    await expect(alert.locator('.why')).toHaveText('');
    // (Once per refusal: openRoom joined it again, and was refused again.)
    expect(warnings.filter((w) => w.startsWith('natter: room "board-room": forbidden:') && w.includes('`rooms` claim'))).toHaveLength(2);
    await expect(panel.getByRole('textbox', { name: 'Message' })).toBeHidden();
    // A signed-in user is not asked for a name: the token's is used.
    await expect(panel.getByLabel('Your name')).toBeHidden();
    // Keyboard focus lands on the room in the list, not on a hidden box.
    await expect(panel.locator('nav ul.rooms button[aria-current="true"]')).toBeFocused();
    await ada.page.screenshot({ path: 'artifacts/rooms-refused.png' });
    // The room it may join still works from the panel.
    await panel.locator('nav ul.rooms button', { hasText: 'team-launch' }).click();
    await expect(alert).toBeHidden();
    await expect(panel.getByRole('textbox', { name: 'Message' })).toBeFocused();
  } finally {
    for (const m of [ada, bob]) await m.context.close().catch(() => {});
  }
});

test('an anonymous visitor is refused rooms on a hub that keeps them to signed-in users', async ({ browser }) => {
  const anon = await visitor(browser, null);
  try {
    await anon.page.evaluate(() => window.join('team-design', 'Eve'));
    await expect.poll(async () => (await anon.view('team-design'))?.status).toBe('refused');
    const [error] = await anon.events('team-design', 'error');
    expect(error.code).toBe('unauthorized');
    expect(error.message).toContain('signed-in users');
    // A room's refusal is not the support chat's: no token is asked for, the chat is connected.
    expect(await anon.page.evaluate(() => window.tokenExpired)).toBe(0);
    await expect.poll(() => anon.page.evaluate(() => window.natter.state.status)).toBe('Connected');
  } finally {
    await anon.context.close().catch(() => {});
  }
});
