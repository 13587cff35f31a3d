// A phone (390×844, touch): no zoom on focus, fingers-sized targets, no keyboard popping up on
// open, and controls whose labels say what they do now. Plus the screenshots to look at.
import { test, expect } from '@playwright/test';
import { startSite } from '../lib/hub.js';
import { useTagSite } from '../lib/tag-site.js';
import { widget, ready, say, focusedPart } from '../lib/widget.js';

const env = useTagSite();

test.describe('on a phone', () => {
  test.use({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });

  test('tap to open: no keyboard until the visitor taps the input; 16 px text; 44 px targets', async ({ page }) => {
    await page.goto(`${env.site.url}/`);
    const w = await ready(page);
    await w.launcher.tap();
    await expect(w.panel).toBeVisible();
    // Full screen (once its opening animation has run).
    await expect.poll(() => w.panel.boundingBox()).toMatchObject({ x: 0, y: 0, width: 390, height: 844 });
    // Focus is in the dialog, but not in the text box: no on-screen keyboard yet.
    expect(await focusedPart(page)).not.toBeNull();
    expect(await focusedPart(page)).not.toBe('input');
    await page.screenshot({ path: 'artifacts/phone-open-keyboard-closed.png' });

    const fontSize = await w.input.evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
    expect(fontSize).toBeGreaterThanOrEqual(16);
    for (const part of ['mute', 'close', 'send']) {
      const box = await page.locator(`[part=${part}]`).boundingBox();
      expect(box.width, part).toBeGreaterThanOrEqual(44);
      expect(box.height, part).toBeGreaterThanOrEqual(44);
    }

    // The visitor's tap on the input is what brings the keyboard.
    await w.input.tap();
    expect(await focusedPart(page)).toBe('input');
    await w.input.fill('hello from my phone');
    await page.locator('[part=send]').tap();
    await expect(w.messages('bot')).toHaveCount(1);
    await page.screenshot({ path: 'artifacts/phone-conversation.png' });

    await page.locator('[part=close]').tap();
    await expect(w.panel).toBeHidden();
  });
});

test.describe('on a phone, with its on-screen keyboard', () => {
  test.use({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });

  /**
   * What a phone's browser reports while its keyboard is up (iOS Safari, and Chrome on Android
   * by default): the layout viewport keeps its size, the visual viewport shrinks to what is left
   * above the keyboard (and may be scrolled down), at scale 1. Headless Chromium has no keyboard,
   * so the values and the `resize` event are the ones a phone gives.
   */
  async function visualViewport(page, { height, offsetTop = 0, scale = 1 }) {
    await page.evaluate(
      ([height, offsetTop, scale]) => {
        const vv = window.visualViewport;
        for (const [k, v] of Object.entries({ height, offsetTop, scale })) {
          Object.defineProperty(vv, k, { configurable: true, get: () => v });
        }
        vv.dispatchEvent(new Event('resize'));
      },
      [height, offsetTop, scale],
    );
  }

  test('the open panel fits above the keyboard, and only the keyboard (not a pinch zoom) shrinks it', async ({ page }) => {
    await page.goto(`${env.site.url}/`);
    const w = await ready(page);
    await w.launcher.tap();
    await w.input.tap();
    // A 336 px keyboard, with the visual viewport scrolled 40 px down as iOS does.
    await visualViewport(page, { height: 844 - 336, offsetTop: 40 });
    await expect.poll(() => w.panel.boundingBox()).toMatchObject({ x: 0, y: 40, width: 390, height: 508 });
    const send = await page.locator('[part=send]').boundingBox();
    expect(send.y + send.height).toBeLessThanOrEqual(40 + 508);
    const close = await page.locator('[part=close]').boundingBox();
    expect(close.y).toBeGreaterThanOrEqual(40);
    await page.screenshot({ path: 'artifacts/phone-keyboard-open.png' });

    // Pinch zoom shrinks the visual viewport too, at a larger scale: the panel stays full-size.
    await visualViewport(page, { height: 422, offsetTop: 100, scale: 2 });
    await expect.poll(() => w.panel.boundingBox()).toMatchObject({ x: 0, y: 0, width: 390, height: 844 });
    // The keyboard goes away.
    await visualViewport(page, { height: 844, offsetTop: 0, scale: 1 });
    await expect.poll(() => w.panel.boundingBox()).toMatchObject({ x: 0, y: 0, width: 390, height: 844 });
  });
});

