// Languages and writing directions: text follows its own direction, an RTL locale mirrors the
// panel, every label comes from the locale (or the page's `strings`), times use Intl.
import { test, expect } from '@playwright/test';
import { useTagSite } from '../lib/tag-site.js';
import { widget, ready, say } from '../lib/widget.js';

const env = useTagSite();

/** Every visible or spoken label of the widget, read from the DOM. */
async function labels(page) {
  return page.evaluate(() => {
    const root = document.querySelector('[data-natter]').shadowRoot;
    const q = (s) => root.querySelector(s);
    return {
      launcher: q('[part=launcher]').getAttribute('aria-label'),
      status: q('[part=status]').textContent,
      close: q('[part=close]').getAttribute('aria-label'),
      mute: q('[part=mute]').getAttribute('aria-label'),
      log: q('[part=log]').getAttribute('aria-label'),
      input: q('[part=input]').getAttribute('aria-label'),
      placeholder: q('[part=input]').getAttribute('placeholder'),
      send: q('[part=send]').getAttribute('aria-label'),
      title: q('[part=title]').textContent,
      greeting: q('[part=greeting]')?.textContent,
      panelDir: q('[part=panel]').getAttribute('dir'),
      lang: q('[part=panel]').getAttribute('lang'),
    };
  });
}

test('Hebrew text: the bubble and the input follow the text’s direction', async ({ page }) => {
  await page.goto(`${env.site.url}/`);
  const w = await ready(page);
  await say(page, 'שלום! מה שלומך?');
  const mine = w.withText('שלום! מה שלומך?');
  await expect(mine).toHaveAttribute('data-state', 'sent');
  const text = mine.locator('[part=text]');
  await expect(text).toHaveAttribute('dir', 'auto');
  expect(await text.evaluate((el) => el.matches(':dir(rtl)'))).toBe(true);
  // An English bubble next to it stays left-to-right.
  expect(await w.messages('bot').last().locator('[part=text]').evaluate((el) => el.matches(':dir(ltr)'))).toBe(true);
  await expect(w.input).toHaveAttribute('dir', 'auto');
  await w.input.fill('מה שלומך?');
  expect(await w.input.evaluate((el) => el.matches(':dir(rtl)'))).toBe(true);
  // The page is English: the panel itself is not mirrored.
  expect((await labels(page)).panelDir).toBe('ltr');
});

test('locale "ar": Arabic labels, a mirrored panel, and a screenshot to look at', async ({ page }) => {
  await page.goto(`${env.site.url}/?locale=ar`);
  const w = await ready(page, 'متصل');
  await page.keyboard.press('Control+Shift+C');
  await say(page, 'مرحبا');
  await expect(w.messages('bot')).toHaveCount(1);
  const l = await labels(page);
  expect(l.panelDir).toBe('rtl');
  expect(l.lang).toBe('ar');
  for (const [k, v] of Object.entries(l)) {
    if (['panelDir', 'lang'].includes(k)) continue;
    expect(v, k).toMatch(/[\u0600-\u06ff]/);
  }
  // Mirrored: the close button sits on the left, the title on the right, my bubble on the left.
  const close = await page.locator('[part=close]').boundingBox();
  const title = await page.locator('[part=title]').boundingBox();
  expect(close.x).toBeLessThan(title.x);
  const mine = await w.messages('user').last().boundingBox();
  const bot = await w.messages('bot').last().boundingBox();
  expect(mine.x).toBeLessThan(bot.x);
  // The empty text box's placeholder reads right to left too.
  expect(await w.input.evaluate((el) => el.value === '' && getComputedStyle(el).direction)).toBe('rtl');
  await page.screenshot({ path: 'artifacts/rtl-arabic.png' });
});

test('Hebrew is right-to-left too', async ({ page }) => {
  await page.goto(`${env.site.url}/?locale=he-IL`);
  await ready(page, 'מחובר');
  const l = await labels(page);
  expect(l.panelDir).toBe('rtl');
  expect(l.placeholder).toMatch(/[\u0590-\u05ff]/);
});

test.describe('the browser’s language is the default', () => {
  test.use({ locale: 'de-DE' });
  test('de-DE gets German', async ({ page }) => {
    await page.goto(`${env.site.url}/`);
    await ready(page, 'Verbunden');
    const l = await labels(page);
    expect(l.placeholder).toBe('Nachricht schreiben …');
    expect(l.panelDir).toBe('ltr');
  });
});

