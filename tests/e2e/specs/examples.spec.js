// The example apps, as `cargo xtask test` installed and built them (step "examples"), pointed
// at a real hub: built and served on their own origin, and through Vite's dev server, which is
// where a web developer starts.
import { test, expect } from '@playwright/test';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Hub, ROOT, freePort, serveDir } from '../lib/hub.js';
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
    const fetched = [];
    page.on('request', (r) => fetched.push(new URL(r.url()).pathname));
    try {
      await page.goto(`${site.url}/?server=${encodeURIComponent(hub.url)}`);
      const w = await ready(page);
      // Both are the support chat alone (React's through `NatterProvider` with `rooms: false`):
      // no room code is downloaded.
      expect(fetched.filter((p) => p.endsWith('.wasm')), fetched.join(' ')).toHaveLength(1);
      expect(fetched.filter((p) => p.includes('rooms')), fetched.join(' ')).toEqual([]);
      // React's StrictMode mounts, destroys and mounts again: exactly one widget must remain.
      await expect(w.host).toHaveCount(1);
      await page.getByRole('button', { name: /hello/i }).click();
      await expect(w.panel).toBeVisible();
      // The visitor's own bubble (the bot's greeting answer says "Hello" too).
      await expect(w.messages('user').filter({ hasText: 'hello' })).toHaveAttribute('data-state', 'sent');
      await expect(w.messages('bot')).toHaveCount(1);
      // The app's own UI follows the widget's events: the status, and (React) the visitor's
      // message as sent, not "pending" for ever.
      await expect(page.locator('body')).toContainText('Connected');
      if (name === 'react') {
        await expect(page.locator('li').filter({ hasText: /^user: hello/ })).toHaveAttribute('data-state', 'sent');
      }
    } finally {
      await site.close();
    }
  });
}

/** `vite` (the dev server) in `dir` on a free port, until it answers; `stop()` ends it. */
async function viteDev(dir) {
  const port = await freePort();
  const bin = join(dir, 'node_modules/vite/bin/vite.js');
  const proc = spawn(process.execPath, [bin, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', BROWSER: 'none' },
  });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`vite exited early:\n${log}`);
    try {
      if ((await fetch(`${url}/`)).ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`vite did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

for (const name of ['vite', 'react']) {
  test(`examples/${name} in Vite's dev server: the package's wasm is served and the widget chats`, async ({ page }) => {
    const dev = await viteDev(join(ROOT, 'examples', name));
    const failures = [];
    page.on('response', (r) => r.status() >= 400 && failures.push(`${r.status()} ${r.url()}`));
    try {
      await page.goto(`${dev.url}/?server=${encodeURIComponent(hub.url)}`);
      const w = await ready(page);
      await expect(w.host).toHaveCount(1);
      await page.getByRole('button', { name: /hello/i }).click();
      await expect(w.messages('user').filter({ hasText: 'hello' })).toHaveAttribute('data-state', 'sent');
      await expect(w.messages('bot')).toHaveCount(1);
      // No request of the page was refused (the wasm was "outside of Vite serving allow list").
      expect(failures.filter((f) => !f.includes('favicon')), dev.log()).toEqual([]);
      expect(dev.log()).not.toContain('outside of Vite serving allow list');
    } finally {
      await dev.stop();
    }
  });
}
