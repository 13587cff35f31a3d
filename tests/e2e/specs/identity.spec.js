// Signed-in users in real Chromium against a real hub with an identity secret: one conversation
// on two devices, logout to an empty anonymous conversation, and an expired token renewed
// through `tokenExpired` with the outbox intact.
import { test, expect } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { Hub, startSite } from '../lib/hub.js';
import { widget, ready, say } from '../lib/widget.js';

const SECRET = 'e2e identity secret - at least 32 bytes long';

/** An HS256 JWT for `sub`, valid for `seconds`, signed the way a site's backend would. */
function token(sub, name, seconds = 3600) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name, iat: now, exp: now + seconds })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

let hub;
let site;
test.beforeAll(async () => {
  // Expiry is checked on the ping beat: a short one makes a token that is running out expire promptly.
  hub = await Hub.start(['--identity-secret', SECRET, '--ping-interval', '500ms']);
  // The site's own page (another origin), mounting the widget from npm's module with the
  // identity token its backend made (here: put in the page by the test).
  site = await startSite({
    '/': `<!doctype html><html><body><h1>Account</h1><script type="module">
      import { mount } from '${hub.url}/index.js';
      const params = new URLSearchParams(location.search);
      window.renewals = 0;
      window.natter = mount({
        server: '${hub.url}',
        identityToken: params.get('token') || undefined,
        tokenExpired: async (reason) => { window.renewals++; window.lastReason = reason; return window.freshToken(); },
      });
    </script></body></html>`,
  });
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

/** The user's conversation as the hub stores it, read with their token. */
async function stored(sub, name) {
  const r = await fetch(`${hub.url}/api/chat/poll?after=0`, { headers: { authorization: `Bearer ${token(sub, name)}` } });
  if (!r.ok) throw new Error(`poll: ${r.status} ${await r.text()}`);
  return (await r.json()).messages;
}

test('a signed-in user on two browsers sees one conversation with their name', async ({ browser }) => {
  // Three browser profiles: give a loaded machine the time.
  test.slow();
  const laptop = await browser.newContext();
  const phone = await browser.newContext();
  const a = await laptop.newPage();
  const b = await phone.newPage();
  await a.goto(`${site.url}/?token=${token('ada', 'Ada Lovelace')}`);
  await ready(a);
  expect(await a.evaluate(() => window.natter.state.user)).toEqual({ id: 'ada', name: 'Ada Lovelace' });
  await say(a, 'hello from the laptop');
  await expect(widget(a).withText('hello from the laptop')).toHaveAttribute('data-state', 'sent');
  await expect(widget(a).messages('bot')).toHaveCount(1);

  // Another browser profile (another device) with a token for the same user.
  await b.goto(`${site.url}/?token=${token('ada', 'Ada Lovelace')}`);
  await ready(b);
  await b.keyboard.press('Control+Shift+C');
  await expect(widget(b).withText('hello from the laptop')).toHaveCount(1);
  await say(b, 'and from the phone');
  await expect(widget(a).withText('and from the phone')).toHaveCount(1);
  // Stored with the verified name; no session was needed (nor kept) for the user.
  const users = (await stored('ada', 'Ada Lovelace')).filter((m) => m.type === 'user');
  expect(users.map((m) => [m.message, m.author])).toEqual([
    ['hello from the laptop', 'Ada Lovelace'],
    ['and from the phone', 'Ada Lovelace'],
  ]);
  // Another user sees none of it.
  const c = await (await browser.newContext()).newPage();
  await c.goto(`${site.url}/?token=${token('bob', 'Bob')}`);
  await ready(c);
  await c.keyboard.press('Control+Shift+C');
  await say(c, 'bob here');
  await expect(widget(c).messages('bot')).toHaveCount(1);
  await expect(widget(c).withText('hello from the laptop')).toHaveCount(0);
  await laptop.close();
  await phone.close();
});

test('logout() starts an empty anonymous conversation', async ({ page }) => {
  await page.goto(`${site.url}/?token=${token('carol', 'Carol')}`);
  const w = await ready(page);
  await say(page, 'my order is late');
  await expect(w.messages('bot')).toHaveCount(1);

  await page.evaluate(() => window.natter.logout());
  await expect(w.status).toContainText('Connected');
  await expect(w.messages()).toHaveCount(0);
  expect(await page.evaluate(() => window.natter.state.user)).toBeNull();
  const session = await page.evaluate(() => window.natter.session);
  expect(session).toMatch(/^[0-9a-f]{32}\.[0-9a-f]{32}$/);
  // A reload stays anonymous and empty (the page gives no token now), in that new session.
  await page.goto(`${site.url}/`);
  await ready(page);
  await page.keyboard.press('Control+Shift+C');
  await say(page, 'anonymous now');
  await expect(w.messages('bot')).toHaveCount(1);
  await expect(w.withText('my order is late')).toHaveCount(0);
  expect(await page.evaluate(() => window.natter.session)).toBe(session);
  // Carol's conversation is intact for Carol.
  expect((await stored('carol', 'Carol')).some((m) => m.message === 'my order is late')).toBe(true);
});

test('identify() after an anonymous start shows all of the user\'s conversation; a fresh token renews in place', async ({ page }) => {
  // Erin already has a conversation: two messages and the bot's two answers (seq 1 to 4).
  for (const [id, message] of [['e1', 'first from erin'], ['e2', 'second from erin']]) {
    const r = await fetch(`${hub.url}/api/chat/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token('erin', 'Erin')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id, message }),
    });
    expect(r.status).toBe(200);
  }
  await expect.poll(async () => (await stored('erin', 'Erin')).length).toBe(4);
  // On this device she starts anonymous and has seen seq 1 and 2 of her anonymous conversation.
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws));
  await page.goto(`${site.url}/`);
  const w = await ready(page);
  await say(page, 'anonymous hello');
  await expect(w.messages('bot')).toHaveCount(1);
  // She logs in: all of her conversation, from its first message (not from after seq 2).
  await page.evaluate((t) => window.natter.identify(t), token('erin', 'Erin'));
  await expect(w.withText('first from erin')).toHaveCount(1);
  await expect(w.withText('second from erin')).toHaveCount(1);
  await expect(w.messages('bot')).toHaveCount(2);
  await expect(w.withText('anonymous hello')).toHaveCount(0);
  expect(sockets.length).toBe(2);
  // Before her token expires the page gives a fresh one: the hub renews the open connection
  // (a new welcome on the same socket), no reconnection.
  const renewed = sockets[1].waitForEvent('framereceived', (f) => String(f.payload).includes('"welcome"'));
  await page.evaluate((t) => window.natter.identify(t), token('erin', 'Erin'));
  await renewed;
  await say(page, 'still here');
  await expect(w.withText('still here')).toHaveAttribute('data-state', 'sent');
  expect(sockets.length).toBe(2);
  // A token that is not a string is a mistake the page hears about at once; nothing changes.
  const thrown = await page.evaluate(() => {
    try {
      window.natter.identify(undefined);
      return null;
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  });
  expect(thrown).toMatch(/^TypeError: .*identify/);
  await expect(w.status).toContainText('Connected');
  expect(sockets.length).toBe(2);
});

test('an expired token is renewed through tokenExpired with the outbox intact', async ({ page }) => {
  // It waits for a token to expire and for a renewal: give a loaded machine the time.
  test.slow();
  let release;
  const renewed = new Promise((resolve) => (release = resolve));
  // The page's backend call for a fresh token: held until the test has typed while signed out.
  await page.exposeFunction('freshToken', () => renewed.then(() => token('dan', 'Dan')));
  // A token that expired 20 s ago: the hub forgives 30 s of clock skew, so it is accepted and
  // runs out about 10 s from now. It may do so before or after the first message is stored (the
  // machine may be slow); either way that message waits in the outbox until the hub accepts the
  // widget again.
  await page.goto(`${site.url}/?token=${token('dan', 'Dan', -20)}`);
  const w = widget(page);
  await expect(w.launcher).toBeVisible();
  await say(page, 'before the token expires');

  // The token expires: the hub refuses it (4401), the widget asks the page for a fresh one.
  await expect(w.status).toContainText('Sign-in expired', { timeout: 60_000 });
  expect(await page.evaluate(() => window.lastReason)).toMatch(/expired/);
  await say(page, 'typed while signed out 1');
  await say(page, 'typed while signed out 2');
  await expect(w.withText('typed while signed out 1')).toHaveAttribute('data-state', 'pending');
  mkdirSync('artifacts', { recursive: true });
  await page.screenshot({ path: 'artifacts/identity-sign-in-expired.png' });

  release();
  await expect(w.status).toContainText('Connected');
  await expect(w.withText('typed while signed out 1')).toHaveAttribute('data-state', 'sent');
  await expect(w.withText('typed while signed out 2')).toHaveAttribute('data-state', 'sent');
  for (const text of ['before the token expires', 'typed while signed out 1', 'typed while signed out 2']) {
    await expect(w.withText(text)).toHaveCount(1);
  }
  expect(await page.evaluate(() => window.renewals)).toBe(1);
  const users = (await stored('dan', 'Dan')).filter((m) => m.type === 'user').map((m) => m.message);
  expect(users).toEqual(['before the token expires', 'typed while signed out 1', 'typed while signed out 2']);
});