test('fallback by language subtag, and English for a language without strings', async ({ page }) => {
  const expected = {
    'pt-BR': 'Conectado',
    // Chinese in its two scripts: Traditional for Taiwan, Hong Kong, Macau and zh-Hant.
    'zh-TW': '已連線',
    'zh-HK': '已連線',
    'zh-Hant': '已連線',
    'zh-Hans-HK': '已连接',
    'zh-CN': '已连接',
    zh: '已连接',
    'fr-CA': 'Connecté',
    'es-419': 'Conectado',
    ja: '接続済み',
    'xx-YY': 'Connected',
  };
  for (const [locale, connected] of Object.entries(expected)) {
    await page.goto(`${env.site.url}/?locale=${encodeURIComponent(locale)}`);
    await ready(page, connected);
  }
});

test('a locale without texts: an English panel reads left to right, times still in the locale', async ({ page }) => {
  // Persian and Urdu are written right to left, but the widget has no texts for them: the
  // panel shows English, so it must be an English, left-to-right panel ("Write a message…",
  // not "…Write a message"), while times follow the visitor's locale.
  for (const locale of ['fa-IR', 'ur']) {
    await page.goto(`${env.site.url}/?locale=${locale}`);
    const w = await ready(page, 'Connected');
    const l = await labels(page);
    expect(l.panelDir, locale).toBe('ltr');
    expect(l.lang, locale).toBe('en');
    expect(await w.input.evaluate((el) => getComputedStyle(el).direction), locale).toBe('ltr');
    await page.evaluate(() => window.natter.send('سلام'));
    const time = w.messages('user').last().locator('time');
    await expect(time).not.toHaveText('');
    const expected = await page.evaluate(
      ([locale, iso]) => new Intl.DateTimeFormat(locale, { hour: 'numeric', minute: '2-digit' }).format(new Date(iso)),
      [locale, await time.getAttribute('datetime')],
    );
    await expect(time).toHaveText(expected);
  }
  // A page that brings its own texts for the language gets its language and direction.
  const persian = JSON.stringify({ placeholder: 'پیام بنویسید…', statusConnected: 'متصل' });
  await page.goto(`${env.site.url}/?locale=fa&strings=${encodeURIComponent(persian)}`);
  await ready(page, 'متصل');
  const l = await labels(page);
  expect(l.panelDir).toBe('rtl');
  expect(l.lang).toBe('fa');
});

test('strings overrides any key; an unknown key is named in a warning', async ({ page }) => {
  const warnings = [];
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  const strings = JSON.stringify({ placeholder: 'Ask us anything', statusConnected: 'Online', nope: 'x' });
  await page.goto(`${env.site.url}/?locale=fr&strings=${encodeURIComponent(strings)}`);
  await ready(page, 'Online');
  const l = await labels(page);
  expect(l.placeholder).toBe('Ask us anything');
  expect(l.send).toBe('Envoyer');
  expect(warnings.some((t) => t.includes('nope'))).toBe(true);
});

test('times are formatted with Intl in the visitor’s locale', async ({ page }) => {
  for (const locale of ['en-US', 'de', 'ar']) {
    await page.goto(`${env.site.url}/?locale=${locale}`);
    const w = widget(page);
    await expect(w.launcher).toBeVisible();
    await page.evaluate(() => window.natter.send('what time is it?'));
    const time = w.messages('user').last().locator('time');
    await expect(time).not.toHaveText('');
    const [shown, iso] = await Promise.all([time.textContent(), time.getAttribute('datetime')]);
    const expected = await page.evaluate(
      ([locale, iso]) => new Intl.DateTimeFormat(locale, { hour: 'numeric', minute: '2-digit' }).format(new Date(iso)),
      [locale, iso],
    );
    expect(shown, locale).toBe(expected);
    // The full date and time is in the tooltip.
    await expect(time).toHaveAttribute('title', /\d/);
  }
});

test('a strings value that is not a text is named in a warning and the locale’s own text stays', async ({ page }) => {
  const warnings = [];
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  // Numbers, nulls and objects would have taken the French text's place and then been dropped,
  // leaving English with nothing said.
  const strings = JSON.stringify({ placeholder: 42, send: null, statusConnected: 'En ligne !' });
  await page.goto(`${env.site.url}/?locale=fr&strings=${encodeURIComponent(strings)}`);
  await ready(page, 'En ligne !');
  const l = await labels(page);
  expect(l.placeholder).toBe('Écrivez un message…');
  expect(l.send).toBe('Envoyer');
  expect(warnings.filter((t) => /strings\.(placeholder|send) is not a text/.test(t))).toHaveLength(2);
});
