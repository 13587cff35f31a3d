// The collaboration panel (the `rooms` option; the hub's demo page turns it on), driven by the
// keyboard alone in real Chromium against a real hub, with a second person in the room; in
// German and in Arabic (right to left, mirrored), with the page's `strings` over them.
// Screenshots (light, dark, phone, Arabic) are kept in artifacts/.
import { test, expect } from '@playwright/test';
import { useTagSite } from '../lib/tag-site.js';
import { readRootFile } from '../lib/hub.js';

// The documented script tag on the site's own page; `?rooms=&locale=de` become data-* options.
const env = useTagSite();

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
  await page.goto(env.hub.url);
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

    // A pasted log is cut at the hub's 4,000 characters, as in the support chat: a frame over the
    // hub's 64 KB would close the connection, and the message would go again on every reconnect.
    await ada.p.message.fill('y'.repeat(100_000));
    expect((await ada.p.message.inputValue()).length).toBe(4000);
    await ada.p.message.fill('');

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
    // Two typing at once are both named (not "Bob and 1 more").
    await ada.p.rooms.filter({ hasText: 'design-review' }).click();
    await bob.page.evaluate(() => window.natter.rooms.find((r) => r.id === 'design-review').typing(true));
    await phone.page.evaluate(() => window.natter.rooms[0].typing(true));
    await expect(ada.p.typing).toHaveText(/^(Bob and Cy|Cy and Bob) are typing…$/);
    await phone.context.close();
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('the rooms launcher steps aside while the support chat is open, on a phone too', async ({ browser }) => {
  for (const options of [{}, { viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true }]) {
    const { context, page, p } = await open(browser, options);
    try {
      await page.keyboard.press('Control+Shift+C');
      await expect(page.locator('[data-natter]').getByRole('dialog')).toBeVisible();
      // It would sit over the chat's corner (over its messages on a phone).
      await expect(p.launcher).toBeHidden();
      await page.keyboard.press('Control+Shift+C');
      await expect(page.locator('[data-natter]').getByRole('dialog')).toBeHidden();
      await expect(p.launcher).toBeVisible();
    } finally {
      await context.close();
    }
  }
});

/** A visitor on the site's page with the script tag's `params` (`rooms`, `locale`, `strings`…). */
async function visit(browser, params, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const warnings = [];
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  await page.goto(`${env.site.url}/?${new URLSearchParams({ rooms: '', ...params })}`);
  const root = page.locator('[data-natter-rooms]');
  await expect(root.locator('button.launch')).toBeVisible();
  return { context, page, root, warnings };
}

