// The widget put on a page twice (a CMS that emits the tag in its header and its footer, an app
// that calls mount() again): one widget, one socket, one handle, and a clear console warning.
import { test, expect } from '@playwright/test';
import { Hub, startSite } from '../lib/hub.js';
import { widget, ready } from '../lib/widget.js';

let hub;
let site;
test.beforeAll(async () => {
  hub = await Hub.start();
});
test.afterAll(async () => {
  await hub?.dispose();
});
test.afterEach(async () => {
  await site?.close();
  site = undefined;
});

function watch(page) {
  const seen = { sockets: 0, warnings: [] };
  page.on('websocket', () => seen.sockets++);
  page.on('console', (m) => m.type() === 'warning' && m.text().includes('natter') && seen.warnings.push(m.text()));
  return seen;
}

test('the documented tag twice: one widget, one socket, one panel', async ({ page }) => {
  const tag = `<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script>`;
  site = await startSite({
    '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CMS</title>${tag}</head>
<body><h1>Header and footer both add the widget</h1>${tag}</body></html>`,
  });
  const seen = watch(page);
  await page.goto(site.url);
  const w = await ready(page);
  // Let anything late (a second loader's import resolving) happen before counting.
  await page.waitForLoadState('networkidle');
  await expect(w.host).toHaveCount(1);
  expect(seen.sockets).toBe(1);
  expect(seen.warnings.length).toBeGreaterThanOrEqual(1);
  expect(seen.warnings[0]).toMatch(/already/);

  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toHaveCount(1);
  await expect(w.panel).toBeVisible();
});

test('mount() again returns the same handle; after destroy() a new one can be made', async ({ page }) => {
  const seen = watch(page);
  await page.goto(hub.url);
  await ready(page);
  const same = await page.evaluate(async () => {
    const { mount } = await import('/index.js');
    const again = mount({ title: 'Second' });
    return again === window.natter;
  });
  expect(same).toBe(true);
  await expect(widget(page).host).toHaveCount(1);
  expect(seen.sockets).toBe(1);
  expect(seen.warnings.some((t) => /already/.test(t))).toBe(true);

  const fresh = await page.evaluate(async () => {
    const { mount } = await import('/index.js');
    window.natter.destroy();
    const next = mount({ title: 'Fresh' });
    await next.loaded;
    return next !== window.natter;
  });
  expect(fresh).toBe(true);
  await expect(widget(page).host).toHaveCount(1);
  await expect(page.locator('[part=title]')).toHaveText('Fresh');
});

test('a page that replaces <body> (Turbo Drive, pjax, htmx boost) keeps the widget and its conversation', async ({ page }) => {
  site = await startSite({
    '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Page 1</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script></head><body><h1>Page 1</h1></body></html>`,
  });
  const seen = watch(page);
  await page.goto(site.url);
  const w = await ready(page);
  await page.keyboard.press('Control+Shift+C');
  await w.input.fill('typed before the navigation');

  // What Turbo Drive does on a link click: a new <body> replaces the old one, and the URL moves.
  await page.evaluate(() => {
    const next = document.createElement('body');
    next.innerHTML = '<h1>Page 2</h1>';
    document.documentElement.replaceChild(next, document.body);
    history.pushState({}, '', '/page-2');
  });
  await expect(w.host).toHaveCount(1);
  await expect(w.panel).toBeVisible();
  await expect(w.input).toHaveValue('typed before the navigation');
  // pjax and friends: the body's content is replaced.
  await page.evaluate(() => (document.body.innerHTML = '<h1>Page 3</h1>'));
  await expect(w.host).toHaveCount(1);
  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toBeHidden();
  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toBeVisible();
  // Still the one socket.
  expect(seen.sockets).toBe(1);
});

test('after destroy(), the script tag added again mounts a widget', async ({ page }) => {
  site = await startSite({
    '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>App</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script></head><body><h1>App</h1></body></html>`,
  });
  const seen = watch(page);
  await page.goto(site.url);
  await ready(page);
  await page.evaluate((hubUrl) => {
    window.natter.destroy();
    const tag = document.createElement('script');
    tag.src = `${hubUrl}/natter.js`;
    tag.dataset.server = hubUrl;
    tag.dataset.title = 'Mounted again';
    document.head.append(tag);
  }, hub.url);
  await expect(page.locator('[part=title]')).toHaveText('Mounted again');
  await expect(widget(page).host).toHaveCount(1);
  expect(seen.warnings.filter((t) => /already/.test(t))).toEqual([]);
});

test('destroy() with the panel open gives focus back to where it was, as closing does', async ({ page }) => {
  site = await startSite({
    '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>App</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script></head>
<body><h1>App</h1><button id="help">Help</button></body></html>`,
  });
  await page.goto(site.url);
  const w = await ready(page);
  await page.locator('#help').focus();
  await page.keyboard.press('Control+Shift+C');
  await expect(w.input).toBeFocused();
  // The app tears the widget down (a route change) while the visitor is typing in it.
  await page.keyboard.type('half a question');
  await page.evaluate(() => window.natter.destroy());
  await expect(w.host).toHaveCount(0);
  await expect(page.locator('#help')).toBeFocused();
});

test('a colors object made in another frame, or without a prototype, is read like any other', async ({ page }) => {
  await page.goto(hub.url);
  await ready(page);
  const accents = await page.evaluate(async () => {
    const { mount } = await import('/index.js');
    const frame = document.createElement('iframe');
    document.body.append(frame);
    let widget = window.natter;
    const read = async (colors) => {
      widget.destroy();
      widget = mount({ colors });
      await widget.loaded;
      const host = document.querySelector('[data-natter]');
      return getComputedStyle(host).getPropertyValue('--natter-accent').trim();
    };
    // An app configured from its parent frame, and a dictionary made with Object.create(null).
    const other = new frame.contentWindow.Object();
    other.accent = '#ff0000';
    const bare = Object.assign(Object.create(null), { accent: '#00ff00' });
    return [await read(other), await read(bare)];
  });
  expect(accents).toEqual(['#ff0000', '#00ff00']);
});
