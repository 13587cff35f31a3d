// Starts and stops a real natter-hub (target/debug/natter-hub) on a free port, and a second
// static origin for "the web developer's own site".
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = process.env.NATTER_ROOT || resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = join(ROOT, 'target/debug/natter-hub');

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

let helpText;
function hubSupports(flag) {
  helpText ??= execFileSync(BIN, ['--help'], { encoding: 'utf8' });
  return helpText.includes(flag);
}

/**
 * A running hub. `restart()` stops it (SIGTERM, so sockets get "going away") and starts it again
 * on the same port with the same database, as an operator's deploy would.
 */
export class Hub {
  constructor({ port, dir, args = [], assets = true }) {
    this.port = port;
    this.dir = dir;
    this.args = args;
    this.assets = assets;
    this.url = `http://127.0.0.1:${port}`;
    this.log = '';
  }

  /**
   * Starts a hub in a fresh temporary directory (its working directory and database).
   * `assets: false` leaves out `--assets`, so the hub serves the widget embedded in it.
   */
  static async start(args = [], { assets = true } = {}) {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run cargo build -p natter-hub`);
    const dir = mkdtempSync(join(tmpdir(), 'natter-e2e-'));
    const hub = new Hub({ port: await freePort(), dir, args, assets });
    await hub.spawn();
    return hub;
  }

  async spawn() {
    const assets = process.env.NATTER_E2E_ASSETS || join(ROOT, 'npm/dist');
    const args = ['--listen', `127.0.0.1:${this.port}`, ...(this.assets ? ['--assets', assets] : []), ...this.args];
    if (hubSupports('--db')) args.push('--db', join(this.dir, 'natter.db'));
    this.proc = spawn(BIN, args, { cwd: this.dir, env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' } });
    this.proc.stdout.on('data', (d) => (this.log += d));
    this.proc.stderr.on('data', (d) => (this.log += d));
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const r = await fetch(`${this.url}/healthz`);
        if (r.ok) return;
      } catch {}
      if (this.proc.exitCode !== null) throw new Error(`hub exited early:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`hub did not become healthy:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async restart() {
    await this.stop();
    await this.spawn();
  }

  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Serves the pages of "a web developer's site" on its own origin, with the given headers
 * (a strict CSP, say). `pages` maps a path to an HTML string or `{ type, body }`.
 */
export async function startSite(pages, headers = {}) {
  const port = await freePort();
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const body = pages[path];
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const page = typeof body === 'string' ? { type: 'text/html; charset=utf-8', body } : body;
    res.writeHead(200, { 'content-type': page.type, ...headers });
    res.end(page.body);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}

export function readRootFile(path) {
  return readFileSync(join(ROOT, path), 'utf8');
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

/**
 * Stops `server`, ending the browser's open connections too: a socket Chromium opened ahead of a
 * request it never sent is not idle to Node, and `server.close` alone waited for it (90 s).
 */
function closeServer(server) {
  return new Promise((r) => {
    server.close(r);
    server.closeAllConnections();
  });
}

/** Serves a built app (a `dist/` directory) on its own origin. */
export async function serveDir(dir) {
  const { extname, normalize } = await import('node:path');
  const port = await freePort();
  const server = createServer((req, res) => {
    let path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (path.endsWith('/')) path += 'index.html';
    const file = join(dir, path);
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}

/**
 * A page of "the web developer's site" that adds the documented script tag with the `data-*`
 * attributes given in its query string (`/?locale=ar&shortcut=/`), so one site serves every
 * option combination a test needs.
 */
export async function startTagSite(hub) {
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Acme</title>
<script>
  const tag = document.createElement('script');
  tag.src = ${JSON.stringify(hub.url + '/natter.js')};
  tag.async = true;
  tag.dataset.server = ${JSON.stringify(hub.url)};
  for (const [k, v] of new URLSearchParams(location.search)) tag.dataset[k] = v;
  document.head.append(tag);
</script></head>
<body><main><h1>Acme</h1><p>The web developer's own page.</p></main></body></html>`;
  return startSite({ '/': page, '/other': page });
}
