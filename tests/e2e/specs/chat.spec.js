// A visitor on the demo page: shortcut, hello, the bot's answer, two tabs of one session.
import { test, expect } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { Hub } from '../lib/hub.js';
import { widget, ready, say, focusedPart, storedMessages } from '../lib/widget.js';

let hub;
test.beforeAll(async () => {
  hub = await Hub.start();
});
test.afterAll(async () => {
  await hub?.dispose();
});

test('Ctrl+Shift+C, "hello" and Enter get the greeting answer', async ({ page }) => {
  await page.goto(hub.url);
  const w = await ready(page);
  // A `ready` listener added after the widget is ready still hears it.
  const late = await page.evaluate(
    () => new Promise((resolve) => window.natter.on('ready', (state) => resolve(state))),
  );
  expect(late).toMatchObject({ connected: true, transport: 'websocket' });
  // Mounting never steals focus from the page.
  expect(await page.evaluate(() => document.activeElement === document.body)).toBe(true);
  await expect(w.panel).toBeHidden();

  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toBeVisible();
  expect(await focusedPart(page)).toContain('input');

  await say(page, 'hello');
  const mine = w.messages('user').filter({ hasText: 'hello' });
  await expect(mine).toHaveCount(1);
  await expect(mine).toHaveAttribute('data-state', 'sent');
  const reply = w.messages('bot').last();
  await expect(reply).toBeVisible();
  await expect(reply).toContainText(/hello|hi|welcome/i);

  // Shift+Enter breaks the line instead of sending.
  await w.input.fill('line one');
  await w.input.press('Shift+Enter');
  await w.input.pressSequentially('line two');
  await expect(w.input).toHaveValue('line one\nline two');

  mkdirSync('artifacts', { recursive: true });
  await page.screenshot({ path: 'artifacts/widget-open.png' });

  // Escape closes and gives focus back to the page.
  await w.input.press('Escape');
  await expect(w.panel).toBeHidden();
});

test('two tabs of one session see each other, each message once', async ({ context }) => {
  // Tab B opens once tab A holds the session the hub issued, as a visitor's second tab does.
  // (Two tabs opened at the very same moment on a first visit can each be issued a session
  // before either sees the other's in localStorage, which Chromium shares between tabs
  // asynchronously; they settle on one only if a tab sees the other's stored first.)
  const a = await context.newPage();
  const b = await context.newPage();
  await a.goto(hub.url);
  await ready(a);
  await b.goto(hub.url);
  await ready(b);
  expect(await b.evaluate(() => window.natter.session)).toBe(await a.evaluate(() => window.natter.session));

  await say(a, 'from tab A');
  await b.keyboard.press('Control+Shift+C');
  await expect(widget(b).withText('from tab A')).toHaveCount(1);

  await say(b, 'from tab B');
  await expect(widget(a).withText('from tab B')).toHaveCount(1);
  await expect(widget(a).withText('from tab A')).toHaveCount(1);

  // A new tab of the same session shows the conversation so far.
  const c = await context.newPage();
  await c.goto(hub.url);
  await ready(c);
  await c.keyboard.press('Control+Shift+C');
  await expect(widget(c).withText('from tab A')).toHaveCount(1);
  await expect(widget(c).withText('from tab B')).toHaveCount(1);
});

test('another visitor (another browser profile) does not see this conversation', async ({ browser }) => {
  const one = await browser.newContext();
  const two = await browser.newContext();
  const p1 = await one.newPage();
  const p2 = await two.newPage();
  await p1.goto(hub.url);
  await p2.goto(hub.url);
  await ready(p1);
  await ready(p2);
  await say(p1, 'private to visitor one');
  await expect(widget(p1).messages('bot')).toHaveCount(1);
  await p2.keyboard.press('Control+Shift+C');
  // Give the hub every chance to (wrongly) deliver: visitor two's own message round-trips after.
  await say(p2, 'visitor two here');
  await expect(widget(p2).messages('bot')).toHaveCount(1);
  await expect(widget(p2).withText('private to visitor one')).toHaveCount(0);
  await one.close();
  await two.close();
});

test('the hub stores each message once (HTTP view of the conversation)', async ({ page }) => {
  await page.goto(hub.url);
  await ready(page);
  await say(page, 'count me once');
  await expect(widget(page).messages('bot').last()).toBeVisible();
  const session = await page.evaluate(() => window.natter.session);
  const stored = await storedMessages(hub.url, session);
  expect(stored.filter((m) => m.message === 'count me once')).toHaveLength(1);
});
