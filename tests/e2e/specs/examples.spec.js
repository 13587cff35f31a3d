// The example apps, as `cargo xtask test` built them (step "examples"), served on their own
// origin and pointed at a real hub: what a web developer copying them would get.
import { test, expect } from '@playwright/test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Hub, ROOT, serveDir } from '../lib/hub.js';
import { widget, ready } from '../lib/widget.js';

let hub;
test.beforeAll(async () => {
  hub = await Hub.start();
});
test.afterAll(async () => {
  await hub?.dispose();
});

for (const name of ['vite', 'react']) {
  test(`examples/${name}: the npm package mounts once and talks to the hub`, async ({ page }) => {
    const dist = join(ROOT, 'examples', name, 'dist');
    expect(existsSync(join(dist, 'index.html')), `${dist} is built by the examples step`).toBe(true);
    const site = await serveDir(dist);
    try {
      await page.goto(`${site.url}/?server=${encodeURIComponent(hub.url)}`);
      const w = await ready(page);
      // React's StrictMode mounts, destroys and mounts again: exactly one widget must remain.
      await expect(w.host).toHaveCount(1);
      await page.getByRole('button', { name: /hello/i }).click();
      await expect(w.panel).toBeVisible();
      // The visitor's own bubble (the bot's greeting answer says "Hello" too).
      await expect(w.messages('user').filter({ hasText: 'hello' })).toHaveAttribute('data-state', 'sent');
      await expect(w.messages('bot')).toHaveCount(1);
      // The app's own UI follows the widget's events.
      await expect(page.locator('body')).toContainText('Connected');
    } finally {
      await site.close();
    }
  });
}
