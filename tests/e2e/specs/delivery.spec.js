// The `delivery` event: every state change of a visitor's message reaches the page — pending
// when typed, sent with its seq once stored, failed when refused, pending again (retried) —
// over the WebSocket and over the HTTP fallback.
import { test, expect } from '@playwright/test';
import { Hub } from '../lib/hub.js';
import { ready, widget } from '../lib/widget.js';

let hub;
test.beforeAll(async () => {
  // A small text limit makes a refusal easy to provoke.
  hub = await Hub.start(['--max-text', '20']);
});
test.afterAll(async () => {
  await hub?.dispose();
});

/** Collects `delivery` events as `state[:seq][ retried]` strings, by message id. */
async function record(page) {
  await page.evaluate(() => {
    window.deliveries = {};
    window.natter.on('delivery', (d) => {
      const label = `${d.state}${d.seq === null ? '' : `:${d.seq}`}${d.retried ? ' retried' : ''}`;
      (window.deliveries[d.id] ??= []).push(label);
    });
  });
}

for (const transport of ['websocket', 'http']) {
  test(`delivery events over ${transport}: pending, sent with its seq`, async ({ page }) => {
    if (transport === 'http') await page.routeWebSocket(/\/ws\/chat/, (ws) => ws.close({ code: 1011, reason: 'blocked' }));
    await page.goto(hub.url);
    await ready(page, transport === 'http' ? 'HTTP fallback' : 'Connected');
    await record(page);
    const id = await page.evaluate(() => window.natter.send('hello'));
    await expect(widget(page).messages('user')).toHaveAttribute('data-state', 'sent');
    await expect.poll(() => page.evaluate((id) => window.deliveries[id], id)).toEqual(['pending', 'sent:1']);
  });
}

test('delivery events: a refused message fails, and a retry is told as such', async ({ page }) => {
  await page.goto(hub.url);
  await ready(page);
  await record(page);
  const id = await page.evaluate(() => window.natter.send('this text is longer than twenty characters'));
  const w = widget(page);
  await expect(w.messages('user')).toHaveAttribute('data-state', 'failed');
  await page.keyboard.press('Control+Shift+C');
  await w.messages('user').locator('[part~=retry]').click();
  await expect.poll(() => page.evaluate((id) => window.deliveries[id], id)).toEqual(['pending', 'failed', 'pending retried', 'failed']);
});