test.describe('on a phone with a notch and a home indicator (viewport-fit=cover)', () => {
  test.use({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });

  test('nothing sits under the notch or the home indicator', async ({ page }) => {
    // An iPhone's insets: the status bar and the Dynamic Island above, the home indicator below.
    const inset = { top: 47, bottom: 34, left: 0, right: 0 };
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setSafeAreaInsetsOverride', { insets: inset });
    // A page that draws under them (its viewport meta says viewport-fit=cover).
    const cover = await startSite({
      '/': `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"><title>Shop</title>
<script src="${env.hub.url}/natter.js" data-server="${env.hub.url}" async></script></head><body><h1>Shop</h1></body></html>`,
    });
    try {
      await page.goto(cover.url);
      const w = await ready(page);
      const bottomEdge = 844 - inset.bottom;
      const launcher = await w.launcher.boundingBox();
      expect(launcher.y + launcher.height, 'launcher').toBeLessThanOrEqual(bottomEdge);
      await w.launcher.tap();
      await expect.poll(() => w.panel.boundingBox()).toMatchObject({ x: 0, y: 0, width: 390, height: 844 });
      for (const part of ['close', 'mute', 'title']) {
        const box = await page.locator(`[part=${part}]`).boundingBox();
        expect(box.y, part).toBeGreaterThanOrEqual(inset.top);
      }
      for (const sel of ['[part=send]', '[part=input]']) {
        const box = await page.locator(sel).boundingBox();
        expect(box.y + box.height, sel).toBeLessThanOrEqual(bottomEdge);
      }
      // The panel's background reaches the edge; its last line of text does not.
      const footerText = await page.evaluate(() => {
        const footer = document.querySelector('[data-natter]').shadowRoot.querySelector('.footer');
        const range = document.createRange();
        range.selectNodeContents(footer);
        return range.getBoundingClientRect().bottom;
      });
      expect(footerText, 'footer text').toBeLessThanOrEqual(bottomEdge);
      await page.screenshot({ path: 'artifacts/phone-safe-area.png' });
    } finally {
      await cover.close();
    }
  });
});

test('the launcher says what it does now', async ({ page }) => {
  await page.goto(`${env.site.url}/`);
  const w = await ready(page);
  await expect(w.launcher).toHaveAttribute('aria-label', 'Open chat');
  await w.launcher.click();
  await expect(w.launcher).toHaveAttribute('aria-label', 'Close chat');
  await expect(w.launcher).toHaveAttribute('aria-expanded', 'true');
  // With the mouse, opening puts the caret in the text box at once.
  expect(await focusedPart(page)).toBe('input');
  await w.launcher.click();
  await expect(w.launcher).toHaveAttribute('aria-label', 'Open chat');
  // The mute button's tooltip says what a click will do.
  const mute = page.locator('[part=mute]');
  await w.launcher.click();
  await expect(mute).toHaveAttribute('title', 'Mute notification sound');
  await mute.click();
  await expect(mute).toHaveAttribute('aria-pressed', 'true');
  await expect(mute).toHaveAttribute('title', 'Unmute notification sound');
  await mute.click();
});

for (const scheme of ['light', 'dark']) {
  test(`desktop screenshot, ${scheme}`, async ({ page }) => {
    await page.emulateMedia({ colorScheme: scheme });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${env.site.url}/`);
    const w = await ready(page);
    await say(page, 'Hi! Does the checkout work on mobile?');
    await expect(w.messages('bot')).toHaveCount(1);
    await page.screenshot({ path: `artifacts/desktop-${scheme}.png` });
  });
}
