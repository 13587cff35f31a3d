// The web developer's own site, on another origin, with hostile CSS and a strict CSP: one script
// tag must still give a working, intact widget, and the widget must not touch the host page. A
// page that enforces Trusted Types gets a working widget too.
import { test, expect } from '@playwright/test';
import { Hub, startSite } from '../lib/hub.js';
import { widget, ready, say } from '../lib/widget.js';

let hub;
let site;
let trustedSite;

const HOSTILE_CSS = `
* { color: rgb(255, 0, 0) !important; font-family: "Comic Sans MS", fantasy !important;
    line-height: 3 !important; box-sizing: content-box !important; }
div { margin: 40px !important; opacity: 0.4; }
button { background: rgb(0, 255, 0) !important; border: 6px dashed blue !important; padding: 30px !important; }
textarea { display: none !important; }
[part], .launcher, .panel, .message, .natter { display: none !important; }
body { font-size: 31px; }
`;

test.beforeAll(async () => {
  hub = await Hub.start();
  const hubOrigin = hub.url;
  const wsOrigin = hubOrigin.replace('http:', 'ws:');
  const csp = [
    "default-src 'none'",
    `script-src 'self' ${hubOrigin} 'wasm-unsafe-eval'`,
    `connect-src ${hubOrigin} ${wsOrigin}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  site = await startSite(
    {
      '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme shop</title>
<link rel="stylesheet" href="/hostile.css">
<script src="${hubOrigin}/natter.js" data-server="${hubOrigin}" async></script>
</head><body><h1>Acme shop</h1><button id="buy">Buy now</button></body></html>`,
      '/hostile.css': { type: 'text/css', body: HOSTILE_CSS },
    },
    { 'content-security-policy': csp },
  );
  // Trusted Types enforced, with the widget's policy allowed by name (as its README says).
  trustedSite = await startSite(
    {
      '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme bank</title>
<script src="${hubOrigin}/natter.js" data-server="${hubOrigin}" async></script>
</head><body><h1>Acme bank</h1></body></html>`,
    },
    { 'content-security-policy': `${csp}; require-trusted-types-for 'script'; trusted-types natter` },
  );
});
test.afterAll(async () => {
  await trustedSite?.close();
  await site?.close();
  await hub?.dispose();
});

test('one script tag on another origin with hostile CSS and a strict CSP', async ({ page }) => {
  const violations = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  const before = await (await fetch(site.url + '/hostile.css')).text();
  expect(before).toContain('Comic Sans');

  await page.goto(site.url);
  const w = await ready(page);
  await expect(w.launcher).toBeVisible();

  // The host page's CSS does not reach in.
  const launcherStyle = await w.launcher.evaluate((el) => {
    const s = getComputedStyle(el);
    return { bg: s.backgroundColor, border: s.borderTopStyle, font: s.fontFamily, padding: s.paddingTop };
  });
  expect(launcherStyle.bg).not.toBe('rgb(0, 255, 0)');
  expect(launcherStyle.border).not.toBe('dashed');
  const box = await w.launcher.boundingBox();
  expect(box.width).toBeGreaterThan(30);
  expect(box.width).toBeLessThan(120);

  await say(page, 'hello');
  await expect(w.input).toBeVisible();
  const reply = w.messages('bot').last();
  await expect(reply).toBeVisible();
  const textStyle = await reply.evaluate((el) => {
    const s = getComputedStyle(el);
    return { color: s.color, font: s.fontFamily };
  });
  expect(textStyle.color).not.toBe('rgb(255, 0, 0)');
  expect(textStyle.font).not.toContain('Comic Sans');

  // Ours does not leak out: no stylesheet added to the document, the host's button untouched.
  const host = await page.evaluate(() => ({
    sheets: document.styleSheets.length,
    adopted: document.adoptedStyleSheets.length,
    inlineStyles: document.querySelectorAll('style').length,
    buy: getComputedStyle(document.getElementById('buy')).backgroundColor,
  }));
  expect(host).toEqual({ sheets: 1, adopted: 0, inlineStyles: 0, buy: 'rgb(0, 255, 0)' });

  // The strict CSP was never violated.
  expect(await page.evaluate(() => window.__violations)).toEqual([]);
  expect(violations).toEqual([]);

  // window.natter is the handle, on this origin too.
  const state = await page.evaluate(() => window.natter.state);
  expect(state).toMatchObject({ connected: true, transport: 'websocket', open: true });
  await page.screenshot({ path: 'artifacts/hostile-host.png' });
});

test('a page that enforces Trusted Types: the widget mounts through its `natter` policy', async ({ page }) => {
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy|TrustedHTML|Refused to/i.test(m.text())) errors.push(m.text());
  });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));
  });
  await page.goto(trustedSite.url);
  const w = await ready(page);
  await say(page, 'hello from https://example.com/pricing');
  await expect(w.messages('bot').last()).toBeVisible();
  // The link in the visitor's text became an anchor (made element by element, not parsed).
  await expect(w.withText('hello from').locator('a')).toHaveAttribute('href', 'https://example.com/pricing');
  expect(await page.evaluate(() => window.__violations)).toEqual([]);
  expect(errors.filter((e) => !/favicon|404/.test(e))).toEqual([]);
});
