// Browser-to-browser cursor relay latency over loopback: two headless Chromium profiles join one
// room on a real hub; one moves its cursor (`room.cursor(data)`, which the widget coalesces to
// one `cursor_position` per animation frame), the other hears it (`room.on('cursor')`).
//
// Usage: node cursor-latency.mjs <hub URL>   (run by `cargo xtask bench cursor`, which starts
// the hub). Prints p50 / p90 / p99 / max in milliseconds of:
//   - call → heard: `room.cursor()` called → the other page's listener runs. Includes the wait
//     for the sender's next animation frame (up to ~16.7 ms at 60 Hz): what a user sees.
//   - frame → heard: the sender's animation frame (when the frame goes out) → heard: the
//     socket, the hub's fan-out and the receiver's decoding alone.
// Both pages read one clock: `performance.timeOrigin + performance.now()` of the same machine.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';

const hub = process.argv[2];
if (!hub) throw new Error('usage: node cursor-latency.mjs <hub URL>');
const SAMPLES = Number(process.env.SAMPLES || 400);
const GAP_MS = Number(process.env.GAP_MS || 25);

const PAGE = `<!doctype html><html><body><script type="module">
  import { mount } from '${hub}/index.js';
  window.natter = mount({ server: '${hub}', rooms: 'api' });
  window.heard = [];
  window.frames = [];
  const now = () => performance.timeOrigin + performance.now();
  window.join = async (name) => {
    const room = window.natter.joinRoom('latency', { name });
    room.on('cursor', ({ data }) => window.heard.push({ i: data.i, sent: data.sent, at: now() }));
    await new Promise((ok, fail) => {
      const t = setInterval(() => room.status === 'joined' && (clearInterval(t), ok()), 20);
      setTimeout(() => (clearInterval(t), fail(new Error('not joined over the WebSocket: ' + room.status))), 15000);
    });
  };
  // One move: the time of the call goes with it; the time of the animation frame that sends it
  // stays on this page (the data is written out as JSON at the call, so it cannot carry it).
  window.move = (i) => {
    requestAnimationFrame(() => { window.frames[i] = now(); });
    window.natter.rooms[0].cursor({ i, sent: now() });
  };
</script></body></html>`;

// The page comes from a loopback server of its own (another origin than the hub, like a site
// embedding the widget): a page Chromium considers public may not open loopback WebSockets.
const site = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(PAGE);
});
await new Promise((ok) => site.listen(0, '127.0.0.1', ok));
const siteUrl = `http://127.0.0.1:${site.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const pages = [];
  for (const name of ['Sender', 'Receiver']) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(siteUrl);
    await page.waitForFunction(() => window.join);
    await page.evaluate((n) => window.join(n), name);
    pages.push(page);
  }
  const [sender, receiver] = pages;
  for (let i = 0; i < SAMPLES; i++) {
    await sender.evaluate((n) => window.move(n), i);
    await new Promise((r) => setTimeout(r, GAP_MS));
  }
  await receiver.waitForFunction((n) => window.heard.length >= n * 0.99, SAMPLES, { timeout: 30_000 }).catch(() => {});
  const heard = await receiver.evaluate(() => window.heard);
  const frames = await sender.evaluate(() => window.frames);
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    return `p50 ${q(0.5).toFixed(2)}  p90 ${q(0.9).toFixed(2)}  p99 ${q(0.99).toFixed(2)}  max ${s.at(-1).toFixed(2)}`;
  };
  console.log(`cursor relay over loopback, ${heard.length} of ${SAMPLES} moves heard (one every ${GAP_MS} ms), in ms:`);
  console.log(`  call  → heard   ${stats(heard.map((h) => h.at - h.sent))}`);
  console.log(`  frame → heard   ${stats(heard.filter((h) => frames[h.i]).map((h) => h.at - frames[h.i]))}`);
} finally {
  await browser.close();
  site.close();
}
