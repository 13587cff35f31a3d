// A page whose origin the hub does not allow: the widget tells this refusal from an outage,
// says so in its status, logs one console error that names the page's origin and the hub flag
// that would allow it (or, for a page opened from a file, that it needs a web server), fails
// what the visitor types instead of "Sending…" for ever, and stops knocking on the hub's door.
import { test, expect } from '@playwright/test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Hub, startSite, freePort } from '../lib/hub.js';
import { widget, ready, say } from '../lib/widget.js';

let hub;
let site;
test.beforeAll(async () => {
  // The hub allows some other site, not this one.
  hub = await Hub.start(['--allowed-origin', `http://127.0.0.1:${await freePort()}`]);
  site = await startSite({
    '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script></head>
<body><h1>A site the hub does not know</h1></body></html>`,
    // A signed-in user's page: the widget's HTTP calls carry the token in a header, so the
    // browser sends a CORS preflight first.
    '/account': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Account</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" data-identity-token="a.signed.token" async></script></head>
<body><h1>Signed in on a site the hub does not know</h1></body></html>`,
    // A German page: the status says it in German.
    '/de': `<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Nicht erlaubt</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" data-locale="de" async></script></head>
<body><h1>Eine Seite, die der Hub nicht kennt</h1></body></html>`,
  });
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

test('a refused origin shows "Chat is not available on this site", says why once, and stops', async ({ page }) => {
  const natterErrors = [];
  page.on('console', (m) => m.type() === 'error' && m.text().startsWith('natter:') && natterErrors.push(m.text()));
  const hubRequests = [];
  page.on('request', (r) => r.url().startsWith(hub.url) && /\/(ws|api)\//.test(r.url()) && hubRequests.push(r.url()));

  await page.goto(site.url);
  const w = await ready(page, 'Chat is not available on this site');
  await expect(w.status).toHaveAttribute('data-status', 'unavailable');
  expect(await page.evaluate(() => window.natter.state)).toMatchObject({
    connected: false,
    transport: 'none',
    status: 'Chat is not available on this site',
  });
  expect(natterErrors).toHaveLength(1);
  expect(natterErrors[0]).toContain(site.url);
  expect(natterErrors[0]).toContain(`--allowed-origin ${site.url}`);
  expect(natterErrors[0]).toContain(hub.url);

  // What the visitor types fails at once (with a retry button), and is not sent anywhere.
  const before = hubRequests.length;
  await say(page, 'is anyone there?');
  await expect(w.withText('is anyone there?')).toHaveAttribute('data-state', 'failed');
  // Nothing wakes it: no reconnect on online / pageshow / visibility, no timer left running.
  await page.evaluate(() => {
    window.dispatchEvent(new Event('online'));
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    document.dispatchEvent(new Event('visibilitychange'));
  });
  // Longer than the first reconnect, probe and poll backoffs (0.5–2 s).
  await page.waitForTimeout(3_000);
  expect(hubRequests.slice(before)).toEqual([]);
  expect(natterErrors).toHaveLength(1);
});

test('a signed-in page (credentials in headers, so a preflight) is told the same', async ({ page }) => {
  const natterErrors = [];
  page.on('console', (m) => m.type() === 'error' && m.text().startsWith('natter:') && natterErrors.push(m.text()));
  const polls = [];
  page.on('request', (r) => r.url().startsWith(`${hub.url}/api/chat/poll`) && polls.push(r.headers()));

  await page.goto(`${site.url}/account`);
  const w = await ready(page, 'Chat is not available on this site');
  await expect(w.status).toHaveAttribute('data-status', 'unavailable');
  // The refusal was read through a request that needed a preflight (it carries the token).
  expect(polls.length).toBeGreaterThan(0);
  expect(polls[0].authorization).toBe('Bearer a.signed.token');
  expect(natterErrors).toHaveLength(1);
  expect(natterErrors[0]).toContain(`--allowed-origin ${site.url}`);
});

test('the refusal is said in the page’s language', async ({ page }) => {
  await page.goto(`${site.url}/de`);
  const w = await ready(page, 'Der Chat ist auf dieser Website nicht verfügbar');
  await expect(w.status).toHaveAttribute('data-status', 'unavailable');
  // The API keeps the English name, whatever the language on screen.
  expect(await page.evaluate(() => window.natter.state.status)).toBe('Chat is not available on this site');
});

test('a page opened from a file is told to serve it, not given a flag value the hub refuses', async ({ page }) => {
  // Its origin is opaque: the browser sends `Origin: null`, and the hub refuses both
  // `--allowed-origin null` and `--allowed-origin file://` at start.
  const dir = mkdtempSync(join(tmpdir(), 'natter-file-page-'));
  try {
    const file = join(dir, 'index.html');
    writeFileSync(file, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>From a file</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script></head>
<body><h1>Opened from disk</h1></body></html>`);
    const natterErrors = [];
    page.on('console', (m) => m.type() === 'error' && m.text().startsWith('natter:') && natterErrors.push(m.text()));
    await page.goto(pathToFileURL(file).href);
    const w = await ready(page, 'Chat is not available on this site');
    await expect(w.status).toHaveAttribute('data-status', 'unavailable');
    expect(natterErrors).toHaveLength(1);
    expect(natterErrors[0]).toContain(hub.url);
    expect(natterErrors[0]).toContain('Serve it from a web server');
    expect(natterErrors[0]).not.toMatch(/--allowed-origin (file:|null)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
