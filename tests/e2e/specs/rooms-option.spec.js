// The widget's two builds: a page downloads the support chat alone unless it asks for rooms
// (`rooms: 'api'`, `rooms: true`, `data-rooms`, the React provider), and then only the build with
// rooms. A page without rooms that calls joinRoom() is told which option to set. The hub serves
// the copy of both builds embedded in it (no --assets), as a deployed hub does.
import { test, expect } from '@playwright/test';
import { Hub, startTagSite, startSite } from '../lib/hub.js';
import { ready } from '../lib/widget.js';

let hub;
let site;
let npmSite;
test.beforeAll(async () => {
  hub = await Hub.start([], { assets: false });
  site = await startTagSite(hub);
  // The npm module's mount() on the site's own page; `?rooms=` is the option's value.
  npmSite = await startSite({
    '/': `<!doctype html><html><body><h1>App</h1><script type="module">
      import { mount } from '${hub.url}/index.js';
      const rooms = new URLSearchParams(location.search).get('rooms');
      window.natter = mount({ server: '${hub.url}', ...(rooms === null ? {} : { rooms: rooms === 'true' || rooms }) });
    </script></body></html>`,
  });
});
test.afterAll(async () => {
  await npmSite?.close();
  await site?.close();
  await hub?.dispose();
});

/** The widget files (by name) `page` requests from the hub from now on. */
function widgetRequests(page) {
  const names = [];
  page.on('request', (r) => {
    if (r.url().startsWith(hub.url + '/')) names.push(new URL(r.url()).pathname.slice(1));
  });
  return names;
}

const SUPPORT = ['natter_widget.js', 'natter_widget_bg.wasm'];
const ROOMS = ['natter_widget_rooms.js', 'natter_widget_rooms_bg.wasm'];
const PANEL = ['natter_widget_rooms_panel.js', 'natter_widget_rooms_bg.wasm'];

/** What joinRoom() and openRoom() throw on this page (null when they do not). */
async function roomCallErrors(page) {
  return page.evaluate(() =>
    ['joinRoom', 'openRoom'].map((method) => {
      try {
        window.natter[method]('lobby', { name: 'Ada' });
        return null;
      } catch (err) {
        return `${err.constructor.name}: ${err.message}`;
      }
    }),
  );
}

test('a page without rooms downloads the support build only, and joinRoom() says which option to set', async ({ page }) => {
  const requested = widgetRequests(page);
  await page.goto(`${site.url}/`);
  await ready(page);
  await page.evaluate(() => window.natter.loaded);
  for (const file of SUPPORT) expect(requested).toContain(file);
  for (const file of [...ROOMS, 'rooms-panel.js']) expect(requested).not.toContain(file);
  // One download of each: the loader's early fetch and index.js's import are the same request.
  expect(requested.filter((f) => f === 'natter_widget_bg.wasm')).toHaveLength(1);
  expect(requested.filter((f) => f === 'natter_widget.js')).toHaveLength(1);

  const [join, open] = await roomCallErrors(page);
  expect(join).toBe(
    'Error: natter.joinRoom: this widget was mounted without rooms; pass { rooms: \'api\' } to mount() ' +
      '({ rooms: true } adds the collaboration panel), or add data-rooms="api" (or data-rooms, with the panel) to the script tag',
  );
  expect(open).toContain('natter.openRoom: this widget was mounted without rooms');
  expect(await page.evaluate(() => window.natter.rooms)).toEqual([]);
  // Nothing was joined in silence, and the support chat carries on.
  await expect(page.locator('[data-natter-rooms]')).toHaveCount(0);
  expect(await page.evaluate(() => window.natter.state.connected)).toBe(true);
});

