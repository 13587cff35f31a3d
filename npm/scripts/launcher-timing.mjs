// Time from "the script tag starts loading" to "the launcher is on screen", in headless Chromium.
//
// Usage: node launcher-timing.mjs <npm/dist>   (run by `cargo xtask bench size`)
// Serves npm/dist and a plain page with the one script tag from a loopback HTTP server, loads it
// RUNS times in fresh browser contexts (cold HTTP cache), and prints the median and p90 of (for
// the support chat alone, and for a page with rooms, `data-rooms="api"`, which loads the other
// build):
//   - script → launcher in DOM: natter.js fetch start → the launcher element attached, styled;
//   - script → first frame: the same → the first animation frame after that (painted).
// The widget points at a closed port: no hub is needed to show the launcher.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, extname } from 'node:path';

const dist = process.argv[2];
if (!dist) throw new Error('usage: node launcher-timing.mjs <npm/dist>');
const RUNS = Number(process.env.RUNS || 15);
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

const page = (attrs) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>timing</title>
<script>
  new MutationObserver(function (_, obs) {
    var host = document.querySelector('[data-natter]');
    var l = host && host.shadowRoot && host.shadowRoot.querySelector('[part=launcher]');
    if (!l) return;
    obs.disconnect();
    window.__inDom = performance.now();
    requestAnimationFrame(function () { window.__frame = performance.now(); });
  }).observe(document.documentElement, { childList: true, subtree: true });
</script>
<script src="/natter.js" data-server="http://127.0.0.1:9" ${attrs} async></script>
</head><body><h1>A page</h1></body></html>`;

const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/' || path === '/rooms') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page(path === '/rooms' ? 'data-rooms="api"' : ''));
  }
  try {
    const body = readFileSync(join(dist, path.replace(/^\/+/, '')));
    res.writeHead(200, { 'content-type': TYPES[extname(path)] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
  ],
});
const PAGES = [['support chat', ''], ['with rooms', 'rooms']];
const timings = PAGES.map(() => ({ inDom: [], frame: [] }));
try {
  for (let i = 0; i < RUNS * PAGES.length; i++) {
    const which = i % PAGES.length;
    const { inDom, frame } = timings[which];
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url + PAGES[which][1]);
    await page.waitForFunction(() => window.__frame !== undefined, null, { timeout: 30_000 });
    const t = await page.evaluate(() => {
      const script = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/natter.js'));
      return { start: script.startTime, inDom: window.__inDom, frame: window.__frame };
    });
    inDom.push(t.inDom - t.start);
    frame.push(t.frame - t.start);
    await context.close();
  }
} finally {
  await browser.close();
  server.close();
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const line = (name, xs) =>
  `  ${name.padEnd(32)} median ${pct(xs, 50).toFixed(1).padStart(6)} ms   p90 ${pct(xs, 90).toFixed(1).padStart(6)} ms`;
console.log(`launcher timing, headless Chromium, loopback HTTP, cold cache, ${RUNS} runs:`);
PAGES.forEach(([name], i) => {
  console.log(`  ${name}:`);
  console.log(line('  script load → launcher in DOM', timings[i].inDom));
  console.log(line('  script load → first frame', timings[i].frame));
});
