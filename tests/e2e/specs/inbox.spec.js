// The operator inbox in real Chromium against a real hub: two operators and a visitor, each in
// their own browser context. Sign-in; a visitor's first message in both inboxes; replies both
// ways with typing; the bot silent after an operator's reply; assignment seen by the second
// operator; a private note that never reaches the visitor (checked on the visitor's WebSocket
// frames); close and reopen; with everyone signed out the bot answers and says a person will
// follow up; keyboard-only use and axe; canned replies listed, edited and deleted; the skip
// link; screenshots light, dark and narrow. A hub without operators shows no availability line.
// Then two hubs on a real redis-server: an operator on one answers a visitor on the other.
import { test, expect } from '@playwright/test';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hub, ROOT, freePort } from '../lib/hub.js';
import { widget, ready, say } from '../lib/widget.js';

const BIN = join(ROOT, 'target/debug/natter-hub');
const PASSWORD = 'correct horse battery';
const SHOTS = join(ROOT, 'tests/e2e/artifacts/inbox');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Adds an operator with the real command, as the README says. */
function addOperator(storeArgs, name, display) {
  execFileSync(BIN, [...storeArgs, 'operator', 'add', name, '--display-name', display], { input: `${PASSWORD}\n` });
}

/** Signs in through the inbox's form, with the keyboard only. */
async function signIn(page, url, name) {
  await page.goto(`${url}/inbox`);
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.keyboard.press('Enter');
  await expect(page.getByText(/operators? online/)).toBeVisible();
}

/** Records every text frame the page receives on any WebSocket. */
function recordFrames(page) {
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  return frames;
}

