// Locators for the widget's DOM contract (see README "Styling and DOM parts"). Playwright's CSS
// locators pierce open shadow roots, which is how a visitor's assistive technology sees it too.
import { expect } from '@playwright/test';

export function widget(page) {
  return {
    host: page.locator('[data-natter]'),
    launcher: page.locator('[part~=launcher]'),
    badge: page.locator('[part~=badge]'),
    panel: page.locator('[part~=panel]'),
    status: page.locator('[part~=status]'),
    input: page.locator('[part~=input]'),
    log: page.locator('[part~=log]'),
    typing: page.locator('[part~=typing]'),
    messages: (role) => page.locator(role ? `[part~=message][data-role=${role}]` : '[part~=message]'),
    withText: (text) => page.locator('[part~=message]').filter({ hasText: text }),
  };
}

/** The `part` of the element focused inside the widget's shadow root, or null. */
export async function focusedPart(page) {
  return page.evaluate(() => {
    const host = document.querySelector('[data-natter]');
    const el = host && host.shadowRoot && host.shadowRoot.activeElement;
    return el ? el.getAttribute('part') : null;
  });
}

/** Waits for the widget to mount and connect. */
export async function ready(page, label = 'Connected') {
  const w = widget(page);
  await expect(w.launcher).toBeVisible();
  await expect(w.status).toContainText(label);
  return w;
}

/** Opens the panel with the keyboard shortcut, types `text` and presses Enter. */
export async function say(page, text) {
  const w = widget(page);
  if (!(await w.panel.isVisible())) await page.keyboard.press('Control+Shift+C');
  await expect(w.input).toBeFocused();
  await w.input.fill(text);
  await w.input.press('Enter');
}

/** The conversation as the hub stores it (HTTP poll without `after`). */
export async function storedMessages(hubUrl, session) {
  const r = await fetch(`${hubUrl}/api/chat/poll?session=${encodeURIComponent(session)}&after=0`);
  if (!r.ok) throw new Error(`poll failed: ${r.status} ${await r.text()}`);
  return (await r.json()).messages;
}
