// examples/collab, as `cargo xtask test` built it (step "examples"), served on its own origin
// against a real hub and driven by three people: members, messages, live cursors on the shared
// canvas, and the shared list. Screenshots (light, dark, phone) are kept in artifacts/.
import { test, expect } from '@playwright/test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Hub, ROOT, serveDir } from '../lib/hub.js';

let hub;
let site;
test.beforeAll(async () => {
  const dist = join(ROOT, 'examples', 'collab', 'dist');
  if (!existsSync(join(dist, 'index.html'))) throw new Error(`${dist} is built by the examples step`);
  hub = await Hub.start();
  site = await serveDir(dist);
});
test.afterAll(async () => {
  await site?.close();
  await hub?.dispose();
});

async function person(browser, name, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  await page.goto(`${site.url}/?server=${encodeURIComponent(hub.url)}&room=design-review&name=${name}`);
  const room = page.locator('section.room[data-room="design-review"]');
  await expect(room.locator('.status')).toHaveAttribute('data-status', 'joined');
  await expect(room.locator('.status')).toHaveText('Live');
  return { context, page, room };
}

test('the collaboration page: members, messages, live cursors and a shared list', async ({ browser }) => {
  test.slow();
  const ada = await person(browser, 'Ada');
  const bob = await person(browser, 'Bob', { colorScheme: 'dark' });
  const cy = await person(browser, 'Cy', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  try {
    for (const p of [ada, bob, cy]) {
      await expect(p.room.locator('.members li')).toHaveText([/Ada/, /Bob/, /Cy/]);
    }
    // A message typed and sent with the keyboard reaches the others with its author's name.
    await ada.room.getByRole('textbox', { name: 'Message' }).fill('Kick-off at ten?');
    await ada.room.getByRole('textbox', { name: 'Message' }).press('Enter');
    await expect(bob.room.locator('.messages li').filter({ hasText: 'Kick-off at ten?' }).locator('.author')).toHaveText('Ada');
    await bob.room.getByRole('textbox', { name: 'Message' }).fill('Works for me');
    await bob.room.getByRole('button', { name: 'Send' }).click();
    await expect(ada.room.locator('.messages li .text')).toHaveText(['Kick-off at ten?', 'Works for me']);
    await expect(ada.room.locator('.messages li.mine .author')).toHaveText('You');

    // Bob moves over the canvas: Ada and Cy see his named cursor where he is.
    const canvas = bob.room.getByRole('img', { name: 'Shared canvas' });
    const box = await canvas.boundingBox();
    await bob.page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.5);
    await bob.page.mouse.move(box.x + box.width * 0.75, box.y + box.height * 0.5, { steps: 5 });
    for (const p of [ada, cy]) {
      const cursor = p.room.locator('.cursor[data-member="Bob"]');
      await expect(cursor).toBeVisible();
      await expect.poll(async () => {
        const c = await cursor.boundingBox();
        const frame = await p.room.getByRole('img', { name: 'Shared canvas' }).boundingBox();
        return Math.round(((c.x - frame.x) / frame.width) * 100);
      }).toBe(75);
    }

    // The shared list: Cy adds, Ada ticks it off, everyone sees both.
    await cy.room.getByPlaceholder('Add an item').fill('Write the release notes');
    await cy.room.getByPlaceholder('Add an item').press('Enter');
    await expect(ada.room.getByRole('list', { name: 'Shared list' })).toContainText('Write the release notes');
    await ada.room.getByRole('checkbox').check();
    await expect(bob.room.getByRole('checkbox')).toBeChecked();
    await expect(cy.room.getByRole('checkbox')).toBeChecked();

    // A newcomer gets the list from those present (relays are never stored).
    const dee = await person(browser, 'Dee');
    await expect(dee.room.getByRole('list', { name: 'Shared list' })).toContainText('Write the release notes');
    await dee.context.close();
    await expect(ada.room.locator('.members li')).toHaveText([/Ada/, /Bob/, /Cy/]);

    await ada.page.screenshot({ path: 'artifacts/collab-light.png', fullPage: true });
    await bob.page.screenshot({ path: 'artifacts/collab-dark.png', fullPage: true });
    await cy.page.screenshot({ path: 'artifacts/collab-phone.png', fullPage: true });
  } finally {
    for (const p of [ada, bob, cy]) await p.context.close().catch(() => {});
  }
});