test('the panel in German: every label from the locale, the page’s strings over them', async ({ browser }) => {
  test.slow();
  const strings = JSON.stringify({ roomJoin: 'Los geht’s', roomNope: 'x', placeholder: 'Fragen Sie uns' });
  const ada = await visit(browser, { locale: 'de', strings });
  const bob = await visit(browser, { locale: 'de' });
  try {
    const { page, root } = ada;
    const launcher = root.locator('button.launch');
    await expect(launcher).toHaveAccessibleName('Räume');
    await launcher.focus();
    await page.keyboard.press('Enter');
    const dialog = root.getByRole('dialog', { name: 'Räume' });
    await expect(dialog).toBeVisible();
    await expect(dialog).toHaveAttribute('lang', 'de');
    await expect(dialog).toHaveAttribute('dir', 'ltr');
    await expect(launcher).toHaveAttribute('aria-label', 'Räume schließen');
    await expect(root.getByText('Treten Sie einem Raum bei, um loszulegen.')).toBeVisible();
    const roomField = root.getByLabel('Raum betreten oder erstellen');
    await expect(roomField).toBeFocused();
    await expect(roomField).toHaveAttribute('placeholder', 'Raumname');
    // A name the hub would refuse is explained in German.
    await page.keyboard.type('!!!');
    await page.keyboard.press('Enter');
    await expect(root.getByRole('alert').filter({ hasText: 'Buchstaben A–Z' })).toBeVisible();
    await roomField.fill('');
    await root.getByLabel('Ihr Name').fill('Ada');
    await roomField.fill('Entwurf');
    // The page's own text wins over the locale's.
    await root.getByRole('button', { name: 'Los geht’s' }).click();
    const message = root.getByRole('textbox', { name: 'Nachricht' });
    await expect(message).toBeFocused();
    await expect(root.getByRole('button', { name: 'Senden' })).toBeVisible();
    await expect(root.getByRole('button', { name: 'Verlassen' })).toBeVisible();
    await expect(root.locator('.close')).toHaveAccessibleName('Räume schließen');

    await bob.page.evaluate(() => window.natter.joinRoom('entwurf', { name: 'Bob' }));
    await expect(root.locator('.people h3')).toHaveText('2 anwesend');
    await expect(root.getByRole('list', { name: 'Mitglieder' }).locator('li')).toHaveCount(2);
    await bob.page.evaluate(() => window.natter.rooms[0].typing(true));
    await expect(root.locator('.typing-line')).toHaveText('Bob schreibt …');
    await bob.page.evaluate(() => window.natter.rooms[0].send('Hallo Ada'));
    await expect(root.locator('.msg').last().locator('.who')).toHaveText('Bob');
    await page.keyboard.type('Hallo Bob');
    await page.keyboard.press('Enter');
    await expect(root.locator('.msg.mine .who')).toHaveText('Sie');
    await expect(root.locator('.msg.mine')).toHaveAttribute('data-state', 'sent');

    // The panel's keys are the panel's: the widget does not call them unknown; a misspelt one
    // is named by the panel.
    expect(ada.warnings.filter((w) => w.includes('roomJoin'))).toEqual([]);
    expect(ada.warnings.some((w) => w.includes('roomNope') && w.includes('rooms panel'))).toBe(true);
    // The support panel still takes its own keys from the same option.
    const placeholder = await page.evaluate(() =>
      document.querySelector('[data-natter]').shadowRoot.querySelector('[part=input]').getAttribute('placeholder'));
    expect(placeholder).toBe('Fragen Sie uns');
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('the panel in Arabic is right to left and mirrored', async ({ browser }) => {
  test.slow();
  const ada = await visit(browser, { locale: 'ar', name: 'Ada' });
  const bob = await visit(browser, { locale: 'ar', name: 'Bob' });
  try {
    const { page, root } = ada;
    await bob.page.evaluate(() => window.natter.joinRoom('tasmim', { name: 'Bob' }));
    await page.evaluate(() => window.natter.openRoom('tasmim'));
    const dialog = root.getByRole('dialog', { name: 'الغرف' });
    await expect(dialog).toBeVisible();
    await expect(dialog).toHaveAttribute('dir', 'rtl');
    await expect(dialog).toHaveAttribute('lang', 'ar');
    const message = root.getByRole('textbox', { name: 'رسالة' });
    await expect(message).toBeFocused();
    await page.keyboard.type('مرحبا');
    await page.keyboard.press('Enter');
    await expect(root.locator('.msg.mine')).toHaveAttribute('data-state', 'sent');
    await bob.page.evaluate(() => window.natter.rooms[0].send('أهلا Ada'));
    await expect(root.locator('.msg:not(.mine)')).toHaveCount(1);
    await expect(root.locator('.people h3')).toHaveText('الحاضرون: 2');
    await expect(root.locator('.msg.mine .who')).toHaveText('أنت');

    // Every label is Arabic.
    const labels = await root.evaluate((host) => {
      const r = host.shadowRoot;
      return {
        launcher: r.querySelector('.launch').getAttribute('aria-label'),
        send: r.querySelector('form.say button').textContent,
        leave: r.querySelector('.head button.quiet').textContent,
        close: r.querySelector('.close').getAttribute('aria-label'),
        joined: r.querySelector('nav h2').textContent,
        join: r.querySelector('form.join button').textContent,
        joinLabel: r.querySelector('label[for=join]').textContent,
        members: r.querySelector('.people ul').getAttribute('aria-label'),
        placeholder: r.querySelector('#join').getAttribute('placeholder'),
      };
    });
    for (const [k, v] of Object.entries(labels)) expect(v, k).toMatch(/[\u0600-\u06ff]/);

    // Mirrored: the room list on the right, the members on the left of the messages, my
    // bubble on the left and Bob's on the right; the empty text box reads right to left.
    const box = async (selector) => root.locator(selector).first().boundingBox();
    const [side, log, people] = [await box('nav.side'), await box('.log'), await box('.people')];
    expect(side.x).toBeGreaterThan(log.x);
    expect(people.x).toBeLessThan(log.x);
    const [mine, theirs] = [await box('.msg.mine'), await box('.msg:not(.mine)')];
    expect(mine.x).toBeLessThan(theirs.x);
    expect(await message.evaluate((el) => el.value === '' && getComputedStyle(el).direction)).toBe('rtl');
    // The room id keeps its "#" in front, in its own direction.
    await expect(root.locator('nav ul.rooms button bdi')).toHaveText('# tasmim');
    await page.screenshot({ path: 'artifacts/rooms-panel-arabic.png' });
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('Hebrew mirrors the panel too; English stays left to right', async ({ browser }) => {
  const he = await visit(browser, { locale: 'he-IL' });
  const en = await visit(browser, { locale: 'en-GB' });
  try {
    await he.page.evaluate(() => window.natter.openRoom('lobby', { name: 'Dana' }));
    await expect(he.root.getByRole('dialog', { name: 'חדרים' })).toHaveAttribute('dir', 'rtl');
    await en.page.evaluate(() => window.natter.openRoom('lobby', { name: 'Ed' }));
    await expect(en.root.getByRole('dialog', { name: 'Rooms' })).toHaveAttribute('dir', 'ltr');
  } finally {
    for (const who of [he, en]) await who.context.close().catch(() => {});
  }
});

test('on a phone the panel closes by touch before any room is joined', async ({ browser }) => {
  const phone = await open(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  try {
    await phone.p.launcher.tap();
    await expect(phone.p.dialog).toBeVisible();
    // The full-screen panel covers the launcher, and a touch screen has no Escape key.
    const close = phone.p.dialog.getByRole('button', { name: 'Close rooms' });
    await expect(close).toBeVisible();
    await close.tap();
    await expect(phone.p.dialog).toBeHidden();
    // With a room shown, the close button is in the room's header again.
    await phone.page.evaluate(() => window.natter.openRoom('phone-room', { name: 'Cy' }));
    await expect(phone.p.dialog.locator('.head').getByRole('button', { name: 'Close rooms' })).toBeVisible();
  } finally {
    await phone.context.close();
  }
});

test('the hub’s other rooms are listed, with the server written as ws:// on another site', async ({ browser }) => {
  const bob = await open(browser);
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await bob.page.evaluate(() => window.natter.joinRoom('open-plan', { name: 'Bob' }));
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms[0].status)).toBe('joined');
    // The site's own page, the widget pointed at its hub as ws://… (the socket's scheme).
    await page.goto(`${env.site.url}/?rooms=&server=${encodeURIComponent(env.hub.url.replace(/^http/, 'ws'))}`);
    const p = panel(page);
    await p.launcher.click();
    const others = p.dialog.locator('ul.browse button');
    await expect(others.filter({ hasText: 'open-plan' })).toHaveCount(1);
  } finally {
    await context.close();
    await bob.context.close();
  }
});

// ---- What a review of the panel found: each test below fails without its fix.

/** The panel's statuses in `lang` (English is built into the panel), longest first. */
function statuses(lang) {
  const keys = ['roomJoining', 'roomRejoining', 'roomHttp'];
  const texts = lang === 'en'
    ? { roomJoining: 'Joining…', roomRejoining: 'Reconnecting…', roomHttp: 'Messages only (HTTP fallback)' }
    : JSON.parse(readRootFile(`npm/dist/locales/rooms-${lang}.json`));
  return keys.map((k) => texts[k]).sort((a, b) => b.length - a.length);
}

/** Parts of the panel (in its shadow root) that stick out of it, or are cut inside themselves. */
async function clipped(root, selectors) {
  return root.evaluate((host, selectors) => {
    const r = host.shadowRoot;
    const panel = r.querySelector('.panel').getBoundingClientRect();
    const bad = [];
    for (const sel of selectors) {
      const el = r.querySelector(sel);
      const b = el.getBoundingClientRect();
      if (b.width === 0 || b.left < panel.left - 0.5 || b.right > panel.right + 0.5 || b.top < panel.top - 0.5 || b.bottom > panel.bottom + 0.5) bad.push(`${sel} outside the panel`);
      else if (el.scrollWidth > el.clientWidth + 1) bad.push(`${sel} cut inside (${el.scrollWidth} > ${el.clientWidth})`);
      else if (!el.contains(r.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2))) bad.push(`${sel} covered`);
    }
    return bad;
  }, selectors);
}

test('nothing is clipped: a 64-character room id and the longest status, on a phone and a desktop, in English, Japanese and German', async ({ browser }) => {
  test.slow();
  const id = `r${'-quarterly-planning'.repeat(4)}`.slice(0, 63) + 'z';
  expect(id).toHaveLength(64);
  for (const viewport of [{ width: 390, height: 844 }, { width: 1280, height: 800 }]) {
    for (const locale of ['en', 'ja', 'de']) {
      // The longest status this language has, shown while reconnecting.
      const strings = JSON.stringify({ roomRejoining: statuses(locale)[0] });
      const v = await visit(browser, { locale, strings }, { viewport, isMobile: viewport.width < 500, hasTouch: viewport.width < 500 });
      try {
        await v.page.evaluate((id) => window.natter.openRoom(id, { name: 'Ada' }), id);
        await expect.poll(() => v.page.evaluate(() => window.natter.rooms[0].status)).toBe('joined');
        await v.context.setOffline(true);
        await v.page.evaluate(() => window.dispatchEvent(new Event('offline')));
        await expect(v.root.locator('.state')).toHaveText(statuses(locale)[0]);
        const where = `${locale} at ${viewport.width}×${viewport.height}`;
        expect(await clipped(v.root, ['.close', '.head button.quiet:not(.close)', '.state', 'form.say button', 'form.say textarea']), where).toEqual([]);
        // The id is cut with an ellipsis in the header, and whole in its tooltip.
        await expect(v.root.locator('.title')).toHaveAttribute('title', `# ${id}`);
        // The room list in the side stays in the side.
        const inSide = await v.root.evaluate((host) => {
          const side = host.shadowRoot.querySelector('nav.side');
          return side.scrollWidth <= side.clientWidth;
        });
        expect(inSide, where).toBe(true);
        await v.page.screenshot({ path: `artifacts/rooms-panel-long-${locale}-${viewport.width}.png` });
      } finally {
        await v.context.close();
      }
    }
  }
});

test('the hub’s other rooms: one line each, the name cut and whole in its tooltip, the count beside it', async ({ browser }) => {
  const long = `x${'-all-hands-q3'.repeat(5)}`.slice(0, 64);
  const bob = await open(browser);
  try {
    for (const r of [long, 'tea']) await bob.page.evaluate((r) => window.natter.joinRoom(r, { name: 'Bob' }), r);
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms.map((r) => r.status))).toEqual(['joined', 'joined']);
    const ada = await open(browser);
    try {
      await ada.p.launcher.click();
      const cells = ada.p.dialog.locator('ul.browse button');
      await expect(cells.filter({ hasText: 'tea' })).toHaveCount(1);
      await expect(cells.filter({ hasText: long.slice(0, 20) })).toHaveAttribute('title', long);
      const layout = await ada.page.locator('[data-natter-rooms]').evaluate((host) => {
        const side = host.shadowRoot.querySelector('nav.side').getBoundingClientRect();
        return [...host.shadowRoot.querySelectorAll('ul.browse button')].map((b) => {
          const box = b.getBoundingClientRect();
          const here = b.querySelector('.here');
          const line = parseFloat(getComputedStyle(b).lineHeight);
          return {
            inSide: box.left >= side.left && box.right <= side.right,
            oneLine: b.querySelector('bdi').getBoundingClientRect().height < line * 1.5 && here.getBoundingClientRect().height < line * 1.5,
            apart: here.getBoundingClientRect().left - b.querySelector('bdi').getBoundingClientRect().right >= 6,
          };
        });
      });
      for (const cell of layout) expect(cell).toEqual({ inSide: true, oneLine: true, apart: true });
    } finally {
      await ada.context.close();
    }
  } finally {
    await bob.context.close();
  }
});

test('a long member name is whole in its tooltip and its accessible name', async ({ browser }) => {
  const name = 'Cynthia Montgomery-Featherstonehaugh of the Quarterly Review';
  const bob = await open(browser);
  const ada = await open(browser);
  try {
    await bob.page.evaluate((name) => window.natter.joinRoom('long-names', { name }), name);
    await ada.page.evaluate(() => window.natter.openRoom('long-names', { name: 'Ada' }));
    const item = ada.p.dialog.getByRole('list', { name: 'Members' }).getByRole('listitem', { name });
    await expect(item).toHaveAttribute('title', name);
    await expect(item).toHaveAccessibleName(name);
    // Shown cut with an ellipsis, inside the column.
    expect(await item.locator('.name').evaluate((el) => [getComputedStyle(el).textOverflow, el.scrollWidth > el.clientWidth])).toEqual(['ellipsis', true]);
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('room messages show their time as the support chat does, the full date in the tooltip', async ({ browser }) => {
  const ada = await visit(browser, { locale: 'de' });
  const bob = await open(browser);
  try {
    await bob.page.evaluate(() => window.natter.joinRoom('uhrzeit', { name: 'Bob' }));
    await ada.page.evaluate(() => window.natter.openRoom('uhrzeit', { name: 'Ada' }));
    await bob.page.evaluate(() => window.natter.rooms[0].send('Guten Morgen'));
    await ada.page.keyboard.type('Hallo');
    await ada.page.keyboard.press('Enter');
    const times = ada.root.locator('.msg time');
    await expect(times).toHaveCount(2);
    await expect(ada.root.locator('.msg.mine')).toHaveAttribute('data-state', 'sent');
    const seen = await ada.page.evaluate(() => {
      const r = document.querySelector('[data-natter-rooms]').shadowRoot;
      return window.natter.rooms[0].messages.map((m) => {
        const t = r.querySelector(`.msg[data-id="${m.id}"] time`);
        const d = new Date(m.time);
        return {
          datetime: t.getAttribute('datetime') === m.time,
          // The support chat's formats (widget/src/web/view.js), in the panel's language.
          text: t.textContent === new Intl.DateTimeFormat('de', { hour: 'numeric', minute: '2-digit' }).format(d),
          title: t.title === new Intl.DateTimeFormat('de', { dateStyle: 'full', timeStyle: 'short' }).format(d),
        };
      });
    });
    expect(seen).toEqual([{ datetime: true, text: true, title: true }, { datetime: true, text: true, title: true }]);
    await expect(times.first()).toHaveText(/^\d{1,2}:\d{2}$/);
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('the room’s status is a polite live region, written only when it changes; the log adds only what is new', async ({ browser }) => {
  const ada = await open(browser);
  const bob = await open(browser);
  try {
    await bob.page.evaluate(() => window.natter.joinRoom('quiet', { name: 'Bob' }));
    await ada.page.evaluate(() => window.natter.openRoom('quiet', { name: 'Ada' }));
    await expect.poll(() => ada.page.evaluate(() => window.natter.rooms[0].status)).toBe('joined');
    const status = ada.p.dialog.getByRole('status');
    await expect(status).toHaveText('');
    // Count what changes in the live regions while the room is busy.
    await ada.page.evaluate(() => {
      const r = document.querySelector('[data-natter-rooms]').shadowRoot;
      window.heard = { status: 0, log: [] };
      new MutationObserver((list) => (window.heard.status += list.length)).observe(r.querySelector('[role=status]'), { childList: true, characterData: true, subtree: true });
      new MutationObserver((list) => {
        for (const m of list) for (const n of m.addedNodes) window.heard.log.push(n.textContent);
      }).observe(r.querySelector('[role=log]'), { childList: true });
    });
    await bob.page.evaluate(() => window.natter.rooms[0].send('one'));
    await bob.page.evaluate(() => window.natter.rooms[0].typing(true));
    await expect(ada.p.typing).toHaveText('Bob is typing…');
    await bob.page.evaluate(() => window.natter.rooms[0].send('two'));
    await expect(ada.p.log.locator('.msg')).toHaveCount(2);
    const heard = await ada.page.evaluate(() => window.heard);
    expect(heard.status).toBe(0);
    expect(heard.log.map((t) => t.replace(/\d.*$/, ''))).toEqual(['Bobone', 'Bobtwo']);
    // The link drops: that is said, once.
    await ada.context.setOffline(true);
    await ada.page.evaluate(() => window.dispatchEvent(new Event('offline')));
    await expect(status).toHaveText('Reconnecting…');
    await expect(status).toHaveAttribute('role', 'status');
    expect(await ada.page.evaluate(() => window.heard.status)).toBeGreaterThan(0);
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('after openRoom(id, { name }) the panel’s name field shows that name, and joins from the panel use the field', async ({ browser }) => {
  const ada = await open(browser);
  const bob = await open(browser);
  try {
    await bob.page.evaluate(() => window.natter.joinRoom('lounge', { name: 'Bob' }));
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms[0].status)).toBe('joined');
    await ada.page.evaluate(() => window.natter.openRoom('named', { name: 'Ada Lovelace' }));
    await expect(ada.p.name).toHaveValue('Ada Lovelace');
    // The visitor writes another name, then picks one of the hub's rooms: that name is used.
    await ada.p.name.fill('Ada L.');
    await ada.p.dialog.locator('ul.browse button').filter({ hasText: 'lounge' }).click();
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms[0].members.map((m) => m.name).sort())).toEqual(['Ada L.', 'Bob']);
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('logout() forgets the name the panel remembered, in the site\'s other tabs too, and leaves the rooms it shows', async ({ browser }) => {
  const ada = await open(browser);
  try {
    await ada.p.launcher.click();
    await ada.p.name.fill('Ada Private');
    await ada.p.room.fill('shared');
    await ada.p.room.press('Enter');
    await expect.poll(() => ada.page.evaluate(() => window.natter.rooms.map((r) => r.status))).toEqual(['joined']);
    // A second tab of the site, whose panel took the remembered name.
    const tab2 = await ada.context.newPage();
    await tab2.goto(env.hub.url);
    const p2 = panel(tab2);
    await p2.launcher.click();
    await expect(p2.name).toHaveValue('Ada Private');

    await ada.page.evaluate(() => window.natter.logout());
    await expect(ada.p.name).toHaveValue('');
    await expect(p2.name).toHaveValue('');
    await expect(ada.p.log).toBeHidden();
    expect(await ada.page.evaluate(() => [window.natter.rooms.length, localStorage.getItem('natter.rooms.name')])).toEqual([0, null]);
    await ada.page.reload();
    await ada.p.launcher.click();
    await expect(ada.p.name).toHaveValue('');
  } finally {
    await ada.context.close().catch(() => {});
  }
});

test('the Rooms button and panel follow the widget\'s position: bottom-left on a desktop and a phone, bottom-right by default', async ({ browser }) => {
  for (const [query, viewport] of [['position=bottom-left', { width: 1024, height: 700 }], ['position=left', { width: 390, height: 844 }], ['', { width: 1024, height: 700 }]]) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    try {
      await page.goto(`${env.site.url}/?rooms=&name=Kim&${query}`);
      const p = panel(page);
      await expect(p.launcher).toBeVisible();
      const launcher = await p.launcher.boundingBox();
      const widget = await page.locator('[data-natter]').boundingBox();
      const onLeft = query !== '';
      // On the widget's side, above its launcher.
      expect(launcher.x + launcher.width / 2 < viewport.width / 2, `${query}: the Rooms button is on the left`).toBe(onLeft);
      expect(widget.x + widget.width / 2 < viewport.width / 2, `${query}: the widget is on the left`).toBe(onLeft);
      await p.launcher.click();
      await expect(p.dialog).toBeVisible();
      const box = await p.dialog.boundingBox();
      if (viewport.width < 640) {
        // A phone: the panel fills the screen, whichever side.
        expect([box.x, box.width]).toEqual([0, viewport.width]);
      } else {
        const gap = onLeft ? box.x : viewport.width - (box.x + box.width);
        expect(gap, `${query}: the panel keeps the launcher's margin on its side`).toBe(20);
      }
    } finally {
      await context.close();
    }
  }
});

/** The element focused in `page`: the rooms panel's own (through its shadow root), else the page's. */
function focused(page) {
  return page.evaluate(() => {
    const host = document.activeElement;
    const inner = host?.shadowRoot?.activeElement;
    return host?.hasAttribute('data-natter-rooms') && inner
      ? `rooms:${inner.id || inner.className || inner.tagName}`
      : host?.hasAttribute('data-natter') ? 'support' : host?.tagName;
  });
}

test('on a phone the full-screen panel is modal: Tab goes round inside it, Escape closes and gives focus back', async ({ browser }) => {
  const { context, page, p } = await open(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: 'dark' });
  try {
    await p.launcher.focus();
    await page.keyboard.press('Enter');
    await expect(p.dialog).toBeVisible();
    await expect(p.dialog).toHaveAttribute('aria-modal', '');
    await p.name.fill('Ada');
    await p.room.fill('modal');
    await page.keyboard.press('Enter');
    await expect(p.message).toBeFocused();
    await page.keyboard.type('hello');
    await page.keyboard.press('Enter');
    await expect(p.log.locator('.msg.mine')).toHaveAttribute('data-state', 'sent');
    // Round the whole panel both ways, twice over: never out to the page or the support
    // launcher hidden under it.
    const seen = new Set();
    for (const key of [...Array(24).fill('Tab'), ...Array(24).fill('Shift+Tab')]) {
      await page.keyboard.press(key);
      const at = await focused(page);
      expect(at, key).toMatch(/^rooms:/);
      seen.add(at);
    }
    // Every part of it is reached: the room list, the join form, Leave, ×, the log, the text box.
    for (const part of ['rooms:name', 'rooms:join', 'rooms:say', 'rooms:log', 'rooms:quiet close']) expect([...seen]).toContain(part);
    await page.screenshot({ path: 'artifacts/rooms-panel-phone-dark.png' });
    await page.keyboard.press('Escape');
    await expect(p.dialog).toBeHidden();
    await expect(p.launcher).toBeFocused();
  } finally {
    await context.close();
  }
});

test('beside the page on a wide screen the panel is not modal', async ({ browser }) => {
  const { context, page, p } = await open(browser);
  try {
    await p.launcher.click();
    await expect(p.dialog).toBeVisible();
    await expect(p.dialog).not.toHaveAttribute('aria-modal', /.*/);
  } finally {
    await context.close();
  }
});

test('page code leaving the room on screen keeps the keyboard in the panel', async ({ browser }) => {
  const { context, page, p } = await open(browser);
  try {
    await page.evaluate(() => window.natter.openRoom('first', { name: 'Ada' }));
    await page.evaluate(() => window.natter.openRoom('second', { name: 'Ada' }));
    await expect(p.message).toBeFocused();
    // The app leaves the room the visitor is writing in: the panel shows the other one, and
    // the keyboard is in its text box rather than on the page's <body>.
    await page.evaluate(() => window.natter.rooms.find((r) => r.id === 'second').leave());
    await expect(p.rooms).toHaveText(['# first']);
    await expect(p.message).toBeFocused();
    // The last one: the keyboard goes to the room name box.
    await page.evaluate(() => window.natter.rooms[0].leave());
    await expect(p.rooms).toHaveCount(0);
    await expect(p.room).toBeFocused();
  } finally {
    await context.close();
  }
});

test('destroy() with the panel open gives focus back to where it was, as closing does', async ({ browser }) => {
  const { context, page, p } = await open(browser);
  try {
    // A page button opens a room; the keyboard moves into the panel.
    await page.evaluate(() => {
      const button = Object.assign(document.createElement('button'), { id: 'app-button', textContent: 'Team chat' });
      document.body.append(button);
      button.focus();
      window.natter.openRoom('focus-back', { name: 'Ada' });
    });
    await expect(p.message).toBeFocused();
    // The app takes the widget off the page (a React provider unmounting does the same): the
    // keyboard returns to the button, not to the page's <body>.
    await page.evaluate(() => window.natter.destroy());
    await expect(page.locator('[data-natter-rooms]')).toHaveCount(0);
    await expect(page.locator('#app-button')).toBeFocused();
  } finally {
    await context.close();
  }
});

test('a name the hub would refuse is said in the visitor’s language before joining, and not remembered; a hub refusal shows no developer text', async ({ browser }) => {
  const { context, page, root, warnings } = await visit(browser, { locale: 'he' });
  try {
    await root.locator('button.launch').click();
    const name = root.locator('#name');
    const error = root.locator('form.join .error');
    // A right-to-left mark (common in Hebrew and Arabic input) and a direction override.
    for (const bad of ['עדה\u200F', 'Ada\u202Eevil']) {
      await name.fill(bad);
      await root.locator('#join').fill('names');
      await root.locator('#join').press('Enter');
      await expect(error).toHaveText('שם לא יכול לכלול תווי בקרה או סימני כיווניות.');
      await expect(name).toBeFocused();
      await expect(name).toHaveAttribute('aria-invalid', '');
      expect(await page.evaluate(() => window.natter.rooms.length)).toBe(0);
      expect(await page.evaluate(() => localStorage.getItem('natter.rooms.name'))).toBeNull();
    }
    await page.screenshot({ path: 'artifacts/rooms-panel-bad-name-he.png' });
    // Put right, it joins and is remembered.
    await name.fill('עדה');
    await root.locator('#join').press('Enter');
    await expect(error).toHaveText('');
    await expect(name).not.toHaveAttribute('aria-invalid', /.*/);
    await expect.poll(() => page.evaluate(() => window.natter.rooms[0]?.status)).toBe('joined');
    expect(await page.evaluate(() => localStorage.getItem('natter.rooms.name'))).toBe('עדה');

    // The page's own code joins with a name the hub refuses: the panel says so in Hebrew; the
    // hub's English is on the console only.
    await page.evaluate(() => window.natter.openRoom('api-name', { name: 'Ada\u202E' }));
    const alert = root.locator('.alert');
    await expect(alert).toBeVisible();
    await expect(alert.locator('.what')).toHaveText('לא ניתן להצטרף לחדר הזה');
    await expect(alert).not.toContainText('name');
    await expect.poll(() => warnings.some((w) => w.includes('room "api-name": invalid_message') && w.includes('bad `name`'))).toBe(true);
  } finally {
    await context.close();
  }
});

test('a message the hub refuses says why in the panel, in the visitor’s language', async ({ browser }) => {
  const { context, page, root } = await visit(browser, { locale: 'de' });
  try {
    await page.evaluate(() => window.natter.openRoom('reasons', { name: 'Ada' }));
    await expect.poll(() => page.evaluate(() => window.natter.rooms[0]?.status)).toBe('joined');
    // Longer than the hub's 4,000 characters (the panel's box stops there; the page's code can send more).
    await page.evaluate(() => window.natter.rooms[0].send('x'.repeat(5000)));
    await expect(root.locator('.msg.mine')).toHaveAttribute('data-state', 'failed');
    await expect(root.locator('.alert')).toHaveText('Zu lang zum Senden.');
    await expect(root.locator('.alert')).not.toContainText('characters');
    await page.screenshot({ path: 'artifacts/rooms-panel-too-long-de.png' });
  } finally {
    await context.close();
  }
});

test('long unbroken text wraps inside its bubble, and a direction override stays inside its message', async ({ browser }) => {
  const ada = await open(browser);
  const bob = await open(browser);
  try {
    await ada.page.evaluate(() => window.natter.openRoom('wide', { name: 'Ada' }));
    await bob.page.evaluate(() => window.natter.joinRoom('wide', { name: 'Bob' }));
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms[0]?.status)).toBe('joined');
    await bob.page.evaluate(() => window.natter.rooms[0].send('W'.repeat(4000)));
    await bob.page.evaluate(() => window.natter.rooms[0].send('safe \u202Eevil'));
    await expect(ada.p.log.locator('.msg')).toHaveCount(2);
    // On a desktop and on a phone: the text stays inside its bubble, the bubble inside the log.
    for (const viewport of [null, { width: 390, height: 844 }]) {
      if (viewport) await ada.page.setViewportSize(viewport);
      const boxes = await ada.p.log.evaluate((log) => {
        const box = (n) => n.getBoundingClientRect();
        const [msg] = log.querySelectorAll('.msg');
        const text = msg.querySelector('.text');
        return { log: box(log), msg: box(msg), text: box(text), overflow: text.scrollWidth - text.clientWidth };
      });
      expect(boxes.overflow).toBeLessThanOrEqual(0);
      expect(boxes.text.right).toBeLessThanOrEqual(boxes.msg.right + 0.5);
      expect(boxes.msg.right).toBeLessThanOrEqual(boxes.log.right + 0.5);
    }
    // The override reverses its own text only: the message's time after it reads as it should.
    const bidi = await ada.p.log.locator('.msg .text').nth(1).evaluate((t) => getComputedStyle(t).unicodeBidi);
    expect(bidi).toBe('isolate');
    await ada.page.screenshot({ path: 'artifacts/rooms-panel-long.png' });
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});

test('in dark mode the rooms launcher has the support launcher’s accent', async ({ browser }) => {
  const { context, page, p } = await open(browser, { colorScheme: 'dark' });
  try {
    const support = await page.locator('[data-natter]').locator('[part="launcher"]').evaluate((b) => getComputedStyle(b).backgroundColor);
    const rooms = await p.launcher.evaluate((b) => getComputedStyle(b).backgroundColor);
    expect(rooms).toBe(support);
    await p.launcher.click();
    await page.screenshot({ path: 'artifacts/rooms-panel-dark-launchers.png' });
  } finally {
    await context.close();
  }
});

test('a typed room name finds the room the hub has by that id or name, whatever its case; a new name becomes a lowercase id', async ({ browser }) => {
  const ada = await open(browser);
  const bob = await open(browser);
  try {
    // Room ids are case-sensitive: Bob's app joined "TeamA" and "Ops:Night" through the API.
    await bob.page.evaluate(() => {
      window.natter.joinRoom('TeamA', { name: 'Bob' });
      window.natter.joinRoom('Ops:Night', { name: 'Bob' });
    });
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms.map((r) => r.status))).toEqual(['joined', 'joined']);
    await ada.p.launcher.click();
    // (The hub is shared with the other tests of this file: its list holds their rooms too.)
    for (const id of ['TeamA', 'Ops:Night']) await expect(ada.p.dialog.locator('ul.browse button').filter({ hasText: id })).toHaveCount(1);
    await ada.p.name.fill('Ada');
    for (const [typed, joined] of [['teama', '# TeamA'], ['  OPS:NIGHT ', '# Ops:Night'], ['Night shift', '# night-shift']]) {
      await ada.p.room.fill(typed);
      await ada.p.room.press('Enter');
      await expect(ada.p.rooms.filter({ hasText: joined }), typed).toHaveCount(1);
    }
    await expect(ada.p.rooms).toHaveCount(3);
    // Ada is in Bob's rooms, not in rooms of her own beside them.
    await expect.poll(() => bob.page.evaluate(() => window.natter.rooms.map((r) => r.memberCount))).toEqual([2, 2]);
  } finally {
    for (const who of [ada, bob]) await who.context.close().catch(() => {});
  }
});
