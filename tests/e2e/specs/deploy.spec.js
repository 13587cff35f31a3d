// The deploy guide, tested: Debian's nginx with the configuration docs/deploy.md documents, TLS
// in front of a real hub, and a visitor chatting through it over the WebSocket and over the
// HTTP fallback (POST + long-poll), from the page the proxy serves; and its systemd unit, as
// systemd itself reads it.
import { test, expect } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hub, ROOT, freePort, readRootFile } from '../lib/hub.js';
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

test('the systemd unit in docs/deploy.md is one systemd reads without a complaint', () => {
  const match = readRootFile('docs/deploy.md').match(/```ini\n([\s\S]*?)```/);
  expect(match, 'docs/deploy.md has an ```ini block with the unit').not.toBeNull();
  // The only machine-specific part: where the binary is (systemd checks it exists).
  const installed = 'ExecStart=/usr/local/bin/natter-hub\n';
  expect(match[1].split(installed)).toHaveLength(2);
  const unit = match[1].replace(installed, `ExecStart=${join(ROOT, 'target/debug/natter-hub')}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'natter-systemd-'));
  try {
    const file = join(dir, 'natter-hub.service');
    writeFileSync(file, unit);
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    expect(r.error, 'systemd-analyze is missing (apt-get install systemd)').toBeUndefined();
    // systemd ignores what it cannot use with a warning ("Invalid URL, ignoring: …"): a unit
    // that loads is not enough, it must load as written.
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
