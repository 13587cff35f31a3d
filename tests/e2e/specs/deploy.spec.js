// The deploy guide, tested: Debian's nginx with the configuration docs/deploy.md documents, TLS
// in front of a real hub, and a visitor chatting through it over the WebSocket and over the
// HTTP fallback (POST + long-poll), from the page the proxy serves.
import { test, expect } from '@playwright/test';
import { Hub, freePort } from '../lib/hub.js';
import { startNginx } from '../lib/nginx.js';
import { ready, say, storedMessages } from '../lib/widget.js';

let hub;
let proxy;
test.beforeAll(async () => {
  const port = await freePort();
  // Only the proxied origin may connect: the Origin header must survive the proxy.
  hub = await Hub.start(['--allowed-origin', `https://127.0.0.1:${port}`]);
  proxy = await startNginx({ port, hubPort: hub.port });
});
test.afterAll(async () => {
  await proxy?.stop();
  await hub?.dispose();
});
test.use({ ignoreHTTPSErrors: true });

test('through nginx: the widget loads, connects over the WebSocket and chats', async ({ page }) => {
  await page.goto(`${proxy.url}/`);
  const w = await ready(page, 'Connected');
  expect(await page.evaluate(() => window.natter.state.transport)).toBe('websocket');
  await say(page, 'hello through nginx');
  await expect(w.withText('hello through nginx')).toHaveAttribute('data-state', 'sent');
  await expect(w.messages('bot')).toHaveCount(1);
  const session = await page.evaluate(() => window.natter.session);
  const stored = await storedMessages(hub.url, session);
  expect(stored.filter((m) => m.message === 'hello through nginx')).toHaveLength(1);
  // The upgrade went through the proxy, not around it: nginx logs a WebSocket (101) when it
  // closes, so leave the page.
  await page.goto('about:blank');
  // (The widget's socket URL carries nothing: who it is goes in the `auth` frame.)
  await expect.poll(() => proxy.log()).toMatch(/GET \/ws\/chat(\?[^" ]*)? HTTP\/1\.1" 101/);
});

test('through nginx: with WebSockets refused, the HTTP fallback and its long-poll carry the chat', async ({ page }) => {
  await page.routeWebSocket(/\/ws\/chat/, (ws) => ws.close({ code: 1011, reason: 'blocked by the test' }));
  await page.goto(`${proxy.url}/`);
  const w = await ready(page, 'HTTP fallback');
  await say(page, 'hello over http through nginx');
  await expect(w.withText('hello over http through nginx')).toHaveAttribute('data-state', 'sent');
  // The bot's reply arrives on the long-poll, which nginx must pass on at once.
  await expect(w.messages('bot')).toHaveCount(1);
  expect(proxy.log()).toMatch(/POST \/api\/chat\/messages HTTP\/[\d.]+" 200/);
  expect(proxy.log()).toMatch(/GET \/api\/chat\/poll(\?[^" ]*)? HTTP\/[\d.]+" 200/);
});
