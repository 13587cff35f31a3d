// Unread across pages and tabs: what the visitor has read is kept per conversation (here the
// session the hub issued), so the badge shows the true count on the next page and in every tab,
// until a panel is opened in any of them.
import { test, expect } from '@playwright/test';
import { Hub, startTagSite } from '../lib/hub.js';
import { widget, ready, say } from '../lib/widget.js';

let hub;
let site;
test.beforeAll(async () => {
  // Time to close the panel before the bot answers.
  hub = await Hub.start(['--reply-delay', '1500ms']);
  site = await startTagSite(hub);
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

const unread = (page) => page.evaluate(() => window.natter.state.unread);

test('the badge survives a page change and is shared by tabs until a panel is opened', async ({ context }) => {
  const a = await context.newPage();
  await a.goto(`${site.url}/`);
  const wa = await ready(a);
  await say(a, 'hello');
  await a.keyboard.press('Escape');
  await expect(wa.panel).toBeHidden();
  await expect(wa.messages('bot')).toHaveCount(1);
  await expect(wa.badge).toHaveText('1');

  // The visitor goes to another page of the site.
  await a.goto(`${site.url}/other`);
  await ready(a);
  await expect(wa.badge).toHaveText('1');
  expect(await unread(a)).toBe(1);
  // The launcher tells screen readers too.
  await expect(wa.launcher).toHaveAttribute('aria-label', /1/);

  // A second tab of the same session.
  const b = await context.newPage();
  await b.goto(`${site.url}/`);
  const wb = await ready(b);
  await expect(wb.badge).toHaveText('1');

  // Reading it in tab B reads it everywhere.
  await b.bringToFront();
  await wb.launcher.click();
  await expect(wb.badge).toBeHidden();
  await expect(wa.badge).toBeHidden();
  expect(await unread(a)).toBe(0);
  await a.reload();
  await ready(a);
  await expect(wa.badge).toBeHidden();

  // A new answer while both panels are closed counts again, in both tabs.
  await b.keyboard.press('Escape');
  await a.bringToFront();
  await say(a, 'one more thing');
  await a.keyboard.press('Escape');
  await expect(wa.messages('bot')).toHaveCount(2);
  await expect(wa.badge).toHaveText('1');
  await expect(wb.badge).toHaveText('1');
});

test('a logout in one tab forgets the conversation and its unread count in every tab', async ({ context }) => {
  const a = await context.newPage();
  await a.goto(`${site.url}/`);
  const wa = await ready(a);
  await say(a, 'hello');
  await a.keyboard.press('Escape');
  await expect(wa.messages('bot')).toHaveCount(1);
  await expect(wa.badge).toHaveText('1');
  const b = await context.newPage();
  await b.goto(`${site.url}/other`);
  const wb = await ready(b);
  await expect(wb.badge).toHaveText('1');
  const before = await a.evaluate(() => window.natter.session);

  // The visitor logs out in tab B (a shared computer): tab A forgets it too.
  await b.evaluate(() => window.natter.logout());
  await expect(wa.badge).toBeHidden();
  await expect(wa.messages()).toHaveCount(0);
  expect(await unread(a)).toBe(0);
  // Both tabs settle on one new conversation: each is issued a session, and the one stored
  // first wins (the other tab takes it), whichever tab that was.
  const sessions = () => Promise.all([a, b].map((p) => p.evaluate(() => window.natter.session)));
  await expect
    .poll(async () => {
      const [sa, sb] = await sessions();
      return sa !== before && sa === sb;
    })
    .toBe(true);
  await a.bringToFront();
  await say(a, 'a new visitor');
  await expect(wb.withText('a new visitor')).toHaveCount(1);
});
