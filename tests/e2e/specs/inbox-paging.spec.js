// The operator inbox's list comes in pages: with more conversations than one page holds, "Load
// more" (a button, used here with the keyboard alone) loads the next, and the operator reaches
// the oldest conversation of sixty. Real Chromium against a real hub; the conversations are
// opened over the HTTP fallback, each in a new session the hub issues.
import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Hub, ROOT } from '../lib/hub.js';

const BIN = join(ROOT, 'target/debug/natter-hub');
const PASSWORD = 'correct horse battery';

test('Load more reaches the 60th conversation', async ({ browser }) => {
  test.slow();
  const hub = await Hub.start([], { assets: false });
  try {
    execFileSync(BIN, ['--db', join(hub.dir, 'natter.db'), 'operator', 'add', 'ada', '--display-name', 'Ada'], { input: `${PASSWORD}\n` });
    // The first (so the oldest) is the one to find; 59 more bury it below the first page of 50.
    for (let i = 1; i <= 60; i++) {
      const r = await fetch(`${hub.url}/api/chat/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: `conversation number ${i}`, context: { page: `/page-${i}` } }),
      });
      expect(r.status).toBe(200);
    }
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${hub.url}/inbox`);
    await page.getByLabel('Name').fill('ada');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.keyboard.press('Enter');
    const items = page.locator('#list .item');
    await expect(items).toHaveCount(50);
    await expect(page.locator('#list .page', { hasText: /^\/page-1$/ })).toHaveCount(0);
    const more = page.getByRole('button', { name: 'Load more conversations' });
    await expect(more).toBeVisible();
    // With the keyboard: focus the button, press Enter; the focus moves to the first new one.
    await more.focus();
    await page.keyboard.press('Enter');
    await expect(items).toHaveCount(60);
    await expect(more).toBeHidden();
    const oldest = page.locator('#list .item', { has: page.locator('.page', { hasText: /^\/page-1$/ }) });
    await expect(oldest).toHaveCount(1);
    await expect(items.last().locator('.page')).toHaveText('/page-1');
    await expect(page.locator('#list .item:focus')).toHaveCount(1);
    // It opens like any other.
    await oldest.click();
    await expect(page.locator('#log')).toContainText('conversation number 1');
  } finally {
    await hub.dispose();
  }
});
