// The link on a bad network: hub restarts, the visitor goes offline, WebSockets are blocked.
import { test, expect } from '@playwright/test';
import { Hub } from '../lib/hub.js';
import { widget, ready, say, storedMessages } from '../lib/widget.js';

let hub;
test.beforeEach(async () => {
  hub = await Hub.start();
});
test.afterEach(async () => {
  await hub?.dispose();
});

test('hub stopped and restarted: Reconnecting…, then Connected, and the conversation goes on', async ({ page }) => {
  await page.goto(hub.url);
  const w = await ready(page);
  await say(page, 'before the restart');
  await expect(w.messages('bot')).toHaveCount(1);

  await hub.stop();
  await expect(w.status).toContainText('Reconnecting…');
  await hub.spawn();
  await expect(w.status).toContainText('Connected', { timeout: 40_000 });

  await say(page, 'after the restart');
  await expect(w.withText('after the restart')).toHaveAttribute('data-state', 'sent');
  await expect(w.messages('bot')).toHaveCount(2);
  // Nothing shown twice after the resume.
  await expect(w.withText('before the restart')).toHaveCount(1);
});

test('messages typed offline wait in the outbox and are delivered once when back online', async ({ page, context }) => {
  await page.goto(hub.url);
  const w = await ready(page);
  await page.keyboard.press('Control+Shift+C');

  await context.setOffline(true);
  await expect(w.status).toContainText('Offline');
  await say(page, 'offline one');
  await say(page, 'offline two');
  await expect(w.withText('offline one')).toHaveAttribute('data-state', /pending|failed/);
  await expect(w.withText('offline two')).toHaveAttribute('data-state', /pending|failed/);

  await context.setOffline(false);
  await expect(w.status).toContainText('Connected', { timeout: 40_000 });
  await expect(w.withText('offline one')).toHaveAttribute('data-state', 'sent');
  await expect(w.withText('offline two')).toHaveAttribute('data-state', 'sent');
  await expect(w.withText('offline one')).toHaveCount(1);
  await expect(w.withText('offline two')).toHaveCount(1);

  // Stored once each, in the order typed.
  const session = await page.evaluate(() => window.natter.session);
  const users = (await storedMessages(hub.url, session)).filter((m) => m.type === 'user').map((m) => m.message);
  expect(users).toEqual(['offline one', 'offline two']);
});

/**
 * A proxy in front of the page that refuses WebSockets while `blocked` is true (closing each
 * attempt before the hub says anything) and passes them through to the hub afterwards.
 */
/** The hub page's widget destroyed and mounted again from npm's module with `server`. */
function remount(page, server) {
  return page.evaluate(async (server) => {
    window.natter.destroy();
    const { mount } = await import('/index.js');
    window.natter = mount({ server });
  }, server);
}

async function wsGate(page) {
  const gate = { blocked: true, attempts: 0 };
  await page.routeWebSocket(/\/ws\/chat/, (ws) => {
    gate.attempts++;
    if (gate.blocked) ws.close({ code: 1011, reason: 'blocked by the test proxy' });
    else ws.connectToServer();
  });
  return gate;
}

