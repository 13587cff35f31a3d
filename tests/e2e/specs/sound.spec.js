// The `sound` event means the chime played: never when the browser would not let it play.
import { test, expect } from '@playwright/test';
import { CHROMIUM_ARGS } from '../playwright.config.js';
import { Hub, startTagSite } from '../lib/hub.js';
import { widget } from '../lib/widget.js';

// The browser's real autoplay policy: no sound before the visitor has interacted with the page.
// No trace or screenshots either: recording them reaches into the page with a user gesture.
test.use({
  trace: 'off',
  screenshot: 'off',
  launchOptions: {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS.filter((a) => !a.startsWith('--autoplay-policy')),
  },
});

let hub;
let site;
test.beforeAll(async () => {
  hub = await Hub.start();
  site = await startTagSite(hub);
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

// Playwright's evaluate() acts with a user gesture, which would unlock
// audio. So until it has counted, the test never reaches into the page: the session (one the hub
// issued to another client) is put in storage by an init script, messages are written by that
// other client of the same session (the hub's HTTP API), and the page reports what happens
// through its console.
async function issuedSession() {
  const r = await fetch(`${hub.url}/api/chat/poll`);
  expect(r.ok, await r.text()).toBe(true);
  const session = r.headers.get('x-natter-session');
  expect(session).toBeTruthy();
  return session;
}

async function writeFromAnotherTab(session, id, text) {
  const r = await fetch(`${hub.url}/api/chat/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-natter-session': session },
    body: JSON.stringify({ type: 'user', id, message: text }),
  });
  expect(r.ok, await r.text()).toBe(true);
}

test('`sound` fires when, and only when, the chime actually played', async ({ page }) => {
  const seen = { status: '', bots: 0, notes: 0, sounds: 0 };
  page.on('console', (m) => {
    const [kind, value] = m.text().split(' ');
    if (kind === 'natter-status') seen.status = value;
    if (kind === 'natter-bot') seen.bots++;
    if (kind === 'natter-note') seen.notes++;
    if (kind === 'natter-sound') seen.sounds++;
  });
  const session = await issuedSession();
  await page.addInitScript((session) => {
    localStorage.setItem('natter:session', session);
    const start = OscillatorNode.prototype.start;
    OscillatorNode.prototype.start = function (...args) {
      console.log('natter-note');
      return start.apply(this, args);
    };
    window.addEventListener('natter:load', (e) => {
      const natter = e.detail;
      natter.on('status', (s) => console.log('natter-status', s.transport));
      natter.on('message', (m) => m.role === 'bot' && console.log('natter-bot'));
      natter.on('sound', () => console.log('natter-sound'));
    });
  }, session);
  await page.goto(`${site.url}/`);
  await expect.poll(() => seen.status).toBe('websocket');

  // No gesture on the page yet: browsers do not let it start audio, so no chime, no event.
  await writeFromAnotherTab(session, 'm1', 'hello');
  await expect.poll(() => seen.bots).toBe(1);
  expect(seen).toMatchObject({ notes: 0, sounds: 0 });
  await expect(widget(page).badge).toHaveText('1');

  // After the visitor has clicked on the page, the next answer chimes, and says so.
  await page.locator('h1').click();
  await writeFromAnotherTab(session, 'm2', 'hello again');
  await expect.poll(() => seen.bots).toBe(2);
  await expect.poll(() => seen.sounds).toBe(1);
  expect(seen.notes).toBeGreaterThan(0);
});