test('npm mount() without rooms throws the same error at once, before the widget has loaded', async ({ page }) => {
  const requested = widgetRequests(page);
  await page.goto(`${npmSite.url}/`);
  const [join] = await roomCallErrors(page);
  expect(join).toContain("natter.joinRoom: this widget was mounted without rooms; pass { rooms: 'api' }");
  await page.evaluate(() => window.natter.loaded);
  await ready(page);
  for (const file of SUPPORT) expect(requested).toContain(file);
  for (const file of ROOMS) expect(requested).not.toContain(file);
});

test('data-rooms="api" downloads the rooms build only, and rooms work', async ({ browser }) => {
  const members = [];
  for (const name of ['Ada', 'Bob']) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const requested = widgetRequests(page);
    await page.goto(`${site.url}/?rooms=api`);
    await ready(page);
    await page.evaluate((name) => {
      const room = window.natter.joinRoom('split-check', { name });
      window.heard = [];
      room.on('message', (m) => window.heard.push(`${m.from.name}: ${m.text}`));
    }, name);
    members.push({ context, page, requested });
  }
  try {
    const [ada, bob] = members;
    for (const { page } of members) {
      await expect.poll(() => page.evaluate(() => window.natter.rooms[0].memberCount)).toBe(2);
    }
    await ada.page.evaluate(() => window.natter.rooms[0].send('hello from the rooms build'));
    await expect.poll(() => bob.page.evaluate(() => window.heard)).toEqual(['Ada: hello from the rooms build']);
    for (const { requested } of members) {
      for (const file of ROOMS) expect(requested).toContain(file);
      for (const file of [...SUPPORT, 'rooms-panel.js', 'natter_widget_rooms_panel.js']) expect(requested).not.toContain(file);
      expect(requested.filter((f) => f === 'natter_widget_rooms_bg.wasm')).toHaveLength(1);
    }
    // No collaboration panel: `api` is the rooms for the page's own code.
    await expect(ada.page.locator('[data-natter-rooms]')).toHaveCount(0);
  } finally {
    for (const { context } of members) await context.close();
  }
});

test('data-rooms and rooms: true download the rooms build and the panel', async ({ browser }) => {
  for (const url of [`${site.url}/?rooms=`, `${npmSite.url}/?rooms=true`]) {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const requested = widgetRequests(page);
      await page.goto(url);
      await ready(page);
      await expect(page.locator('[data-natter-rooms] button.launch')).toBeVisible();
      // The rooms build's wasm, and its glue bundled with the panel (not the two apart).
      for (const file of PANEL) expect(requested, url).toContain(file);
      for (const file of [...SUPPORT, 'natter_widget_rooms.js', 'rooms-panel.js']) expect(requested, url).not.toContain(file);
      for (const file of PANEL) expect(requested.filter((f) => f === file), url).toHaveLength(1);
      // Styled by the stylesheet the build with rooms hands the panel.
      expect(await launcherPosition(page)).toBe('fixed');
      expect(await roomCallErrors(page)).toEqual([null, null]);
    } finally {
      await context.close();
    }
  }
});

test('a page with the panel in another language fetches one texts file, with the widget\'s texts and the panel\'s', async ({ browser }) => {
  for (const [url, files] of [
    [`${site.url}/?rooms=`, ['locales/rooms-de.json']],
    [`${site.url}/?rooms=api`, ['locales/de.json']],
    [`${site.url}/`, ['locales/de.json']],
  ]) {
    const context = await browser.newContext({ locale: 'de-DE' });
    try {
      const page = await context.newPage();
      const requested = widgetRequests(page);
      await page.goto(url);
      const w = await ready(page, 'Verbunden');
      await expect(w.launcher).toHaveAttribute('aria-label', /Chat öffnen/);
      if (files[0].startsWith('locales/rooms-')) {
        await expect(page.locator('[data-natter-rooms] button.launch')).toContainText('Räume');
      }
      expect(requested.filter((f) => f.startsWith('locales/')), url).toEqual(files);
    } finally {
      await context.close();
    }
  }
});

