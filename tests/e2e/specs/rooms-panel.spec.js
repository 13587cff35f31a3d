// The collaboration panel (the `rooms` option; the hub's demo page turns it on), driven by the
// keyboard alone in real Chromium against a real hub, with a second person in the room.
// Screenshots (light, dark, phone) are kept in artifacts/.
import { test, expect } from '@playwright/test';
import { Hub } from '../lib/hub.js';

let hub;
test.beforeAll(async () => {
  hub = await Hub.start();
});
test.afterAll(async () => {
  await hub?.dispose();
});

/** The panel's parts (Playwright's locators pierce its open shadow root). */
function panel(page) {
  const root = page.locator('[data-natter-rooms]');
  return {
    launcher: root.locator('button.launch'),
    dialog: root.getByRole('dialog', { name: 'Rooms' }),
    name: root.getByLabel('Your name'),
    room: root.getByLabel('Join or create a room'),
    message: root.getByRole('textbox', { name: 'Message' }),
    log: root.getByRole('log'),
    members: root.locator('.people li'),
    typing: root.locator('.typing-line'),
    rooms: root.locator('nav ul.rooms button'),
  };
}

async function open(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  await page.goto(hub.url);
  const p = panel(page);
  await expect(p.launcher).toBeVisible();
  return { context, page, p };
}

test('the rooms panel by keyboard: join by name, chat, presence and typing, unread, Escape', async ({ browser }) => {
  test.slow();
  const ada = await open(browser);
  const bob = await open(browser, { colorScheme: 'dark' });
  try {
    // Bob is already in the room (through the API, as an app would).
    await bob.page.evaluate(() => window.natter.joinRoom('design-review', { name: 'Bob' }));

    // Ada: the launcher is reached and pressed with the keyboard; focus moves into the panel.
    await ada.p.launcher.focus();
    await ada.page.keyboard.press('Enter');
    await expect(ada.p.dialog).toBeVisible();
    await expect(ada.p.launcher).toHaveAttribute('aria-expanded', 'true');
    await expect(ada.p.room).toBeFocused();
    // Name, then room name, by Shift+Tab / Tab and typing; Enter joins.
    await ada.page.keyboard.press('Shift+Tab');
    await expect(ada.p.name).toBeFocused();
    await ada.page.keyboard.type('Ada');
    await ada.page.keyboard.press('Tab');
    await ada.page.keyboard.type('Design review');
    await ada.page.keyboard.press('Enter');
    await expect(ada.p.rooms).toHaveText(['# design-review']);
    await expect(ada.p.message).toBeFocused();
    await expect(ada.p.members).toHaveText([/Ada|Bob/, /Ada|Bob/]);

    // Chat both ways, with author names; Enter sends.
    await ada.page.keyboard.type('Hello Bob');
    await ada.page.keyboard.press('Enter');
    await expect(ada.p.log.locator('.msg.mine .text')).toHaveText('Hello Bob');
    await expect(ada.p.log.locator('.msg.mine')).toHaveAttribute('data-state', 'sent');
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms[0].messages.map((m) => m.text))).toEqual(['Hello Bob']);
    await bob.page.evaluate(() => window.natter.rooms[0].typing(true));
    await expect(ada.p.typing).toHaveText('Bob is typing…');
    await expect(ada.p.members.filter({ hasText: 'Bob' }).locator('.dot.typing')).toHaveCount(1);
    await bob.page.evaluate(() => window.natter.rooms[0].send('Hi Ada'));
    await expect(ada.p.log.locator('.msg').last().locator('.who')).toHaveText('Bob');
    await expect(ada.p.typing).toHaveText('');
    // Seen as it arrives: not unread.
    expect(await ada.page.evaluate(() => window.natter.rooms[0].unread)).toBe(0);

    // Bob opens the panel on the room with openRoom(): a second room and unread per room.
    await bob.page.evaluate(() => window.natter.openRoom('design-review'));
    await expect(bob.p.dialog).toBeVisible();
    await bob.page.evaluate(() => window.natter.joinRoom('launch', { name: 'Bob' }));
    await ada.page.evaluate(() => window.natter.joinRoom('launch', { name: 'Ada' }).send('Launch is Friday'));
    await expect(bob.p.rooms.filter({ hasText: 'launch' }).locator('.count')).toHaveText('1');

    // Escape closes and gives focus back to the launcher.
    await ada.p.message.focus();
    await ada.page.keyboard.press('Escape');
    await expect(ada.p.dialog).toBeHidden();
    await expect(ada.p.launcher).toBeFocused();
    await ada.page.keyboard.press('Enter');
    await expect(ada.p.dialog).toBeVisible();

    await ada.page.screenshot({ path: 'artifacts/rooms-panel-light.png' });
    await bob.page.screenshot({ path: 'artifacts/rooms-panel-dark.png' });
    const phone = await open(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await phone.page.evaluate(() => window.natter.openRoom('design-review', { name: 'Cy' }));
    // The room so far shows at once (the history is not news, but it is there).
    await expect(phone.p.log.locator('.msg')).toHaveCount(2);
    await expect(bob.p.members).toHaveText([/Ada|Bob|Cy/, /Ada|Bob|Cy/, /Ada|Bob|Cy/]);
    await phone.page.screenshot({ path: 'artifacts/rooms-panel-phone.png' });
    await phone.context.close();
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});