test('the outbox survives a reload while the hub cannot be reached', async ({ page }) => {
  const gate = await wsGate(page);
  let httpBlocked = true;
  await page.route(/\/api\/chat\//, (route) => (httpBlocked ? route.abort() : route.continue()));
  await page.goto(hub.url);
  const w = widget(page);
  await expect(w.launcher).toBeVisible();
  await say(page, 'typed before reload');
  await expect(w.withText('typed before reload')).toHaveAttribute('data-state', /pending|failed/);

  await page.reload();
  await expect(w.launcher).toBeVisible();
  await page.keyboard.press('Control+Shift+C');
  await expect(w.withText('typed before reload')).toHaveCount(1);
  await expect(w.withText('typed before reload')).toHaveAttribute('data-state', /pending|failed/);

  gate.blocked = false;
  httpBlocked = false;
  await expect(w.withText('typed before reload')).toHaveAttribute('data-state', 'sent', { timeout: 60_000 });
  await expect(w.withText('typed before reload')).toHaveCount(1);
  const session = await page.evaluate(() => window.natter.session);
  const stored = await storedMessages(hub.url, session);
  expect(stored.filter((m) => m.message === 'typed before reload')).toHaveLength(1);
});

test('WebSocket blocked: the HTTP fallback carries the conversation and the status says so', async ({ page }) => {
  const gate = await wsGate(page);
  await page.goto(hub.url);
  const w = await ready(page, 'HTTP fallback');
  expect(gate.attempts).toBeGreaterThan(0);
  expect(await page.evaluate(() => window.natter.state.transport)).toBe('http');

  await say(page, 'hello over http');
  await expect(w.withText('hello over http')).toHaveAttribute('data-state', 'sent');
  await expect(w.messages('bot')).toHaveCount(1);

  // When WebSockets work again, the widget moves back by itself.
  gate.blocked = false;
  await expect(w.status).toContainText('Connected', { timeout: 60_000 });
  expect(await page.evaluate(() => window.natter.state.transport)).toBe('websocket');
  await say(page, 'back on the socket');
  await expect(w.messages('bot')).toHaveCount(2);
  await expect(w.withText('hello over http')).toHaveCount(1);
});

test('a server written as ws:// is the same hub: the socket and the HTTP fallback both reach it', async ({ page }) => {
  const gate = await wsGate(page);
  await page.goto(hub.url);
  await ready(page, 'HTTP fallback');
  await remount(page, hub.url.replace(/^http/, 'ws'));
  const w = await ready(page, 'HTTP fallback');
  await say(page, 'fallback to a ws:// server');
  await expect(w.withText('fallback to a ws:// server')).toHaveAttribute('data-state', 'sent');
  await expect(w.messages('bot')).toHaveCount(1);
  gate.blocked = false;
  await expect(w.status).toContainText('Connected', { timeout: 60_000 });
  expect(await page.evaluate(() => window.natter.state.transport)).toBe('websocket');
});

test('a server option that is no URL is named in a console error', async ({ page }) => {
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(hub.url);
  await ready(page);
  for (const server of ['http://[::1', 'ftp://hub.example']) {
    await remount(page, server);
    await page.evaluate(() => window.natter.loaded);
    await expect.poll(() => errors.some((t) => t.includes('server option') && t.includes(server))).toBe(true);
  }
  // A host without its scheme is a relative path to a URL, so the widget would call this page's
  // own origin: the error says how to write it.
  for (const server of ['chat.example.com', 'hub.example.org/natter']) {
    await remount(page, server);
    await page.evaluate(() => window.natter.loaded);
    await expect.poll(() => errors.some((t) => t.includes('server option') && t.includes(`write https://${server}`))).toBe(true);
  }
  // A path on this origin is a server option the widget takes as it is: no error from the
  // widget. (Chromium may still log the previous mount's failed WebSocket to the made-up path
  // after this point; that line is the browser's, not the widget's, so only `natter:` lines count.)
  const before = errors.length;
  await remount(page, '/');
  await page.evaluate(() => window.natter.loaded);
  await expect.poll(() => page.evaluate(() => window.natter.state.connected)).toBe(true);
  expect(errors.slice(before).filter((t) => t.startsWith('natter'))).toEqual([]);
});

test('a page whose Content-Security-Policy refuses WebSockets reaches the HTTP fallback without waiting out open timeouts', async ({ page }) => {
  // `connect-src` names the hub's http origin only: the browser refuses every WebSocket, fails
  // it and (Chromium) never fires `close`. The page's clock is paused, so an attempt that waited
  // for its open timeout (8 s) would keep the widget "Connecting…" through the ten seconds run
  // here; each refusal must count at once, so that three of them, with their backoff, lead to
  // the fallback inside them.
  const origin = new URL(hub.url).origin;
  await page.route(`${origin}/csp-page`, (route) =>
    route.fulfill({
      contentType: 'text/html',
      headers: { 'content-security-policy': `connect-src ${origin}; script-src ${origin} 'wasm-unsafe-eval'` },
      body: `<!doctype html><title>CSP</title><script async src="${origin}/natter.js"></script>`,
    }),
  );
  const refused = [];
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && refused.push(m.text()));
  const start = Date.parse('2026-01-05T09:00:00Z');
  await page.clock.install({ time: start });
  await page.clock.pauseAt(start + 1000);
  await page.goto(`${origin}/csp-page`);
  const w = widget(page);
  await expect(w.launcher).toBeVisible();
  for (let s = 0; s < 10 && !/HTTP fallback/.test((await w.status.textContent()) ?? ''); s++) {
    await page.clock.runFor(1000);
    // Real time for the refused sockets' events and the fallback's requests.
    await page.waitForTimeout(300);
  }
  // Still paused: what the status says now is what ten seconds of the page's time brought.
  await expect(w.status).toContainText('HTTP fallback', { timeout: 3000 });
  expect(refused.length).toBeGreaterThanOrEqual(3);
  await page.clock.resume();
  await say(page, 'hello through a strict policy');
  await expect(w.withText('hello through a strict policy')).toHaveAttribute('data-state', 'sent');
});