/** axe-core's violations on the page (serious or worse). */
async function axe(page) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.filter((v) => ['serious', 'critical'].includes(v.impact)).map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`);
}

test.describe('one hub', () => {
  let hub;
  test.beforeAll(async () => {
    hub = await Hub.start();
    const db = ['--db', join(hub.dir, 'natter.db')];
    addOperator(db, 'ada', 'Ada Lovelace');
    addOperator(db, 'bob', 'Bob Smith');
  });
  test.afterAll(async () => { await hub?.dispose(); });

  test('two operators answer a visitor in real time', async ({ browser }) => {
    test.slow();
    mkdirSync(SHOTS, { recursive: true });
    // bypassCSP only so the test can inject axe-core; the inbox itself runs under its strict policy.
    const adaCtx = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    const bobCtx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark', bypassCSP: true });
    const visitorCtx = await browser.newContext();
    const ada = await adaCtx.newPage();
    const bob = await bobCtx.newPage();
    const visitor = await visitorCtx.newPage();
    const visitorFrames = recordFrames(visitor);

    await signIn(ada, hub.url, 'ada');
    await signIn(bob, hub.url, 'bob');
    expect(await axe(ada)).toEqual([]);

    // Canned reply, kept in the database.
    await ada.getByText('Canned replies').click();
    await ada.getByLabel('Shortcut').fill('refund');
    await ada.getByLabel('Text', { exact: true }).fill('Refunds reach your account within 3 days.');
    await ada.getByRole('button', { name: 'Save canned reply' }).click();

    // The visitor's first message appears in both inboxes, with a count in the tab title.
    await visitor.goto(hub.url);
    const w = await ready(visitor);
    await expect(visitor.locator("[part~=availability]")).toContainText(/usually reply in a few minutes/i);
    await say(visitor, 'Hello, I was charged twice');
    // The list shows the newest message: the visitor's, or already the bot's answer to it.
    const item = (page) => page.locator('#list [data-id]').first();
    await expect(item(ada)).toContainText(/Hello, I was charged twice|Bot: /);
    await expect(item(bob)).toContainText(/Hello, I was charged twice|Bot: /);
    await expect(ada).toHaveTitle(/^\(1\) Natter inbox/);
    await expect(w.messages('bot')).toHaveCount(1); // the bot answers until a person does

    // Ada opens it with the keyboard: page, browser, history.
    await item(ada).focus();
    await ada.keyboard.press('Enter');
    await expect(ada.getByRole('log', { name: 'Messages' })).toContainText('Hello, I was charged twice');
    await expect(ada.locator('#visitor')).toContainText('Chrome');

    // Typing both ways.
    await w.input.fill('one more thing');
    await expect(ada.locator('#typing')).toHaveText('The visitor is typing…');
    await w.input.fill('');
    await ada.locator('#composer-text').pressSequentially('Let me check');
    await expect(w.typing).toBeVisible();

    // A private note: Bob sees it, the visitor never does.
    await ada.locator('#composer-text').fill('');
    await ada.getByLabel('Private note').check();
    await ada.locator('#composer-text').fill('Double charge on card ending 4242');
    await ada.keyboard.press('Enter');
    await item(bob).click();
    await expect(bob.locator('#notes')).toContainText('Double charge on card ending 4242');

    // Ada replies with a canned reply: the visitor sees her name; assignment shows for Bob.
    await ada.getByLabel('Reply', { exact: true }).check();
    await ada.locator('#composer-text').fill('');
    await ada.locator('#composer-text').pressSequentially('/ref');
    await expect(ada.getByRole('option', { name: /refund/ })).toBeVisible();
    await ada.keyboard.press('Enter');
    await expect(ada.locator('#composer-text')).toHaveValue('Refunds reach your account within 3 days.');
    await ada.keyboard.press('Enter');
    await expect(w.messages('agent')).toContainText('Refunds reach your account within 3 days.');
    await expect(visitor.locator('[part~=message][data-role=agent]')).toContainText('Ada Lovelace');
    await expect(bob.locator('#conv-meta')).toContainText('assigned to Ada Lovelace');

    // The bot stays silent after the operator's reply.
    await say(visitor, 'Thank you! And the second charge?');
    await expect(ada.getByRole('log', { name: 'Messages' })).toContainText('And the second charge?');
    await ada.locator('#composer-text').fill('Refunded too.');
    await ada.keyboard.press('Enter');
    await expect(w.withText('Refunded too.')).toBeVisible();
    await expect(w.messages('bot')).toHaveCount(1);
    expect(visitorFrames.join('\n')).not.toContain('4242');

    await ada.screenshot({ path: join(SHOTS, 'inbox-light.png') });
    await bob.screenshot({ path: join(SHOTS, 'inbox-dark.png') });
    expect(await axe(ada)).toEqual([]);

    // Close: the widget says so; reopen.
    await ada.getByRole('button', { name: 'Close' }).click();
    await expect(visitor.locator('[part~=closed]')).toBeVisible();
    await visitor.screenshot({ path: join(SHOTS, 'widget-closed.png') });
    await ada.getByRole('tab', { name: 'Closed' }).click();
    await expect(item(ada)).toBeVisible();
    await ada.getByRole('button', { name: 'Reopen' }).click();
    await ada.getByRole('tab', { name: 'Open' }).click();
    await expect(item(ada)).toContainText('Refunded too.');

    // Narrow: one pane at a time.
    await ada.setViewportSize({ width: 390, height: 800 });
    await ada.screenshot({ path: join(SHOTS, 'inbox-narrow-conversation.png') });
    await ada.getByRole('button', { name: 'Back to the list' }).click();
    await ada.screenshot({ path: join(SHOTS, 'inbox-narrow-list.png') });

    // Ada answers again (the reopened conversation is handed over to her once more), then both
    // sign out: the widget says nobody is online, and the visitor writing is not left in
    // silence: the bot answers and says once that a person will follow up.
    await ada.setViewportSize({ width: 1280, height: 800 });
    await item(ada).click();
    await ada.locator('#composer-text').fill('Anything else I can do?');
    await ada.keyboard.press('Enter');
    await expect(w.withText('Anything else I can do?')).toBeVisible();
    await ada.getByRole('button', { name: 'Sign out' }).click();
    await bob.getByRole('button', { name: 'Sign out' }).click();
    await expect(visitor.locator("[part~=availability]")).toContainText(/Away/);
    const bots = await w.messages('bot').count();
    await say(visitor, 'One more question about my invoice');
    await expect(w.messages('bot')).toHaveCount(bots + 2);
    await expect(w.messages('bot').last()).toContainText('A person will follow up here');
    await visitor.screenshot({ path: join(SHOTS, 'widget-away.png') });
    await ada.screenshot({ path: join(SHOTS, 'inbox-signin.png') });
    await Promise.all([adaCtx.close(), bobCtx.close(), visitorCtx.close()]);
  });

  test('canned replies are listed, edited and deleted with the keyboard', async ({ browser }) => {
    const ctx = await browser.newContext({ bypassCSP: true });
    const page = await ctx.newPage();
    await signIn(page, hub.url, 'ada');
    const saved = page.getByRole('list', { name: 'Saved canned replies' });
    // Open the section and add one, keyboard only.
    await page.locator('#canned-admin summary').focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('Shortcut').focus();
    await page.keyboard.type('hours');
    await page.keyboard.press('Tab');
    await page.keyboard.type('We answer 9–17 on weekdays.');
    await page.keyboard.press('Tab');
    await expect(page.getByRole('button', { name: 'Save canned reply' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(saved).toContainText('/hours');
    await expect(saved).toContainText('We answer 9–17 on weekdays.');

    // Edit: the form takes the reply, the focus goes to its text; saving replaces it.
    await page.getByRole('button', { name: 'Edit /hours' }).focus();
    await page.keyboard.press('Enter');
    await expect(page.getByLabel('Text', { exact: true })).toBeFocused();
    await expect(page.getByLabel('Shortcut')).toHaveValue('hours');
    await page.getByLabel('Text', { exact: true }).fill('We answer 8–18 on weekdays.');
    await page.keyboard.press('Tab');
    await expect(page.getByRole('button', { name: 'Save changes' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(saved).toContainText('We answer 8–18 on weekdays.');
    await expect(saved).not.toContainText('9–17');
    await expect(page.getByRole('button', { name: 'Edit /hours' })).toBeFocused();
    await expect(page.getByRole('status').filter({ hasText: 'Saved /hours' })).toHaveCount(1);
    expect(await axe(page)).toEqual([]);
    await page.locator('#canned-admin').screenshot({ path: join(SHOTS, 'inbox-canned.png') });

    // Delete: gone from the list and from the hub.
    await page.getByRole('button', { name: 'Delete /hours' }).focus();
    await page.keyboard.press('Enter');
    await expect(saved).not.toContainText('/hours');
    const all = await page.evaluate(async () => (await fetch('/inbox/api/canned')).json());
    expect(all.map((c) => c.shortcut)).not.toContain('hours');
    await ctx.close();
  });

  test('the skip link leads to something visible that takes the focus', async ({ browser }) => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 800 } });
    const page = await ctx.newPage();
    await signIn(page, hub.url, 'ada');
    const skip = page.locator('#skip');
    // No conversation open: it leads to the list.
    await skip.focus();
    await expect(skip).toBeInViewport();
    await expect(skip).toHaveText('Skip to the conversations');
    await page.keyboard.press('Enter');
    await expect(page.locator('#list-panel')).toBeFocused();
    // A conversation open: to the reply box.
    const visitorCtx = await browser.newContext();
    const visitor = await visitorCtx.newPage();
    await visitor.goto(hub.url);
    await ready(visitor);
    await say(visitor, 'Hello from the skip link test');
    // (Any conversation will do; this one makes sure there is one.)
    const item = page.locator('#list [data-id]').first();
    await item.click();
    await expect(page.locator('#composer-text')).toBeVisible();
    await skip.focus();
    await expect(skip).toHaveText('Skip to the reply box');
    await page.keyboard.press('Enter');
    await expect(page.locator('#composer-text')).toBeFocused();
    await Promise.all([ctx.close(), visitorCtx.close()]);
  });

  test('after signing in with the keyboard the focus is on the list, not lost', async ({ browser }) => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, hub.url, 'ada');
    await expect(page.getByRole('tab', { name: 'Open' })).toBeFocused();
    await ctx.close();
  });

  test('an answer that is not JSON (a proxy\'s error page) is reported as such', async ({ browser }) => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, hub.url, 'ada');
    // nginx's page while the hub restarts, in place of the hub's JSON.
    await page.route('**/inbox/api/canned', (route) => (route.request().method() === 'POST'
      ? route.fulfill({ status: 502, contentType: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' })
      : route.continue()));
    await page.getByText('Canned replies').click();
    await page.getByLabel('Shortcut').fill('hello');
    await page.getByLabel('Text', { exact: true }).fill('Hello there!');
    await page.getByRole('button', { name: 'Save canned reply' }).click();
    await expect(page.locator('#canned-error')).toHaveText(/HTTP 502/);
    await ctx.close();
  });
});

test('a hub without operators shows no availability line, until one is added', async ({ browser }) => {
  test.slow();
  const hub = await Hub.start();
  try {
    const ctx = await browser.newContext();
    const visitor = await ctx.newPage();
    await visitor.goto(hub.url);
    const w = await ready(visitor);
    await say(visitor, 'hello');
    // The bot's answer comes after the hub said what it had to say about availability.
    await expect(w.messages('bot')).toHaveCount(1);
    const line = visitor.locator('[part~=availability]');
    await expect(line).toBeHidden();
    await visitor.screenshot({ path: join(SHOTS, 'widget-no-operators.png') });
    // The first operator is added while the page is open: now there is someone to be away.
    const db = ['--db', join(hub.dir, 'natter.db')];
    addOperator(db, 'ada', 'Ada Lovelace');
    await expect(line).toContainText(/Away/);
    execFileSync(BIN, [...db, 'operator', 'remove', 'ada']);
    await expect(line).toBeHidden();
    await ctx.close();
  } finally {
    await hub.dispose();
  }
});

test('an operator on one hub answers a visitor on another, through Redis', async ({ browser }) => {
  test.slow();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'natter-redis-'));
  const redis = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir]);
  try {
    const url = `redis://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try { execFileSync('redis-cli', ['-p', String(port), 'ping']); break; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
    }
    addOperator(['--redis-url', url], 'ada', 'Ada Lovelace');
    const a = await Hub.start(['--redis-url', url]);
    const b = await Hub.start(['--redis-url', url]);
    try {
      const adaCtx = await browser.newContext();
      const visitorCtx = await browser.newContext();
      const ada = await adaCtx.newPage();
      const visitor = await visitorCtx.newPage();
      await signIn(ada, a.url, 'ada');
      await visitor.goto(b.url);
      const w = await ready(visitor);
      await expect(visitor.locator("[part~=availability]")).toContainText(/usually reply/i);
      await say(visitor, 'Hi from hub B');
      const item = ada.locator('#list [data-id]').first();
      await expect(item).toBeVisible();
      await item.click();
      await expect(ada.getByRole('log', { name: 'Messages' })).toContainText('Hi from hub B');
      await ada.locator('#composer-text').fill('Hello from hub A');
      await ada.keyboard.press('Enter');
      await expect(w.withText('Hello from hub A')).toBeVisible();
      await Promise.all([adaCtx.close(), visitorCtx.close()]);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  } finally {
    redis.kill('SIGKILL');
  }
});
