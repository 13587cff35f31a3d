// The keyboard on a real page: a shortcut never eats what the visitor types, wherever they type
// it, and an Enter that confirms an IME conversion never sends.
import { test, expect } from '@playwright/test';
import { Hub, startSite } from '../lib/hub.js';
import { widget, ready } from '../lib/widget.js';

let hub;
test.beforeAll(async () => {
  hub = await Hub.start();
});
test.afterAll(async () => {
  await hub?.dispose();
});

/** A page of the web developer's own: every kind of editable place, one inside a shadow root. */
function pageWith(shortcut) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Editor</title>
<script src="${hub.url}/natter.js" data-server="${hub.url}" data-shortcut="${shortcut}" async></script></head>
<body>
<input id="search" type="search">
<textarea id="notes"></textarea>
<div id="rich" contenteditable="true"></div>
<select id="pick"><option>a</option><option>b</option></select>
<button id="plain">a button</button>
<my-editor id="custom"></my-editor>
<my-closed-editor></my-closed-editor>
<script type="module">
customElements.define('my-editor', class extends HTMLElement {
  constructor() { super(); this.attachShadow({ mode: 'open' }).innerHTML = '<input id="inner">'; }
});
customElements.define('my-closed-editor', class extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: 'closed' });
    root.innerHTML = '<input>';
    window.closedInput = root.querySelector('input');
  }
});
</script>
</body></html>`;
}

let site;
test.afterEach(async () => {
  await site?.close();
  site = undefined;
});

test('a shortcut without Ctrl/Alt/Meta never fires while typing, anywhere', async ({ page }) => {
  site = await startSite({ '/': pageWith('/') });
  await page.goto(site.url);
  const w = await ready(page);

  for (const sel of ['#search', '#notes', '#rich']) {
    await page.click(sel);
    await page.keyboard.type('a/b/c');
    await expect(w.panel).toBeHidden();
  }
  await expect(page.locator('#search')).toHaveValue('a/b/c');
  await expect(page.locator('#notes')).toHaveValue('a/b/c');
  await expect(page.locator('#rich')).toHaveText('a/b/c');

  // An input inside another component's shadow root.
  const inner = page.locator('my-editor input');
  await inner.click();
  await page.keyboard.type('x/y');
  await expect(inner).toHaveValue('x/y');
  await expect(w.panel).toBeHidden();

  // And inside a closed one, where the page sees only the component: it may hold an input.
  await page.evaluate(() => window.closedInput.focus());
  await page.keyboard.type('p/q');
  expect(await page.evaluate(() => window.closedInput.value)).toBe('p/q');
  await expect(w.panel).toBeHidden();

  // A select has the focus: "/" belongs to it (type-ahead), not to the widget.
  await page.focus('#pick');
  await page.keyboard.press('/');
  await expect(w.panel).toBeHidden();

  // Outside editable places the shortcut works.
  await page.focus('#plain');
  await page.keyboard.press('/');
  await expect(w.panel).toBeVisible();

  // In the chat box itself, "/" is text: the panel stays open.
  await expect(w.input).toBeFocused();
  await page.keyboard.type('see /pricing');
  await expect(w.panel).toBeVisible();
  await expect(w.input).toHaveValue('see /pricing');
});

test('Ctrl/Alt/Meta shortcuts keep working in editable places', async ({ page }) => {
  site = await startSite({ '/': pageWith('Ctrl+Shift+C') });
  await page.goto(site.url);
  const w = await ready(page);
  await page.click('#notes');
  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toBeVisible();
  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toBeHidden();
  await page.locator('my-editor input').click();
  await page.keyboard.press('Control+Shift+C');
  await expect(w.panel).toBeVisible();
});

test('a punctuation shortcut works with the Shift the layout needs, and never while typing', async ({ page }) => {
  for (const shortcut of ['?', 'Shift+/']) {
    site = await startSite({ '/': pageWith(shortcut) });
    await page.goto(site.url);
    const w = await ready(page);
    // On a US keyboard `?` is Shift and the / key.
    await page.focus('#plain');
    await page.keyboard.press('Shift+Slash');
    await expect(w.panel, shortcut).toBeVisible();
    await page.keyboard.press('Escape');
    await expect(w.panel).toBeHidden();
    // Typed in the page's own input, it is a question mark.
    await page.click('#search');
    await page.keyboard.type('why?');
    await page.keyboard.press('Shift+Slash');
    await expect(page.locator('#search')).toHaveValue('why??');
    await expect(w.panel, shortcut).toBeHidden();
    await site.close();
  }
  // On a German keyboard `/` is Shift+7 (Playwright types with a US layout: the event is made).
  site = await startSite({ '/': pageWith('/') });
  await page.goto(site.url);
  const w = await ready(page);
  await page.evaluate(() =>
    document.getElementById('plain').dispatchEvent(
      new KeyboardEvent('keydown', { key: '/', code: 'Digit7', shiftKey: true, bubbles: true, cancelable: true }),
    ),
  );
  await expect(w.panel).toBeVisible();
});

test('AltGr and Option write characters: a Ctrl+Alt or Alt shortcut on their key does not fire in an input', async ({ page }) => {
  const keydown = (target, init) =>
    page.evaluate(
      ([target, init]) => {
        const el = target === 'inner' ? document.querySelector('my-editor').shadowRoot.querySelector('input') : document.querySelector(target);
        el.focus();
        el.dispatchEvent(new KeyboardEvent('keydown', { bubbles: true, cancelable: true, composed: true, ...init }));
      },
      [target, init],
    );
  for (const [shortcut, press] of [
    // AltGr+E is € on a German keyboard: browsers report Ctrl+Alt with the AltGraph modifier.
    ['Ctrl+Alt+E', { key: '€', code: 'KeyE', ctrlKey: true, altKey: true, modifierAltGraph: true }],
    // Option+C is ç on a Mac.
    ['Alt+C', { key: 'ç', code: 'KeyC', altKey: true }],
  ]) {
    site = await startSite({ '/': pageWith(shortcut) });
    await page.goto(site.url);
    const w = await ready(page);
    for (const target of ['#search', '#rich', 'inner']) {
      await keydown(target, press);
      await expect(w.panel, `${shortcut} in ${target}`).toBeHidden();
    }
    // On a button the same press is the shortcut.
    await keydown('#plain', press);
    await expect(w.panel, `${shortcut} on a button`).toBeVisible();
    await site.close();
  }
});

test('no shortcut fires during an IME composition', async ({ page }) => {
  site = await startSite({ '/': pageWith('/') });
  await page.goto(site.url);
  const w = await ready(page);
  await page.focus('#plain');
  // Keys typed while an IME composes arrive as keyCode 229 / isComposing, whatever the key.
  for (const init of [{ keyCode: 229 }, { isComposing: true }]) {
    await page.evaluate((init) => {
      const key = { key: '/', code: 'Slash', bubbles: true, cancelable: true, composed: true, ...init };
      document.getElementById('plain').dispatchEvent(new KeyboardEvent('keydown', key));
    }, init);
    await expect(w.panel, JSON.stringify(init)).toBeHidden();
  }
});

/** Types `text` into the chat box as an IME would, then fires the confirming Enter in `order`. */
async function composeAndConfirm(page, text, order) {
  await page.evaluate(
    ([text, order]) => {
      const host = document.querySelector('[data-natter]');
      const input = host.shadowRoot.querySelector('[part=input]');
      const ev = (type, init) =>
        type.startsWith('composition')
          ? new CompositionEvent(type, { data: text, bubbles: true, composed: true, ...init })
          : new KeyboardEvent(type, { key: 'Enter', code: 'Enter', bubbles: true, cancelable: true, composed: true, ...init });
      input.dispatchEvent(ev('compositionstart'));
      input.value = text;
      input.dispatchEvent(new InputEvent('input', { data: text, isComposing: true, bubbles: true, composed: true }));
      const steps = {
        // Chrome, Edge and Firefox: the keydown comes first and says it is composing.
        chrome: [['keydown', { isComposing: true, keyCode: 229 }], ['compositionend']],
        // Safari: compositionend first, then a keydown that says it is not composing, keyCode 229.
        safari: [['compositionend'], ['keydown', { isComposing: false, keyCode: 229 }]],
      }[order];
      for (const [type, init] of steps) input.dispatchEvent(ev(type, init));
    },
    [text, order],
  );
}

for (const order of ['chrome', 'safari']) {
  test(`an Escape that cancels an IME conversion does not close the panel (${order} order)`, async ({ page }) => {
    await page.goto(hub.url);
    const w = await ready(page);
    await page.keyboard.press('Control+Shift+C');
    await expect(w.input).toBeFocused();
    await page.evaluate((order) => {
      const input = document.querySelector('[data-natter]').shadowRoot.querySelector('[part=input]');
      const escape = (init) =>
        new KeyboardEvent('keydown', { key: 'Escape', code: 'Escape', bubbles: true, cancelable: true, composed: true, ...init });
      const end = () => input.dispatchEvent(new CompositionEvent('compositionend', { data: '', bubbles: true, composed: true }));
      input.dispatchEvent(new CompositionEvent('compositionstart', { data: 'か', bubbles: true, composed: true }));
      if (order === 'chrome') {
        input.dispatchEvent(escape({ isComposing: true, keyCode: 229 }));
        end();
      } else {
        end();
        input.dispatchEvent(escape({ isComposing: false, keyCode: 229 }));
      }
    }, order);
    await expect(w.panel).toBeVisible();
    // The visitor's own Escape afterwards closes it.
    await page.keyboard.press('Escape');
    await expect(w.panel).toBeHidden();
  });

  test(`an Enter that confirms an IME conversion does not send (${order} order)`, async ({ page }) => {
    await page.goto(hub.url);
    const w = await ready(page);
    await page.keyboard.press('Control+Shift+C');
    await expect(w.input).toBeFocused();
    await composeAndConfirm(page, '漢字', order);
    await expect(w.input).toHaveValue('漢字');
    await expect(w.messages('user')).toHaveCount(0);
    // The visitor's next Enter (a keystroke of its own) sends.
    await w.input.press('Enter');
    await expect(w.messages('user')).toHaveCount(1);
    await expect(w.withText('漢字')).toHaveAttribute('data-state', 'sent');
  });
}
