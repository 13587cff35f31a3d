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
// audio. So until it has counted, the test never reaches into the page: the session is chosen by
// an init script, messages are written by another client of the same session (the hub's HTTP
// API), and the page reports what happens through its console.
const SESSION = 'feedc0de'.repeat(4);

async function writeFromAnotherTab(id, text) {
  const r = await fetch(`${hub.url}/api/chat/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'user', id, message: text, sessionId: SESSION }),
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
  }, SESSION);
  await page.goto(`${site.url}/`);
  await expect.poll(() => seen.status).toBe('websocket');

  // No gesture on the page yet: browsers do not let it start audio, so no chime, no event.
  await writeFromAnotherTab('m1', 'hello');
  await expect.poll(() => seen.bots).toBe(1);
  expect(seen).toMatchObject({ notes: 0, sounds: 0 });
  await expect(widget(page).badge).toHaveText('1');

  // After the visitor has clicked on the page, the next answer chimes, and says so.
  await page.locator('h1').click();
  await writeFromAnotherTab('m2', 'hello again');
  await expect.poll(() => seen.bots).toBe(2);
  await expect.poll(() => seen.sounds).toBe(1);
  expect(seen.notes).toBeGreaterThan(0);
});
