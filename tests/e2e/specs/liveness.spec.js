// A link that is dead but not closed: the widget talks to the hub through a TCP proxy that stops
// forwarding without closing anything (a sleeping laptop, a network change, a stuck middlebox).
// The widget must notice by itself, say "Reconnecting…", open a fresh socket and deliver, within
// the bounds npm/README.md documents.
import { test, expect } from '@playwright/test';
import { Hub, startSite, readRootFile } from '../lib/hub.js';
import { TcpProxy } from '../lib/proxy.js';
import { widget, ready, say, storedMessages } from '../lib/widget.js';

// The documented bounds (npm/README.md, "Behaviour on a bad network"); checked against the
// README below so that the test and the documentation cannot drift apart.
const AFTER_ACTIVITY_S = 8;
const WHEN_IDLE_S = 28;
// What a fresh connection and the re-send may add on a loaded two-core machine.
const SLACK_MS = 12_000;

let hub;
let proxy;
let site;
test.beforeEach(async () => {
  hub = await Hub.start();
  proxy = await TcpProxy.start(hub.port);
  // The page and the widget's files come from the hub; the link goes through the proxy.
  site = await startSite({
    '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script src="${hub.url}/natter.js" data-server="${proxy.url}" async></script></head>
<body><h1>Shop</h1></body></html>`,
  });
});
test.afterEach(async () => {
  await site?.close();
  await proxy?.close();
  await hub?.dispose();
});

/** Counts the page's WebSockets and records every status the widget reports. */
async function watch(page) {
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.addInitScript(() => {
    window.__statuses = [];
    window.addEventListener('natter:load', (e) => e.detail.on('status', (s) => window.__statuses.push(s.status)));
  });
  return sockets;
}

test('the documented bounds are the ones tested here', () => {
  const readme = readRootFile('npm/README.md');
  expect(readme).toContain(`noticed within ${AFTER_ACTIVITY_S} s`);
  expect(readme).toContain(`within ${WHEN_IDLE_S} s`);
});

test('a send on a silently dead socket: Reconnecting…, a fresh socket, delivered once', async ({ page }) => {
  const sockets = await watch(page);
  await page.goto(site.url);
  const w = await ready(page);
  expect(sockets).toHaveLength(1);

  proxy.blackhole();
  await say(page, 'are you still there?');
  // What browsers fire when a laptop wakes or the network changes; none of them closes the socket.
  await page.evaluate(() => {
    window.dispatchEvent(new Event('online'));
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    document.dispatchEvent(new Event('visibilitychange'));
  });

  const mine = w.withText('are you still there?');
  await expect(mine).toHaveAttribute('data-state', 'sent', { timeout: AFTER_ACTIVITY_S * 1000 + SLACK_MS });
  expect(sockets.length).toBeGreaterThanOrEqual(2);
  await expect(w.status).toContainText('Connected');
  const statuses = await page.evaluate(() => window.__statuses);
  expect(statuses).toContain('Reconnecting…');
  expect(statuses.at(-1)).toBe('Connected');

  await expect(w.messages('bot')).toHaveCount(1);
  await expect(mine).toHaveCount(1);
  const session = await page.evaluate(() => window.natter.session);
  const stored = await storedMessages(hub.url, session);
  expect(stored.filter((m) => m.message === 'are you still there?')).toHaveLength(1);
});

test('the page wakes up (online, pageshow, visible) on a dead socket: a ping finds out', async ({ page }) => {
  const sockets = await watch(page);
  await page.goto(site.url);
  const w = await ready(page);

  proxy.blackhole();
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await expect.poll(() => sockets.length, { timeout: AFTER_ACTIVITY_S * 1000 + SLACK_MS }).toBe(2);
  await expect(w.status).toContainText('Connected');
  expect(await page.evaluate(() => window.__statuses)).toContain('Reconnecting…');
  // The conversation goes on over the new socket.
  await say(page, 'hello again');
  await expect(w.withText('hello again')).toHaveAttribute('data-state', 'sent');
});

test('an idle open page notices a dead socket by itself (time injected)', async ({ page }) => {
  await page.clock.install();
  const sockets = await watch(page);
  await page.goto(site.url);
  const w = await ready(page);
  await page.keyboard.press('Control+Shift+C');

  proxy.blackhole();
  // Nothing happens on the page: no send, no event. Only time passes.
  await page.clock.runFor(WHEN_IDLE_S * 1000);
  await expect.poll(() => sockets.length).toBe(2);
  await expect(w.status).toContainText('Connected');
  expect(await page.evaluate(() => window.__statuses)).toContain('Reconnecting…');
});

test('an HTTP send that never answers is given up on and sent again', async ({ page }) => {
  // WebSockets refused, so HTTP carries the conversation; the first POST of the message hangs.
  await page.routeWebSocket(/\/ws\/chat/, (ws) => ws.close({ code: 1011, reason: 'blocked by the test' }));
  let hung = 0;
  await page.route(/\/api\/chat\/messages/, (route) => {
    if (hung++ === 0) return; // never answered, never closed
    return route.continue();
  });
  await page.clock.install();
  await page.goto(site.url);
  const w = await ready(page, 'HTTP fallback');
  await say(page, 'over a stuck request');
  await expect.poll(() => hung).toBe(1);
  await page.clock.runFor(AFTER_ACTIVITY_S * 2 * 1000);
  await expect(w.withText('over a stuck request')).toHaveAttribute('data-state', 'sent');
  expect(hung).toBe(2);
});
