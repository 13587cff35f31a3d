// The hub as an operator starts it: from any directory, without --assets, it serves the widget
// built into it, and its start-up log says where everything is — in plain text, since its
// output is not a terminal here.
import { test, expect } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hub, ROOT } from '../lib/hub.js';
import { ready, say, widget } from '../lib/widget.js';

let hub;
test.beforeAll(async () => {
  // Hub.start runs it in a fresh temporary directory: nothing of the repository is around it.
  hub = await Hub.start([], { assets: false });
});
test.afterAll(async () => {
  await hub?.dispose();
});

test('started from another directory without --assets, the hub serves its embedded widget', async ({ page }) => {
  const served = await fetch(`${hub.url}/natter.js`);
  expect(served.status).toBe(200);
  // The same widget `cargo xtask build` made (gzip asked for nothing: the raw file).
  expect(Buffer.from(await served.arrayBuffer()).equals(readFileSync(join(ROOT, 'npm/dist/natter.js')))).toBe(true);
  expect((await fetch(`${hub.url}/natter_widget_bg.wasm`)).headers.get('content-type')).toBe('application/wasm');
  // The texts of a language, which a page in that language downloads from beside index.js.
  const german = await fetch(`${hub.url}/locales/de.json`);
  expect(german.status).toBe(200);
  expect(await german.text()).toBe(readFileSync(join(ROOT, 'npm/dist/locales/de.json'), 'utf8'));

  await page.goto(hub.url);
  const w = await ready(page);
  await say(page, 'hello');
  await expect(w.messages('bot')).toHaveCount(1);
  await expect(widget(page).messages('user')).toHaveAttribute('data-state', 'sent');
  // The demo page has an icon (no 404 in the console on a first look).
  expect((await fetch(`${hub.url}/favicon.svg`)).headers.get('content-type')).toBe('image/svg+xml');
});

test('the start-up log names the address, the database, the rules and the widget, without colour codes', async () => {
  const line = hub.log.split('\n').find((l) => l.includes('natter hub listening'));
  expect(line, hub.log).toBeTruthy();
  expect(line).toContain(`addr=127.0.0.1:${hub.port}`);
  expect(line).toContain(`database=sqlite ${join(hub.dir, 'natter.db')}`);
  expect(line).toContain('rules=built-in');
  expect(line).toMatch(/widget=embedded in the binary/);
  expect(hub.log).not.toMatch(/\x1b\[/);
});
