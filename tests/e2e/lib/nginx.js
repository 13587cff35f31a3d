// Debian's real nginx in front of a hub, configured with the block docs/deploy.md documents
// (the first ```nginx fence), so the deploy guide cannot drift from what works. Only the
// machine-specific parts are replaced — ports, the certificate, the nginx version's http2
// syntax — and each replacement must match exactly once, so a reshaped doc fails loudly here.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRootFile } from './hub.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

/** The nginx block of docs/deploy.md, as documented. */
export function documentedNginxConfig() {
  const match = readRootFile('docs/deploy.md').match(/```nginx\n([\s\S]*?)```/);
  if (!match) throw new Error('docs/deploy.md has no ```nginx block');
  return match[1];
}

function replaceOnce(text, from, to) {
  const count = text.split(from).length - 1;
  if (count !== 1) throw new Error(`expected ${JSON.stringify(from)} once in docs/deploy.md's nginx block, found ${count}`);
  return text.replace(from, to);
}

/** nginx's version as [major, minor, patch]. */
function versionOf(bin) {
  const r = spawnSyncText(bin, ['-v']); // `nginx -v` prints to stderr

  const m = r.match(/nginx\/(\d+)\.(\d+)\.(\d+)/);
  if (!m) throw new Error(`cannot read the nginx version from ${JSON.stringify(r)}`);
  return m.slice(1).map(Number);
}

function spawnSyncText(bin, args) {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return `${r.stdout || ''}${r.stderr || ''}`;
}

/**
 * Starts nginx on a free loopback port with TLS (a throwaway self-signed certificate for
 * 127.0.0.1), proxying to `hubPort` with the documented configuration. Returns
 * `{ url, port, certificate, log(), stop() }`.
 */
export async function startNginx({ port, hubPort }) {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install nginx; `cargo xtask test` installs it as root)');
  const dir = mkdtempSync(join(tmpdir(), 'natter-nginx-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });

  let site = documentedNginxConfig();
  site = replaceOnce(site, 'server 127.0.0.1:8080;', `server 127.0.0.1:${hubPort};`);
  site = replaceOnce(site, '/etc/letsencrypt/live/chat.example.com/fullchain.pem', cert);
  site = replaceOnce(site, '/etc/letsencrypt/live/chat.example.com/privkey.pem', key);
  const [major, minor, patch] = versionOf(NGINX);
  const modernHttp2 = major > 1 || (major === 1 && (minor > 25 || (minor === 25 && patch >= 1)));
  if (modernHttp2) {
    site = replaceOnce(site, 'listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`);
  } else {
    // What the guide tells users of nginx before 1.25.1 to write instead.
    site = replaceOnce(site, 'listen 443 ssl;', `listen 127.0.0.1:${port} ssl http2;`);
    site = replaceOnce(site, 'http2 on;', '');
  }

  const conf = join(dir, 'nginx.conf');
  const isRoot = process.getuid?.() === 0;
  writeFileSync(conf, `
${isRoot ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 512; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${site}
}
`);
  const proc = spawn(NGINX, ['-e', join(dir, 'error.log'), '-p', dir, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const log = () => {
    const read = (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
    return `${output}\n--- error.log\n${read('error.log')}\n--- access.log\n${read('access.log')}`;
  };
  const certificate = readFileSync(cert);
  const url = `https://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}:\n${log()}`);
    if ((await status(`${url}/healthz`, certificate)) === 200) break;
    if (Date.now() > deadline) throw new Error(`nginx did not answer /healthz through to the hub:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    certificate,
    log,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGQUIT'); // graceful: the workers finish their requests and exit
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The HTTP status of GET `url`, trusting only `ca`; 0 when nothing answers. */
function status(url, ca) {
  return new Promise((resolve) => {
    const req = request(url, { ca }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}
