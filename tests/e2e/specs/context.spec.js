// Page context in a single-page app: every message carries the page and title as they are when
// the visitor writes it (not when the widget mounted, not when an outbox re-send goes out), plus
// the fields the app sets with setContext().
import { test, expect } from '@playwright/test';
import { Hub, startSite } from '../lib/hub.js';
import { widget, ready, say, storedMessages } from '../lib/widget.js';

let hub;
let site;
test.beforeAll(async () => {
  hub = await Hub.start();
  const shop = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop — Acme</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" async></script></head>
<body><h1>Shop</h1></body></html>`;
  site = await startSite({ '/shop': shop });
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

async function contextOf(page, text) {
  const session = await page.evaluate(() => window.natter.session);
  const stored = await storedMessages(hub.url, session);
  const m = stored.find((m) => m.type === 'user' && m.message === text);
  expect(m, `"${text}" is stored`).toBeTruthy();
  return m.context;
}

test('history.pushState: the message carries the page and title it was written on', async ({ page }) => {
  await page.goto(`${site.url}/shop`);
  const w = await ready(page);
  await page.evaluate(() => {
    history.pushState({}, '', '/checkout');
    document.title = 'Checkout — Acme';
  });
  await say(page, 'the checkout button is broken');
  await expect(w.withText('the checkout button is broken')).toHaveAttribute('data-state', 'sent');
  expect(await contextOf(page, 'the checkout button is broken')).toEqual({
    page: '/checkout',
    title: 'Checkout — Acme',
  });
  // The reply engine was told the same page.
  await expect(w.messages('bot').last()).toContainText('/checkout');
});

test('an app that routes by hash: the route is the page, other fragments and queries are not sent', async ({ page }) => {
  await page.goto(`${site.url}/shop#/products/42`);
  const w = await ready(page);
  await say(page, 'is this in stock?');
  await expect(w.withText('is this in stock?')).toHaveAttribute('data-state', 'sent');
  expect((await contextOf(page, 'is this in stock?')).page).toBe('/shop#/products/42');
  // The reply engine names the route.
  await expect(w.messages('bot').last()).toContainText('/products/42');

  // A hashbang route, with a query that may hold private data: the route only.
  await page.evaluate(() => (location.hash = '#!/checkout?coupon=SECRET'));
  await say(page, 'the coupon does not work');
  await expect(w.withText('the coupon does not work')).toHaveAttribute('data-state', 'sent');
  expect((await contextOf(page, 'the coupon does not work')).page).toBe('/shop#!/checkout');

  // A fragment that is no route (an anchor, an OAuth token) is not part of the page.
  await page.evaluate(() => history.replaceState({}, '', '/shop?email=a@b.example#access_token=SECRET'));
  await say(page, 'signed in now');
  await expect(w.withText('signed in now')).toHaveAttribute('data-state', 'sent');
  expect((await contextOf(page, 'signed in now')).page).toBe('/shop');
});

test('setContext() adds the app’s fields, merges, removes with null and refuses what is too big', async ({ page }) => {
  await page.goto(`${site.url}/shop`);
  const w = await ready(page);
  await page.evaluate(() => {
    window.natter.setContext({ plan: 'pro', cart: { items: 3 } });
    window.natter.setContext({ plan: 'team', orderId: 'A-17' });
    window.natter.setContext({ orderId: null });
  });
  await say(page, 'which plan am I on?');
  await expect(w.withText('which plan am I on?')).toHaveAttribute('data-state', 'sent');
  expect(await contextOf(page, 'which plan am I on?')).toEqual({
    page: '/shop',
    title: 'Shop — Acme',
    plan: 'team',
    cart: { items: 3 },
  });

  const errors = await page.evaluate(() => {
    const tryIt = (v) => {
      try {
        window.natter.setContext(v);
        return null;
      } catch (e) {
        return `${e.name}: ${e.message}`;
      }
    };
    return {
      big: tryIt({ blob: 'x'.repeat(5000) }),
      array: tryIt([1, 2]),
      text: tryIt('plan=pro'),
    };
  });
  expect(errors.big).toMatch(/RangeError: .*setContext.*bytes/);
  expect(errors.array).toMatch(/TypeError: .*setContext/);
  expect(errors.text).toMatch(/TypeError: .*setContext/);
  // A refused call changed nothing.
  await say(page, 'still the same?');
  await expect(w.withText('still the same?')).toHaveAttribute('data-state', 'sent');
  expect((await contextOf(page, 'still the same?')).plan).toBe('team');
});

test('a message written offline keeps the page it was written on', async ({ page, context }) => {
  await page.goto(`${site.url}/shop`);
  const w = await ready(page);
  await page.keyboard.press('Control+Shift+C');
  await context.setOffline(true);
  await expect(w.status).toContainText('Offline');
  await page.evaluate(() => history.pushState({}, '', '/cart'));
  await say(page, 'written on the cart page');
  await page.evaluate(() => history.pushState({}, '', '/thanks'));
  await context.setOffline(false);
  await expect(w.withText('written on the cart page')).toHaveAttribute('data-state', 'sent', { timeout: 40_000 });
  expect((await contextOf(page, 'written on the cart page')).page).toBe('/cart');
});