/** The computed `position` of the collaboration panel's launcher (`fixed` once styled). */
function launcherPosition(page) {
  return page.locator('[data-natter-rooms] button.launch').evaluate((b) => getComputedStyle(b).position);
}

test('data-rooms="api" then openRoom(): the panel alone is fetched on first use, styled', async ({ page }) => {
  const requested = widgetRequests(page);
  await page.goto(`${site.url}/?rooms=api`);
  await ready(page);
  expect(requested).not.toContain('rooms-panel.js');
  await page.evaluate(() => window.natter.openRoom('first-use', { name: 'Ada' }));
  await expect(page.locator('[data-natter-rooms] [role=dialog]')).toBeVisible();
  expect(await launcherPosition(page)).toBe('fixed');
  expect(requested).toContain('rooms-panel.js');
  expect(requested).not.toContain('natter_widget_rooms_panel.js');
  expect(requested.filter((f) => f === 'natter_widget_rooms_bg.wasm')).toHaveLength(1);
});

/** The console errors `page` logs from now on that come from the widget. */
function widgetErrors(page) {
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && m.text().startsWith('natter:')) errors.push(m.text());
  });
  return errors;
}

test('a rooms value the widget does not take is a console error naming it; the support chat carries on', async ({ browser }) => {
  const cases = [
    {
      url: `${site.url}/?rooms=yes`,
      said: 'natter: data-rooms="yes" is not a rooms value (true or data-rooms: rooms and the collaboration panel; ' +
        `'api' or data-rooms="api": rooms without it); the widget is mounted with the support chat alone`,
    },
    { url: `${site.url}/?rooms=API`, said: 'natter: data-rooms="API" is not a rooms value (' },
    { url: `${npmSite.url}/?rooms=yes`, said: "natter: { rooms: 'yes' } is not a rooms value (" },
    { url: `${npmSite.url}/?rooms=API`, said: "natter: { rooms: 'API' } is not a rooms value (" },
    // "false" and "0" are the attribute spellings of no rooms: no error.
    { url: `${site.url}/?rooms=false`, said: null },
    { url: `${site.url}/?rooms=0`, said: null },
  ];
  for (const { url, said } of cases) {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors = widgetErrors(page);
      const requested = widgetRequests(page);
      await page.goto(url);
      await ready(page);
      if (said === null) {
        expect(errors, url).toEqual([]);
      } else {
        expect(errors, url).toHaveLength(1);
        expect(errors[0], url).toContain(said);
      }
      // The support chat alone, as without the option; joinRoom says what was wrong.
      for (const file of SUPPORT) expect(requested, url).toContain(file);
      for (const file of ROOMS) expect(requested, url).not.toContain(file);
      const [join] = await roomCallErrors(page);
      expect(join, url).toContain('natter.joinRoom: this widget was mounted without rooms');
      if (said !== null) expect(join, url).toContain(`rooms (${said.replace(/^natter: /, '').split(' (')[0]}); pass`);
      expect(await page.evaluate(() => window.natter.rooms), url).toEqual([]);
    } finally {
      await context.close();
    }
  }
});

test('destroy() then mount({ rooms: "api" }) on a support-only page loads the rooms build and joins', async ({ page }) => {
  const requested = widgetRequests(page);
  await page.goto(`${npmSite.url}/`);
  await ready(page);
  for (const file of ROOMS) expect(requested).not.toContain(file);
  const status = await page.evaluate(async (server) => {
    const { mount } = await import(`${server}/index.js`);
    window.natter.destroy();
    window.natter = mount({ server, rooms: 'api' });
    await window.natter.loaded;
    return window.natter.joinRoom('after-destroy', { name: 'Ada' }) && 'joining';
  }, hub.url);
  expect(status).toBe('joining');
  await expect.poll(() => page.evaluate(() => window.natter.rooms[0]?.status)).toBe('joined');
  for (const file of ROOMS) expect(requested).toContain(file);
  await expect(page.locator('[data-natter]')).toHaveCount(1);
});
