// `npm pack` / `npm publish` run this first (the package's `prepack` script): it refuses to
// pack a package that would not work — no build in dist/, a build older than its sources, or
// license and changelog texts that differ from the repository's — and says what to run.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const problems = [];

for (const file of pkg.files) {
  // `dist/locales/*.json`: at least one built file must match.
  if (file.includes('*')) {
    const dir = join(pkgDir, dirname(file));
    const suffix = file.slice(file.lastIndexOf('*') + 1);
    if (!existsSync(dir) || !readdirSync(dir).some((name) => name.endsWith(suffix))) {
      problems.push(`${file} matches nothing (the widget is not built)`);
    }
    continue;
  }
  const path = join(pkgDir, file);
  if (!existsSync(path) || statSync(path).size === 0) {
    problems.push(`${file} is missing${file.startsWith('dist/') ? ' (the widget is not built)' : ''}`);
  }
}

// The widget's two builds (the support chat alone, and with rooms): each wasm module and the
// wasm-bindgen glue made for it, all built from the Rust crates.
const WASM = ['dist/natter_widget_bg.wasm', 'dist/natter_widget_rooms_bg.wasm'];
const FROM_RUST = [...WASM, 'dist/natter_widget.js', 'dist/natter_widget_rooms.js'];
for (const file of WASM) {
  const wasm = join(pkgDir, file);
  if (existsSync(wasm) && !readFileSync(wasm).subarray(0, 4).equals(Buffer.from('\0asm'))) {
    problems.push(`${file} is not a WebAssembly module`);
  }
}

// A build older than what it is built from would ship last week's widget under this version.
for (const [built, source] of [
  ['dist/index.js', 'src/index.js'],
  ['dist/natter.js', 'src/natter.js'],
  ['dist/index.d.ts', 'src/index.d.ts'],
  ['dist/rooms.d.ts', 'src/rooms.d.ts'],
  ['dist/react.js', 'src/react.js'],
  ['dist/react.d.ts', 'src/react.d.ts'],
  ['dist/rooms-panel.js', 'src/rooms-panel.js'],
  ['dist/natter_widget_rooms_panel.js', 'src/rooms-panel.js'],
]) {
  const b = join(pkgDir, built);
  const s = join(pkgDir, source);
  if (existsSync(b) && existsSync(s) && statSync(b).mtimeMs < statSync(s).mtimeMs) {
    problems.push(`${built} is older than ${source} (a stale build)`);
  }
}

// In the repository, the wasm is built from the Rust crates beside the package: one edited
// after the last build would ship an old widget under the new sources' version.
const newestSource = (dir) => {
  let newest = null;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === 'target' || entry.name === 'tests') continue;
      const inner = newestSource(path);
      if (inner && (!newest || inner.mtimeMs > newest.mtimeMs)) newest = inner;
    } else if (/\.(rs|json)$/.test(entry.name) || entry.name === 'Cargo.toml') {
      const { mtimeMs } = statSync(path);
      if (!newest || mtimeMs > newest.mtimeMs) newest = { path, mtimeMs };
    }
  }
  return newest;
};
const newest = ['widget', 'protocol']
  .map((crate) => {
    const dir = join(pkgDir, '..', crate);
    const found = existsSync(join(dir, 'Cargo.toml')) ? newestSource(dir) : null;
    return found && { ...found, name: `${crate}/${found.path.slice(dir.length + 1)}` };
  })
  .filter(Boolean);
for (const file of FROM_RUST) {
  const built = join(pkgDir, file);
  if (!existsSync(built)) continue;
  const source = newest.find((s) => statSync(built).mtimeMs < s.mtimeMs);
  if (source) problems.push(`${file} is older than ${source.name} (a stale build)`);
}

// In the repository, the license texts and the changelog live at the root; the package
// carries copies, which must not drift.
for (const file of ['LICENSE-MIT', 'LICENSE-APACHE', 'CHANGELOG.md']) {
  const root = join(pkgDir, '..', file);
  const copy = join(pkgDir, file);
  if (existsSync(root) && existsSync(copy) && !readFileSync(root).equals(readFileSync(copy))) {
    problems.push(`npm/${file} differs from the repository's ${file} (copy it over)`);
  }
}

const changelog = join(pkgDir, 'CHANGELOG.md');
if (existsSync(changelog) && !readFileSync(changelog, 'utf8').includes(`## ${pkg.version}`)) {
  problems.push(`CHANGELOG.md has no "## ${pkg.version}" section`);
}

if (problems.length) {
  console.error(`${pkg.name}: refusing to pack:\n  - ${problems.join('\n  - ')}`);
  console.error('Build the widget first with `cargo xtask build` (from the repository root), then pack again.');
  process.exit(1);
}