test('a member who left while this page was cut off leaves no cursor behind', async ({ browser }) => {
  const ada = await person(browser, 'Ada');
  const bob = await person(browser, 'Bob');
  try {
    const canvas = bob.room.getByRole('img', { name: 'Shared canvas' });
    const box = await canvas.boundingBox();
    await bob.page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.5);
    await bob.page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 3 });
    await expect(ada.room.locator('.cursor[data-member="Bob"]')).toBeVisible();

    // Ada's link drops; Bob closes his tab meanwhile, so Ada hears no `presence` for it: her
    // rejoin replaces the member list, and Bob's cursor goes with him.
    await ada.context.setOffline(true);
    await ada.page.evaluate(() => window.dispatchEvent(new Event('offline')));
    await expect(ada.room.locator('.status')).not.toHaveAttribute('data-status', 'joined');
    await bob.context.close();
    await ada.context.setOffline(false);
    await ada.page.evaluate(() => window.dispatchEvent(new Event('online')));
    await expect(ada.room.locator('.status')).toHaveAttribute('data-status', 'joined');
    await expect(ada.room.locator('.members li')).toHaveText([/Ada/]);
    await expect(ada.room.locator('.cursor')).toHaveCount(0);
  } finally {
    for (const p of [ada, bob]) await p.context.close().catch(() => {});
  }
});

/** The shared list as `page` shows it: each item's text, `[x] ` before it when ticked. */
function listOf(p) {
  return p.room.getByRole('list', { name: 'Shared list' }).locator('li').evaluateAll((lis) =>
    lis.map((li) => (li.querySelector('input').checked ? '[x] ' : '') + li.querySelector('span').textContent));
}

async function addItem(p, text) {
  await p.room.getByPlaceholder('Add an item').fill(text);
  await p.room.getByPlaceholder('Add an item').press('Enter');
}

test('the shared list converges after a member was offline, with edits on both sides', async ({ browser }) => {
  test.slow();
  const ada = await person(browser, 'Ada');
  const bob = await person(browser, 'Bob');
  const cy = await person(browser, 'Cy');
  try {
    await addItem(ada, 'Draft the agenda');
    await addItem(bob, 'Book the room');
    await addItem(cy, 'Order lunch');
    for (const p of [ada, bob, cy]) {
      await expect.poll(() => listOf(p)).toEqual(['Draft the agenda', 'Book the room', 'Order lunch']);
    }

    // Ada's network drops for a moment; the others edit meanwhile (never stored by the hub).
    await ada.context.setOffline(true);
    await ada.page.evaluate(() => window.dispatchEvent(new Event('offline')));
    await expect(ada.room.locator('.status')).not.toHaveAttribute('data-status', 'joined');
    await addItem(bob, 'Send the invitations');
    await bob.room.getByRole('checkbox').first().check();
    await cy.room.getByRole('button', { name: 'Remove Order lunch' }).click();
    // Ada edits too while offline.
    await addItem(ada, 'Print the handouts');
    await ada.room.getByRole('checkbox').nth(1).check();
    await expect.poll(() => listOf(bob)).toEqual(['[x] Draft the agenda', 'Book the room', 'Send the invitations']);

    await ada.context.setOffline(false);
    await ada.page.evaluate(() => window.dispatchEvent(new Event('online')));
    await expect(ada.room.locator('.status')).toHaveAttribute('data-status', 'joined', { timeout: 30_000 });
    const all = ['[x] Draft the agenda', '[x] Book the room', 'Send the invitations', 'Print the handouts'];
    for (const p of [ada, bob, cy]) {
      await expect.poll(() => listOf(p).then((l) => [...l].sort())).toEqual([...all].sort());
    }
    // And in the same order everywhere.
    const order = await listOf(ada);
    expect(await listOf(bob)).toEqual(order);
    expect(await listOf(cy)).toEqual(order);
  } finally {
    for (const p of [ada, bob, cy]) await p.context.close().catch(() => {});
  }
});
